"""ICS-24 host requirements: identifiers, paths, counters, prefix and exception atomicity."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from google.protobuf import any_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.ibc.errors import InvalidIdentifier, InvalidMessage, NotFound, TxFailed
from chains.ibc.host import identifiers, paths
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import Height
from tests.support.pair import HostPair

_ICS24 = re.compile(r"[a-zA-Z0-9._+\-#\[\]<>]+")


@pytest.mark.parametrize(
    ("fn", "good", "bad"),
    [
        (identifiers.validate_client_id, ["testroot-0", "07-tendermint-12", "a" * 64], ["a" * 8, "a" * 65, "bad/client", "sp ace-000"]),
        (identifiers.validate_connection_id, ["connection-0", "a" * 10], ["conn-0", "a" * 65, "connection/0"]),
        (identifiers.validate_channel_id, ["channel-0", "a" * 8], ["chan-0", "a" * 65, "channel-é"]),
        (identifiers.validate_port_id, ["transfer", "ab", "p" * 128], ["a", "p" * 129, "port!", ""]),
    ],
)
def test_identifier_rules_ics24(fn: Callable[[object], str], good: list[str], bad: list[object]) -> None:
    for value in good:
        assert fn(value) == value
    for wrong in [*bad, None, 7]:
        with pytest.raises(InvalidIdentifier):
            fn(wrong)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=140))
def test_identifier_rules_match_the_ics24_alphabet(text: str) -> None:
    ok = 2 <= len(text) <= 128 and _ICS24.fullmatch(text) is not None
    try:
        identifiers.validate_port_id(text)
        accepted = True
    except InvalidIdentifier:
        accepted = False
    assert accepted == ok


def test_ics24_path_layout() -> None:
    assert paths.client_state("testroot-0") == b"clients/testroot-0/clientState"
    assert paths.consensus_state("testroot-0", Height(1, 5)) == b"clients/testroot-0/consensusStates/1-5"
    assert paths.connection("connection-3") == b"connections/connection-3"
    assert paths.channel("transfer", "channel-1") == b"channelEnds/ports/transfer/channels/channel-1"
    assert paths.next_sequence_send("p", "c") == b"nextSequenceSend/ports/p/channels/c"
    assert paths.next_sequence_recv("p", "c") == b"nextSequenceRecv/ports/p/channels/c"
    assert paths.next_sequence_ack("p", "c") == b"nextSequenceAck/ports/p/channels/c"
    assert paths.packet_commitment("p", "c", 7) == b"commitments/ports/p/channels/c/sequences/7"
    assert paths.packet_receipt("p", "c", 7) == b"receipts/ports/p/channels/c/sequences/7"
    assert paths.packet_ack("p", "c", 7) == b"acks/ports/p/channels/c/sequences/7"


def test_identifiers_are_never_reused(pair: HostPair) -> None:
    pair.open_channel()
    a = pair.a
    (second,) = a.tx(pair.create_client_msg(a))
    assert second == f"{pair.client_type_on(a)}-1"
    ca, _ = pair.open_channel()
    assert ca == "channel-1"
    a.tx(chpb.MsgChannelCloseInit(port_id="mock", channel_id=ca))
    ca2, _ = pair.open_channel()
    assert ca2 == "channel-2"
    (conn,) = a.tx(pair.conn_init_msg(a))
    assert conn == "connection-1"


def test_commitment_prefix_is_what_counterparties_prove_under(pair: HostPair) -> None:
    ca, _ = pair.open_connection()
    from kakehashi.ibc.v1 import connection_pb2 as cpb

    end = cpb.ConnectionEnd()
    end.ParseFromString(pair.a.store.get(paths.connection(ca)) or b"")
    assert end.counterparty.prefix.key_prefix == pair.b.prefix


def test_failing_message_reverts_the_whole_tx(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.create_clients()
    a = pair.a
    client_type = pair.client_type_on(a)
    before = a.root()
    with pytest.raises(TxFailed) as info:
        a.tx(pair.create_client_msg(a), client_pb2.MsgUpdateClient(client_id="testroot-99", client_message=b"x"))
    assert info.value.index == 1
    assert isinstance(info.value.cause, NotFound)
    assert "testroot-99" in str(info.value)
    assert a.root() == before
    assert a.store.get(paths.client_state(f"{client_type}-1")) is None
    assert a.events.of_type("create_client")[-1].text("client_id") == f"{client_type}-0"


def test_malformed_any_message_is_a_typed_error(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.create_clients()
    bad = any_pb2.Any(type_url="type.googleapis.com/kakehashi.ibc.v1.MsgUpdateClient", value=b"\xff\xff\xff")
    rejected(pair.a, bad, InvalidMessage, "malformed")
    unknown = any_pb2.Any(type_url="type.googleapis.com/evil.Msg", value=b"")
    rejected(pair.a, unknown, InvalidMessage, "unknown message type")
    good = any_pb2.Any()
    good.Pack(pair.create_client_msg(pair.a))
    assert pair.a.tx(good) == [f"{pair.client_type_on(pair.a)}-1"]
