"""`kakehashi testnet up|down|status`: a local two-chain testnet with its relayer, as child processes.

Each chain is a real node process (`kakehashi node start`) in its own home under the
testnet directory, and the relayer is a real `kakehashi start` process with its own home
(``HOME/relayer``: config, keystore, passphrase, log). Each is started in its own session so
it outlives the command that launched it and can be stopped as a group. A PID file holds the
PID (its start time, from /proc, sits beside it: relayer/testnet/procs.py), and the command
line must name the home, so `down` stops exactly the processes `up` started — never a
recycled PID — and returns once they are gone.

Data persists between runs: `up` on an existing testnet restarts the nodes where they
stopped, finds the clients, connection and channels already open on the chains (read from
chain state, not from a local record) and creates only what is missing, then restarts the
relayer, which clears whatever was sent while it was down.

Why the relayer config is rewritten on every `up`: the nodes bind free ports (port 0) each
time they start, so the addresses in ``relayer.toml`` are only valid for one run. The
telemetry port and the MQTT setting are carried over from the previous file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chains.ibc.apps import dvp as dvp_app
from chains.ibc.host import paths
from chains.node.client import ClientTls, NodeClient, NodeError, RetryPolicy
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from relayer.config.schema import Config, load_config, path_name
from relayer.config.tables import ConfigError
from relayer.core.chain import ChainHandle
from relayer.ops.keystore import KIND_FOR_CHAIN, PASSPHRASE_ENV, Keystore, KeystoreError
from relayer.testnet import broker as testnet_broker
from relayer.testnet import tls as testnet_tls
from relayer.testnet.procs import (
    TestnetError,
    kakehashi_argv,
    read_pid,
    remove_pid,
    spawn,
    stop,
    terminate,
)
from relayer.testnet.proxy import chain_section, proxy_info, proxy_pid, proxy_pid_file, up_proxy


def cli_command() -> str:
    """How a user at this shell runs ``kakehashi``: the bare name when PATH finds this very
    install, else its path (``.venv/bin/kakehashi`` after ``make run`` without an activated venv)."""
    here = Path(sys.executable).parent / "kakehashi"
    found = shutil.which("kakehashi")
    if found is not None and Path(found).resolve() == here.resolve():
        return "kakehashi"
    with contextlib.suppress(ValueError):
        return str(here.relative_to(Path.cwd()))
    return str(here)


# (kind, chain id, default block period) of the single-path testnet. EVM blocks must be >= 1 s:
# its block time advances in whole seconds, so a shorter period runs chain time ahead of the
# wall clock.
CHAINS = (("evm", "evm-1", "1s"), ("corda", "corda-1", "200ms"))
HUB = "corda-1"
MAX_ST_CHAINS = 8


@dataclass(frozen=True)
class ChainSpec:
    """One chain of the testnet: the Corda hub, or the k-th EVM ST chain (a spoke)."""

    kind: str
    chain_id: str
    home: str  # directory under the testnet home
    period: str
    validators: int


def layout(st_chains: int = 1, validators: int = 4, block_period: str | None = None) -> list[ChainSpec]:
    """The hub and its spokes, in the order `up` starts them (evm-1 first, as the single-path
    testnet always had it). Spokes differ as independent ST platforms would: their own chain
    id, validator keys and count (evm-2 has 7) and block period (evm-k: 1 s + 0.5 s per k)."""
    specs = [ChainSpec("evm", "evm-1", "evm", block_period or "1s", validators),
             ChainSpec("corda", HUB, "corda", "200ms" if block_period is None else block_period, validators)]
    for k in range(2, st_chains + 1):
        specs.append(ChainSpec("evm", f"evm-{k}", f"evm-{k}", block_period or f"{500 + 500 * k}ms",
                               7 if k == 2 else 4 + (k % 3)))
    return specs


def st_chain_count(root: Path, wanted: int | None = None) -> int:
    """How many ST chains the testnet has: fixed when first asked (HOME/st-chains), and only
    ever grown by a later `up --st-chains N` (a spoke's chain and paths are never torn down)."""
    path = Path(root).resolve() / "st-chains"
    saved = int(path.read_text().strip()) if path.exists() else None
    if wanted is not None and not 1 <= wanted <= MAX_ST_CHAINS:
        raise TestnetError(f"--st-chains must be between 1 and {MAX_ST_CHAINS}, got {wanted}")
    if saved is not None and wanted is not None and wanted < saved:
        raise TestnetError(f"the testnet in {root} has {saved} ST chains; it cannot shrink to {wanted} "
                           f"(use another --home)")
    n = max(saved or 1, wanted or 1)
    if saved != n and Path(root).resolve().exists():
        path.write_text(f"{n}\n")
    return n


@dataclass(frozen=True)
class ChannelSpec:
    """One channel the testnet opens between the EVM chain (a) and the Corda chain (b)."""

    a_port: str
    b_port: str
    order: str = "unordered"
    version: str = "ics20-1"


# Every channel the testnet opens, in this order. Adding one is adding a line here: `up`
# creates the ones the chains do not have yet and leaves existing ones alone.
CHANNELS: tuple[ChannelSpec, ...] = (
    ChannelSpec("transfer", "transfer", "unordered", "ics20-1"),
    ChannelSpec("dvp", "dvp", "unordered", dvp_app.VERSION),
)

RELAYER_KEYS = {"evm": "relayer-evm", "corda": "relayer-corda"}
CLEAR_INTERVAL_BLOCKS = 20
MAX_CLOCK_DRIFT = "30s"


@dataclass(frozen=True)
class NodeInfo:
    kind: str
    chain_id: str
    home: Path
    pid: int | None
    address: str | None
    height: int | None


@dataclass(frozen=True)
class RelayerInfo:
    home: Path
    config: Path
    pid: int | None
    metrics: str | None
    health: str | None
    healthy: bool | None
    log: Path


@dataclass(frozen=True)
class Testnet:
    nodes: list[NodeInfo]
    relayer: RelayerInfo
    connection: dict[str, str] = field(default_factory=dict)  # of the first path (evm-1 <-> corda-1)
    channels: list[dict[str, str]] = field(default_factory=list)  # of the first path
    created: list[str] = field(default_factory=list)  # by this `up`; empty when everything existed
    prover: str = "direct"  # how each chain is proven to the other: "direct" or "proxy"
    proxy: Any = None  # relayer.testnet.proxy.ProxyProcInfo in proxy mode
    # every path: {"name", "st_chain", "connection": {...}, "channels": [...]}, evm-1's first
    paths: list[dict[str, Any]] = field(default_factory=list)
    tls: bool = False  # `up --tls`: mutual TLS on every hop (relayer/testnet/tls.py)
    broker: Any = None  # relayer.testnet.broker.BrokerInfo with TLS

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(json.dumps(
            {"nodes": [asdict(n) for n in self.nodes], "relayer": asdict(self.relayer),
             "connection": self.connection, "channels": self.channels, "created": self.created,
             "prover": self.prover, "proxy": asdict(self.proxy) if self.proxy is not None else None,
             "paths": self.paths, "tls": self.tls,
             "broker": asdict(self.broker) if self.broker is not None else None}, default=str))
        return doc

    @property
    def chain_ids(self) -> tuple[str, str]:
        """The first path's two chains (ST chain, SC chain), as reports name them."""
        return self.connection.get("a_chain", "evm-1"), self.connection.get("b_chain", "corda-1")

    def path(self, st_chain: str) -> dict[str, Any]:
        for p in self.paths:
            if p["st_chain"] == st_chain:
                return p
        raise TestnetError(f"the testnet has no path to ST chain {st_chain!r} "
                           f"(it has: {', '.join(p['st_chain'] for p in self.paths) or 'none'})")

    def home_of(self, chain_id: str) -> Path:
        for n in self.nodes:
            if n.chain_id == chain_id:
                return n.home
        raise TestnetError(f"the testnet has no chain {chain_id!r}")

    def channel(self, a_port: str) -> dict[str, str]:
        for ch in self.channels:
            if ch["a_port"] == a_port:
                return ch
        raise TestnetError(f"the testnet has no channel on port {a_port}")


# --- nodes -------------------------------------------------------------------------------


def _node_pid(home: Path) -> int | None:
    return read_pid(home / "node.pid", home)


def _client_tls(root: Path) -> ClientTls | None:
    """How `up`/`status` reach the nodes themselves: as the relayer does, on a TLS testnet."""
    if not testnet_tls.tls_enabled(root):
        return None
    d = testnet_tls.tls_dir(root)
    files = (d / "ca.pem", d / f"{testnet_tls.CLIENT}.pem", d / f"{testnet_tls.CLIENT}.key")
    return ClientTls(*files) if all(f.exists() for f in files) else None


async def _height(address: str, timeout_s: float = 2.0, tls: ClientTls | None = None) -> int | None:
    async with NodeClient(address, tls=tls, retry=RetryPolicy(attempts=1, timeout_s=timeout_s)) as client:
        try:
            return int((await client.status()).latest_height)
        except NodeError:
            return None


async def node_info(root: Path, kind: str, chain_id: str, home_name: str | None = None) -> NodeInfo:
    home = root / (home_name or kind)
    pid = _node_pid(home)
    address = None
    if pid is not None:
        with contextlib.suppress(OSError):
            address = (home / "node.addr").read_text().strip() or None
    height = await _height(address, tls=_client_tls(root)) if address else None
    return NodeInfo(kind, chain_id, home, pid, address, height)


async def _nodes(root: Path, specs: list[ChainSpec] | None = None) -> list[NodeInfo]:
    specs = specs if specs is not None else layout(st_chain_count(root))
    return [await node_info(root, s.kind, s.chain_id, s.home) for s in specs]


def _up_nodes(root: Path, specs: list[ChainSpec], wait_s: float, pki: testnet_tls.NetPki | None = None) -> list[str]:
    """Initialise (first time) and start the nodes that are not running; returns the chains started."""
    started: list[tuple[ChainSpec, subprocess.Popen[bytes]]] = []
    for spec in specs:
        home = root / spec.home
        if not (home / "node.toml").exists():
            res = subprocess.run(
                [*kakehashi_argv(), "node", "init", "--chain", spec.kind, "--home", str(home), "--chain-id",
                 spec.chain_id, "--validators", str(spec.validators), "--block-period", spec.period, "--json"],
                capture_output=True, text=True, timeout=120,
            )
            if res.returncode != 0:
                raise TestnetError(f"{spec.chain_id}: node init failed: {res.stderr.strip()}")
        if pki is not None:
            testnet_tls.configure_node(home, pki, spec.home)
        if _node_pid(home) is not None:
            continue  # already running
        (home / "node.addr").unlink(missing_ok=True)
        proc = spawn([*kakehashi_argv(), "node", "start", "--home", str(home), "--log-format", "json"],
                      home / "node.log", home / "node.pid")
        started.append((spec, proc))
    deadline = time.monotonic() + wait_s
    for spec, proc in started:
        home = root / spec.home
        while not (home / "node.addr").exists():
            if proc.poll() is not None:
                raise TestnetError(f"{spec.chain_id}: node exited with status {proc.returncode}; "
                                   f"see {home / 'node.log'}")
            if time.monotonic() > deadline:
                raise TestnetError(f"{spec.chain_id}: node did not start serving within {wait_s:.0f}s; "
                                   f"see {home / 'node.log'}")
            time.sleep(0.05)
    return [spec.chain_id for spec, _ in started]


async def _wait_heights(nodes: list[NodeInfo], at_least: int, wait_s: float, tls: ClientTls | None = None) -> None:
    """A client of a chain is made from a sealed header, so each chain needs a block or two."""
    deadline = time.monotonic() + wait_s
    for n in nodes:
        assert n.address is not None
        while (await _height(n.address, tls=tls) or 0) < at_least:
            if time.monotonic() > deadline:
                raise TestnetError(f"{n.kind}: still below height {at_least} after {wait_s:.0f}s")
            await asyncio.sleep(0.2)


# --- relayer home: passphrase, keystore, config ---------------------------------------------


def relayer_home(root: Path) -> Path:
    return Path(root).resolve() / "relayer"


def passphrase(root: Path) -> str:
    """The keystore passphrase: generated on the first `up`, kept 0600 in HOME/relayer/passphrase.

    A local testnet has nobody to type a passphrase at start; the file lets `up` hand it to
    the relayer (as $KAKEHASHI_KEYSTORE_PASSPHRASE) and lets an operator run the one-shot
    commands against the testnet's config with the same keys."""
    home = relayer_home(root)
    path = home / "passphrase"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def _ensure_keys(root: Path, secret: str) -> None:
    store = Keystore(relayer_home(root) / "keys")
    have = {k.name for k in store.list()} if store.directory.exists() else set()
    for kind, name in RELAYER_KEYS.items():
        if name not in have:
            try:
                store.add(name, KIND_FOR_CHAIN[kind], secret)  # fresh key, never a demo account's
            except KeystoreError as exc:
                raise TestnetError(f"relayer keystore: {exc}") from exc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the relayer's HTTP server binds: connections of the last run in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def render_config(addresses: dict[str, str], telemetry_port: int, mqtt: str | None, chain_extra: str = "",
                  specs: list[ChainSpec] | None = None, mqtt_extra: str = "") -> str:
    """The relayer config; ``addresses`` by chain id (or, for the single-path layout, by kind).
    With several ST chains it lists one ``[[paths]]`` entry per spoke, all served by one daemon
    (``kakehashi start --path NAME`` runs a daemon on a subset)."""
    specs = specs if specs is not None else layout(1)
    chains = "".join(f"""
[[chains]]
id = "{s.chain_id}"
kind = "{s.kind}"
grpc_addr = "{addresses.get(s.chain_id) or addresses[s.kind]}"
key_name = "{RELAYER_KEYS[s.kind]}"
max_clock_drift = "{MAX_CLOCK_DRIFT}"
{chain_extra}""" for s in specs)
    if len(specs) > 2:
        chains += "".join(f"""
[[paths]]
name = "{path_name(s.chain_id, HUB)}"
a_chain = "{s.chain_id}"
b_chain = "{HUB}"
""" for s in specs if s.kind == "evm")
    mqtt_host, _, mqtt_port = (mqtt or "127.0.0.1:1883").rpartition(":")
    return f"""# Written by `kakehashi testnet up` on every run (the nodes' ports change); edits are lost.
[global]
log_level = "info"
log_format = "json"
keystore = "keys"

[mode.packets]
clear_on_start = true
clear_interval = {CLEAR_INTERVAL_BLOCKS}

[telemetry]
enabled = true
host = "127.0.0.1"
port = {telemetry_port}

[mqtt]
enabled = {"true" if mqtt else "false"}
host = "{mqtt_host}"
port = {int(mqtt_port)}
{mqtt_extra}{chains}"""


