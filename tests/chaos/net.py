"""The soak's network: two nodes, relayers, an MQTT broker; every child restartable by PID.

Why a restartable child with a fixed address: the faults kill and restart the same service
many times, and the other processes keep its address in their configuration (the relayer's
``grpc_addr``, the feed's broker), so a node comes back on its port, a relayer on its metrics
port, the broker on its listener. Every PID ever started is kept, so the end of the run can
check that each of them is gone (only those: nothing is signalled by name).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chains.corda.ibc_host import account_of
from chains.ibc.apps import dvp as dvp_app
from chains.node.client import NodeClient, RetryPolicy
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from tests.support.live import (
    BIN,
    RelayerSetup,
    add_keys,
    env,
    free_port,
    http_get,
    kh,
    kj,
    write_config,
)

EVM_ID, CORDA_ID = "evm-soak", "corda-soak"
# Who signs what: no key is used by two processes, so no two processes share an EVM nonce.
RELAYER_A = {"evm": "carol", "corda": "holder-firm-c"}
RELAYER_B = {"evm": "issuer", "corda": "issuer"}
SELLER, BUYER = ("alice", "firm-a"), ("bob", "firm-b")  # (EVM name, Corda holder name)
TRANSFER_EVM, TRANSFER_CORDA = "bob", "holder-firm-a"  # transfer senders on each chain


class ChildError(RuntimeError):
    """A child process did not come up; carries the tail of its log."""


@dataclass
class Child:
    """One service we start, kill, pause and restart; ``pids`` lists every incarnation."""

    name: str
    argv: list[str]
    log: Path
    ready: Callable[[Child], None] = lambda c: None
    stdout: Path | None = None  # a separate file for stdout (stderr still goes to ``log``)
    proc: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)
    paused: bool = False
    peak_kib: int = 0  # highest VmHWM of any run of this child, read before each stop or kill

    def start(self) -> None:
        if self.alive():
            raise ChildError(f"{self.name} is already running (pid {self.pid})")
        with self.log.open("ab") as out:
            out.write(f"\n--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            out.flush()
            if self.stdout is not None:
                with self.stdout.open("wb") as so:
                    self.proc = subprocess.Popen(self.argv, stdout=so, stderr=out, env=env())
            else:
                self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=env())
        self.pids.append(self.proc.pid)
        self.paused = False
        self.ready(self)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return int(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL (no shutdown code runs: a crash, an OOM kill) and reap it."""
        if self.alive():
            self._read_peak()
            os.kill(self.pid, signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(timeout=30)
        self.paused = False

    def stop(self, timeout_s: float = 20) -> int | None:
        """SIGTERM (SIGCONT first if paused), SIGKILL after ``timeout_s``; the exit code."""
        if self.proc is None:
            return None
        if self.alive():
            self._read_peak()
            if self.paused:
                os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.paused = False
        return self.proc.returncode

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def peak_rss_kib(self) -> int:
        """The highest resident set of any run so far (the running one included).

        Why read before each stop: /proc forgets a process's high-water mark once it is reaped,
        so a figure read at the end of a soak would be that of nothing.
        """
        if self.alive():
            self._read_peak()
        return self.peak_kib

    def _read_peak(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))


class PeakWatch:
    """Reads every child's high-water mark once a second while a run goes on.

    Why: a child that exits by itself (the feed when its trades are done) takes its VmHWM with
    it, and one SIGKILLed by a fault is read only if the kill goes through ``Child.kill``.
    """

    def __init__(self, children: Callable[[], Sequence[Child]], every_s: float = 1.0) -> None:
        self._children, self._every = children, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def __enter__(self) -> PeakWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            for child in self._children():
                child.peak_rss_kib()


