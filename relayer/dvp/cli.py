"""``kakehashi dvp ...``: pre-check, settle, status, list, reclaim, the trade feed and the board.

Where things come from: node addresses from the relayer config (every chain of kind evm is
an ST chain a trade may name in ``st_chain``, each on its own path to the corda chain; TLS
included) unless ``--evm`` / ``--corda`` override them (one ST chain then); the dvp channel
(Corda end) from the trade file, ``--channel`` (one ST chain only), or else found on the
chains for each path (relayer/dvp/router.py); keys from ``--key`` (repeatable:
a hex key file, a directory of ``*.key`` files such as a node home's ``keys/``, or
``keystore:NAME``), matched to the trade's accounts by identity; the trade record from
``--db`` (default ``dvp.sqlite`` beside the config); MQTT events go to the config's broker
when ``[mqtt] enabled`` or ``--broker HOST:PORT`` is given.

Exit status: 0 when the command did what was asked (for settle: the trade reached
``settled``; a refund or a failed pre-check exits 1 with the reasons), so scripts can
branch on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from chains.node.client import ClientTls
from relayer.cli.console import stdout_console
from relayer.cli.defaults import TESTNET_HOME, config_path
from relayer.config.schema import load_config
from relayer.config.tables import ConfigError
from relayer.config.tlsfiles import client_tls
from relayer.dvp.client import DvpError, Settlement
from relayer.dvp.events import DvpEvents, DvpPublisher
from relayer.dvp.feed import lines_of, mqtt_messages, run_feed
from relayer.dvp.keys import KeyMaterialError, KeyRing
from relayer.dvp.ledgers import LedgerError
from relayer.dvp.record import RecordError, TradeRecord, TradeRow
from relayer.dvp.router import DvpRouter, Route
from relayer.dvp.trade import TradeError, load_trade, parse_trade
from relayer.ops.keystore import Keystore, passphrase_from_env_or_prompt
from relayer.ops.logs import configure_logging
from relayer.ops.mqtt import BrokerAccess, broker_access
from relayer.ops.telemetry import Telemetry

T = TypeVar("T")


class DvpCliError(ValueError):
    """One line for the operator; exit status 1 (``relayer.cli.parser.main`` prints ValueErrors so)."""


ERRORS: tuple[type[Exception], ...] = (DvpError, LedgerError, TradeError, KeyMaterialError, RecordError)


def _one_line(func: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """Turn this package's errors into the CLI's one-line failure."""

    def run(ns: argparse.Namespace) -> None:
        try:
            func(ns)
        except ERRORS as exc:
            raise DvpCliError(str(exc)) from None

    return run


def _print(ns: argparse.Namespace, doc: Any, human: Any) -> None:
    if ns.json:
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
    else:
        stdout_console().print(human)


def _hostport(text: str, flag: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise DvpCliError(f"{flag}: expected HOST:PORT, got {text!r}")
    return host, int(port)


class _Setup:
    """What every dvp command needs, built from the flags and (if present) the relayer config."""

    def __init__(self, ns: argparse.Namespace) -> None:
        self.ns = ns
        cfg_path = config_path(ns)
        self.config = None
        if cfg_path.exists():
            try:
                self.config = load_config(cfg_path)
            except ConfigError as exc:
                raise DvpCliError(str(exc)) from None
        # stdout carries the result; progress logs only matter when something goes wrong.
        configure_logging("warning", self.config.log_format if self.config is not None else "console")
        self.evm_addr, self.corda_addr = ns.evm, ns.corda
        self.evm_tls: ClientTls | None = None
        self.corda_tls: ClientTls | None = None
        self.routes: list[Route] = []
        if self.config is not None:
            corda_id = ""
            for chain in self.config.chains:
                tls = client_tls(chain.tls)
                if chain.kind == "evm" and self.evm_addr is None:
                    self.evm_addr, self.evm_tls = chain.grpc_addr, tls
                if chain.kind == "corda" and self.corda_addr is None:
                    self.corda_addr, self.corda_tls, corda_id = chain.grpc_addr, tls, chain.id
            if ns.evm is None:  # every ST chain on a path to the SC chain, in the config's order
                for chain in self.config.chains:
                    on = [p for p in self.config.paths if chain.id in (p.a_chain, p.b_chain)
                          and corda_id in (p.a_chain, p.b_chain)]
                    if chain.kind == "evm" and on:
                        self.routes.append(Route(chain.id, on[0].name, chain.grpc_addr, client_tls(chain.tls)))
        if not self.routes and self.evm_addr is not None:
            st_id = next((c.id for c in self.config.chains if c.kind == "evm"), "evm") if self.config else "evm"
            self.routes = [Route(st_id, f"{st_id}:corda", self.evm_addr, self.evm_tls)]
        self.db = Path(ns.db) if ns.db else (cfg_path.parent if self.config is not None else Path(".")) / "dvp.sqlite"

    def keys(self) -> KeyRing:
        ring = KeyRing()
        keystore = None
        passphrase = None
        specs: list[str] = list(getattr(self.ns, "key", None) or [])
        if any(s.startswith("keystore:") for s in specs):
            if self.config is None or self.config.keystore is None:
                raise DvpCliError("keystore:NAME needs global.keystore in the config")
            keystore = Keystore(self.config.keystore)
            passphrase = passphrase_from_env_or_prompt()
        for spec in specs:
            ring.add_spec(spec, keystore, passphrase)
        return ring

    def broker(self) -> tuple[str, int, str, BrokerAccess] | None:
        """(host, port, topic prefix, access). ``--broker`` overrides where, not how: the
        config's [mqtt] TLS and credentials still apply to it."""
        access = broker_access(self.config.mqtt) if self.config is not None else BrokerAccess()
        if getattr(self.ns, "broker", None):
            host, port = _hostport(self.ns.broker, "--broker")
            prefix = self.config.mqtt.topic_prefix if self.config is not None else "kakehashi"
            return host, port, prefix, access
        if self.config is not None and self.config.mqtt.enabled:
            m = self.config.mqtt
            return m.host, m.port, m.topic_prefix, access
        return None

    @contextlib.asynccontextmanager
    async def client(self, telemetry: Telemetry | None = None) -> AsyncIterator[DvpRouter]:
        """A router over every ST chain's path. Events go to MQTT per path when there are
        several (``{prefix}/{path}/dvp/...``; one path keeps ``{prefix}/dvp/...``) and to the
        path's view of ``telemetry``."""
        if self.evm_addr is None or self.corda_addr is None:
            if self.config is None:
                raise DvpCliError(f"cannot read config file {self.ns.config}: no such file (pass -c RELAYER.toml, "
                                  f"or both --evm and --corda)")
            raise DvpCliError(f"no node addresses: {self.ns.config} names no evm/corda chain; pass --evm and --corda")
        if self.ns.channel is not None and len(self.routes) > 1:
            raise DvpCliError("--channel names one path's dvp channel; with several ST chains put `channel` in "
                              "the trade instead (or leave it to be found per path)")
        record = TradeRecord(self.db)
        broker = self.broker()
        publishers: list[DvpPublisher] = []
        many = len(self.routes) > 1

        def events(route: Route, rec: TradeRecord | None) -> DvpEvents:
            publisher = None
            if broker is not None:
                prefix = f"{broker[2]}/{route.path}" if many else broker[2]
                publisher = DvpPublisher(broker[0], broker[1], prefix=prefix,
                                         client_id=f"kakehashi-dvp-{os.getpid()}-{len(publishers)}",
                                         access=broker[3])
                publisher.start()
                publishers.append(publisher)
            return DvpEvents(publisher, telemetry.for_path(route.path) if telemetry is not None else None, rec)

        try:
            router = await DvpRouter.connect(self.routes, self.corda_addr, corda_tls=self.corda_tls,
                                             channel=self.ns.channel, record=record, events=events)
        except BaseException:
            for publisher in publishers:
                await publisher.stop()
            record.close()
            raise
        try:
            yield router
        finally:
            for publisher in publishers:
                await publisher.drain(10.0)
                await publisher.stop()
            await router.close()
            record.close()


