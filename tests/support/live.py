"""Real nodes and real relayer daemons as subprocesses, for the chaos tests and the gRPC bench.

Why a shared harness: the chaos tests and ``bench/bench_relayer_grpc.py`` both need the same
operator-level setup (``kakehashi node init/start``, a keystore, a relayer.toml, ``kakehashi
create connection/channel``, ``kakehashi start``) and the same chain-side bookkeeping (demo
accounts sending many transfers per tx, every event read back from the nodes' blocks). Every
process is started here and stopped by its own PID, never by name; everything binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2

from chains.corda.ibc_host import account_of, ibc_command
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import IBC_HANDLER_ADDRESS, make_tx
from chains.evm import Message as EvmCall
from chains.ibc import events as ev
from chains.ibc.events import Event
from chains.node.client import NodeClient, RetryPolicy
from kakehashi.ibc.v1 import transfer_pb2
from kakehashi.node.v1 import node_pb2
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from relayer.codecs.corda import fresh_salt
from relayer.ops.keystore import KIND_FOR_CHAIN, Keystore

BIN = Path(sys.executable).parent / "kakehashi"
PASSPHRASE = "correct horse battery"
SEC = 1_000_000_000
EVM_MAX_CALLS = 64  # chains.evm.tx.MAX_MESSAGES
CORDA_MAX_COMMANDS = 64  # kept equal to the EVM bound so both directions batch alike


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return {**os.environ, "KAKEHASHI_KEYSTORE_PASSPHRASE": PASSPHRASE}


@dataclass
class Proc:
    """One child process we started; stopped by its PID only."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 15) -> int:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return int(self.proc.returncode)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def cpu_s(self) -> float:
        """User + system CPU seconds the process has used so far (from /proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_kib(self) -> int:
        """VmHWM of the live process (kernel-tracked peak resident set), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmHWM for pid {self.pid}")


@dataclass
class Procs:
    started: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, args: Sequence[str], log: Path) -> Proc:
        with log.open("ab") as out:
            proc = subprocess.Popen([str(BIN), *args], stdout=out, stderr=subprocess.STDOUT, env=env())
        p = Proc(name, proc, log)
        self.started.append(p)
        return p

    def stop_all(self) -> None:
        for p in reversed(self.started):
            p.stop()


@dataclass
class NodeProc:
    kind: str
    chain_id: str
    home: Path
    addr: str
    proc: Proc

    def key(self, name: str) -> bytes:
        return bytes.fromhex((self.home / "keys" / f"{name}.key").read_text().strip())

    def account(self, name: str) -> str:
        if self.kind == "evm":
            return "0x" + eth_address(secp256k1_public_key(self.key(name))).hex()
        return account_of(ed25519_public_key(self.key(name)))


def start_node(root: Path, kind: str, chain_id: str, period: str, procs: Procs, validators: int = 4) -> NodeProc:
    home = root / chain_id
    subprocess.run([str(BIN), "node", "init", "--chain", kind, "--home", str(home), "--validators", str(validators),
                    "--chain-id", chain_id, "--block-period", period],
                   check=True, capture_output=True, timeout=60)
    proc = procs.spawn(chain_id, ["node", "start", "--home", str(home), "--grpc", "127.0.0.1:0"],
                       home / "node.log")
    addr_file = home / "node.addr"
    deadline = time.monotonic() + 30
    while not (addr_file.exists() and addr_file.read_text().strip()):
        if not proc.alive() or time.monotonic() > deadline:
            raise AssertionError(f"{chain_id} node did not start:\n{proc.tail()}")
        time.sleep(0.05)
    addr = addr_file.read_text().strip()
    assert addr.startswith("127.0.0.1:"), addr
    return NodeProc(kind, chain_id, home, addr, proc)


# --- relayer config, keys, CLI ------------------------------------------------------------

@dataclass
class RelayerSetup:
    """Knobs written into one relayer.toml (the keystore directory is shared by all configs)."""

    metrics_port: int
    keys: dict[str, str]  # chain id -> key name
    max_msg_num: int = 30
    clear_interval: int = 20
    clear_limit: int = 50
    trusting_period: str = "14d"
    max_clock_drift: str = "30s"
    refresh_rate: float = 1 / 3
    mqtt_port: int | None = None
    mqtt_client_id: str = "kakehashi-relayer"
    keystore: str = "keys"  # directory beside the config file


