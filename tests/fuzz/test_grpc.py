"""Every gRPC handler of a real node, fed garbage and valid-shaped requests with extreme fields.

One EVM node and one Corda node run as subprocesses for the module. Each request must get OK
or a clean refusal (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED) with a reason, never
UNKNOWN or INTERNAL (an exception that escaped a handler), and the node must keep serving:
Status and the standard health service answer after every test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kakehashi.node.v1 import node_pb2, node_pb2_grpc
from tests.support import live

SERVICE = node_pb2.DESCRIPTOR.services_by_name["Node"]
METHODS = sorted(m.name for m in SERVICE.methods)
CLEAN = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
         grpc.StatusCode.RESOURCE_EXHAUSTED}
EXTREMES_64 = [0, 1, 2**31, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1]
WORDS = ["", "transfer", "dvp", "channel-0", "channel-18446744073709551615", "clients/10-qbft-0/clientState",
         "nextClientSequence", "chain_info", "balances", "cash_states", "holders", "dvp_lock", "dvp_escrow",
         "account", "security_token", "bank_balance", "escrow", "client_state", "a/../b", "\x00", "\U0001f600",
         "x" * 513]
ARGS = ['{"owner": "' + "00" * 32 + '"}', '{"address": "0x' + "11" * 20 + '"}', '{"trade_id": "T-1"}',
        '{"trusting_period_ns": 18446744073709551616}', '{"height": -1}', "[1]", "null", "{", "1e999",
        '{"a": ' * 5000 + "1" + "}" * 5000, "[" * 100_000 + "]" * 100_000]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[grpc.Channel]]:
    root: Path = tmp_path_factory.mktemp("grpc-fuzz")
    procs = live.Procs()
    try:
        started = [live.start_node(root, "evm", "evm-fuzz", "1s", procs),
                   live.start_node(root, "corda", "corda-fuzz", "200ms", procs)]
        channels = [grpc.insecure_channel(n.addr) for n in started]
        live.wait_heights(*started, height=2)
        yield channels
        for ch, node in zip(channels, started, strict=True):
            _still_serving(ch)
            assert node.proc.alive(), node.proc.tail()
            ch.close()
    finally:
        procs.stop_all()


def _still_serving(channel: grpc.Channel) -> None:
    status = node_pb2_grpc.NodeStub(channel).Status(node_pb2.StatusRequest(), timeout=10)
    assert status.latest_height >= 1
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def _call(channel: grpc.Channel, method: str, raw: bytes) -> tuple[grpc.StatusCode, str]:
    path = f"/{SERVICE.full_name}/{method}"
    try:
        if method == "StreamBlocks":
            stream = channel.unary_stream(path)(raw, timeout=0.3)
            next(iter(stream), None)
            stream.cancel()
        else:
            channel.unary_unary(path)(raw, timeout=15)
    except grpc.RpcError as exc:
        code = exc.code()
        if method == "StreamBlocks" and code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            return grpc.StatusCode.OK, ""  # a stream from a future height waits for it
        return code, exc.details() or ""
    return grpc.StatusCode.OK, ""


def _check(channel: grpc.Channel, method: str, raw: bytes) -> None:
    code, details = _call(channel, method, raw)
    assert code in CLEAN, f"{method} answered {code.name}: {details}"
    if code != grpc.StatusCode.OK:
        assert details, f"{method} refused with {code.name} and no reason"


# --- valid-shaped requests from the descriptors ------------------------------------------------------


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any] | None:
    t = field.type
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.one_of(st.sampled_from(EXTREMES_64), st.integers(0, 2**64 - 1), st.integers(0, 50))
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.one_of(st.sampled_from([0, 1, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        return st.integers(-1, 5)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=80), st.binary(min_size=32, max_size=32))
    if t == FieldDescriptor.TYPE_STRING:
        if field.name == "args_json":
            return st.one_of(st.sampled_from(ARGS), st.text(max_size=60))
        return st.one_of(st.sampled_from(WORDS), st.text(max_size=60))
    return None


def requests(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(desc)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in desc.fields:
        one = _scalar(f)
        if one is None:
            if depth >= 2:
                continue
            one = requests(f.message_type, depth + 1)
        fields[f.name] = st.lists(one, max_size=6) if f.is_repeated else one
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: cls(**kw))


# --- tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300), kind=st.integers(0, 1))
def test_garbage_requests_get_clean_status(nodes: list[grpc.Channel], method: str, raw: bytes, kind: int) -> None:
    _check(nodes[kind], method, raw)


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=st.integers(0, 1))
def test_valid_shaped_requests_get_clean_status(nodes: list[grpc.Channel], method: str, data: st.DataObject,
                                                kind: int) -> None:
    request = data.draw(requests(SERVICE.methods_by_name[method].input_type))
    _check(nodes[kind], method, request.SerializeToString())


HEIGHTS = {"GetHeader": "height", "GetBlock": "height", "QueryIbc": "height", "QueryPacketCommitments": "height",
           "QueryUnreceivedPackets": "height", "QueryUnreceivedAcks": "height", "QueryApp": "height",
           "QueryIbcBatch": "height", "QueryAppBatch": "height", "StreamBlocks": "from_height"}


@pytest.mark.parametrize("method", sorted(HEIGHTS))
@pytest.mark.parametrize("height", [2**63 - 1, 2**63, 2**64 - 1])
def test_heights_at_the_extremes(nodes: list[grpc.Channel], method: str, height: int) -> None:
    """GetBlock(2**63) used to answer UNKNOWN with Python's OverflowError; every height-taking
    call now refuses a height above the head by name (or, for a stream, waits for it)."""
    cls = message_factory.GetMessageClass(SERVICE.methods_by_name[method].input_type)
    request = cls(**{HEIGHTS[method]: height})
    for name, field in (("path", "nextClientSequence"), ("query", "chain_info"), ("port_id", "transfer"),
                        ("channel_id", "channel-0")):
        if name in cls.DESCRIPTOR.fields_by_name:
            setattr(request, name, field)
    if method == "QueryIbcBatch":
        request.paths.append("nextClientSequence")
    for channel in nodes:
        code, details = _call(channel, method, request.SerializeToString())
        if method in ("GetHeader", "GetBlock"):
            assert code == grpc.StatusCode.NOT_FOUND, (method, code, details)
            assert str(height) in details
        elif method != "StreamBlocks":
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, code, details)
            assert "above the latest height" in details, details


def test_deeply_nested_query_args_are_invalid_argument(nodes: list[grpc.Channel]) -> None:
    stub = node_pb2_grpc.NodeStub(nodes[0])
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(grpc.RpcError) as info:
        stub.QueryApp(node_pb2.QueryAppRequest(query="chain_info", args_json=deep), timeout=15)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "args_json is not valid JSON" in (info.value.details() or "")
    batch = stub.QueryAppBatch(node_pb2.QueryAppBatchRequest(queries=[
        node_pb2.AppQuery(query="chain_info", args_json=deep), node_pb2.AppQuery(query="chain_info")]), timeout=15)
    assert [a.code for a in batch.answers] == [grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
    assert json.loads(batch.answers[1].result_json)["chain_id"] == "evm-fuzz"