def _write_config(root: Path, nodes: list[NodeInfo], mqtt: str | None, chain_extra: str = "",
                  specs: list[ChainSpec] | None = None, mqtt_extra: str = "") -> Config:
    path = relayer_home(root) / "relayer.toml"
    port = 0
    previous: Config | None = None
    with contextlib.suppress(ConfigError):
        previous = load_config(path)
    if previous is not None:
        port = previous.telemetry.port
        if mqtt is None and previous.mqtt.enabled:
            mqtt = f"{previous.mqtt.host}:{previous.mqtt.port}"
    if not port or not _port_free(port):
        port = _free_port()
    addresses = {n.chain_id: n.address or "" for n in nodes}
    path.write_text(render_config(addresses, port, mqtt, chain_extra, specs, mqtt_extra))
    try:
        return load_config(path)
    except ConfigError as exc:  # what we write must validate
        raise TestnetError(f"generated relayer config is invalid: {exc}") from exc


# --- paths: clients, connection, channels --------------------------------------------------


async def _sequence(chain: ChainHandle, key: bytes) -> int:
    raw = (await chain.query(key, prove=False)).value
    return int(client_pb2.NextSequence.FromString(raw).sequence) if raw is not None else 0


async def _existing(a: ChainHandle, b: ChainHandle) -> tuple[dict[str, str], dict[ChannelSpec, dict[str, str]]]:
    """The first connection OPEN on both chains and, on it, the open channel for each spec."""
    from relayer.core.workers import channel_end, connection_end

    connection: dict[str, str] = {}
    for n in range(await _sequence(a, paths.NEXT_CONNECTION_SEQUENCE)):
        cid = f"connection-{n}"
        mine = await connection_end(a, cid)
        if mine is None or mine.state != cpb.CONNECTION_STATE_OPEN:
            continue
        theirs = await connection_end(b, mine.counterparty.connection_id)
        if theirs is not None and theirs.state == cpb.CONNECTION_STATE_OPEN and \
                theirs.counterparty.connection_id == cid:
            connection = {"a_chain": a.chain_id, "a_client": mine.client_id, "a_connection": cid,
                          "b_chain": b.chain_id, "b_client": theirs.client_id,
                          "b_connection": mine.counterparty.connection_id}
            break
    found: dict[ChannelSpec, dict[str, str]] = {}
    if not connection:
        return connection, found
    orders = {"unordered": chpb.ORDER_UNORDERED, "ordered": chpb.ORDER_ORDERED}
    for n in range(await _sequence(a, paths.NEXT_CHANNEL_SEQUENCE)):
        for spec in CHANNELS:
            if spec in found:
                continue
            chan = f"channel-{n}"
            mine_ch = await channel_end(a, spec.a_port, chan)
            if (mine_ch is None or mine_ch.state != chpb.STATE_OPEN or mine_ch.ordering != orders[spec.order]
                    or list(mine_ch.connection_hops) != [connection["a_connection"]]
                    or mine_ch.counterparty.port_id != spec.b_port):
                continue
            theirs_ch = await channel_end(b, spec.b_port, mine_ch.counterparty.channel_id)
            if theirs_ch is not None and theirs_ch.state == chpb.STATE_OPEN:
                found[spec] = {"a_chain": a.chain_id, "a_port": spec.a_port, "a_channel": chan,
                               "b_chain": b.chain_id, "b_port": spec.b_port,
                               "b_channel": mine_ch.counterparty.channel_id, "order": spec.order,
                               "version": mine_ch.version}
    return connection, found


