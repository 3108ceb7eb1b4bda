"""The ``kakehashi`` command line (Hermes-like verbs).

Every command prints a human-readable result (rich) by default and one JSON document with
``--json``, and exits non-zero with a one-line reason on bad input, so it scripts well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rich.table import Table

from chains.node.client import NodeError
from chains.node.config import NodeConfigError
from relayer.cli.console import stdout_console
from relayer.cli.defaults import DEFAULT_CONFIG, TESTNET_CONFIG, TESTNET_HOME, config_path
from relayer.config.schema import Config, load_config
from relayer.config.tables import ConfigError, parse_duration
from relayer.core.daemon import DaemonError
from relayer.ops.keystore import (
    KIND_FOR_CHAIN,
    KINDS,
    Keystore,
    KeystoreError,
    passphrase_from_env_or_prompt,
)
from relayer.ops.logs import configure_logging

T = TypeVar("T")


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def _out(ns: argparse.Namespace, doc: Any, table: Table | str | None = None) -> None:
    if ns.json:
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
    else:
        stdout_console().print(table if table is not None else doc)


def _keystore(ns: argparse.Namespace) -> Keystore:
    if ns.keystore is not None:
        return Keystore(Path(ns.keystore))
    try:
        cfg = load_config(config_path(ns))
    except ConfigError as exc:
        raise CliError(f"{exc} (or pass --keystore DIR)") from exc
    if cfg.keystore is None:
        raise CliError(f"{ns.config}: global.keystore is not set (or pass --keystore DIR)")
    return Keystore(cfg.keystore)


# --- keys ------------------------------------------------------------------------------


def cmd_keys_add(ns: argparse.Namespace) -> None:
    kind = KIND_FOR_CHAIN.get(ns.kind, ns.kind)
    secret = None
    if ns.private_key_file:
        raw = Path(ns.private_key_file).read_text().strip().removeprefix("0x")
        try:
            secret = bytes.fromhex(raw)
        except ValueError as exc:
            raise CliError(f"{ns.private_key_file}: expected a hex private key") from exc
    info = _keystore(ns).add(ns.name, kind, passphrase_from_env_or_prompt(), secret)
    _out(ns, {"name": info.name, "kind": info.kind, "identity": info.identity_hex},
         f"added key [bold]{info.name}[/] ({info.kind}) {info.identity_hex}")


def cmd_keys_list(ns: argparse.Namespace) -> None:
    keys = _keystore(ns).list()
    table = Table("name", "kind", "identity")
    for k in keys:
        table.add_row(k.name, k.kind, k.identity_hex)
    _out(ns, [{"name": k.name, "kind": k.kind, "identity": k.identity_hex} for k in keys], table)


def cmd_keys_show(ns: argparse.Namespace) -> None:
    k = _keystore(ns).info(ns.name)
    _out(ns, {"name": k.name, "kind": k.kind, "identity": k.identity_hex}, f"{k.name} ({k.kind}) {k.identity_hex}")


def cmd_keys_delete(ns: argparse.Namespace) -> None:
    _keystore(ns).delete(ns.name)
    _out(ns, {"deleted": ns.name}, f"deleted key {ns.name}")


# --- config ----------------------------------------------------------------------------


def cmd_config_validate(ns: argparse.Namespace) -> None:
    cfg = load_config(config_path(ns))
    table = Table("chain", "kind", "grpc", "key", "max msgs", "trusting period")
    for c in cfg.chains:
        table.add_row(c.id, c.kind, c.grpc_addr, c.key_name, str(c.max_msg_num), _human(c.trusting_period_s))
    _out(ns, {"valid": True, "chains": [c.id for c in cfg.chains]}, table)
    if not ns.json:
        print(f"config OK: {ns.config}")


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# --- node ------------------------------------------------------------------------------


def cmd_node_init(ns: argparse.Namespace) -> None:
    from chains.node.main import init_home

    chain_id = ns.chain_id or f"{ns.chain}-1"
    summary = init_home(Path(ns.home), ns.chain, chain_id, ns.validators, ns.grpc, parse_duration(ns.block_period, "--block-period"))
    _out(ns, {"home": ns.home, "chain_id": chain_id, "kind": ns.chain, **summary},
         f"initialised {ns.chain} node [bold]{chain_id}[/] in {ns.home}")


def cmd_node_start(ns: argparse.Namespace) -> None:
    from chains.node.main import start

    configure_logging(ns.log_level, ns.log_format)
    start(Path(ns.home), ns.grpc)


# --- testnet ---------------------------------------------------------------------------


def _pid_cell(pid: int | None) -> str:
    return "[red]not running[/]" if pid is None else str(pid)


def _testnet_tables(tn: Any) -> Table:
    table = Table("component", "id", "endpoint", "height / health", "pid", "home / log",
                  title="kakehashi testnet")
    for n in tn.nodes:
        table.add_row(f"{n.kind} node", n.chain_id, n.address or "-", "-" if n.height is None else str(n.height),
                      _pid_cell(n.pid), str(n.home))
    r = tn.relayer
    health = "-" if r.healthy is None else ("ok" if r.healthy else "DEGRADED")
    table.add_row("relayer", "metrics", r.metrics or "-", health, _pid_cell(r.pid), str(r.log))
    table.add_row("relayer", "health", r.health or "-", "", "", str(r.config))
    if tn.proxy is not None:
        p = tn.proxy
        table.add_row("proxy (SIMULATED enclave)", f"code {str(p.code_hash or '-')[:16]}…", p.address or "-", "",
                      _pid_cell(p.pid), str(p.log))
    if tn.broker is not None:
        b = tn.broker
        table.add_row("MQTT broker (TLS)", f"users {b.relayer_user}, {b.backoffice_user}", b.address, "",
                      _pid_cell(b.pid), str(b.log))
    every = tn.paths or ([{"name": "", "connection": tn.connection, "channels": tn.channels}] if tn.connection else [])
    for p in every:
        c = p["connection"]
        if len(every) > 1:
            table.add_row("path", p["name"], f"{c['a_chain']} <-> {c['b_chain']}", "", "", "")
        table.add_row("connection", f"{c['a_connection']} <-> {c['b_connection']}",
                      f"clients {c['a_client']} / {c['b_client']}", "", "", "")
        for ch in p["channels"]:
            table.add_row("channel", f"{ch['a_port']}/{ch['a_channel']} <-> {ch['b_port']}/{ch['b_channel']}",
                          f"{ch['a_chain']} <-> {ch['b_chain']}", ch["order"], "", "")
    return table


def cmd_testnet_up(ns: argparse.Namespace) -> None:
    from relayer.testnet import network as testnet
    from relayer.testnet.procs import TestnetError

    try:
        tn = testnet.up(Path(ns.home), validators=ns.validators, block_period=ns.block_period, mqtt=ns.mqtt,
                        prover=ns.prover, st_chains=ns.st_chains, tls=ns.tls)
    except (TestnetError, KeystoreError) as exc:
        raise CliError(str(exc)) from exc
    _out(ns, tn.to_json(), _testnet_tables(tn))
    if not ns.json:
        print(f"created: {', '.join(tn.created)}" if tn.created else "clients, connection and channels: already open")
        print(f"stop it with: {testnet.cli_command()} testnet down --home {ns.home}")


def cmd_testnet_down(ns: argparse.Namespace) -> None:
    from relayer.testnet import network as testnet
    from relayer.testnet.procs import TestnetError

    try:
        stopped = testnet.down(Path(ns.home))
    except TestnetError as exc:
        raise CliError(str(exc)) from exc
    _out(ns, {"stopped": stopped}, f"stopped: {', '.join(stopped) or 'nothing was running'}")


def cmd_testnet_status(ns: argparse.Namespace) -> None:
    from relayer.testnet import network as testnet

    tn = testnet.status(Path(ns.home))
    _out(ns, tn.to_json(), _testnet_tables(tn))


# --- relayer: start, create, query, tx, clear, health-check -----------------------------


def _config(ns: argparse.Namespace) -> Config:
    cfg = load_config(config_path(ns))
    # One-shot commands keep stdout for their result; only warnings go to stderr.
    configure_logging("warning" if cfg.log_level in ("debug", "info") else cfg.log_level, cfg.log_format)
    return cfg


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _rows(doc: dict[str, Any]) -> Table:
    table = Table("field", "value")
    for key, value in doc.items():
        table.add_row(key, json.dumps(value) if isinstance(value, (list, dict)) else str(value))
    return table


def cmd_start(ns: argparse.Namespace) -> None:
    from relayer.core import daemon

    cfg = _config(ns)
    if ns.path:
        cfg = cfg.only_paths(ns.path)  # ConfigError (a ValueError) names the known paths
    daemon.start(cfg, passphrase_from_env_or_prompt())


def cmd_create_client(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    cfg = _config(ns)
    doc = _run(commands.create_client(cfg, passphrase_from_env_or_prompt(), ns.host_chain, ns.reference_chain))
    _out(ns, doc, _rows(doc))


def cmd_create_connection(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    cfg = _config(ns)
    doc = _run(commands.create_connection(cfg, passphrase_from_env_or_prompt(), ns.a_chain, ns.b_chain,
                                          ns.a_client, ns.b_client))
    _out(ns, doc, _rows(doc))


def cmd_create_channel(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    cfg = _config(ns)
    doc = _run(commands.create_channel(cfg, passphrase_from_env_or_prompt(), ns.a_chain, ns.a_connection,
                                       ns.a_port, ns.b_port, ns.order, ns.channel_version))
    _out(ns, doc, _rows(doc))


def cmd_query_client(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    doc = _run(commands.query_client(_config(ns), ns.chain, ns.client))
    _out(ns, doc, _rows(doc))


def cmd_query_connection(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    doc = _run(commands.query_connection(_config(ns), ns.chain, ns.connection))
    _out(ns, doc, _rows(doc))


def cmd_query_channel(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    doc = _run(commands.query_channel(_config(ns), ns.chain, ns.port, ns.channel))
    _out(ns, doc, _rows(doc))


def _pending_table(doc: dict[str, Any]) -> Table:
    table = Table("chain", "port", "channel", "unreceived packets (at counterparty)", "acks not yet back")
    for side in ("src", "dst"):
        d = doc[side]
        table.add_row(d["chain"], d["port"], d["channel"], ", ".join(map(str, d["unreceived_packets"])) or "-",
                      ", ".join(map(str, d["unreceived_acks"])) or "-")
    return table


def cmd_query_packet_pending(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    doc = _run(commands.pending_packets(_config(ns), ns.chain, ns.port,
                                        ns.channel))
    _out(ns, doc, _pending_table(doc))


def cmd_tx_transfer(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    doc = _run(commands.transfer(_config(ns), passphrase_from_env_or_prompt(), ns.src_chain, ns.src_port,
                                 ns.src_channel, ns.amount, ns.denom, ns.receiver, ns.key,
                                 ns.timeout_height_offset, ns.timeout_seconds))
    _out(ns, doc, _rows(doc))


def _relayed_table(doc: dict[str, Any]) -> Table | str:
    title = (f"{doc['kind']}: {doc['src_chain']} {doc['src_port']}/{doc['src_channel']} -> {doc['dst_chain']} "
             f"{doc['dst_port']}/{doc['dst_channel']}; relayed {len(doc['relayed'])}, "
             f"still pending {len(doc['pending_after'])}")
    if not doc["txs"]:
        return f"{title}: nothing to relay"
    table = Table("chain", "height", "tx hash", "committed", "sequences", title=title)
    for tx in doc["txs"]:
        seqs = "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in tx["sequences"].items()) or "-"
        table.add_row(tx["chain"], str(tx["height"]), tx["tx_hash"], "yes" if tx["committed"] else f"NO: {tx['reason']}",
                      seqs)
    return table


def cmd_tx_packet(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    doc = _run(commands.relay_packets(_config(ns), passphrase_from_env_or_prompt(), ns.relay_kind, ns.dst_chain,
                                      ns.src_chain, ns.src_port, ns.src_channel))
    _out(ns, doc, _relayed_table(doc))


def cmd_clear_packets(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    doc = _run(commands.clear_packets(_config(ns), passphrase_from_env_or_prompt(), ns.chain, ns.port, ns.channel))
    _out(ns, doc, _rows(doc))


def cmd_health_check(ns: argparse.Namespace) -> None:
    from relayer.cli import commands

    rows = _run(commands.health_check(_config(ns)))
    table = Table("chain", "kind", "grpc", "healthy", "height", "error")
    for r in rows:
        table.add_row(r["chain"], r["kind"], r["grpc"], "yes" if r["healthy"] else "NO",
                      "-" if r["height"] is None else str(r["height"]), r["error"])
    _out(ns, rows, table)
    bad = [r["chain"] for r in rows if not r["healthy"]]
    if bad:
        raise CliError(f"unhealthy: {', '.join(bad)}")


def _add_relayer_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    start = sub.add_parser("start", parents=[common], help="run the relayer until SIGTERM/SIGINT")
    start.add_argument("--path", action="append", metavar="NAME",
                       help="relay only this [[paths]] entry (repeatable; default: every path in the config)")
    start.set_defaults(func=cmd_start)
    sub.add_parser("health-check", parents=[common], help="is every configured chain reachable").set_defaults(
        func=cmd_health_check)

    create = sub.add_parser("create", help="create clients, connections, channels").add_subparsers(
        dest="create_command", metavar="OBJECT", required=True)
    cc = create.add_parser("client", parents=[common], help="a client of --reference-chain on --host-chain")
    cc.add_argument("--host-chain", required=True)
    cc.add_argument("--reference-chain", required=True)
    cc.set_defaults(func=cmd_create_client)
    cn = create.add_parser("connection", parents=[common], help="a connection, handshaken to OPEN")
    cn.add_argument("--a-chain", required=True)
    cn.add_argument("--b-chain", required=True)
    cn.add_argument("--a-client", help="existing client on the a chain (default: create one)")
    cn.add_argument("--b-client", help="existing client on the b chain (default: create one)")
    cn.set_defaults(func=cmd_create_connection)
    ch = create.add_parser("channel", parents=[common], help="a channel, handshaken to OPEN")
    ch.add_argument("--a-chain", required=True)
    ch.add_argument("--a-connection", required=True)
    ch.add_argument("--a-port", required=True)
    ch.add_argument("--b-port", required=True)
    ch.add_argument("--order", default="unordered", choices=["unordered", "ordered"])
    ch.add_argument("--channel-version", default="ics20-1")
    ch.set_defaults(func=cmd_create_channel)

    query = sub.add_parser("query", help="read IBC state from a chain").add_subparsers(
        dest="query_command", metavar="OBJECT", required=True)
    qc = query.add_parser("client", parents=[common], help="a client's state")
    qc.add_argument("--chain", required=True)
    qc.add_argument("--client", required=True)
    qc.set_defaults(func=cmd_query_client)
    qn = query.add_parser("connection", parents=[common], help="a connection end")
    qn.add_argument("--chain", required=True)
    qn.add_argument("--connection", required=True)
    qn.set_defaults(func=cmd_query_connection)
    qh = query.add_parser("channel", parents=[common], help="a channel end")
    qh.add_argument("--chain", required=True)
    qh.add_argument("--port", required=True)
    qh.add_argument("--channel", required=True)
    qh.set_defaults(func=cmd_query_channel)
    qp = query.add_parser("packet", help="packets").add_subparsers(dest="packet_command", metavar="WHAT",
                                                                   required=True)
    pp = qp.add_parser("pending", parents=[common], help="unreceived packets and acks, both ways")
    pp.add_argument("--chain", required=True)
    pp.add_argument("--port", required=True)
    pp.add_argument("--channel", required=True)
    pp.set_defaults(func=cmd_query_packet_pending)

    tx = sub.add_parser("tx", help="send transactions").add_subparsers(dest="tx_command", metavar="TX",
                                                                        required=True)
    tt = tx.add_parser("transfer", parents=[common], help="an ICS-20 transfer signed by a keystore key")
    tt.add_argument("--src-chain", required=True)
    tt.add_argument("--src-port", default="transfer")
    tt.add_argument("--src-channel", required=True)
    tt.add_argument("--amount", type=int, required=True)
    tt.add_argument("--denom", required=True)
    tt.add_argument("--receiver", required=True)
    tt.add_argument("--timeout-height-offset", type=int, default=0)
    tt.add_argument("--timeout-seconds", type=int, default=0)
    tt.add_argument("--key", required=True, help="keystore key that signs and sends")
    tt.set_defaults(func=cmd_tx_transfer)
    for kind, what in (("recv", "deliver pending packets (and time out expired ones), once"),
                       ("ack", "carry written acknowledgements back to the sender, once")):
        tp = tx.add_parser(f"packet-{kind}", parents=[common], help=what,
                           description=f"{what}. As in Hermes, --src-chain/--src-port/--src-channel name where the "
                           f"{'packets were sent' if kind == 'recv' else 'acknowledgements were written'}.")
        tp.add_argument("--dst-chain", required=True)
        tp.add_argument("--src-chain", required=True)
        tp.add_argument("--src-port", required=True)
        tp.add_argument("--src-channel", required=True)
        tp.set_defaults(func=cmd_tx_packet, relay_kind=kind)

    clear = sub.add_parser("clear", help="one-shot relaying").add_subparsers(dest="clear_command", metavar="WHAT",
                                                                             required=True)
    cp = clear.add_parser("packets", parents=[common], help="one clearing pass on a channel, both directions")
    cp.add_argument("--chain", required=True)
    cp.add_argument("--port", required=True)
    cp.add_argument("--channel", required=True)
    cp.set_defaults(func=cmd_clear_packets)


# --- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kakehashi",
        description="IBC-style relayer and reference chains for atomic cross-chain DvP",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=None,
                        help=f"relayer config (TOML; default: {DEFAULT_CONFIG}, else the testnet's "
                        f"{TESTNET_CONFIG} when it exists)")
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    keys = sub.add_parser(
        "keys",
        help="manage the encrypted keystore",
        epilog="The passphrase is read from $KAKEHASHI_KEYSTORE_PASSPHRASE, else prompted for "
        "(at least 8 characters; one passphrase per keystore).",
    ).add_subparsers(
        dest="keys_command", metavar="ACTION", required=True
    )
    kcommon = argparse.ArgumentParser(add_help=False, parents=[common])
    kcommon.add_argument("--keystore", help="keystore directory (default: global.keystore of the config)")
    add = keys.add_parser("add", parents=[kcommon], help="generate or import a key")
    add.add_argument("name")
    add.add_argument("--kind", required=True, choices=[*KIND_FOR_CHAIN, *KINDS],
                     help="chain kind (evm, corda) or key kind")
    add.add_argument("--private-key-file", help="import this hex private key instead of generating one")
    add.set_defaults(func=cmd_keys_add)
    keys.add_parser("list", parents=[kcommon], help="list keys").set_defaults(func=cmd_keys_list)
    show = keys.add_parser("show", parents=[kcommon], help="show one key's identity")
    show.add_argument("name")
    show.set_defaults(func=cmd_keys_show)
    delete = keys.add_parser("delete", parents=[kcommon], help="delete a key")
    delete.add_argument("name")
    delete.set_defaults(func=cmd_keys_delete)

    node = sub.add_parser("node", help="run a reference chain node").add_subparsers(
        dest="node_command", metavar="ACTION", required=True
    )
    ninit = node.add_parser("init", help="write genesis, keys and node.toml into a home directory")
    ninit.add_argument("--chain", required=True, choices=["evm", "corda"])
    ninit.add_argument("--home", required=True)
    ninit.add_argument("--validators", type=int, default=4, help="validators (evm) or notaries (corda)")
    ninit.add_argument("--chain-id", help="default: <chain>-1")
    ninit.add_argument("--grpc", default="127.0.0.1:0", help="listen address written to node.toml")
    ninit.add_argument("--block-period", default="1s")
    ninit.add_argument("--json", action="store_true")
    ninit.set_defaults(func=cmd_node_init)
    nstart = node.add_parser("start", help="run the node until SIGTERM/SIGINT")
    nstart.add_argument("--home", required=True)
    nstart.add_argument("--grpc", help="override the listen address in node.toml")
    nstart.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    nstart.add_argument("--log-format", default="console", choices=["json", "console"])
    nstart.set_defaults(func=cmd_node_start)

    tn = sub.add_parser("testnet", help="a local testnet: one Corda SC chain, N EVM ST chains (--st-chains), one relayer").add_subparsers(
        dest="testnet_command", metavar="ACTION", required=True
    )
    tcommon = argparse.ArgumentParser(add_help=False)
    tcommon.add_argument("--home", default=str(TESTNET_HOME),
                         help=f"testnet directory (default: {TESTNET_HOME}); data persists")
    tcommon.add_argument("--json", action="store_true")
    tup = tn.add_parser("up", parents=[tcommon],
                        help="initialise (first time) and start both nodes, open the paths, start the relayer")
    tup.add_argument("--validators", type=int, default=4)
    tup.add_argument("--block-period", default=None,
                     help="block period of both nodes on first init (default: evm 1s, corda 200ms)")
    tup.add_argument("--mqtt", metavar="HOST:PORT", default=None,
                     help="publish packet events to this MQTT broker (kept for later runs; default: off)")
    tup.add_argument("--prover", choices=["direct", "proxy"], default=None,
                     help="how each chain is proven to the other: direct light clients, or the proxy "
                          "(LCP-style, SIMULATED enclave) started beside the nodes (fixed at the first up; "
                          "default direct)")
    tup.add_argument("--st-chains", type=int, default=None, metavar="N",
                     help="EVM security-token chains around the one Corda stablecoin chain, one path each "
                          "(evm-1..evm-N; evm-2 has 7 validators; default 1, or what the testnet has; it only grows)")
    tup.add_argument("--tls", action="store_true",
                     help="mutual TLS on every hop: a CA and certificates in HOME/tls, nodes and proxy requiring "
                          "client certificates, and a local mosquitto with TLS, passwords and ACLs for events "
                          "(kept for later runs; not with --mqtt)")
    tup.set_defaults(func=cmd_testnet_up)
    tn.add_parser("down", parents=[tcommon], help="stop the relayer and nodes that `up` started").set_defaults(func=cmd_testnet_down)
    tn.add_parser("status", parents=[tcommon], help="show the nodes, the relayer and the channels").set_defaults(func=cmd_testnet_status)

    config = sub.add_parser("config", help="configuration").add_subparsers(
        dest="config_command", metavar="ACTION", required=True
    )
    config.add_parser("validate", parents=[common], help="validate the config file").set_defaults(
        func=cmd_config_validate
    )
    _add_relayer_commands(sub, common)
    __import__("relayer.dvp.cli", fromlist=["register"]).register(sub, common)
    __import__("relayer.proxy.cli", fromlist=["register"]).register(sub)
    return parser


ERRORS: tuple[type[Exception], ...] = (CliError, ConfigError, KeystoreError, NodeConfigError, OSError, ValueError,
                                      DaemonError, NodeError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.version:
        from importlib.metadata import version

        print(version("kakehashi"))
        return 0
    func: Callable[[argparse.Namespace], None] | None = getattr(ns, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        func(ns)
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours; silence the flush at exit.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except ERRORS as exc:
        # One line, always: gRPC details and nested causes can carry newlines.
        reason = " ".join(str(exc).splitlines())
        if getattr(ns, "json", False):
            print(json.dumps({"ok": False, "error": reason}, sort_keys=True))
        print(f"error: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
