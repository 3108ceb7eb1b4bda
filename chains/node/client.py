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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from kakehashi.node.v1 import node_pb2, node_pb2_grpc

T = TypeVar("T")
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
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None


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


class NodeClient:
    def __init__(self, address: str, *, tls: ClientTls | None = None, retry: RetryPolicy | None = None,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.address = address
        self.retry = retry or RetryPolicy()
        self._in_flight = asyncio.Semaphore(max_in_flight)
        options = [
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ]
        if tls is None:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        else:
            creds = grpc.ssl_channel_credentials(
                root_certificates=tls.ca_file.read_bytes(),
                private_key=tls.key_file.read_bytes() if tls.key_file else None,
                certificate_chain=tls.cert_file.read_bytes() if tls.cert_file else None,
            )
            self._channel = grpc.aio.secure_channel(address, creds, options=options)
        self.stub = node_pb2_grpc.NodeStub(self._channel)

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

    async def block(self, height: int = 0) -> node_pb2.Block:
        return await self._call(
            "GetBlock", lambda t: self.stub.GetBlock(node_pb2.GetBlockRequest(height=height), timeout=t)
        )

    async def submit(self, tx: bytes) -> bytes:
        res = await self._call("SubmitTx", lambda t: self.stub.SubmitTx(node_pb2.SubmitTxRequest(tx=tx), timeout=t))
        return bytes(res.tx_hash)

    async def tx_result(self, tx_hash: bytes) -> node_pb2.TxResult:
        return await self._call(
            "GetTxResult", lambda t: self.stub.GetTxResult(node_pb2.GetTxResultRequest(tx_hash=tx_hash), timeout=t)
        )

    async def submit_and_wait(self, tx: bytes, wait_s: float = 30.0) -> node_pb2.TxResult:
        req = node_pb2.SubmitTxAndWaitRequest(tx=tx, timeout_ms=int(wait_s * 1000))
        return await self._call("SubmitTxAndWait", lambda t: self.stub.SubmitTxAndWait(req, timeout=t), wait_s + 5)

    async def query_ibc(self, path: str, height: int = 0, prove: bool = True) -> node_pb2.QueryIbcResponse:
        req = node_pb2.QueryIbcRequest(path=path, height=height, prove=prove)
        return await self._call("QueryIbc", lambda t: self.stub.QueryIbc(req, timeout=t))

    async def packet_commitments(self, port_id: str, channel_id: str, height: int = 0) -> list[int]:
        req = node_pb2.QueryPacketCommitmentsRequest(port_id=port_id, channel_id=channel_id, height=height)
        res = await self._call("QueryPacketCommitments", lambda t: self.stub.QueryPacketCommitments(req, timeout=t))
        return list(res.sequences)

    async def unreceived_packets(self, port_id: str, channel_id: str, sequences: list[int], height: int = 0) -> list[int]:
        req = node_pb2.QuerySequencesRequest(port_id=port_id, channel_id=channel_id, sequences=sequences, height=height)
        res = await self._call("QueryUnreceivedPackets", lambda t: self.stub.QueryUnreceivedPackets(req, timeout=t))
        return list(res.sequences)

    async def unreceived_acks(self, port_id: str, channel_id: str, sequences: list[int], height: int = 0) -> list[int]:
        req = node_pb2.QuerySequencesRequest(port_id=port_id, channel_id=channel_id, sequences=sequences, height=height)
        res = await self._call("QueryUnreceivedAcks", lambda t: self.stub.QueryUnreceivedAcks(req, timeout=t))
        return list(res.sequences)

    async def query_app(self, query: str, height: int = 0, **args: Any) -> Any:
        req = node_pb2.QueryAppRequest(query=query, args_json=json.dumps(args), height=height)
        res = await self._call("QueryApp", lambda t: self.stub.QueryApp(req, timeout=t))
        return json.loads(res.result_json)

    async def stream_blocks(self, from_height: int) -> AsyncIterator[node_pb2.Block]:
        """Blocks from ``from_height``; the caller reconnects (see relayer event sources)."""
        call = self.stub.StreamBlocks(node_pb2.StreamBlocksRequest(from_height=from_height))
        try:
            async for blk in call:
                yield blk
        except grpc.aio.AioRpcError as exc:
            raise NodeError("StreamBlocks", exc.code(), exc.details() or "") from exc
        finally:
            call.cancel()