async def _ensure_paths(config: Config, secret: str, a_id: str = CHAINS[0][1], b_id: str = HUB,
                        ) -> tuple[dict[str, str], list[dict[str, str]], list[str]]:
    """Find or create the connection and every channel in CHANNELS between an ST chain and the
    hub; returns what was created too."""
    from relayer.cli import commands
    from relayer.core.daemon import opened

    async with opened(config, secret, a_id, b_id) as (a, b):
        connection, found = await _existing(a.handle, b.handle)
    created: list[str] = []
    where = "" if a_id == CHAINS[0][1] else f"{a_id} "  # the first path's objects are named as they always were
    if not connection:
        connection = await commands.create_connection(config, secret, a_id, b_id)
        created.append(f"connection {where}{connection['a_connection']}")
    for spec in CHANNELS:
        if spec not in found:
            found[spec] = await commands.create_channel(config, secret, a_id, connection["a_connection"], spec.a_port,
                                                        spec.b_port, spec.order, spec.version)
            created.append(f"channel {where}{spec.a_port}/{found[spec]['a_channel']}")
    return connection, [found[spec] for spec in CHANNELS], created


# --- relayer process ---------------------------------------------------------------------------


def _relayer_pid(root: Path) -> int | None:
    home = relayer_home(root)
    return read_pid(home / "relayer.pid", home / "relayer.toml")


