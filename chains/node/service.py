"""gRPC edge of a node: maps the Node service onto a NodeRuntime, plus health and reflection.

Every handler validates its request and answers with the right status code and a reason
(INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED); an exception inside one request never
takes the server down. Message sizes are capped so an oversized request is refused by
gRPC itself before it is parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog
from google.protobuf import message_factory
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chains.node.answers import encode_answer
from chains.node.app import QueryError, TxRejected
from chains.node.limits import (
    MAX_BATCH_ITEMS,
    MAX_BLOCK_STREAMS,
    MAX_MESSAGE_BYTES,
    MAX_PENDING_CALLS,
    MAX_RESPONSE_BYTES,
    MAX_TX_BYTES,
    STREAM_WRITE_TIMEOUT_S,
)
from chains.node.runtime import MempoolFull, NodeRuntime
from kakehashi.node.v1 import node_pb2, node_pb2_grpc

log = structlog.get_logger("kakehashi.node")

SERVICE_NAME = node_pb2.DESCRIPTOR.services_by_name["Node"].full_name


@dataclass(frozen=True)
class TlsFiles:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None  # when set, clients must present a certificate

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials; with a client CA, a client without a certificate that CA signed
        is refused at the handshake, before any request reaches a handler."""
        return grpc.ssl_server_credentials(
            [(self.key_file.read_bytes(), self.cert_file.read_bytes())],
            root_certificates=self.client_ca_file.read_bytes() if self.client_ca_file else None,
            require_client_auth=self.client_ca_file is not None,
        )


