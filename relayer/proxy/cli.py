"""`kakehashi proxy init|start|info`: run the proxy service (a SIMULATED enclave).

Every output says "simulated": no real TEE attests the enclave keys, and the attestation
authority is a key in the proxy's home. Errors are one line (ValueError subclasses, which
``kakehashi``'s main turns into ``error: ...`` and exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from relayer.cli.console import stdout_console

SIMULATED = "SIMULATED enclave and attestation authority (no real TEE)"


class ProxyCliError(ValueError):
    """A user-facing failure of a proxy command."""


def _out(ns: argparse.Namespace, doc: Any, table: Table | str) -> None:
    if ns.json:
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
    else:
        stdout_console().print(table)


def cmd_init(ns: argparse.Namespace) -> None:
    from relayer.proxy.home import ProxyHomeError, init_home

    try:
        home = init_home(Path(ns.home), ns.listen, Path(ns.authority_key) if ns.authority_key else None)
    except ProxyHomeError as exc:
        raise ProxyCliError(str(exc)) from None
    doc = {"home": str(home.path), "listen": home.listen, "operator": "0x" + home.operator.hex(),
           "authority": "0x" + home.authority.hex(), "simulated": True, "note": SIMULATED}
    _out(ns, doc, f"initialised proxy home {home.path} (listen {home.listen})\n"
                  f"operator 0x{home.operator.hex()}, attestation authority 0x{home.authority.hex()}\n"
                  f"[yellow]{SIMULATED}[/]")


def cmd_start(ns: argparse.Namespace) -> None:
    from relayer.ops.logs import configure_logging
    from relayer.proxy.home import ProxyHomeError
    from relayer.proxy.service import start

    configure_logging(ns.log_level, ns.log_format)
    try:
        start(Path(ns.home))
    except ProxyHomeError as exc:
        raise ProxyCliError(str(exc)) from None


def cmd_info(ns: argparse.Namespace) -> None:
    from chains.node.client import ClientTls
    from relayer.proxy.client import ProxyError, ProxyServiceClient

    addr = ns.addr
    if addr is None:
        try:
            addr = (Path(ns.home) / "proxy.addr").read_text().strip()
        except OSError:
            raise ProxyCliError(f"no running proxy at {ns.home} (proxy.addr is missing); pass --addr") from None

    async def ask() -> Any:
        tls = None
        if ns.ca_file or ns.cert_file or ns.key_file:
            if bool(ns.cert_file) != bool(ns.key_file):
                raise ProxyCliError("--cert-file and --key-file go together")
            ca, cert, key = (Path(f) if f else None for f in (ns.ca_file, ns.cert_file, ns.key_file))
            tls = ClientTls(ca, cert, key)
        client = ProxyServiceClient(addr, attempts=1, tls=tls)
        try:
            return await client.info()
        finally:
            await client.close()

    try:
        info = asyncio.run(ask())
    except ProxyError as exc:
        raise ProxyCliError(str(exc)) from None
    keys = [{"address": "0x" + bytes(k.address).hex(), "attested_at_ns": k.attested_at} for k in info.keys]
    clients = [{"id": c.elc_client_id, "type": c.client_type, "status": c.status,
                "latest_height": f"{c.latest_height.revision_number}-{c.latest_height.revision_height}"}
               for c in info.clients]
    doc = {"address": addr, "simulated": info.simulated, "note": SIMULATED, "code_hash": bytes(info.code_hash).hex(),
           "authority": "0x" + bytes(info.authority).hex(), "operator": "0x" + bytes(info.operator).hex(),
           "enclave_keys": keys, "hosted_clients": clients}
    table = Table("field", "value", title=f"kakehashi proxy at {addr} — {SIMULATED}")
    for k in ("code_hash", "authority", "operator"):
        table.add_row(k, str(doc[k]))
    for key in keys:
        table.add_row("enclave key", f"{key['address']} (attested {key['attested_at_ns']})")
    for c in clients:
        table.add_row("hosted client", f"{c['id']} {c['type']} at {c['latest_height']}: {c['status']}")
    _out(ns, doc, table)


def register(sub: Any) -> None:
    """Add ``proxy`` and its commands to the ``kakehashi`` parser."""
    px = sub.add_parser("proxy", help=f"the LCP-style proxy service ({SIMULATED})").add_subparsers(
        dest="proxy_command", metavar="ACTION", required=True)
    i = px.add_parser("init", help="create a proxy home: secrets, operator key, simulated authority, listen port")
    i.add_argument("--home", required=True)
    i.add_argument("--listen", default="127.0.0.1:0", help="host:port (port 0: pick a free port now and keep it)")
    i.add_argument("--authority-key", help="share this SIMULATED authority key file (another proxy's "
                   "authority.key) so several operators' proxies are attested by one authority")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_init)
    s = px.add_parser("start", help="serve until SIGTERM/SIGINT (keys are unsealed from the home)")
    s.add_argument("--home", required=True)
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument("--log-format", default="console", choices=["json", "console"])
    s.set_defaults(func=cmd_start)
    q = px.add_parser("info", help="code hash, authority, operator, enclave keys and hosted clients")
    q.add_argument("--home", default=".", help="proxy home whose proxy.addr to ask (default: .)")
    q.add_argument("--addr", help="proxy gRPC address instead of --home")
    q.add_argument("--ca-file", help="TLS: CA of the proxy's certificate (a proxy.toml with [tls])")
    q.add_argument("--cert-file", help="TLS: client certificate, for a proxy requiring mutual TLS")
    q.add_argument("--key-file", help="TLS: the client certificate's key")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_info)
