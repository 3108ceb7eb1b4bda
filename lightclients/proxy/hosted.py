"""What the enclave needs to know about each direct client type it hosts, beyond ICS-02.

The light-client interface says nothing about a client's parameters or which heights a
header goes from and to, and the enclave needs both: the parameters are part of every state
id (see ``messages.py``), and an UpdateState names its trusted and new height even when the
hosted client treats the header as a duplicate. One small adapter per type keeps that
knowledge here instead of widening the interface every client implements.

"Parameters" are the client state with every field that moves as the client follows the
chain cleared (latest and frozen height; for Corda also the current notary set, which lives
in the consensus states), so they stay fixed for the life of a hosted client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from kakehashi.corda.v1 import lightclient_pb2 as cpb
from kakehashi.qbft.v1 import lightclient_pb2 as qpb
from lightclients.corda.client import CLIENT_TYPE as CORDA_TYPE
from lightclients.corda.client import CordaLightClient, checkpoint_hash_key
from lightclients.interface import (
    CLIENT_STATE_KEY,
    ClientStore,
    Height,
    InvalidClientMessage,
    LightClientModule,
)
from lightclients.proxy.messages import encode, height
from lightclients.qbft.client import CLIENT_TYPE as QBFT_TYPE
from lightclients.qbft.client import QbftClient
from lightclients.qbft.client import (
    _block_hash_key as qbft_block_hash_key,  # the client's own key layout
)
from lightclients.qbft.header import HeaderError, decode_header


@dataclass(frozen=True)
class Hosted:
    """One hosted client type: its module and the facts the enclave reads off its encodings."""

    client_type: str
    module: LightClientModule
    params: Callable[[bytes], bytes]
    periods: Callable[[bytes], tuple[int, int]]  # (trusting period, max clock drift) in ns
    heights: Callable[[ClientStore, bytes], tuple[Height, Height]]  # (trusted, target) of a header
    block_id: Callable[[ClientStore, Height], bytes]  # the stored block identity at a height (or b"")


def _parse(cls: type[qpb.ClientState] | type[cpb.ClientState] | type[qpb.ClientMessage] | type[cpb.ClientMessage],
           raw: bytes, what: str) -> object:
    msg = cls()
    try:
        msg.ParseFromString(bytes(raw))
    except DecodeError as exc:
        raise InvalidClientMessage(f"{what} does not decode: {exc}") from None
    return msg


def _stored_client_state(store: ClientStore) -> bytes:
    raw = store.get(CLIENT_STATE_KEY)
    if raw is None:
        raise InvalidClientMessage("the hosted client is not initialised")
    return raw


# --- qbft -------------------------------------------------------------------------------


def _qbft_cs(raw: bytes) -> qpb.ClientState:
    cs = _parse(qpb.ClientState, raw, "qbft client state")
    assert isinstance(cs, qpb.ClientState)
    return cs


def _qbft_params(raw: bytes) -> bytes:
    cs = _qbft_cs(raw)
    cs.ClearField("latest_height")
    cs.ClearField("frozen_height")
    return encode(cs)


def _qbft_periods(raw: bytes) -> tuple[int, int]:
    cs = _qbft_cs(raw)
    return int(cs.trusting_period), int(cs.max_clock_drift)


def _qbft_block(store: ClientStore, at: Height) -> bytes:
    return store.get(qbft_block_hash_key(at)) or b""


def _qbft_heights(store: ClientStore, message: bytes) -> tuple[Height, Height]:
    msg = _parse(qpb.ClientMessage, message, "qbft client message")
    assert isinstance(msg, qpb.ClientMessage)
    if msg.WhichOneof("message") != "header":
        raise InvalidClientMessage("the enclave updates its client from headers only")
    try:
        number = decode_header(msg.header.header_rlp).number
    except HeaderError as exc:
        raise InvalidClientMessage(f"header: {exc}") from None
    revision = _qbft_cs(_stored_client_state(store)).latest_height.revision_number
    return height(msg.header.trusted_height), Height(revision, number)


# --- corda ------------------------------------------------------------------------------


def _corda_cs(raw: bytes) -> cpb.ClientState:
    cs = _parse(cpb.ClientState, raw, "corda client state")
    assert isinstance(cs, cpb.ClientState)
    return cs


def _corda_params(raw: bytes) -> bytes:
    cs = _corda_cs(raw)
    cs.latest_height = 0
    cs.frozen_height = 0
    del cs.notary_keys[:]
    cs.threshold = 0
    return encode(cs)


def _corda_periods(raw: bytes) -> tuple[int, int]:
    cs = _corda_cs(raw)
    return int(cs.trusting_period), int(cs.max_clock_drift)


def _corda_block(store: ClientStore, at: Height) -> bytes:
    return store.get(checkpoint_hash_key(at)) or b""


def _corda_heights(store: ClientStore, message: bytes) -> tuple[Height, Height]:
    msg = _parse(cpb.ClientMessage, message, "corda client message")
    assert isinstance(msg, cpb.ClientMessage)
    if msg.WhichOneof("message") != "header":
        raise InvalidClientMessage("the enclave updates its client from headers only")
    revision = _corda_cs(_stored_client_state(store)).revision_number
    return Height(revision, msg.header.trusted_height), Height(revision, msg.header.checkpoint.height)


HOSTED: dict[str, Hosted] = {
    QBFT_TYPE: Hosted(QBFT_TYPE, QbftClient(), _qbft_params, _qbft_periods, _qbft_heights, _qbft_block),
    CORDA_TYPE: Hosted(CORDA_TYPE, CordaLightClient(), _corda_params, _corda_periods, _corda_heights, _corda_block),
}


def hosted(client_type: str) -> Hosted:
    found = HOSTED.get(client_type)
    if found is None:
        raise InvalidClientMessage(f"the enclave hosts {sorted(HOSTED)} clients, not {client_type!r}")
    return found
