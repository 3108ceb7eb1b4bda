"""ICS-04 packet lifecycle: send, receive, write ack, acknowledge, timeout, timeout on close.

Choices (DESIGN.md "IBC core"): both timeout kinds are checked at send against our client of
the counterparty; a duplicate recv/ack/timeout is a successful no-op that emits ``noop`` and
never re-runs the app; an ordered timeout needs sequence == next_sequence_recv and closes the
channel; packet data is at most 262,144 bytes. Work per packet touches a constant number of
keys, so cost does not grow with the number of packets on a channel.
"""

from __future__ import annotations

from chains.ibc import channels, clients, events
from chains.ibc.context import Acknowledgement, Context, height_of, proof_height_of
from chains.ibc.errors import (
    AppError,
    IbcError,
    InvalidMessage,
    InvalidState,
    NotFound,
    PacketError,
)
from chains.ibc.host import commitment, paths
from chains.ibc.host.store import encode_sequence, get_sequence, set_sequence
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import connection_pb2 as cpb
from lightclients.interface import Height

MAX_PACKET_DATA = 262_144


def _encode_packet(packet: chpb.Packet) -> bytes:
    return packet.SerializeToString(deterministic=True)


def _packet_event(type_: str, packet: chpb.Packet, ch: chpb.Channel, **extra: str | bytes) -> events.Event:
    return events.Event.make(
        type_, packet=_encode_packet(packet), sequence=str(packet.sequence),
        src_port=packet.source_port, src_channel=packet.source_channel,
        dst_port=packet.destination_port, dst_channel=packet.destination_channel,
        ordering=chpb.Order.Name(ch.ordering), **extra,
    )


def _noop(ctx: Context, what: str, packet: chpb.Packet) -> None:
    ctx.emit(events.Event.make(events.NOOP, reason=what, packet=_encode_packet(packet),
                               sequence=str(packet.sequence)))


def _timeout_height(packet: chpb.Packet) -> Height:
    return height_of(packet.timeout_height)


def _check_packet_shape(packet: chpb.Packet) -> None:
    if packet.sequence == 0:
        raise InvalidMessage("packet sequence must be positive")
    if not packet.data:
        raise InvalidMessage("packet data is empty")
    if len(packet.data) > MAX_PACKET_DATA:
        raise PacketError(f"packet data is {len(packet.data)} bytes, more than {MAX_PACKET_DATA}")
    if _timeout_height(packet).is_zero() and packet.timeout_timestamp == 0:
        raise PacketError("packet has neither a timeout height nor a timeout timestamp")


def _require_packet(msg_has_packet: bool) -> None:
    if not msg_has_packet:
        raise InvalidMessage("packet is missing")


def send_packet(
    ctx: Context, source_port: str, source_channel: str, timeout_height: Height,
    timeout_timestamp: int, data: bytes,
) -> int:
    """Commit a packet and return its sequence. Called by apps inside a transaction."""
    ch = channels.get_channel(ctx, source_port, source_channel)
    if ch.state != channels.OPEN:
        raise InvalidState(
            f"channel {source_port}/{source_channel} is {channels.state_name(ch.state)}, sending needs STATE_OPEN"
        )
    _conn_id, conn = channels.open_connection_of(ctx, ch)
    seq = get_sequence(ctx.store, paths.next_sequence_send(source_port, source_channel))
    packet = chpb.Packet(
        sequence=seq, source_port=source_port, source_channel=source_channel,
        destination_port=ch.counterparty.port_id, destination_channel=ch.counterparty.channel_id,
        data=data, timeout_height=chpb.Packet().timeout_height, timeout_timestamp=timeout_timestamp,
    )
    packet.timeout_height.revision_number = timeout_height.revision_number
    packet.timeout_height.revision_height = timeout_height.revision_height
    if seq < 1:
        raise InvalidState(f"channel {source_port}/{source_channel} has no send sequence")
    _check_packet_shape(packet)
    clients.require_active(ctx, conn.client_id)
    latest = clients.latest_height(ctx, conn.client_id)
    if not timeout_height.is_zero() and latest >= timeout_height:
        raise PacketError(
            f"timeout height {timeout_height} already passed: counterparty is at {latest}"
        )
    latest_ts = clients.timestamp_at(ctx, conn.client_id, latest)
    if timeout_timestamp != 0 and latest_ts >= timeout_timestamp:
        raise PacketError(
            f"timeout timestamp {timeout_timestamp} already passed: counterparty time is {latest_ts}"
        )
    ctx.store.set(paths.packet_commitment(source_port, source_channel, seq),
                  commitment.packet_commitment(packet))
    set_sequence(ctx.store, paths.next_sequence_send(source_port, source_channel), seq + 1)
    ctx.emit(_packet_event(events.SEND_PACKET, packet, ch))
    return seq


