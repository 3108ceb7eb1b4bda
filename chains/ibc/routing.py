"""ICS-05 ports and ICS-26 routing: which application module answers for a port.

The callback interface an app implements (:class:`chains.ibc.context.IBCModule`) lives with
the :class:`~chains.ibc.context.Context` it receives; this module only binds ports to apps.
"""

from __future__ import annotations

from chains.ibc.context import IBCModule
from chains.ibc.errors import IdentifierExists, NoRoute
from chains.ibc.host.identifiers import validate_port_id


class Router:
    """Port bindings. A port is bound once; rebinding would let a second app steal packets."""

    def __init__(self) -> None:
        self._ports: dict[str, IBCModule] = {}

    def bind_port(self, port_id: str, module: IBCModule) -> None:
        validate_port_id(port_id)
        if port_id in self._ports:
            raise IdentifierExists(f"port {port_id!r} is already bound")
        self._ports[port_id] = module

    def route(self, port_id: str) -> IBCModule:
        module = self._ports.get(port_id)
        if module is None:
            raise NoRoute(f"no module is bound to port {port_id!r}")
        return module

    def ports(self) -> list[str]:
        return sorted(self._ports)