def _run(ns: argparse.Namespace, body: Callable[[_Setup, DvpRouter], Awaitable[T]],
         telemetry: Telemetry | None = None) -> T:
    setup = _Setup(ns)

    async def main() -> T:
        async with setup.client(telemetry) as client:
            return await body(setup, client)

    return asyncio.run(main())


def _settlement_table(s: Settlement) -> Table:
    table = Table("field", "value")
    table.add_row("trade", s.trade_id)
    table.add_row("state", f"[bold]{s.state}[/]")
    for r in s.reasons:
        table.add_row("reason", r)
    if s.error:
        table.add_row("error", s.error)
    if s.evm:
        table.add_row("EVM escrow", f"{s.evm.get('status')} qty={s.evm.get('quantity')}")
    if s.corda:
        table.add_row("Corda lock", f"{s.corda.get('status')} amount={s.corda.get('amount')} "
                                    f"seq={s.corda.get('sequence')}")
    if s.latency_s is not None:
        table.add_row("latency", f"{s.latency_s:.2f} s")
    return table


# --- commands ----------------------------------------------------------------------------


def cmd_precheck(ns: argparse.Namespace) -> None:
    trade = load_trade(Path(ns.trade))

    async def body(setup: _Setup, client: DvpRouter) -> list[str]:
        return await client.precheck(trade)

    reasons = _run(ns, body)
    human: Any = "[green]pre-check passed[/]: both legs can settle" if not reasons else \
        "\n".join(["[red]pre-check failed[/]:", *(f"  - {r}" for r in reasons)])
    _print(ns, {"trade_id": trade.trade_id, "ok": not reasons, "reasons": reasons}, human)
    if reasons:
        raise DvpCliError(f"pre-check failed for {trade.trade_id}: {len(reasons)} reason(s)")


