"""The relayer's gRPC client of a proxy service.

Why retries: the proxy is its own process and may restart (from its sealed keys) while the
relayer runs; UNAVAILABLE is retried with backoff so a restart costs a pause, not a failed
relaying pass. Refusals (FAILED_PRECONDITION: the enclave's hosted client did not verify)
are never retried: they carry the enclave's reason and mean the input was wrong.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from chains.node.client import ClientTls
from kakehashi.ibc.v1 import client_pb2
from kakehashi.proxy.v1 import proxy_pb2 as pb
from kakehashi.proxy.v1 import service_pb2 as spb
from kakehashi.proxy.v1 import service_pb2_grpc
from lightclients.interface import Height

T = TypeVar("T")
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class ProxyError(RuntimeError):
    def __init__(self, address: str, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"proxy {address} {method}: {code.name}: {details}")
        self.code = code
        self.details = details


def _h(h: Height) -> client_pb2.Height:
    return client_pb2.Height(revision_number=h.revision_number, revision_height=h.revision_height)


class ProxyServiceClient:
    def __init__(self, address: str, *, timeout_s: float = 10.0, attempts: int = 5,
                 tls: ClientTls | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.attempts = attempts
        self._channel = grpc.aio.insecure_channel(address) if tls is None else tls.channel(address)
        self.stub = service_pb2_grpc.ProxyStub(self._channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: str, fn: Callable[[float], Awaitable[T]]) -> T:
        backoff = 0.1
        for attempt in range(1, self.attempts + 1):
            try:
                return await fn(self.timeout_s)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or attempt == self.attempts:
                    raise ProxyError(self.address, method, exc.code(), exc.details() or "") from None
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))
            backoff = min(backoff * 2, 2.0)
        raise AssertionError("unreachable")

    async def info(self) -> spb.InfoResponse:
        return await self._call("Info", lambda t: self.stub.Info(spb.InfoRequest(), timeout=t))

    async def new_enclave_key(self) -> spb.EnclaveKey:
        return await self._call("NewEnclaveKey", lambda t: self.stub.NewEnclaveKey(spb.NewEnclaveKeyRequest(),
                                                                                    timeout=t))

    async def create_client(self, elc: str, client_type: str, client_state: bytes,
                            consensus_state: bytes) -> spb.CreateClientResponse:
        req = spb.CreateClientRequest(elc_client_id=elc, client_type=client_type, client_state=client_state,
                                      consensus_state=consensus_state)
        return await self._call("CreateClient", lambda t: self.stub.CreateClient(req, timeout=t))

    async def query_client(self, elc: str, at: Height) -> spb.QueryClientResponse:
        req = spb.QueryClientRequest(elc_client_id=elc, height=_h(at))
        return await self._call("QueryClient", lambda t: self.stub.QueryClient(req, timeout=t))

    async def update_client(self, elc: str, message: bytes, signers: Sequence[bytes]) -> spb.SignedResponse:
        req = spb.UpdateClientRequest(elc_client_id=elc, client_message=message, signers=list(signers))
        return await self._call("UpdateClient", lambda t: self.stub.UpdateClient(req, timeout=t))

    async def aggregate(self, updates: Sequence[pb.SignedMessage], signers: Sequence[bytes]) -> spb.SignedResponse:
        req = spb.AggregateUpdatesRequest(updates=list(updates), signers=list(signers))
        return await self._call("AggregateUpdates", lambda t: self.stub.AggregateUpdates(req, timeout=t))

    async def verify_membership(self, elc: str, at: Height, prefix: bytes, path: bytes, value: bytes, proof: bytes,
                                signers: Sequence[bytes]) -> spb.SignedResponse:
        req = spb.VerifyMembershipRequest(elc_client_id=elc, height=_h(at), prefix=prefix, path=path, value=value,
                                          proof=proof, signers=list(signers))
        return await self._call("VerifyMembership", lambda t: self.stub.VerifyMembership(req, timeout=t))

    async def verify_non_membership(self, elc: str, at: Height, prefix: bytes, path: bytes, proof: bytes,
                                    signers: Sequence[bytes]) -> spb.SignedResponse:
        req = spb.VerifyNonMembershipRequest(elc_client_id=elc, height=_h(at), prefix=prefix, path=path, proof=proof,
                                             signers=list(signers))
        return await self._call("VerifyNonMembership", lambda t: self.stub.VerifyNonMembership(req, timeout=t))

    async def verify_batch(self, elc: str, at: Height, prefix: bytes, items: Sequence[tuple[bytes, bytes | None]],
                           multiproof: bytes, signers: Sequence[bytes]) -> spb.SignedResponse:
        req = spb.VerifyMembershipBatchRequest(
            elc_client_id=elc, height=_h(at), prefix=prefix, multiproof=multiproof, signers=list(signers),
            items=[spb.BatchItem(path=p, present=v is not None, value=v or b"") for p, v in items])
        return await self._call("VerifyMembershipBatch", lambda t: self.stub.VerifyMembershipBatch(req, timeout=t))