def _health(port: int, timeout_s: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout_s) as res:
            doc: dict[str, Any] = json.loads(res.read())
            return doc
    except urllib.error.HTTPError as exc:  # 503: up, but degraded
        with contextlib.suppress(ValueError):
            return dict(json.loads(exc.read()))
        return {"status": "error"}
    except (OSError, ValueError):
        return None


async def _start_relayer(root: Path, config: Config, secret: str, wait_s: float) -> None:
    home = relayer_home(root)
    proc = spawn([*kakehashi_argv(), "start", "-c", str(home / "relayer.toml")], home / "relayer.log",
                  home / "relayer.pid", env={**os.environ, PASSPHRASE_ENV: secret})
    deadline = time.monotonic() + wait_s
    while True:
        # The supervisor's probe reports "workers" once it has scanned the chains.
        doc = _health(config.telemetry.port, 1.0)
        if doc is not None and "workers" in doc:
            return
        if proc.poll() is not None:
            raise TestnetError(f"relayer exited with status {proc.returncode}; see {home / 'relayer.log'}")
        if time.monotonic() > deadline:
            raise TestnetError(f"relayer not ready within {wait_s:.0f}s; see {home / 'relayer.log'}")
        await asyncio.sleep(0.1)


def relayer_info(root: Path) -> RelayerInfo:
    home = relayer_home(root)
    cfg_path = home / "relayer.toml"
    pid = _relayer_pid(root)
    metrics = health = None
    healthy: bool | None = None
    if pid is not None:
        with contextlib.suppress(ConfigError):
            port = load_config(cfg_path).telemetry.port
            metrics, health = f"http://127.0.0.1:{port}/metrics", f"http://127.0.0.1:{port}/health"
            doc = _health(port)
            healthy = doc is not None and doc.get("status") == "ok"
    return RelayerInfo(home, cfg_path, pid, metrics, health, healthy, home / "relayer.log")