def cmd_settle(ns: argparse.Namespace) -> None:
    trade = load_trade(Path(ns.trade))

    async def body(setup: _Setup, client: DvpRouter) -> Settlement:
        ring = setup.keys()
        seller, buyer = ring.evm(trade.seller.evm), ring.corda(trade.buyer.corda)
        done = await client.existing(trade)
        if done is not None:  # settled (or under way) already: say so, lock nothing
            return done
        if ns.json:
            return await client.settle(trade, seller, buyer, follow=not ns.no_follow, wait_s=ns.wait)
        console = Console(stderr=True)
        with console.status(f"{trade.trade_id}: pre-check and locks") as shown:
            def progress(s: Settlement) -> None:
                shown.update(f"{trade.trade_id}: [bold]{s.state}[/] (waiting for the relayer and both chains)")
                console.print(f"{trade.trade_id}: {s.state}")

            return await client.settle(trade, seller, buyer, follow=not ns.no_follow, wait_s=ns.wait,
                                       progress=progress)

    got = _run(ns, body)
    _print(ns, got.to_json(), _settlement_table(got))
    if got.state != "settled" and not (ns.no_follow and got.state in ("locked", "delivered")):
        raise DvpCliError(f"trade {got.trade_id} is {got.state}" + (f": {got.error}" if got.error else ""))


def cmd_status(ns: argparse.Namespace) -> None:
    async def body(setup: _Setup, client: DvpRouter) -> Settlement:
        got = await client.status(ns.trade_id)
        if got.state == "none" and (client.record is None or client.record.get(ns.trade_id) is None):
            raise DvpCliError(f"unknown trade {ns.trade_id!r}: neither chain holds a lock for it and the "
                              f"record {setup.db} has no entry")
        return got

    got = _run(ns, body)
    _print(ns, got.to_json(), _settlement_table(got))


def cmd_list(ns: argparse.Namespace) -> None:
    setup = _Setup(ns)
    if setup.config is None and not ns.db:
        raise DvpCliError(f"cannot read config file {ns.config}: no such file (pass -c RELAYER.toml or --db FILE)")
    record = TradeRecord(setup.db)
    try:
        rows = record.all()
    finally:
        record.close()
    _print(ns, [r.to_json() for r in rows], trades_table(rows))