def write_config(path: Path, nodes: Sequence[NodeProc], s: RelayerSetup) -> Path:
    mqtt = ""
    if s.mqtt_port is not None:
        mqtt = (f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {s.mqtt_port}\n'
                f'client_id = "{s.mqtt_client_id}"\nqos = 1\n')
    chains = "".join(f"""
[[chains]]
id = "{n.chain_id}"
kind = "{n.kind}"
grpc_addr = "{n.addr}"
key_name = "{s.keys[n.chain_id]}"
max_msg_num = {s.max_msg_num}
trusting_period = "{s.trusting_period}"
max_clock_drift = "{s.max_clock_drift}"
""" for n in nodes)
    path.write_text(f"""
[global]
log_level = "info"
log_format = "json"
keystore = "{s.keystore}"

[mode.clients]
refresh_rate = {s.refresh_rate}

[mode.packets]
clear_interval = {s.clear_interval}
clear_limit = {s.clear_limit}

[telemetry]
enabled = true
host = "127.0.0.1"
port = {s.metrics_port}

{mqtt}
{chains}""")
    return path


def add_keys(keystore: Path, wanted: Iterable[tuple[NodeProc, str]]) -> None:
    """Import the nodes' demo keys into the encrypted keystore the daemons read."""
    store = Keystore(keystore)
    have = {k.name for k in store.list()} if keystore.exists() else set()
    for node, name in wanted:
        label = f"{node.chain_id}-{name}"
        if label not in have:
            store.add(label, KIND_FOR_CHAIN[node.kind], PASSPHRASE, node.key(name))


def kh(*args: str, check: bool = True, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=env())
    if check:
        assert out.returncode == 0, f"kakehashi {' '.join(args)}: {out.stderr[-2000:]}"
    return out


def kj(*args: str) -> Any:
    return json.loads(kh(*args, "--json").stdout)


@dataclass
class IbcPath:
    """A transfer channel between the two nodes, as the CLI created it."""

    a_client: str
    b_client: str
    a_connection: str
    b_connection: str
    a_channel: str
    b_channel: str


def create_path(cfg: Path, a: NodeProc, b: NodeProc, *, channel: bool = True) -> IbcPath:
    wait_heights(a, b, 2)
    conn = kj("create", "connection", "-c", str(cfg), "--a-chain", a.chain_id, "--b-chain", b.chain_id)
    chan = {"a_channel": "", "b_channel": ""}
    if channel:
        chan = kj("create", "channel", "-c", str(cfg), "--a-chain", a.chain_id, "--a-connection",
                  conn["a_connection"], "--a-port", "transfer", "--b-port", "transfer")
    return IbcPath(conn["a_client"], conn["b_client"], conn["a_connection"], conn["b_connection"],
                 chan["a_channel"], chan["b_channel"])


def wait_heights(a: NodeProc, b: NodeProc, height: int, timeout_s: float = 30) -> None:
    async def heights() -> list[int]:
        out = []
        for n in (a, b):
            async with NodeClient(n.addr) as c:
                out.append(int((await c.status()).latest_height))
        return out
    deadline = time.monotonic() + timeout_s
    while min(asyncio.run(heights())) < height:
        assert time.monotonic() < deadline, f"nodes did not reach height {height}"
        time.sleep(0.2)


# --- the daemon ---------------------------------------------------------------------------

