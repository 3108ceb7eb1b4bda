"""ICS-04 channel handshake and closing.

Channels sit on an OPEN connection (we do not open channels on half-open connections) and
their ordering must be one the connection version allows. A CLOSED channel matches no
handshake step's required state, so it can never reopen.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from chains.ibc import clients, connections, events
from chains.ibc.context import Context, proof_height_of
from chains.ibc.errors import (
    AppError,
    IbcError,
    IdentifierExists,
    InvalidMessage,
    InvalidState,
    NotFound,
    VersionMismatch,
)
from chains.ibc.host import paths
from chains.ibc.host.identifiers import channel_id as make_channel_id
from chains.ibc.host.identifiers import validate_channel_id, validate_port_id
from chains.ibc.host.store import get_sequence, set_sequence
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb

INIT = chpb.STATE_INIT
TRYOPEN = chpb.STATE_TRYOPEN
OPEN = chpb.STATE_OPEN
CLOSED = chpb.STATE_CLOSED
ORDERED = chpb.ORDER_ORDERED
UNORDERED = chpb.ORDER_UNORDERED


def encode(channel: chpb.Channel) -> bytes:
    return channel.SerializeToString(deterministic=True)


def state_name(state: int) -> str:
    return chpb.ChannelState.Name(state)


def get_channel(ctx: Context, port_id: str, channel_id: str) -> chpb.Channel:
    validate_port_id(port_id)
    validate_channel_id(channel_id)
    raw = ctx.store.get(paths.channel(port_id, channel_id))
    if raw is None:
        raise NotFound(f"channel {port_id}/{channel_id} does not exist")
    channel = chpb.Channel()
    try:
        channel.ParseFromString(raw)
    except DecodeError as exc:
        raise InvalidMessage(f"stored channel {port_id}/{channel_id} is corrupt") from exc
    return channel


def put_channel(ctx: Context, port_id: str, channel_id: str, channel: chpb.Channel) -> None:
    ctx.store.set(paths.channel(port_id, channel_id), encode(channel))


def open_connection_of(ctx: Context, channel: chpb.Channel) -> tuple[str, cpb.ConnectionEnd]:
    if len(channel.connection_hops) != 1:
        raise InvalidMessage(f"channels need exactly one connection hop, got {len(channel.connection_hops)}")
    conn_id = channel.connection_hops[0]
    conn = connections.get_connection(ctx, conn_id)
    if conn.state != connections.OPEN:
        raise InvalidState(f"connection {conn_id!r} is not OPEN")
    return conn_id, conn


def _check_ordering(conn_id: str, conn: cpb.ConnectionEnd, order: int) -> None:
    if order not in (ORDERED, UNORDERED):
        raise InvalidMessage("channel ordering must be ORDER_ORDERED or ORDER_UNORDERED")
    feature = chpb.Order.Name(order)
    if not connections.allows_ordering(conn, feature):
        raise VersionMismatch(f"connection {conn_id!r} version does not allow {feature}")


def _call(step: str, fn: object, *args: object) -> object:
    """Run an app callback; anything it raises aborts the handshake as an AppError."""
    try:
        return fn(*args)  # type: ignore[operator]
    except IbcError:
        raise
    except Exception as exc:
        raise AppError(f"{step} callback failed: {type(exc).__name__}: {exc}") from exc


def _new_channel_id(ctx: Context, port_id: str) -> str:
    n = get_sequence(ctx.store, paths.NEXT_CHANNEL_SEQUENCE)
    chan_id = make_channel_id(n)
    if ctx.store.get(paths.channel(port_id, chan_id)) is not None:
        raise IdentifierExists(f"channel {port_id}/{chan_id} already exists")
    set_sequence(ctx.store, paths.NEXT_CHANNEL_SEQUENCE, n + 1)
    return chan_id


def _init_sequences(ctx: Context, port_id: str, chan_id: str) -> None:
    for key in (paths.next_sequence_send(port_id, chan_id), paths.next_sequence_recv(port_id, chan_id),
                paths.next_sequence_ack(port_id, chan_id)):
        set_sequence(ctx.store, key, 1)


def _verify_channel(
    ctx: Context, conn: cpb.ConnectionEnd, height_msg: client_pb2.Height, has_height: bool, proof: bytes,
    port_id: str, channel_id: str, expected: chpb.Channel,
) -> None:
    height = proof_height_of(height_msg, has_height)
    clients.verify_membership(ctx, conn.client_id, height, proof, conn.counterparty.prefix.key_prefix,
                              paths.channel(port_id, channel_id), encode(expected))


def open_init(ctx: Context, msg: chpb.MsgChannelOpenInit) -> str:
    validate_port_id(msg.port_id)
    if not msg.HasField("channel"):
        raise InvalidMessage("channel is missing")
    ch = msg.channel
    if ch.state != INIT:
        raise InvalidState("ChannelOpenInit must propose a channel in STATE_INIT")
    if ch.counterparty.channel_id:
        raise InvalidMessage("counterparty channel_id must be empty in ChannelOpenInit")
    validate_port_id(ch.counterparty.port_id)
    module = ctx.router.route(msg.port_id)
    conn_id, conn = open_connection_of(ctx, ch)
    _check_ordering(conn_id, conn, ch.ordering)
    chan_id = _new_channel_id(ctx, msg.port_id)
    version = _call("on_chan_open_init", module.on_chan_open_init, ctx, ch.ordering,
                    list(ch.connection_hops), msg.port_id, chan_id, ch.counterparty, ch.version)
    stored = chpb.Channel()
    stored.CopyFrom(ch)
    stored.version = str(version)
    put_channel(ctx, msg.port_id, chan_id, stored)
    _init_sequences(ctx, msg.port_id, chan_id)
    ctx.emit(events.Event.make(events.CHANNEL_OPEN_INIT, port_id=msg.port_id, channel_id=chan_id,
                               counterparty_port_id=ch.counterparty.port_id, connection_id=conn_id,
                               version=stored.version))
    return chan_id


def open_try(ctx: Context, msg: chpb.MsgChannelOpenTry) -> str:
    validate_port_id(msg.port_id)
    if not msg.HasField("channel"):
        raise InvalidMessage("channel is missing")
    ch = msg.channel
    if ch.state != TRYOPEN:
        raise InvalidState("ChannelOpenTry must propose a channel in STATE_TRYOPEN")
    validate_port_id(ch.counterparty.port_id)
    validate_channel_id(ch.counterparty.channel_id)
    module = ctx.router.route(msg.port_id)
    conn_id, conn = open_connection_of(ctx, ch)
    _check_ordering(conn_id, conn, ch.ordering)
    expected = chpb.Channel(
        state=INIT, ordering=ch.ordering,
        counterparty=chpb.ChannelCounterparty(port_id=msg.port_id),
        connection_hops=[conn.counterparty.connection_id], version=msg.counterparty_version,
    )
    _verify_channel(ctx, conn, msg.proof_height, msg.HasField("proof_height"), bytes(msg.proof_init),
                    ch.counterparty.port_id, ch.counterparty.channel_id, expected)
    chan_id = _new_channel_id(ctx, msg.port_id)
    version = _call("on_chan_open_try", module.on_chan_open_try, ctx, ch.ordering,
                    list(ch.connection_hops), msg.port_id, chan_id, ch.counterparty,
                    msg.counterparty_version)
    stored = chpb.Channel()
    stored.CopyFrom(ch)
    stored.version = str(version)
    put_channel(ctx, msg.port_id, chan_id, stored)
    _init_sequences(ctx, msg.port_id, chan_id)
    ctx.emit(events.Event.make(events.CHANNEL_OPEN_TRY, port_id=msg.port_id, channel_id=chan_id,
                               counterparty_port_id=ch.counterparty.port_id,
                               counterparty_channel_id=ch.counterparty.channel_id,
                               connection_id=conn_id, version=stored.version))
    return chan_id


def open_ack(ctx: Context, msg: chpb.MsgChannelOpenAck) -> None:
    ch = get_channel(ctx, msg.port_id, msg.channel_id)
    if ch.state != INIT:
        raise InvalidState(
            f"channel {msg.port_id}/{msg.channel_id} is {state_name(ch.state)}, ChannelOpenAck needs STATE_INIT"
        )
    validate_channel_id(msg.counterparty_channel_id)
    module = ctx.router.route(msg.port_id)
    _conn_id, conn = open_connection_of(ctx, ch)
    expected = chpb.Channel(
        state=TRYOPEN, ordering=ch.ordering,
        counterparty=chpb.ChannelCounterparty(port_id=msg.port_id, channel_id=msg.channel_id),
        connection_hops=[conn.counterparty.connection_id], version=msg.counterparty_version,
    )
    _verify_channel(ctx, conn, msg.proof_height, msg.HasField("proof_height"), bytes(msg.proof_try),
                    ch.counterparty.port_id, msg.counterparty_channel_id, expected)
    _call("on_chan_open_ack", module.on_chan_open_ack, ctx, msg.port_id, msg.channel_id,
          msg.counterparty_channel_id, msg.counterparty_version)
    ch.state = OPEN
    ch.version = msg.counterparty_version
    ch.counterparty.channel_id = msg.counterparty_channel_id
    put_channel(ctx, msg.port_id, msg.channel_id, ch)
    ctx.emit(events.Event.make(events.CHANNEL_OPEN_ACK, port_id=msg.port_id, channel_id=msg.channel_id,
                               counterparty_channel_id=msg.counterparty_channel_id))


def open_confirm(ctx: Context, msg: chpb.MsgChannelOpenConfirm) -> None:
    ch = get_channel(ctx, msg.port_id, msg.channel_id)
    if ch.state != TRYOPEN:
        raise InvalidState(
            f"channel {msg.port_id}/{msg.channel_id} is {state_name(ch.state)}, ChannelOpenConfirm needs STATE_TRYOPEN"
        )
    module = ctx.router.route(msg.port_id)
    _conn_id, conn = open_connection_of(ctx, ch)
    expected = chpb.Channel(
        state=OPEN, ordering=ch.ordering,
        counterparty=chpb.ChannelCounterparty(port_id=msg.port_id, channel_id=msg.channel_id),
        connection_hops=[conn.counterparty.connection_id], version=ch.version,
    )
    _verify_channel(ctx, conn, msg.proof_height, msg.HasField("proof_height"), bytes(msg.proof_ack),
                    ch.counterparty.port_id, ch.counterparty.channel_id, expected)
    _call("on_chan_open_confirm", module.on_chan_open_confirm, ctx, msg.port_id, msg.channel_id)
    ch.state = OPEN
    put_channel(ctx, msg.port_id, msg.channel_id, ch)
    ctx.emit(events.Event.make(events.CHANNEL_OPEN_CONFIRM, port_id=msg.port_id,
                               channel_id=msg.channel_id))


def close(ctx: Context, port_id: str, channel_id: str, ch: chpb.Channel, reason: str) -> None:
    ch.state = CLOSED
    put_channel(ctx, port_id, channel_id, ch)
    ctx.emit(events.Event.make(events.CHANNEL_CLOSE, port_id=port_id, channel_id=channel_id,
                               counterparty_port_id=ch.counterparty.port_id,
                               counterparty_channel_id=ch.counterparty.channel_id, reason=reason))


def close_init(ctx: Context, msg: chpb.MsgChannelCloseInit) -> None:
    ch = get_channel(ctx, msg.port_id, msg.channel_id)
    if ch.state == CLOSED:
        raise InvalidState(f"channel {msg.port_id}/{msg.channel_id} is already closed")
    module = ctx.router.route(msg.port_id)
    open_connection_of(ctx, ch)
    _call("on_chan_close_init", module.on_chan_close_init, ctx, msg.port_id, msg.channel_id)
    close(ctx, msg.port_id, msg.channel_id, ch, "close_init")


def close_confirm(ctx: Context, msg: chpb.MsgChannelCloseConfirm) -> None:
    ch = get_channel(ctx, msg.port_id, msg.channel_id)
    if ch.state == CLOSED:
        raise InvalidState(f"channel {msg.port_id}/{msg.channel_id} is already closed")
    module = ctx.router.route(msg.port_id)
    _conn_id, conn = open_connection_of(ctx, ch)
    expected = chpb.Channel(
        state=CLOSED, ordering=ch.ordering,
        counterparty=chpb.ChannelCounterparty(port_id=msg.port_id, channel_id=msg.channel_id),
        connection_hops=[conn.counterparty.connection_id], version=ch.version,
    )
    _verify_channel(ctx, conn, msg.proof_height, msg.HasField("proof_height"), bytes(msg.proof_init),
                    ch.counterparty.port_id, ch.counterparty.channel_id, expected)
    _call("on_chan_close_confirm", module.on_chan_close_confirm, ctx, msg.port_id, msg.channel_id)
    close(ctx, msg.port_id, msg.channel_id, ch, "close_confirm")