def _check_counterparty(ch: chpb.Channel, port: str, channel: str, where: str) -> None:
    if ch.counterparty.port_id != port or ch.counterparty.channel_id != channel:
        raise PacketError(
            f"packet {where} {port}/{channel} is not this channel's counterparty "
            f"{ch.counterparty.port_id}/{ch.counterparty.channel_id}"
        )


def recv_packet(ctx: Context, msg: chpb.MsgRecvPacket) -> None:
    _require_packet(msg.HasField("packet"))
    packet = msg.packet
    _check_packet_shape(packet)
    port, chan = packet.destination_port, packet.destination_channel
    ch = channels.get_channel(ctx, port, chan)
    if ch.state != channels.OPEN:
        raise InvalidState(f"channel {port}/{chan} is {channels.state_name(ch.state)}, receiving needs STATE_OPEN")
    _check_counterparty(ch, packet.source_port, packet.source_channel, "source")
    module = ctx.router.route(port)
    _conn_id, conn = channels.open_connection_of(ctx, ch)
    timeout_height = _timeout_height(packet)
    if not timeout_height.is_zero() and ctx.height >= timeout_height:
        raise PacketError(f"packet timed out at height {timeout_height}; this chain is at {ctx.height}")
    if packet.timeout_timestamp != 0 and ctx.now_ns >= packet.timeout_timestamp:
        raise PacketError(
            f"packet timed out at time {packet.timeout_timestamp}; this chain's time is {ctx.now_ns}"
        )
    height = proof_height_of(msg.proof_height, msg.HasField("proof_height"))
    clients.verify_membership(
        ctx, conn.client_id, height, bytes(msg.proof_commitment), conn.counterparty.prefix.key_prefix,
        paths.packet_commitment(packet.source_port, packet.source_channel, packet.sequence),
        commitment.packet_commitment(packet),
    )
    if ch.ordering == channels.ORDERED:
        key = paths.next_sequence_recv(port, chan)
        expected = get_sequence(ctx.store, key)
        if packet.sequence < expected:
            _noop(ctx, "packet already received", packet)
            return
        if packet.sequence > expected:
            raise PacketError(f"ordered channel {port}/{chan} expects sequence {expected}, got {packet.sequence}")
        set_sequence(ctx.store, key, expected + 1)
    else:
        key = paths.packet_receipt(port, chan, packet.sequence)
        if ctx.store.get(key) is not None:
            _noop(ctx, "packet already received", packet)
            return
        ctx.store.set(key, commitment.RECEIPT)
    ctx.emit(_packet_event(events.RECV_PACKET, packet, ch))
    app_ctx = ctx.child()
    try:
        ack = module.on_recv_packet(app_ctx, packet, msg.signer)
    except Exception as exc:
        # A failing app must not block the channel: it gets a deterministic error ack and its
        # writes are dropped, exactly like an app that returned an error ack itself.
        ack = Acknowledgement(False, f'{{"error":"app failed: {type(exc).__name__}"}}'.encode())
    if ack is None:
        ctx.absorb(app_ctx)
        return
    if ack.success:
        ctx.absorb(app_ctx)
    write_acknowledgement(ctx, packet, ack.data)