def _wait(what: str, cond: Callable[[], bool], child: Child, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if not child.alive():
            raise ChildError(f"{child.name} exited with {child.proc.returncode if child.proc else '?'} "
                             f"before {what}:\n{child.tail()}")
        if time.monotonic() > deadline:
            raise ChildError(f"{child.name}: {what} not within {timeout_s} s:\n{child.tail()}")
        time.sleep(0.05)


# --- nodes ---------------------------------------------------------------------------------

@dataclass
class Node:
    kind: str
    chain_id: str
    home: Path
    addr: str
    child: Child

    def key(self, name: str) -> bytes:
        return bytes.fromhex((self.home / "keys" / f"{name}.key").read_text().strip())

    def evm_address(self, name: str) -> bytes:
        return eth_address(secp256k1_public_key(self.key(name)))

    def corda_party(self, holder: str) -> bytes:
        return ed25519_public_key(self.key(f"holder-{holder}"))

    def account(self, name: str) -> str:
        """The ICS-20 account of key ``name`` (what tests.support.live.Sender signs as)."""
        if self.kind == "evm":
            return "0x" + self.evm_address(name).hex()
        return account_of(ed25519_public_key(self.key(name)))

    def client(self) -> NodeClient:
        return NodeClient(self.addr, retry=RetryPolicy(attempts=8, timeout_s=20))

    def status_ok(self) -> bool:
        async def ask() -> bool:
            async with NodeClient(self.addr, retry=RetryPolicy(attempts=1, timeout_s=2)) as c:
                await c.status()
            return True
        try:
            return asyncio.run(ask())
        except Exception:
            return False

    def restart(self) -> None:
        (self.home / "node.addr").unlink(missing_ok=True)  # a SIGKILLed node leaves it behind
        self.child.start()


def make_node(root: Path, kind: str, chain_id: str, period: str) -> Node:
    home = root / chain_id
    subprocess.run([str(BIN), "node", "init", "--chain", kind, "--home", str(home), "--validators", "4",
                    "--chain-id", chain_id, "--block-period", period],
                   check=True, capture_output=True, timeout=60)
    addr = f"127.0.0.1:{free_port()}"
    node = Node(kind, chain_id, home, addr, Child(chain_id, [str(BIN), "node", "start", "--home", str(home),
                                                             "--grpc", addr], home / "node.log"))

    def ready(child: Child) -> None:
        addr_file = home / "node.addr"
        _wait("gRPC serving", lambda: addr_file.exists() and bool(addr_file.read_text().strip()), child, 60)
        _wait("Status answering", node.status_ok, child, 30)

    node.child.ready = ready
    return node


# --- relayers -------------------------------------------------------------------------------

@dataclass
class Relayer:
    config: Path
    metrics_port: int
    child: Child

    def health(self) -> tuple[int, dict[str, object]]:
        try:
            code, body = http_get(self.metrics_port, "/health")
            return code, json.loads(body)
        except (OSError, ValueError):
            return 0, {}


def make_relayer(root: Path, name: str, nodes: Sequence[Node], who: dict[str, str], keystore: str,
                 mqtt_port: int, *, max_msg_num: int = 64, clear_interval: int = 10) -> Relayer:
    add_keys(root / keystore, [(n, who[n.kind]) for n in nodes])  # type: ignore[list-item]
    port = free_port()
    setup = RelayerSetup(metrics_port=port, keys={n.chain_id: f"{n.chain_id}-{who[n.kind]}" for n in nodes},
                         max_msg_num=max_msg_num, clear_interval=clear_interval, clear_limit=1000,
                         mqtt_port=mqtt_port, mqtt_client_id=f"soak-{name}", keystore=keystore)
    cfg = write_config(root / f"{name}.toml", nodes, setup)  # type: ignore[arg-type]
    relayer = Relayer(cfg, port, Child(name, [str(BIN), "start", "-c", str(cfg)], root / f"{name}.log"))

    def ready(child: Child) -> None:
        def up() -> bool:
            code, body = relayer.health()
            workers = body.get("workers", 0)
            return code in (200, 503) and isinstance(workers, int) and workers > 0
        _wait("/health with workers", up, child, 90)

    relayer.child.ready = ready
    return relayer


# --- the MQTT broker -----------------------------------------------------------------------

def make_broker(root: Path) -> tuple[Child, int]:
    """mosquitto on 127.0.0.1 keeping sessions and queued QoS 1 messages across a restart.

    Why persistence: the subscriber holds a persistent session (clean_session off), so
    events published while it reconnects after a broker restart wait for it in the broker.
    """
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        raise ChildError("mosquitto is not installed: `make test` installs it (apt-get install mosquitto)")
    port = free_port()
    data = root / "mosquitto"
    data.mkdir(exist_ok=True)
    conf = data / "mosquitto.conf"
    # Run as root, mosquitto drops to its own user, which may not write our directory; keep ours.
    user = pwd.getpwuid(os.getuid()).pw_name
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {user}\npersistence true\n"
                    f"persistence_location {data}/\nautosave_interval 1\nmax_queued_messages 0\n"
                    "max_inflight_messages 0\n")
    child = Child("mosquitto", [exe, "-c", str(conf)], data / "mosquitto.log")

    def ready(c: Child) -> None:
        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        _wait("MQTT listener", listening, c, 15)

    child.ready = ready
    return child, port


