"""The channel handshake of an app whose channels are unordered, versioned and not closable.

Why one class: the ``transfer`` and ``dvp`` ports apply the same rules to a channel opening
(unordered, the app's version proposed or echoed, the counterparty's version equal to ours) and
refuse a user's close for a reason of their own; written per app, the rules drifted apart in
wording and could drift in substance. An app names itself, its version and why it cannot be
closed, and may add a rule on the ports (``dvp`` joins its own port on both ends).
"""

from __future__ import annotations

from typing import ClassVar

from chains.ibc.context import Context
from chains.ibc.errors import AppError
from kakehashi.ibc.v1 import channel_pb2 as chpb


class UnorderedAppHandshake:
    """ICS-26 handshake callbacks for an unordered app channel; refusals name ``APP_NAME``."""

    APP_NAME: ClassVar[str]
    APP_VERSION: ClassVar[str]
    CLOSE_REFUSAL: ClassVar[str]  # why a user may not close the channel

    def _check_ports(self, port_id: str, counterparty_port: str) -> None:
        """An app's rule on the ports a channel joins; none unless the app has one."""

    def _check_channel(self, order: int, port_id: str, counterparty_port: str) -> None:
        if order != chpb.ORDER_UNORDERED:
            raise AppError(f"{self.APP_NAME} channels must be unordered")
        self._check_ports(port_id, counterparty_port)

    def _check_counterparty_version(self, counterparty_version: str) -> None:
        if counterparty_version != self.APP_VERSION:
            raise AppError(f"counterparty {self.APP_NAME} version must be {self.APP_VERSION!r}, "
                           f"got {counterparty_version!r}")

    def on_chan_open_init(
        self, ctx: Context, order: int, connection_hops: list[str], port_id: str, channel_id: str,
        counterparty: chpb.ChannelCounterparty, version: str,
    ) -> str:
        self._check_channel(order, port_id, counterparty.port_id)
        if version not in ("", self.APP_VERSION):
            raise AppError(f"{self.APP_NAME} version must be {self.APP_VERSION!r}, got {version!r}")
        return self.APP_VERSION

    def on_chan_open_try(
        self, ctx: Context, order: int, connection_hops: list[str], port_id: str, channel_id: str,
        counterparty: chpb.ChannelCounterparty, counterparty_version: str,
    ) -> str:
        self._check_channel(order, port_id, counterparty.port_id)
        self._check_counterparty_version(counterparty_version)
        return self.APP_VERSION

    def on_chan_open_ack(
        self, ctx: Context, port_id: str, channel_id: str, counterparty_channel_id: str,
        counterparty_version: str,
    ) -> None:
        self._check_counterparty_version(counterparty_version)

    def on_chan_open_confirm(self, ctx: Context, port_id: str, channel_id: str) -> None:
        return None

    def on_chan_close_init(self, ctx: Context, port_id: str, channel_id: str) -> None:
        raise AppError(f"{self.APP_NAME} channels cannot be closed by a user: {self.CLOSE_REFUSAL}")

    def on_chan_close_confirm(self, ctx: Context, port_id: str, channel_id: str) -> None:
        return None