class NodeService(node_pb2_grpc.NodeServicer):
    def __init__(self, runtime: NodeRuntime, max_streams: int = MAX_BLOCK_STREAMS,
                 stream_write_timeout_s: float = STREAM_WRITE_TIMEOUT_S) -> None:
        self.rt = runtime
        self.max_streams = max_streams
        self.stream_write_timeout_s = stream_write_timeout_s
        self.streams = 0  # StreamBlocks calls open now
        self.streams_dropped = 0  # ended because the client stopped reading

    def _height(self, requested: int) -> int:
        """The height a query runs at (0 = latest), inside the window of retained heights.

        `storage.retain_heights` bounds how far back the node serves state and proofs; blocks
        themselves stay available to GetBlock/StreamBlocks so a relayer can always backfill.
        """
        latest = self.rt.app.latest_height()
        height = requested or latest
        if height > latest:
            raise QueryError(f"height {height} is above the latest height {latest}")
        earliest = self.rt.earliest_height()
        if height < earliest:
            raise QueryError(
                f"height {height} is below the earliest retained height {earliest} (storage.retain_heights)"
            )
        return height

    async def Status(self, request: node_pb2.StatusRequest, context: grpc.aio.ServicerContext) -> node_pb2.StatusResponse:
        app = self.rt.app
        latest, latest_time_ns, latest_hash = self.rt.latest_header()
        return node_pb2.StatusResponse(
            chain_id=app.chain_id,
            kind=app.kind,
            latest_height=latest,
            latest_time_ns=latest_time_ns,
            latest_hash=latest_hash,
            validators=app.validators(),
            revision_number=app.revision_number,
            earliest_height=self.rt.earliest_height(),
            mempool_size=self.rt.mempool_size(),
        )

    async def GetHeader(self, request: node_pb2.GetHeaderRequest, context: grpc.aio.ServicerContext) -> node_pb2.HeaderResponse:
        try:
            h = self.rt.app.header(self._height(request.height))
        except QueryError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return node_pb2.HeaderResponse(
            height=h.height, time_ns=h.time_ns, hash=h.hash, header=h.header, client_header=h.client_header
        )

    async def GetBlock(self, request: node_pb2.GetBlockRequest, context: grpc.aio.ServicerContext) -> node_pb2.Block:
        latest = self.rt.app.latest_height()
        height = request.height or latest
        # Above the head there is no block; checked first because SQLite cannot even look up
        # a height past 2**63 - 1 (OverflowError, which would reach the client as UNKNOWN).
        blk = self.rt.block(height) if height <= latest else None
        if blk is not None and request.results_only:
            del blk.txs[:]
        if blk is None:
            earliest = self.rt.earliest_height()
            reason = (f"block {height} is pruned: the node keeps heights from {earliest} "
                      "(storage.retain_heights)") if 0 < height < earliest else f"no block at height {height}"
            await context.abort(grpc.StatusCode.NOT_FOUND, reason)
        assert blk is not None
        return blk

    async def StreamBlocks(
        self, request: node_pb2.StreamBlocksRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[node_pb2.Block]:
        if self.streams >= self.max_streams:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"too many block streams open ({self.max_streams}); close one or retry later")
        self.streams += 1
        try:
            async for blk in self.rt.stream_blocks(request.from_height):
                if request.results_only:
                    del blk.txs[:]
                yield blk
        finally:
            self.streams -= 1

    async def SubmitTx(self, request: node_pb2.SubmitTxRequest, context: grpc.aio.ServicerContext) -> node_pb2.SubmitTxResponse:
        tx_hash = await self._submit(request.tx, context)
        return node_pb2.SubmitTxResponse(tx_hash=tx_hash)

    async def _submit(self, tx: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if not tx:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty transaction")
        if len(tx) > MAX_TX_BYTES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _too_big(tx))
        try:
            return self.rt.submit(tx)
        except TxRejected as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"transaction rejected: {exc}")
        except MempoolFull as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        raise AssertionError("unreachable")

    async def SubmitTxs(
        self, request: node_pb2.SubmitTxsRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.SubmitTxsResponse:
        """Admit each tx in order; a refusal is reported in its slot and the rest go on."""
        if len(request.txs) > MAX_BATCH_ITEMS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"at most {MAX_BATCH_ITEMS} transactions per call, got {len(request.txs)}")
        out = node_pb2.SubmitTxsResponse()
        for tx in request.txs:
            item = out.outcomes.add()
            if not tx or len(tx) > MAX_TX_BYTES:
                item.code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
                item.reason = _too_big(tx) if tx else "empty transaction"
                continue
            try:
                item.tx_hash = self.rt.submit(tx)
            except TxRejected as exc:
                item.code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
                item.reason = f"transaction rejected: {exc}"
            except MempoolFull as exc:
                item.code, item.reason = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], str(exc)
        return out

    async def GetTxResult(self, request: node_pb2.GetTxResultRequest, context: grpc.aio.ServicerContext) -> node_pb2.TxResult:
        if len(request.tx_hash) != 32:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "tx_hash must be 32 bytes")
        return self.rt.tx_result(request.tx_hash)

    async def SubmitTxAndWait(
        self, request: node_pb2.SubmitTxAndWaitRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.TxResult:
        tx_hash = await self._submit(request.tx, context)
        timeout = request.timeout_ms / 1000 if request.timeout_ms else None
        return await self.rt.wait_result(tx_hash, timeout)

    async def QueryIbc(self, request: node_pb2.QueryIbcRequest, context: grpc.aio.ServicerContext) -> node_pb2.QueryIbcResponse:
        if not request.path or len(request.path) > 512:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "path must be 1..512 characters")
        try:
            res = self.rt.app.query_ibc(request.path, self._height(request.height), request.prove)
        except QueryError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return node_pb2.QueryIbcResponse(
            value=res.value or b"",
            found=res.value is not None,
            proof=res.proof,
            proof_height=res.height,
            revision_number=self.rt.app.revision_number,
        )

    async def QueryIbcBatch(
        self, request: node_pb2.QueryIbcBatchRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.QueryIbcBatchResponse:
        paths = list(request.paths)
        if not paths or len(paths) > MAX_BATCH_ITEMS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"paths must hold 1..{MAX_BATCH_ITEMS} entries")
        if any(not p or len(p) > 512 for p in paths):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "every path must be 1..512 characters")
        mode = request.proof_mode
        if mode not in node_pb2.ProofMode.values():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown proof_mode {mode}")
        try:
            height = self._height(request.height)
            out = node_pb2.QueryIbcBatchResponse(proof_height=height, revision_number=self.rt.app.revision_number)
            if mode == node_pb2.PROOF_MODE_MULTI:
                values, out.multiproof = self.rt.app.query_ibc_multi(paths, height)
                for path, value in zip(paths, values, strict=True):
                    out.entries.add(path=path, found=value is not None, value=value or b"")
            else:
                results = self.rt.app.query_ibc_many(paths, height, mode == node_pb2.PROOF_MODE_EACH)
                for path, res in zip(paths, results, strict=True):
                    out.entries.add(path=path, found=res.value is not None, value=res.value or b"", proof=res.proof)
        except QueryError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return out

    async def QueryAppBatch(
        self, request: node_pb2.QueryAppBatchRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.QueryAppBatchResponse:
        """Every query at one height; a bad query fails its own slot only."""
        if len(request.queries) > MAX_BATCH_ITEMS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"at most {MAX_BATCH_ITEMS} queries per call, got {len(request.queries)}")
        try:
            height = self._height(request.height)
        except QueryError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        out = node_pb2.QueryAppBatchResponse(height=height)
        bad = grpc.StatusCode.INVALID_ARGUMENT.value[0]
        for q in request.queries:
            item = out.answers.add()
            try:
                args: Any = json.loads(q.args_json) if q.args_json else {}
            except (ValueError, RecursionError) as exc:
                item.code, item.reason = bad, f"args_json is not valid JSON: {exc}"
                continue
            if not isinstance(args, dict):
                item.code, item.reason = bad, "args_json must be a JSON object"
                continue
            try:
                item.result_json = encode_answer(self.rt.app.query_app(q.query, args, height))
            except QueryError as exc:
                item.code, item.reason = bad, str(exc)
        return out

    async def QueryPacketCommitments(
        self, request: node_pb2.QueryPacketCommitmentsRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.SequencesResponse:
        try:
            height = self._height(request.height)
            seqs = self.rt.app.packet_commitment_sequences(request.port_id, request.channel_id, height)
        except QueryError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return node_pb2.SequencesResponse(sequences=seqs, height=height)

    @staticmethod
    async def _check_sequences(request: node_pb2.QuerySequencesRequest, context: grpc.aio.ServicerContext) -> None:
        if len(request.sequences) > MAX_BATCH_ITEMS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"at most {MAX_BATCH_ITEMS} sequences per call, got {len(request.sequences)}")

    async def _unreceived(
        self, request: node_pb2.QuerySequencesRequest, context: grpc.aio.ServicerContext,
        query: Callable[[str, str, Sequence[int], int], list[int]],
    ) -> node_pb2.SequencesResponse:
        """Which of the request's sequences ``query`` (the app's unreceived packets or acks) finds
        not yet received, at the request's height."""
        await self._check_sequences(request, context)
        try:
            height = self._height(request.height)
            seqs = query(request.port_id, request.channel_id, list(request.sequences), height)
        except QueryError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return node_pb2.SequencesResponse(sequences=seqs, height=height)

    async def QueryUnreceivedPackets(
        self, request: node_pb2.QuerySequencesRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.SequencesResponse:
        return await self._unreceived(request, context, self.rt.app.unreceived_packets)

    async def QueryUnreceivedAcks(
        self, request: node_pb2.QuerySequencesRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.SequencesResponse:
        return await self._unreceived(request, context, self.rt.app.unreceived_acks)

    async def QueryApp(self, request: node_pb2.QueryAppRequest, context: grpc.aio.ServicerContext) -> node_pb2.QueryAppResponse:
        try:
            args: Any = json.loads(request.args_json) if request.args_json else {}
        except (ValueError, RecursionError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"args_json is not valid JSON: {exc}")
        if not isinstance(args, dict):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "args_json must be a JSON object")
        try:
            height = self._height(request.height)
            result = self.rt.app.query_app(request.query, args, height)
        except QueryError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return node_pb2.QueryAppResponse(result_json=encode_answer(result), height=height)


def _too_big(tx: bytes) -> str:
    return f"transaction is {len(tx)} bytes, more than the node's limit of {MAX_TX_BYTES}"


async def _parse(cls: Any, raw: bytes, context: grpc.aio.ServicerContext) -> Any:
    try:
        return cls.FromString(raw)
    except DecodeError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {cls.DESCRIPTOR.name}: {exc}")


def node_handler(servicer: NodeService) -> grpc.GenericRpcHandler:
    """Method handlers that parse requests themselves.

    grpcio's generated registration decodes requests before the servicer runs and reports a
    malformed one as UNKNOWN; decoding here turns it into INVALID_ARGUMENT with a reason.
    """
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in node_pb2.DESCRIPTOR.services_by_name["Node"].methods:
        req_cls = message_factory.GetMessageClass(method.input_type)
        resp_cls = message_factory.GetMessageClass(method.output_type)
        impl = getattr(servicer, method.name)
        if method.server_streaming:

            async def stream(raw: bytes, context: grpc.aio.ServicerContext, impl: Any = impl,
                             req_cls: Any = req_cls) -> None:
                """Writes each item itself, so a client that stops reading is noticed: a write
                gRPC cannot hand on for STREAM_WRITE_TIMEOUT_S ends the stream, and with it
                what gRPC buffered for that client."""
                request = await _parse(req_cls, raw, context)
                limit = servicer.stream_write_timeout_s
                # aclosing: the generator's cleanup (the open-stream count) runs when the stream
                # ends here, on abort or cancellation too, not whenever it is garbage collected
                async with contextlib.aclosing(impl(request, context)) as items:
                    async for item in items:
                        try:
                            await asyncio.wait_for(context.write(item), limit)
                        except TimeoutError:
                            servicer.streams_dropped += 1
                            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                f"the client read nothing for {limit:g} s; "
                                                "reconnect from the next height to resume")

            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                stream, response_serializer=resp_cls.SerializeToString
            )
        else:

            async def unary(raw: bytes, context: grpc.aio.ServicerContext, impl: Any = impl, req_cls: Any = req_cls) -> Any:
                return await impl(await _parse(req_cls, raw, context), context)

            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                unary, response_serializer=resp_cls.SerializeToString
            )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def build_server(runtime: NodeRuntime, address: str, tls: TlsFiles | None = None,
                 service: NodeService | None = None) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server with the Node, health and reflection services bound to ``address``."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
            # Calls waiting for the event loop to take them (gRPC's default is 1,000; past it
            # gRPC cancels the excess): room for a 10,000-read burst, ~10 KB each at most.
            ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
        ]
    )
    server.add_generic_rpc_handlers((node_handler(service or NodeService(runtime)),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, tls.credentials())
    if port == 0:
        raise OSError(f"cannot bind gRPC address {address}")
    server.health_servicer = health_servicer
    return server, port


async def mark_serving(server: grpc.aio.Server) -> None:
    hs = server.health_servicer
    await hs.set("", health_pb2.HealthCheckResponse.SERVING)
    await hs.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