def write_acknowledgement(ctx: Context, packet: chpb.Packet, ack: bytes) -> None:
    """Store the ack commitment; apps with asynchronous acks call this later themselves."""
    if not ack:
        raise InvalidMessage("acknowledgement must not be empty")
    port, chan = packet.destination_port, packet.destination_channel
    ch = channels.get_channel(ctx, port, chan)
    key = paths.packet_ack(port, chan, packet.sequence)
    if ctx.store.get(key) is not None:
        raise PacketError(f"acknowledgement for {port}/{chan}/{packet.sequence} is already written")
    ctx.store.set(key, commitment.ack_commitment(ack))
    ctx.emit(_packet_event(events.WRITE_ACKNOWLEDGEMENT, packet, ch, ack=bytes(ack)))


def _source_side(
    ctx: Context, packet: chpb.Packet, need_open: bool
) -> tuple[chpb.Channel, cpb.ConnectionEnd, bytes | None]:
    """Common checks on the sending side: channel, counterparty, connection, commitment."""
    _check_packet_shape(packet)
    port, chan = packet.source_port, packet.source_channel
    ch = channels.get_channel(ctx, port, chan)
    if need_open and ch.state != channels.OPEN:
        raise InvalidState(f"channel {port}/{chan} is {channels.state_name(ch.state)}, needs STATE_OPEN")
    _check_counterparty(ch, packet.destination_port, packet.destination_channel, "destination")
    _conn_id, conn = channels.open_connection_of(ctx, ch)
    stored = ctx.store.get(paths.packet_commitment(port, chan, packet.sequence))
    if stored is not None and stored != commitment.packet_commitment(packet):
        raise PacketError(f"packet {port}/{chan}/{packet.sequence} does not match the stored commitment")
    return ch, conn, stored


def _app_call(step: str, fn: object, *args: object) -> None:
    try:
        fn(*args)  # type: ignore[operator]
    except IbcError:
        raise
    except Exception as exc:
        raise AppError(f"{step} callback failed: {type(exc).__name__}: {exc}") from exc


def acknowledge_packet(ctx: Context, msg: chpb.MsgAcknowledgement) -> None:
    _require_packet(msg.HasField("packet"))
    packet = msg.packet
    if not msg.acknowledgement:
        raise InvalidMessage("acknowledgement is empty")
    ch, conn, stored = _source_side(ctx, packet, need_open=True)
    module = ctx.router.route(packet.source_port)
    if stored is None:
        _noop(ctx, "packet already acknowledged or timed out", packet)
        return
    height = proof_height_of(msg.proof_height, msg.HasField("proof_height"))
    clients.verify_membership(
        ctx, conn.client_id, height, bytes(msg.proof_acked), conn.counterparty.prefix.key_prefix,
        paths.packet_ack(packet.destination_port, packet.destination_channel, packet.sequence),
        commitment.ack_commitment(bytes(msg.acknowledgement)),
    )
    port, chan = packet.source_port, packet.source_channel
    if ch.ordering == channels.ORDERED:
        key = paths.next_sequence_ack(port, chan)
        expected = get_sequence(ctx.store, key)
        if packet.sequence != expected:
            raise PacketError(f"ordered channel {port}/{chan} expects ack {expected}, got {packet.sequence}")
        set_sequence(ctx.store, key, expected + 1)
    ctx.store.delete(paths.packet_commitment(port, chan, packet.sequence))
    _app_call("on_acknowledgement_packet", module.on_acknowledgement_packet, ctx, packet,
              bytes(msg.acknowledgement), msg.signer)
    ctx.emit(_packet_event(events.ACKNOWLEDGE_PACKET, packet, ch, ack=bytes(msg.acknowledgement)))