# Wide enough for a reason's first clause on one line; narrow enough that a row of the usual
# trade ids stays near 140 columns when piped (the table is 400 wide then).
REASON_WIDTH = 48


def trades_table(rows: list[TradeRow]) -> Table:
    """One row per trade, as wide as the terminal allows: every column but the reason keeps its
    whole value (trade ids get copied from here), and the reason wraps in what is left (at most
    REASON_WIDTH wide); ``--json`` has each reason on one line."""
    table = Table()
    for name in ("trade", "ST chain", "state", "EVM", "Corda", "seq", "ST", "SC"):
        table.add_column(name, no_wrap=True)
    table.add_column("reason", overflow="fold", max_width=REASON_WIDTH)
    for r in rows:
        table.add_row(r.trade_id, r.st_chain or "-", r.state, r.evm_status, r.corda_status, str(r.sequence or "-"),
                      str(r.terms.st_quantity) if r.terms else "-", str(r.terms.sc_amount) if r.terms else "-",
                      r.error or "")
    return table


def cmd_reclaim(ns: argparse.Namespace) -> None:
    async def body(setup: _Setup, client: DvpRouter) -> Settlement:
        ring = setup.keys()
        escrow = await client.escrow(ns.trade_id)
        seller = bytes.fromhex(str(escrow.get("seller", "0x")).removeprefix("0x"))
        try:
            key = ring.evm(seller)
        except KeyMaterialError:
            key = ring.any_evm()
        return await client.reclaim(ns.trade_id, key, wait=ns.wait)

    got = _run(ns, body)
    _print(ns, got.to_json(), _settlement_table(got))


def cmd_feed(ns: argparse.Namespace) -> None:
    if bool(ns.mqtt) == bool(ns.file):
        raise DvpCliError("give exactly one of --mqtt TOPIC or --file TRADES.jsonl")
    telemetry = Telemetry(path_label=True)
    if ns.metrics_port is not None:
        telemetry.serve("127.0.0.1", ns.metrics_port)

    async def body(setup: _Setup, client: DvpRouter) -> dict[str, Any]:
        ring = setup.keys()
        if ns.file:
            source = lines_of(Path(ns.file))
        else:
            broker = setup.broker()
            if broker is None:
                raise DvpCliError("--mqtt needs a broker: --broker HOST:PORT or [mqtt] in the config")
            source = mqtt_messages(broker[0], broker[1], ns.mqtt, idle_s=ns.idle, count=ns.count, access=broker[3],
                                   on_ready=lambda: print(f"dvp feed: subscribed to {ns.mqtt} on "
                                                          f"{broker[0]}:{broker[1]}", file=sys.stderr, flush=True))

        def progress(s: Settlement) -> None:
            if not ns.json:
                stdout_console().print(f"{s.trade_id}: [bold]{s.state}[/]" + (f" ({s.error})" if s.error else "")
                                 + (f" ({'; '.join(s.reasons)})" if s.reasons else ""))

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        report = await run_feed(client, source, ring, concurrency=ns.concurrency, wait_s=ns.wait,
                                on_result=progress, stop=stop)
        return report.to_json()

    try:
        doc = _run(ns, body, telemetry)
    finally:
        telemetry.close()
    table = Table("outcome", "trades")
    for outcome, n in sorted(doc["outcomes"].items()):
        table.add_row(outcome, str(n))
    table.add_row("trades read from the feed", str(doc["received"]))
    p50, p99 = doc["latency_p50_s"], doc["latency_p99_s"]
    table.add_row("p50 / p99 latency", "-" if p50 is None else f"{p50:.2f} / {p99:.2f} s")
    _print(ns, doc, table)


# --- parser ------------------------------------------------------------------------------


