"""Typed asyncio client of a node's gRPC service, used by the relayer and the CLI.

Retries only what is safe to retry: UNAVAILABLE (node restarting, connection refused) and
DEADLINE_EXCEEDED on reads, with exponential backoff and jitter. Submissions are retried too,
because a transaction is identified by its hash and the node answers a resubmission of a
pending transaction with the same hash (and refuses an already committed one, which the
caller sees as a clear error rather than a double spend).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc

from chains.node.limits import MAX_BATCH_ITEMS, MAX_RESPONSE_BYTES
from kakehashi.node.v1 import node_pb2, node_pb2_grpc

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
It = TypeVar("It")
R = TypeVar("R")
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class NodeError(RuntimeError):
    """A node call failed for good; carries the gRPC status code and the node's reason."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method}: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details


@dataclass(frozen=True)
class ClientTls:
    """TLS towards one server. No ``ca_file`` means the system's roots; a cert/key pair is sent
    to servers that require mutual TLS; ``server_name`` is checked against the server's
    certificate instead of the host dialled (a node reached by IP whose certificate names it)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None

    def channel(self, address: str, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.ca_file.read_bytes() if self.ca_file else None,
            private_key=self.key_file.read_bytes() if self.key_file else None,
            certificate_chain=self.cert_file.read_bytes() if self.cert_file else None,
        )
        opts = list(options or [])
        if self.server_name:
            opts.append(("grpc.ssl_target_name_override", self.server_name))
        return grpc.aio.secure_channel(address, creds, options=opts)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 3.0
    timeout_s: float = 10.0


# Unary calls one client keeps in flight to its node. gRPC servers cancel what exceeds their
# pending-request limit (1,000 by default), so a client with thousands of reads in flight (a
# DvP feed at high concurrency) lost some as CANCELLED; beyond this bound they wait here.
MAX_IN_FLIGHT = 256
# Items one coalesced batch carries at most (the node's own cap is 4,096).
MAX_BATCH = 1024


@dataclass(frozen=True)
class SubmitOutcome:
    """One tx of a SubmitTxs call: its hash when admitted, else the refusal."""

    tx_hash: bytes
    code: grpc.StatusCode
    reason: str

    @property
    def ok(self) -> bool:
        return bool(self.code == grpc.StatusCode.OK)


_CODES = {c.value[0]: c for c in grpc.StatusCode}


def status_code(value: int) -> grpc.StatusCode:
    return _CODES.get(value, grpc.StatusCode.UNKNOWN)


class Coalescer(Generic[K, It, R]):
    """Merges the calls made in one event-loop turn into one batched RPC per key.

    Why: a settlement client or relayer with hundreds of trades in flight asks a node the same
    kinds of question hundreds of times per block; one gRPC call per question made the
    per-call cost (on both ends) the largest cost of a trade. Callers keep their one-item API;
    the items of a turn (up to ``max_items``) travel together, grouped by ``key`` (the height
    they must be answered at). ``ordered`` keeps one batch of a key in flight at a time, so
    the node sees items in the order they were given (tx submission: nonces in order).
    """

    def __init__(self, flush: Callable[[K, list[It]], Awaitable[Sequence[R | BaseException]]], *,
                 max_items: int = MAX_BATCH, ordered: bool = False) -> None:
        self._flush = flush
        self._max = max_items
        self._ordered = ordered
        self._queues: dict[K, list[tuple[It, asyncio.Future[R]]]] = {}
        self._scheduled: set[K] = set()
        self._busy: set[K] = set()
        self.batches = 0
        self.items = 0

    async def call(self, key: K, item: It) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        queue = self._queues.setdefault(key, [])
        queue.append((item, fut))
        if key not in self._scheduled and key not in self._busy:
            self._scheduled.add(key)
            loop.call_soon(self._kick, key)
        return await fut

    def _kick(self, key: K) -> None:
        self._scheduled.discard(key)
        queue = self._queues.get(key)
        if not queue or key in self._busy:
            return
        while queue and not (self._ordered and key in self._busy):
            batch, self._queues[key] = queue[: self._max], queue[self._max:]
            queue = self._queues[key]
            if self._ordered:
                self._busy.add(key)
            asyncio.get_running_loop().create_task(self._run(key, batch))

    async def _run(self, key: K, batch: list[tuple[It, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = await self._flush(key, [item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batched call answered {len(results)} items for {len(batch)}")
        except BaseException as exc:  # the whole call failed: every caller sees why
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, fut), res in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
        finally:
            if self._ordered:
                self._busy.discard(key)
                if self._queues.get(key):
                    self._kick(key)


class NodeClient:
    def __init__(self, address: str, *, tls: ClientTls | None = None, retry: RetryPolicy | None = None,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.address = address
        self.retry = retry or RetryPolicy()
        self._in_flight = asyncio.Semaphore(max_in_flight)
        options = [
            ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
            ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
        ]
        if tls is None:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        else:
            self._channel = tls.channel(address, options)
        self.stub = node_pb2_grpc.NodeStub(self._channel)
        self._app_batches: Coalescer[int, node_pb2.AppQuery, Any] = Coalescer(self._flush_app)
        self._ibc_batches: Coalescer[tuple[int, bool], str, node_pb2.QueryIbcResponse] = Coalescer(self._flush_ibc)
        self._submits: Coalescer[int, bytes, SubmitOutcome] = Coalescer(self._flush_submits, ordered=True)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> NodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: str, fn: Callable[[float], Awaitable[T]], timeout_s: float | None = None) -> T:
        backoff = self.retry.initial_backoff_s
        for attempt in range(1, self.retry.attempts + 1):
            try:
                async with self._in_flight:
                    return await fn(timeout_s or self.retry.timeout_s)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code not in RETRYABLE or attempt == self.retry.attempts:
                    raise NodeError(method, code, exc.details() or "") from exc
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))
            backoff = min(backoff * 2, self.retry.max_backoff_s)
        raise AssertionError("unreachable")

    async def status(self) -> node_pb2.StatusResponse:
        return await self._call("Status", lambda t: self.stub.Status(node_pb2.StatusRequest(), timeout=t))

    async def header(self, height: int = 0) -> node_pb2.HeaderResponse:
        return await self._call(
            "GetHeader", lambda t: self.stub.GetHeader(node_pb2.GetHeaderRequest(height=height), timeout=t)
        )

    async def block(self, height: int = 0, *, results_only: bool = False) -> node_pb2.Block:
        req = node_pb2.GetBlockRequest(height=height, results_only=results_only)
        return await self._call("GetBlock", lambda t: self.stub.GetBlock(req, timeout=t))

    async def submit(self, tx: bytes) -> bytes:
        """Admit one tx; concurrent submissions travel together in one SubmitTxs, in call order."""
        got = await self._submits.call(0, tx)
        if not got.ok:
            raise NodeError("SubmitTxs", got.code, got.reason)
        return got.tx_hash

    async def submit_many(self, txs: Sequence[bytes]) -> list[SubmitOutcome]:
        """Admit ``txs`` in order in one call; each outcome says admitted or why not."""
        req = node_pb2.SubmitTxsRequest(txs=list(txs))
        res = await self._call("SubmitTxs", lambda t: self.stub.SubmitTxs(req, timeout=t))
        return [SubmitOutcome(bytes(o.tx_hash), status_code(o.code), o.reason) for o in res.outcomes]

    async def _flush_submits(self, _key: int, txs: list[bytes]) -> list[SubmitOutcome]:
        return await self.submit_many(txs)

    async def tx_result(self, tx_hash: bytes) -> node_pb2.TxResult:
        return await self._call(
            "GetTxResult", lambda t: self.stub.GetTxResult(node_pb2.GetTxResultRequest(tx_hash=tx_hash), timeout=t)
        )

    async def submit_and_wait(self, tx: bytes, wait_s: float = 30.0) -> node_pb2.TxResult:
        req = node_pb2.SubmitTxAndWaitRequest(tx=tx, timeout_ms=int(wait_s * 1000))
        return await self._call("SubmitTxAndWait", lambda t: self.stub.SubmitTxAndWait(req, timeout=t), wait_s + 5)

    async def query_ibc(self, path: str, height: int = 0, prove: bool = True) -> node_pb2.QueryIbcResponse:
        """One path; concurrent reads at one height travel together in one QueryIbcBatch."""
        return await self._ibc_batches.call((height, prove), path)

    async def query_ibc_batch(self, paths: Sequence[str], height: int = 0,
                              mode: node_pb2.ProofMode = node_pb2.PROOF_MODE_EACH) -> node_pb2.QueryIbcBatchResponse:
        """Every path at ONE height (0 = latest) in one call, proven per ``mode``."""
        req = node_pb2.QueryIbcBatchRequest(paths=list(paths), height=height, proof_mode=mode)
        return await self._call("QueryIbcBatch", lambda t: self.stub.QueryIbcBatch(req, timeout=t))

    async def _flush_ibc(self, key: tuple[int, bool], paths: list[str]) -> list[node_pb2.QueryIbcResponse]:
        height, prove = key
        res = await self.query_ibc_batch(paths, height, node_pb2.PROOF_MODE_EACH if prove else node_pb2.PROOF_MODE_NONE)
        return [node_pb2.QueryIbcResponse(value=e.value, found=e.found, proof=e.proof, proof_height=res.proof_height,
                                          revision_number=res.revision_number) for e in res.entries]

    async def packet_commitments(self, port_id: str, channel_id: str, height: int = 0) -> list[int]:
        req = node_pb2.QueryPacketCommitmentsRequest(port_id=port_id, channel_id=channel_id, height=height)
        res = await self._call("QueryPacketCommitments", lambda t: self.stub.QueryPacketCommitments(req, timeout=t))
        return list(res.sequences)

    async def unreceived_packets(self, port_id: str, channel_id: str, sequences: list[int], height: int = 0) -> list[int]:
        return await self._sequences("QueryUnreceivedPackets", port_id, channel_id, sequences, height)

    async def unreceived_acks(self, port_id: str, channel_id: str, sequences: list[int], height: int = 0) -> list[int]:
        return await self._sequences("QueryUnreceivedAcks", port_id, channel_id, sequences, height)

    async def _sequences(self, method: str, port_id: str, channel_id: str, sequences: list[int],
                         height: int) -> list[int]:
        """Asked MAX_BATCH_ITEMS sequences per call (the node's limit), every call at the height
        the first one was answered at, so the answer is one view of the chain."""
        out: list[int] = []
        for i in range(0, max(len(sequences), 1), MAX_BATCH_ITEMS):
            req = node_pb2.QuerySequencesRequest(port_id=port_id, channel_id=channel_id,
                                                 sequences=sequences[i:i + MAX_BATCH_ITEMS], height=height)
            call: Callable[..., Awaitable[node_pb2.SequencesResponse]] = getattr(self.stub, method)

            def send(t: float, req: node_pb2.QuerySequencesRequest = req,
                     call: Callable[..., Awaitable[node_pb2.SequencesResponse]] = call
                     ) -> Awaitable[node_pb2.SequencesResponse]:
                return call(req, timeout=t)

            res = await self._call(method, send)
            height = int(res.height)
            out += res.sequences
        return out

    async def query_app(self, query: str, height: int = 0, **args: Any) -> Any:
        """One application query; concurrent ones at one height travel in one QueryAppBatch."""
        return await self._app_batches.call(height, node_pb2.AppQuery(query=query, args_json=json.dumps(args)))

    async def query_app_batch(self, queries: Sequence[tuple[str, dict[str, Any]]],
                              height: int = 0) -> tuple[int, list[Any]]:
        """(height, answers): every query answered at ONE height; a refused query's slot holds
        its NodeError instead of an answer."""
        items = [node_pb2.AppQuery(query=q, args_json=json.dumps(a)) for q, a in queries]
        height, answers = await self._query_app_batch(height, items)
        return height, answers

    async def _query_app_batch(self, height: int, items: list[node_pb2.AppQuery]) -> tuple[int, list[Any]]:
        req = node_pb2.QueryAppBatchRequest(queries=items, height=height)
        res = await self._call("QueryAppBatch", lambda t: self.stub.QueryAppBatch(req, timeout=t))
        out: list[Any] = []
        for q, a in zip(items, res.answers, strict=True):
            if a.code:
                out.append(NodeError(f"QueryApp {q.query}", status_code(a.code), a.reason))
            else:
                out.append(json.loads(a.result_json))
        return int(res.height), out

    async def _flush_app(self, height: int, items: list[node_pb2.AppQuery]) -> list[Any]:
        return (await self._query_app_batch(height, items))[1]

    async def stream_blocks(self, from_height: int, *, results_only: bool = False) -> AsyncGenerator[node_pb2.Block, None]:
        """Blocks from ``from_height``; the caller reconnects (see relayer event sources).
        ``results_only`` leaves the raw txs out (outcomes and events stay)."""
        call = self.stub.StreamBlocks(node_pb2.StreamBlocksRequest(from_height=from_height, results_only=results_only))
        try:
            async for blk in call:
                yield blk
        except grpc.aio.AioRpcError as exc:
            raise NodeError("StreamBlocks", exc.code(), exc.details() or "") from exc
        finally:
            call.cancel()