def _verify_unreceived(
    ctx: Context, ch: chpb.Channel, conn: cpb.ConnectionEnd, packet: chpb.Packet, height: Height,
    proof: bytes, next_sequence_recv: int, on_close: bool,
) -> None:
    """Prove the packet was not received. Ordered: by the counterparty's next_sequence_recv,
    which must equal the sequence for a timeout (DESIGN.md) and may be at most the sequence
    on close (later packets of a closed ordered channel can never be received either)."""
    prefix = conn.counterparty.prefix.key_prefix
    dport, dchan = packet.destination_port, packet.destination_channel
    if ch.ordering == channels.ORDERED:
        fits = next_sequence_recv <= packet.sequence if on_close else next_sequence_recv == packet.sequence
        if next_sequence_recv == 0 or not fits:
            rule = "<=" if on_close else "=="
            raise PacketError(
                f"ordered timeout needs next_sequence_recv {rule} {packet.sequence}, got {next_sequence_recv}"
            )
        clients.verify_membership(ctx, conn.client_id, height, proof, prefix,
                                  paths.next_sequence_recv(dport, dchan),
                                  encode_sequence(next_sequence_recv))
    else:
        clients.verify_non_membership(ctx, conn.client_id, height, proof, prefix,
                                      paths.packet_receipt(dport, dchan, packet.sequence))


def _finish_timeout(ctx: Context, ch: chpb.Channel, packet: chpb.Packet, signer: str) -> None:
    port, chan = packet.source_port, packet.source_channel
    module = ctx.router.route(port)
    ctx.store.delete(paths.packet_commitment(port, chan, packet.sequence))
    if ch.ordering == channels.ORDERED and ch.state != channels.CLOSED:
        channels.close(ctx, port, chan, ch, "ordered packet timed out")
    _app_call("on_timeout_packet", module.on_timeout_packet, ctx, packet, signer)
    ctx.emit(_packet_event(events.TIMEOUT_PACKET, packet, ch))


def timeout_packet(ctx: Context, msg: chpb.MsgTimeout) -> None:
    _require_packet(msg.HasField("packet"))
    packet = msg.packet
    ch, conn, stored = _source_side(ctx, packet, need_open=True)
    ctx.router.route(packet.source_port)
    if stored is None:
        _noop(ctx, "packet already acknowledged or timed out", packet)
        return
    height = proof_height_of(msg.proof_height, msg.HasField("proof_height"))
    proof_ts = clients.timestamp_at(ctx, conn.client_id, height)
    th = _timeout_height(packet)
    by_height = not th.is_zero() and height >= th
    by_time = packet.timeout_timestamp != 0 and proof_ts >= packet.timeout_timestamp
    if not (by_height or by_time):
        raise PacketError(
            f"packet {packet.source_port}/{packet.source_channel}/{packet.sequence} has not timed out "
            f"at proof height {height} (time {proof_ts})"
        )
    _verify_unreceived(ctx, ch, conn, packet, height, bytes(msg.proof_unreceived), msg.next_sequence_recv,
                       on_close=False)
    _finish_timeout(ctx, ch, packet, msg.signer)


def timeout_on_close(ctx: Context, msg: chpb.MsgTimeoutOnClose) -> None:
    _require_packet(msg.HasField("packet"))
    packet = msg.packet
    ch, conn, stored = _source_side(ctx, packet, need_open=False)
    ctx.router.route(packet.source_port)
    if stored is None:
        _noop(ctx, "packet already acknowledged or timed out", packet)
        return
    height = proof_height_of(msg.proof_height, msg.HasField("proof_height"))
    expected = chpb.Channel(
        state=channels.CLOSED, ordering=ch.ordering,
        counterparty=chpb.ChannelCounterparty(port_id=packet.source_port, channel_id=packet.source_channel),
        connection_hops=[conn.counterparty.connection_id], version=ch.version,
    )
    clients.verify_membership(
        ctx, conn.client_id, height, bytes(msg.proof_close), conn.counterparty.prefix.key_prefix,
        paths.channel(packet.destination_port, packet.destination_channel), channels.encode(expected),
    )
    _verify_unreceived(ctx, ch, conn, packet, height, bytes(msg.proof_unreceived), msg.next_sequence_recv,
                       on_close=True)
    _finish_timeout(ctx, ch, packet, msg.signer)


def get_packet_commitment(ctx: Context, port: str, chan: str, sequence: int) -> bytes:
    value = ctx.store.get(paths.packet_commitment(port, chan, sequence))
    if value is None:
        raise NotFound(f"no commitment for {port}/{chan}/{sequence}")
    return value