def cmd_watch(ns: argparse.Namespace) -> None:
    """The settlement board: trades by state, path and SC brand, from the record (and MQTT)."""
    from relayer.dvp import watch

    setup = _Setup(ns)
    if setup.config is None and not ns.db:
        raise DvpCliError(f"cannot read config file {ns.config}: no such file (pass -c RELAYER.toml or --db FILE)")
    if ns.interval <= 0:
        raise DvpCliError(f"--interval: expected a positive number of seconds, got {ns.interval}")
    try:
        if ns.once:
            watch.once(setup.db, stdout_console())
            return
        try:
            asyncio.run(watch.live(setup.db, stdout_console(), broker=setup.broker(), interval_s=ns.interval))
        except KeyboardInterrupt:  # Ctrl-C before the board's own handler was installed: still exit cleanly
            if setup.db.is_file():
                watch.once(setup.db, stdout_console())
    except (watch.WatchError, RecordError) as exc:
        raise DvpCliError(str(exc)) from None


def cmd_example(ns: argparse.Namespace) -> None:
    """A trade between the local testnet's demo accounts, ready for ``dvp precheck|settle``.

    Why a command: a trade names raw account identifiers (EVM addresses, Ed25519 keys) that the
    testnet generated, so writing one by hand means digging through node homes.
    """
    from relayer.testnet import network as testnet
    from relayer.testnet.demo_dvp import Accounts
    from relayer.testnet.procs import TestnetError

    root = Path(ns.testnet)
    evm_home, corda_home = root / "evm", root / "corda"
    if not (evm_home / "genesis.json").is_file() or not (corda_home / "genesis.json").is_file():
        raise DvpCliError(f"{root} is not a testnet home; run `kakehashi testnet up --home {root}` first")
    tn = testnet.status(root)
    st_chain = ns.st_chain or testnet.CHAINS[0][1]
    try:
        path = tn.path(st_chain) if tn.paths else None
    except TestnetError as exc:
        raise DvpCliError(str(exc)) from None
    if path is not None:
        evm_home = tn.home_of(st_chain)
    acc = Accounts(evm_home, corda_home)
    try:
        doc: dict[str, Any] = {
            "trade_id": ns.trade_id or f"T-{os.urandom(4).hex()}",
            "st_quantity": ns.st, "sc_amount": ns.sc,
            "seller": {"evm": "0x" + acc.evm_address(ns.seller).hex(), "corda": acc.corda_party(ns.payee).hex()},
            "buyer": {"evm": "0x" + acc.evm_address(ns.buyer).hex(), "corda": acc.corda_party(ns.payer).hex()},
            "deadline_s": ns.deadline_s, "timeout_s": ns.timeout_s,
        }
        if ns.sc_brand is not None:
            doc["sc_brand"] = ns.sc_brand
    except (OSError, ValueError) as exc:
        evm_names = sorted(p.stem for p in (evm_home / "keys").glob("*.key"))
        corda_names = sorted(p.stem.removeprefix("holder-") for p in (corda_home / "keys").glob("holder-*.key"))
        raise DvpCliError(f"demo account keys: {exc}; EVM accounts (--seller/--buyer): {', '.join(evm_names)}; "
                          f"Corda parties (--payer/--payee): {', '.join(corda_names)}") from None
    for ch in (path["channels"] if path is not None else tn.channels):
        if ch.get("a_port") == "dvp":
            doc["channel"] = ch["a_channel"] if ch.get("a_chain") == testnet.HUB else ch["b_channel"]
    if len(tn.paths) > 1 or ns.st_chain:
        doc["st_chain"] = st_chain
    parse_trade(doc)  # what we print must load
    print(json.dumps(doc, indent=2))


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``dvp`` and its commands to the ``kakehashi`` parser."""
    dcommon = argparse.ArgumentParser(add_help=False, parents=[common])
    dcommon.add_argument("--evm", help="EVM node gRPC address (default: the config's evm chain)")
    dcommon.add_argument("--corda", help="Corda node gRPC address (default: the config's corda chain)")
    dcommon.add_argument("--channel", help="the Corda end of the dvp channel, when the trade names none")
    dcommon.add_argument("--db", help="trade record (SQLite; default: dvp.sqlite beside the config)")
    dcommon.add_argument("--broker", help="MQTT broker HOST:PORT for settlement events (default: [mqtt])")
    keyed = argparse.ArgumentParser(add_help=False)
    keyed.add_argument("--key", action="append", metavar="SPEC",
                       help="hex key file, directory of *.key files, or keystore:NAME (repeatable)")

    dvp = sub.add_parser("dvp", help="atomic DvP: pre-check, settle and follow trades").add_subparsers(
        dest="dvp_command", metavar="ACTION", required=True)
    p = dvp.add_parser("precheck", parents=[dcommon], help="every reason a trade would fail, locking nothing")
    p.add_argument("trade", metavar="TRADE.json")
    p.set_defaults(func=_one_line(cmd_precheck))
    s = dvp.add_parser("settle", parents=[dcommon, keyed], help="pre-check, lock both legs, follow to the end")
    s.add_argument("trade", metavar="TRADE.json")
    s.add_argument("--no-follow", action="store_true", help="return once both legs are locked")
    s.add_argument("--wait", type=float, help="seconds to follow (default: until the timeout + 60 s)")
    s.set_defaults(func=_one_line(cmd_settle))
    ex = dvp.add_parser("example", help="print a trade between the local testnet's demo accounts")
    ex.add_argument("--testnet", default=str(TESTNET_HOME), help=f"testnet home (default {TESTNET_HOME})")
    ex.add_argument("--trade-id", help="default: T-<random hex>")
    ex.add_argument("--st-chain", help="the EVM chain of the ST (default evm-1; `testnet up --st-chains N` makes evm-1..N)")
    ex.add_argument("--st", type=int, default=10, help="ST quantity (default 10)")
    ex.add_argument("--sc", type=int, default=1000, help="SC amount (default 1000)")
    ex.add_argument("--seller", default="alice", help="EVM demo account delivering the ST (default alice)")
    ex.add_argument("--buyer", default="bob", help="EVM demo account receiving the ST (default bob)")
    ex.add_argument("--payer", default="firm-b", help="Corda demo holder paying the SC (default firm-b)")
    ex.add_argument("--payee", default="firm-a", help="Corda demo holder receiving the SC (default firm-a)")
    ex.add_argument("--deadline-s", type=int, default=120, help="ST escrow deadline, seconds from now (default 120)")
    ex.add_argument("--timeout-s", type=int, default=60, help="packet timeout, seconds from now (default 60)")
    ex.add_argument("--sc-brand", help="SC brand paid in, e.g. KUSD (default: the Corda chain's default brand)")
    ex.set_defaults(func=_one_line(cmd_example))
    st = dvp.add_parser("status", parents=[dcommon], help="a trade as both chains see it")
    st.add_argument("trade_id", metavar="TRADE_ID")
    st.set_defaults(func=_one_line(cmd_status))
    dvp.add_parser("list", parents=[dcommon], help="trades this client handled").set_defaults(func=_one_line(cmd_list))
    r = dvp.add_parser("reclaim", parents=[dcommon, keyed], help="return escrowed ST to the seller after the deadline")
    r.add_argument("trade_id", metavar="TRADE_ID")
    r.add_argument("--wait", action="store_true", help="wait for the deadline instead of failing before it")
    r.set_defaults(func=_one_line(cmd_reclaim))
    f = dvp.add_parser("feed", parents=[dcommon, keyed], help="settle matched trades as they arrive")
    f.add_argument("--mqtt", metavar="TOPIC", help="subscribe to this topic (one trade JSON per message)")
    f.add_argument("--file", metavar="TRADES.jsonl", help="one trade JSON per line")
    f.add_argument("--concurrency", type=int, default=8, help="trades in flight at once (default 8)")
    f.add_argument("--count", type=int, help="--mqtt: stop after this many trades")
    f.add_argument("--idle", type=float, help="--mqtt: stop after this many seconds without a trade")
    f.add_argument("--wait", type=float, help="seconds to follow each trade (default: its timeout + 60 s)")
    f.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT meanwhile")
    f.set_defaults(func=_one_line(cmd_feed))
    w = dvp.add_parser("watch", parents=[dcommon], help="live board of trades by state, path and SC brand")
    w.add_argument("--once", action="store_true", help="print one frame from the record and exit")
    w.add_argument("--interval", type=float, default=1.0, help="seconds between record reads (default 1)")
    w.set_defaults(func=_one_line(cmd_watch))
