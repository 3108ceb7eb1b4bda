"""What both chain codecs share: their error type, client creation from the node's view, and
reading the headers (the node's, and conflicting ones offered as evidence) they build on."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from chains.node.client import NodeClient
from lightclients.interface import Height

M = TypeVar("M", bound=Message)

DEFAULT_TRUSTING_NS = 14 * 24 * 3600 * 10**9
DEFAULT_DRIFT_NS = 10 * 10**9


class CodecError(ValueError):
    """The codec cannot build what was asked (bad key, undecodable node answer, bad evidence)."""


async def client_init_at(node: NodeClient, trusting_period_ns: int, max_clock_drift_ns: int) -> tuple[str, bytes, bytes]:
    """Client and consensus state at the node's latest height, as the node itself builds them.

    Why trust the node here: creating a client is the one step that has to trust someone; the
    operator points the relayer at nodes of their choice, as Hermes does for create client.
    """
    latest = int((await node.status()).latest_height)
    if latest < 1:
        raise CodecError("the chain has no sealed block yet; a client starts from height 1 or later")
    made = await node.query_app("client_state", height=latest, trusting_period_ns=trusting_period_ns,
                                max_clock_drift_ns=max_clock_drift_ns)
    try:
        return str(made["client_type"]), bytes.fromhex(made["client_state"]), bytes.fromhex(made["consensus_state"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"node's client_state answer is malformed: {exc}") from None


def conflicting_header(message: M, conflicting: bytes, kind: str) -> M:
    """``conflicting`` parsed into ``message`` (a ``kind`` light client's ClientMessage), which
    must hold a header: evidence is built only around a header that decodes."""
    try:
        message.ParseFromString(conflicting)
    except DecodeError as exc:
        raise CodecError(f"conflicting {kind} header does not decode: {exc}") from None
    if message.WhichOneof("message") != "header":
        raise CodecError(f"conflicting {kind} client message is not a header")
    return message


async def fetch_client_header(node: NodeClient, target: Height, header: M, kind: str) -> M:
    """Parse the node's light-client header at ``target`` into ``header`` (its trusted height
    is left for the caller: each client encodes it differently)."""
    got = await node.header(target.revision_height)
    try:
        header.ParseFromString(got.client_header)
    except DecodeError as exc:
        raise CodecError(f"node sent an undecodable {kind} header at {target}: {exc}") from None
    return header
