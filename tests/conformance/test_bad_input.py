"""Bad input of any shape is a typed error that leaves the store root unchanged."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.ibc.errors import TxFailed
from chains.ibc.handler import CORE_MESSAGES
from chains.ibc.host import commitment
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import transfer_pb2
from tests.support.pair import HostPair

TYPES = sorted([cls.DESCRIPTOR.full_name for cls in CORE_MESSAGES] + [transfer_pb2.MsgTransfer.DESCRIPTOR.full_name])


@pytest.fixture
def opened(pair: HostPair) -> HostPair:
    # Examples share these hosts for a long simulated time, and their block intervals differ,
    # so their clocks drift apart: give the clients room for that.
    pair.trusting_period_ns = 10**6 * 10**9
    pair.open_channel()
    pair.open_channel("transfer")
    return pair


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(TYPES), value=st.binary(max_size=120))
def test_random_messages_are_typed_errors_with_the_root_unchanged(opened: HostPair, name: str, value: bytes) -> None:
    host = opened.b
    msg = any_pb2.Any(type_url=f"type.googleapis.com/{name}", value=value)
    before = host.root()
    try:
        host.tx(msg)
    except TxFailed as exc:
        assert exc.index == 0
        assert host.root() == before


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["recv", "ack"]), position=st.integers(min_value=0),
       flip=st.integers(min_value=1, max_value=255))
def test_a_flipped_byte_in_a_relayed_message_is_rejected_cleanly(
    opened: HostPair, kind: str, position: int, flip: int
) -> None:
    a, b = opened.a, opened.b
    packet = a.send("mock", "channel-0", b"fuzzed packet", timeout_ns=b.now_ns + 10**12)
    msg: Message = opened.recv_msg(packet, b)
    target = b
    if kind == "ack":
        b.tx(msg)
        msg = opened.ack_msg(packet, b"ok:fuzzed packet", a)
        target = a
    raw = bytearray(msg.SerializeToString(deterministic=True))
    raw[position % len(raw)] ^= flip
    mutated = any_pb2.Any(type_url=f"type.googleapis.com/{msg.DESCRIPTOR.full_name}", value=bytes(raw))
    before = target.root()
    try:
        target.tx(mutated)
    except TxFailed:
        assert target.root() == before
        return
    emitted = target.events.at(target.height)
    if [e.type for e in emitted] == ["noop"]:
        # e.g. the sequence now names a packet already processed: a no-op, nothing written
        assert target.root() == before
        return
    # Otherwise only bytes no proof covers (the relayer's signer name) may have changed.
    done = "recv_packet" if kind == "recv" else "acknowledge_packet"
    (processed,) = [e.packet() for e in emitted if e.type == done]
    assert processed is not None and _identity(processed) == _identity(packet)


def _identity(p: chpb.Packet) -> tuple[object, ...]:
    """What a packet is, whatever its encoding (an empty submessage may be present or not)."""
    return (p.sequence, p.source_port, p.source_channel, p.destination_port, p.destination_channel,
            commitment.packet_commitment(p))
