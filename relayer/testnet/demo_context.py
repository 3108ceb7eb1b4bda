"""What the phases of `make run` share: the run's context, the transfer directions it follows.

Why a module of its own: the runner (``demo``) lists the phases and every phase module
(``demo``'s transfer phases, ``demo_dvp``) takes the same context, so the context sits below
all of them and no phase module imports the runner.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from chains.corda.ibc_host import account_of
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from relayer.testnet import network as testnet

# DvP trades that should settle in a run (the failure kinds come on top).
DEFAULT_TRADES = 8


def address_of(kind: str, secret: bytes) -> str:
    if kind == "evm":
        return "0x" + eth_address(secp256k1_public_key(secret)).hex()
    return account_of(ed25519_public_key(secret))


@dataclass
class Direction:
    """One way of the transfer phase, and what was observed of it on the chains."""

    name: str
    src_kind: str
    dst_kind: str
    src_channel: str
    dst_channel: str
    denom: str
    sender_key: bytes
    receiver: str
    port: str = "transfer"
    sent: dict[int, float] = field(default_factory=dict)  # sequence -> send committed (monotonic s)
    received: dict[int, float] = field(default_factory=dict)
    acked: dict[int, float] = field(default_factory=dict)
    failed_acks: set[int] = field(default_factory=set)
    before: dict[str, int] = field(default_factory=dict)

    @property
    def voucher(self) -> str:
        return f"{self.port}/{self.dst_channel}/{self.denom}"

    @property
    def sender(self) -> str:
        return address_of(self.src_kind, self.sender_key)


@dataclass
class DemoContext:
    home: Path
    transfers: int
    console: Console
    timeout_s: float = 90.0
    trades: int = DEFAULT_TRADES  # DvP trades that should settle (the failure kinds come on top)
    prover: str = "direct"  # how the chains verify each other (relayer/proxy for "proxy")
    st_chains: int | None = None  # EVM ST chains (paths) the testnet gets; None: what it has
    tn: testnet.Testnet | None = None
    directions: list[Direction] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def testnet(self) -> testnet.Testnet:
        if self.tn is None:
            raise RuntimeError("the testnet phase has not run")
        return self.tn

    def address(self, kind: str) -> str:
        for n in self.testnet.nodes:
            if n.kind == kind and n.address:
                return n.address
        raise RuntimeError(f"the {kind} node has no address")

    def chain_id(self, kind: str) -> str:
        return next(n.chain_id for n in self.testnet.nodes if n.kind == kind)


# One event loop runs every phase: gRPC's asyncio channels serve a single loop per process.
Phase = Callable[[DemoContext], Awaitable[None]]