# --- the whole network ---------------------------------------------------------------------

@dataclass
class Net:
    root: Path
    evm: Node
    corda: Node
    broker: Child
    mqtt_port: int
    relayer: Relayer
    second: Relayer
    transfer_evm: str = ""  # channel ends
    transfer_corda: str = ""
    dvp_evm: str = ""
    dvp_corda: str = ""

    def children(self) -> list[Child]:
        return [self.relayer.child, self.second.child, self.evm.child, self.corda.child, self.broker]

    def stop_all(self) -> None:
        for c in self.children():
            c.stop()


def build(root: Path, *, evm_period: str = "1s", corda_period: str = "200ms") -> Net:
    """Nodes, broker and both relayer configs; the path (clients, connection, transfer and dvp
    channels) made with the operator's ``kakehashi create`` commands. Relayers not started."""
    evm = make_node(root, "evm", EVM_ID, evm_period)
    corda = make_node(root, "corda", CORDA_ID, corda_period)
    broker, mqtt_port = make_broker(root)
    net = Net(root, evm, corda, broker, mqtt_port,
              make_relayer(root, "relayer", [evm, corda], RELAYER_A, "keys", mqtt_port),
              make_relayer(root, "relayer-2", [evm, corda], RELAYER_B, "keys-2", mqtt_port))
    try:
        for c in (evm.child, corda.child, broker):
            c.start()
        cfg = str(net.relayer.config)
        deadline = time.monotonic() + 30
        while not all(_height(n) >= 2 for n in (evm, corda)):
            if time.monotonic() > deadline:
                raise ChildError("the nodes did not reach height 2")
            time.sleep(0.2)
        conn = kj("create", "connection", "-c", cfg, "--a-chain", evm.chain_id, "--b-chain", corda.chain_id)
        tr = kj("create", "channel", "-c", cfg, "--a-chain", evm.chain_id, "--a-connection", conn["a_connection"],
                "--a-port", "transfer", "--b-port", "transfer")
        dv = kj("create", "channel", "-c", cfg, "--a-chain", evm.chain_id, "--a-connection", conn["a_connection"],
                "--a-port", dvp_app.PORT_ID, "--b-port", dvp_app.PORT_ID, "--channel-version", dvp_app.VERSION)
        net.transfer_evm, net.transfer_corda = tr["a_channel"], tr["b_channel"]
        net.dvp_evm, net.dvp_corda = dv["a_channel"], dv["b_channel"]
    except BaseException:
        net.stop_all()
        raise
    return net


def _height(node: Node) -> int:
    async def ask() -> int:
        async with NodeClient(node.addr, retry=RetryPolicy(attempts=2, timeout_s=5)) as c:
            return int((await c.status()).latest_height)
    try:
        return asyncio.run(ask())
    except Exception:
        return 0


def feed_argv(net: Net, trades: Path, db: Path, concurrency: int, wait_s: float) -> list[str]:
    """``kakehashi dvp feed`` over a trades file, publishing settlement events to the broker."""
    return [str(BIN), "dvp", "feed", "--file", str(trades), "-c", str(net.relayer.config), "--channel",
            net.dvp_corda, "--db", str(db), "--key", str(net.evm.home / "keys"), "--key",
            str(net.corda.home / "keys"), "--concurrency", str(concurrency), "--wait", str(wait_s), "--json"]


__all__ = ["Child", "ChildError", "Net", "Node", "Relayer", "build", "feed_argv", "kh"]