def start_daemon(procs: Procs, cfg: Path, name: str = "relayer") -> Proc:
    return procs.spawn(name, ["start", "-c", str(cfg)], cfg.parent / f"{name}.log")


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as res:
            return int(res.status), res.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def wait_ready(daemon: Proc, metrics_port: int, timeout_s: float = 60) -> None:
    """Until /health answers (the daemon has opened both chains and started its supervisor)."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert daemon.alive(), f"relayer exited with {daemon.proc.returncode}:\n{daemon.tail()}"
        try:
            code, body = http_get(metrics_port, "/health")
            if code in (200, 503) and json.loads(body).get("workers", 0) > 0:
                return
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, f"relayer not ready in {timeout_s} s:\n{daemon.tail()}"
        time.sleep(0.2)


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over every series carrying ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        if (sample == name or sample.startswith(name + "{")) and all(
                f'{k}="{v}"' in sample for k, v in labels.items()):
            total += float(value)
    return total


# --- sending transfers from the demo accounts ---------------------------------------------

def _packed(msg: transfer_pb2.MsgTransfer) -> bytes:
    wrapped = any_pb2.Any()
    wrapped.Pack(msg, type_url_prefix="/")
    return wrapped.SerializeToString(deterministic=True)


def tx_events(result: node_pb2.TxResult) -> list[Event]:
    return [Event(e.type, tuple((a.key, bytes(a.value)) for a in e.attributes)) for e in result.events]


@dataclass(frozen=True)
class Sent:
    sequences: tuple[int, ...]
    height: int


class Sender:
    """Signs MsgTransfers as a demo account, many per tx (EVM: one IBC call each; Corda: one
    IBC command each), and submits them without waiting, so a batch fills blocks."""

    def __init__(self, node: NodeProc, user: str, client: NodeClient) -> None:
        self.node, self.user, self.client = node, user, client
        self.secret = node.key(user)
        self.address = node.account(user)
        self._nonce: int | None = None
        self._info: dict[str, Any] | None = None

    async def _chain_info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = dict(await self.client.query_app("chain_info"))
        return self._info

    async def encode(self, msgs: Sequence[transfer_pb2.MsgTransfer]) -> bytes:
        info = await self._chain_info()
        if self.node.kind == "evm":
            if self._nonce is None:
                self._nonce = int((await self.client.query_app("account", address=self.address))["nonce"])
            calls = [EvmCall(IBC_HANDLER_ADDRESS, "ibc", (_packed(m),)) for m in msgs]
            tx = make_tx(self.secret, int(info["evm_chain_id"]), self._nonce, calls)
            self._nonce += 1
            return bytes(tx.encode())
        signer = [ed25519_public_key(self.secret)]
        wtx = WireTransaction((), (), tuple(ibc_command(m, signer) for m in msgs),
                              bytes.fromhex(info["notary_identity"]), fresh_salt())
        return bytes(SignedTransaction(wtx).sign(self.secret).encode())

    async def send(self, msgs: Sequence[transfer_pb2.MsgTransfer]) -> Sent:
        """All messages, ``per_tx`` at a time, submitted back to back; waits for every result."""
        per_tx = EVM_MAX_CALLS if self.node.kind == "evm" else CORDA_MAX_COMMANDS
        hashes = []
        for i in range(0, len(msgs), per_tx):
            hashes.append(await self.client.submit(await self.encode(msgs[i:i + per_tx])))
        seqs: list[int] = []
        height = 0
        for h in hashes:
            res = await self.client.tx_result(h)
            deadline = time.monotonic() + 60
            while res.status == node_pb2.TX_STATUS_PENDING:
                assert time.monotonic() < deadline, "transfer tx not committed in 60 s"
                await asyncio.sleep(0.1)
                res = await self.client.tx_result(h)
            assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason
            height = max(height, int(res.height))
            seqs += [p.sequence for e in tx_events(res) if e.type == ev.SEND_PACKET and (p := e.packet())]
        return Sent(tuple(seqs), height)


def transfers(port: str, channel: str, denom: str, sender: str, receiver: str, amounts: Iterable[int],
              timeout_ns: int) -> list[transfer_pb2.MsgTransfer]:
    return [transfer_pb2.MsgTransfer(source_port=port, source_channel=channel, denom=denom, amount=str(a),
                                     sender=sender, receiver=receiver, timeout_timestamp=timeout_ns)
            for a in amounts]


# --- reading what happened back from the chain -------------------------------------------

async def block_events(client: NodeClient, first: int = 1, last: int = 0) -> list[tuple[int, int, Event]]:
    """(height, block time ns, event) for every tx event in blocks first..last (0 = latest)."""
    if last == 0:
        last = int((await client.status()).latest_height)
    out = []
    for h in range(first, last + 1):
        blk = await client.block(h)
        for r in blk.results:
            out += [(h, int(blk.time_ns), e) for e in tx_events(r)]
    return out


def per_sequence(events: Iterable[tuple[int, int, Event]], kind: str, port: str, channel: str,
                 side: str) -> Counter[int]:
    """How often each sequence appears in ``kind`` events for a channel (side: "source" or
    "destination" end of the packet)."""
    seen: Counter[int] = Counter()
    for _, _, e in events:
        if e.type != kind:
            continue
        p = e.packet()
        if p is None:
            continue
        here = (p.source_port, p.source_channel) if side == "source" else (p.destination_port,
                                                                           p.destination_channel)
        if here == (port, channel):
            seen[p.sequence] += 1
    return seen


def client(node: NodeProc) -> NodeClient:
    return NodeClient(node.addr, retry=RetryPolicy(attempts=3, timeout_s=15))


async def amount(c: NodeClient, query: str, **args: Any) -> int:
    return int((await c.query_app(query, **args))["amount"])
