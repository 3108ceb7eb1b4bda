"""The trade feed: matched trades in (MQTT topic or JSON-lines file), each settled on arrival.

Why one settlement per trade (RTGS: gross, immediate): a trade that fails pre-check or
refunds must not hold up or net against any other. Concurrency is bounded by a semaphore;
a trade waits for a slot only, never for another trade's outcome (the client serialises
what must be: one account's nonces, one party's Cash inputs).

A message that is not a valid trade is counted and reported, never fatal: the feed keeps
running for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from relayer.core.tasks import cancel_and_wait
from relayer.dvp.client import DvpClient, DvpError, Settlement
from relayer.dvp.keys import KeyMaterialError, KeyRing
from relayer.dvp.ledgers import LedgerError
from relayer.dvp.router import DvpRouter
from relayer.dvp.trade import TradeError, trade_from_json
from relayer.ops.mqtt import BrokerAccess, release_client

log = structlog.get_logger("kakehashi.dvp.feed")


@dataclass
class FeedReport:
    received: int = 0
    invalid: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    results: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        lat = sorted(r["latency_s"] for r in self.results if r.get("latency_s") is not None)
        return {
            "received": self.received, "invalid": self.invalid, "outcomes": dict(self.outcomes),
            "elapsed_s": round(self.elapsed_s, 3),
            "latency_p50_s": lat[len(lat) // 2] if lat else None,
            "latency_p99_s": lat[min(len(lat) - 1, (len(lat) * 99) // 100)] if lat else None,
            "by_st_chain": self.by_st_chain(),
            "trades": self.results,
        }

    def by_st_chain(self) -> dict[str, dict[str, int]]:
        """Outcomes per ST chain (per path): one feed carries trades for every ST chain."""
        out: dict[str, Counter[str]] = {}
        for r in self.results:
            if r.get("st_chain"):
                out.setdefault(r["st_chain"], Counter())[r["state"]] += 1
        return {k: dict(v) for k, v in sorted(out.items())}


async def lines_of(path: Path) -> AsyncIterator[bytes]:
    """Each non-empty line of a JSON-lines file."""
    with Path(path).open("rb") as fh:
        for line in fh:
            if line.strip():
                yield line
            await asyncio.sleep(0)


async def mqtt_messages(host: str, port: int, topic: str, *, client_id: str | None = None,
                        idle_s: float | None = None, count: int | None = None,
                        on_ready: Callable[[], None] | None = None,
                        access: BrokerAccess | None = None) -> AsyncIterator[bytes]:
    """Payloads published on ``topic`` (QoS 1) until ``count`` arrived or ``idle_s`` passed quietly;
    ``on_ready`` runs once the subscription is in place (earlier messages are not seen)."""
    seen = 0
    ident = client_id or f"kakehashi-dvp-feed-{os.getpid()}"
    client = aiomqtt.Client(host, port, identifier=ident, timeout=10, **(access or BrokerAccess()).client_kwargs())
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:  # refused TLS, bad credentials, nobody listening
        raise DvpError(f"MQTT broker {host}:{port}: cannot connect: {exc}") from None
    except asyncio.CancelledError:
        release_client(client)
        raise
    try:
        await client.subscribe(topic, qos=1)
        if on_ready is not None:
            on_ready()
        it = client.messages.__aiter__()
        while count is None or seen < count:
            try:
                msg = await (asyncio.wait_for(it.__anext__(), idle_s) if idle_s else it.__anext__())
            except (TimeoutError, StopAsyncIteration):
                return
            seen += 1
            payload = msg.payload
            yield payload if isinstance(payload, bytes) else str(payload).encode()
    finally:
        try:
            await client.__aexit__(None, None, None)
        finally:
            release_client(client)


async def _next(source: AsyncIterator[bytes], stop: asyncio.Event | None) -> bytes | None:
    """The next message, or None when the source ended or ``stop`` was set first."""
    nxt = asyncio.ensure_future(source.__anext__())
    if stop is not None:
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({nxt, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not nxt.done():
            nxt.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await nxt
            return None
    try:
        return await nxt
    except StopAsyncIteration:
        return None


async def run_feed(client: DvpClient | DvpRouter, source: AsyncIterator[bytes], keys: KeyRing, *, concurrency: int = 8,
                   wait_s: float | None = None, on_result: Callable[[Settlement], None] | None = None,
                   stop: asyncio.Event | None = None) -> FeedReport:
    """Settle each trade from ``source`` as it arrives, at most ``concurrency`` at a time.

    Setting ``stop`` (SIGTERM in the CLI) takes no further trade; those in flight finish and
    are reported, since abandoning one between its two locks would leave it to the deadline."""
    if concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    report = FeedReport()
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def one(raw: bytes) -> None:
        try:
            try:
                trade = trade_from_json(raw, "feed message")
                seller = keys.evm(trade.seller.evm)
                buyer = keys.corda(trade.buyer.corda)
            except (TradeError, KeyMaterialError, ValueError) as exc:
                report.invalid += 1
                report.outcomes["invalid"] += 1
                report.results.append({"trade_id": None, "state": "invalid", "error": str(exc)})
                log.warning("feed: invalid trade", error=str(exc))
                return
            try:
                got = await client.settle(trade, seller, buyer, wait_s=wait_s)
            except (DvpError, LedgerError) as exc:
                got = Settlement(trade.trade_id, "error", error=str(exc))
            report.outcomes[got.state] += 1
            report.results.append({"trade_id": got.trade_id, "state": got.state, "reasons": got.reasons,
                                   "error": got.error, "latency_s": got.latency_s, "st_chain": trade.st_chain})
            if on_result is not None:
                on_result(got)
        finally:
            slots.release()

    try:
        while (raw := await _next(source, stop)) is not None:
            report.received += 1
            await slots.acquire()
            task = asyncio.create_task(one(raw))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        await cancel_and_wait(*tasks)
        report.elapsed_s = time.monotonic() - report.started
    return report