def _saved_paths(root: Path) -> tuple[dict[str, str], list[dict[str, str]], list[dict[str, Any]]]:
    """What the last `up` found or created (for `status`; `up` itself always asks the chains)."""
    try:
        doc = json.loads((relayer_home(root) / "paths.json").read_text())
        connection, channels = dict(doc["connection"]), list(doc["channels"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}, [], []
    every = doc.get("paths") or [{"name": path_name(CHAINS[0][1], HUB), "st_chain": CHAINS[0][1],
                                  "connection": connection, "channels": channels}]
    return connection, channels, list(every)


# --- commands ------------------------------------------------------------------------------------


def up(root: Path, *, validators: int = 4, block_period: str | None = None, mqtt: str | None = None,
       wait_s: float = 60.0, prover: str | None = None, st_chains: int | None = None, tls: bool = False) -> Testnet:
    """Bring the whole testnet up (idempotent): nodes, relayer keys and config, paths, relayer."""
    return asyncio.run(up_async(root, validators=validators, block_period=block_period, mqtt=mqtt, wait_s=wait_s,
                                prover=prover, st_chains=st_chains, tls=tls))


PROVERS = ("direct", "proxy")


def testnet_prover(root: Path, wanted: str | None = None) -> str:
    """The testnet's verification mode: fixed by its first `up` (HOME/prover), since its clients
    are of one kind; asking for the other mode on an existing testnet is an error."""
    path = Path(root).resolve() / "prover"
    saved = path.read_text().strip() if path.exists() else None
    if wanted is not None and wanted not in PROVERS:
        raise TestnetError(f"--prover must be one of {', '.join(PROVERS)}, got {wanted!r}")
    if saved is not None and wanted is not None and saved != wanted:
        raise TestnetError(f"the testnet in {root} was created with --prover {saved}; its clients cannot switch. "
                           f"Use another --home for --prover {wanted}")
    mode = saved or wanted or "direct"
    if saved is None:
        path.write_text(mode + "\n")
    return mode


async def up_async(root: Path, *, validators: int = 4, block_period: str | None = None, mqtt: str | None = None,
                   wait_s: float = 60.0, prover: str | None = None, st_chains: int | None = None,
                   tls: bool = False) -> Testnet:
    """:func:`up` inside a running event loop (gRPC's asyncio channels serve one loop per process)."""
    from relayer.ops.logs import configure_logging

    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    mode = testnet_prover(root, prover)
    n_st = st_chain_count(root, st_chains)
    if mode == "proxy" and n_st > 1:
        raise TestnetError("--prover proxy runs one path (one proxy process); use --st-chains 1 with it")
    specs = layout(n_st, validators, block_period)
    pki = _testnet_pki(root, tls, mqtt, specs)
    started = _up_nodes(root, specs, wait_s, pki)
    proxy = up_proxy(root, wait_s, None if pki is None else lambda home: testnet_tls.configure_proxy(home, pki))[0] \
        if mode == "proxy" else None
    nodes = await _nodes(root, specs)
    for n in nodes:
        if n.address is None:
            raise TestnetError(f"{n.kind}: node is not running; see {n.home / 'node.log'}")
    secret = passphrase(root)
    _ensure_keys(root, secret)
    pid = _relayer_pid(root)
    if pid is not None and started:
        terminate("relayer", pid, 20.0)  # it still points at the nodes' old addresses
        pid = None
    extra = chain_section(proxy) if proxy is not None else ""
    broker, mqtt_extra = None, ""
    if pki is not None:
        extra += testnet_tls.chain_tls(pki, proxy is not None)
        password_file = relayer_home(root) / "mqtt.password"
        broker = testnet_broker.up_broker(root, pki, password_file, wait_s)
        mqtt, mqtt_extra = broker.address, testnet_tls.mqtt_tls(pki, testnet_broker.RELAYER_USER, password_file)
    config = _write_config(root, nodes, mqtt, extra, specs, mqtt_extra) if pid is None else \
        load_config(relayer_home(root) / "relayer.toml")
    await _wait_heights(nodes, 2, wait_s, _client_tls(root))
    configure_logging("warning", "console")  # handshakes log on stderr only when something is wrong
    every: list[dict[str, Any]] = []
    created: list[str] = []
    for spec in specs:
        if spec.kind != "evm":
            continue
        try:
            connection, channels, made = await _ensure_paths(config, secret, spec.chain_id, HUB)
        except Exception as exc:
            raise TestnetError(f"creating the path {spec.chain_id} <-> {HUB} failed: "
                               f"{type(exc).__name__}: {exc}") from exc
        every.append({"name": path_name(spec.chain_id, HUB), "st_chain": spec.chain_id,
                      "connection": connection, "channels": channels})
        created += made
    first = every[0]
    (relayer_home(root) / "paths.json").write_text(json.dumps(
        {"connection": first["connection"], "channels": first["channels"], "paths": every},
        indent=2, sort_keys=True) + "\n")
    if pid is None:
        await _start_relayer(root, config, secret, wait_s)
    return Testnet(await _nodes(root, specs), relayer_info(root), first["connection"], first["channels"], created,
                   mode, proxy, every, pki is not None, broker)


def _testnet_pki(root: Path, wanted: bool, mqtt: str | None, specs: list[ChainSpec]) -> testnet_tls.NetPki | None:
    """The testnet's certificates when it runs with TLS (asked now, or by an earlier `up`).
    Turning TLS on under running nodes would leave them serving plaintext: refused."""
    if not testnet_tls.tls_enabled(root, wanted):
        return None
    if mqtt is not None:
        raise TestnetError("--mqtt names a broker, but a TLS testnet runs its own (mosquitto with TLS, passwords "
                           "and ACLs in HOME/broker); drop --mqtt")
    if not testnet_tls.tls_enabled(root) and any(_node_pid(root / s.home) is not None for s in specs):
        raise TestnetError(f"the testnet in {root} runs without TLS; stop it first (testnet down) to turn --tls on")
    return testnet_tls.ensure_pki(root, [s.home for s in specs])


def down(root: Path, *, wait_s: float = 20.0) -> list[str]:
    """Stop the relayer, then the proxy, then the nodes (only processes `up` started), each
    group waited for until its processes are gone; returns what was stopped. A process still
    there after SIGKILL keeps its PID file and is named in a TestnetError."""
    root = Path(root).resolve()
    specs = layout(st_chain_count(root))
    groups = [
        {"relayer": relayer_home(root) / "relayer.pid"},
        {"proxy": proxy_pid_file(root), "broker": testnet_broker.broker_pid_file(root)},
        {s.home: root / s.home / "node.pid" for s in specs},
    ]
    found = {"relayer": _relayer_pid(root), "proxy": proxy_pid(root), "broker": testnet_broker.broker_pid(root),
             **{s.home: _node_pid(root / s.home) for s in specs}}
    stopped: list[str] = []
    stuck: list[str] = []
    for group in groups:
        running = {name: pid for name in group if (pid := found[name]) is not None}
        left = stop(running, wait_s)
        for name, pid_file in group.items():
            if name in left:
                stuck.append(f"{name} (pid {left[name]})")
                continue
            remove_pid(pid_file)
            if name in running:
                stopped.append(name)
    if stuck:
        raise TestnetError(f"stopped: {', '.join(stopped) or 'nothing'}; still running after SIGKILL: "
                           f"{', '.join(stuck)}")
    return stopped


def status(root: Path) -> Testnet:
    return asyncio.run(status_async(root))


async def status_async(root: Path) -> Testnet:
    root = Path(root).resolve()
    connection, channels, every = _saved_paths(root)
    saved = root / "prover"
    mode = saved.read_text().strip() if saved.exists() else "direct"
    tls = testnet_tls.tls_enabled(root)
    broker = testnet_broker.info(root, relayer_home(root) / "mqtt.password") \
        if tls and (testnet_broker.broker_home(root) / "broker.port").exists() else None
    return Testnet(await _nodes(root), relayer_info(root), connection, channels, prover=mode, proxy=proxy_info(root),
                   paths=every, tls=tls, broker=broker)
