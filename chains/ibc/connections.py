"""ICS-03 connection handshake (2024 spec: the counterparty's client of us is not validated).

Each step proves the counterparty's connection end as this chain expects it to be stored,
byte for byte (deterministic protobuf), so a proof of anything else fails.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from chains.ibc import clients, events
from chains.ibc.context import Context, proof_height_of
from chains.ibc.errors import (
    IdentifierExists,
    InvalidMessage,
    InvalidState,
    NotFound,
    VersionMismatch,
)
from chains.ibc.host import paths
from chains.ibc.host.identifiers import connection_id as make_connection_id
from chains.ibc.host.identifiers import validate_client_id, validate_connection_id
from chains.ibc.host.store import get_sequence, set_sequence
from kakehashi.ibc.v1 import connection_pb2 as cpb

State = cpb.ConnectionState
INIT = cpb.CONNECTION_STATE_INIT
TRYOPEN = cpb.CONNECTION_STATE_TRYOPEN
OPEN = cpb.CONNECTION_STATE_OPEN

ORDER_FEATURES = ("ORDER_ORDERED", "ORDER_UNORDERED")
DEFAULT_VERSION = cpb.Version(identifier="1", features=list(ORDER_FEATURES))
SUPPORTED_VERSIONS = (DEFAULT_VERSION,)


def encode(end: cpb.ConnectionEnd) -> bytes:
    return end.SerializeToString(deterministic=True)


def get_connection(ctx: Context, connection_id: str) -> cpb.ConnectionEnd:
    validate_connection_id(connection_id)
    raw = ctx.store.get(paths.connection(connection_id))
    if raw is None:
        raise NotFound(f"connection {connection_id!r} does not exist")
    end = cpb.ConnectionEnd()
    try:
        end.ParseFromString(raw)
    except DecodeError as exc:
        raise InvalidMessage(f"stored connection {connection_id!r} is corrupt") from exc
    return end


def _find_supported(version: cpb.Version) -> cpb.Version | None:
    for ours in SUPPORTED_VERSIONS:
        if ours.identifier == version.identifier:
            return ours
    return None


def _is_supported(version: cpb.Version) -> bool:
    """A version is acceptable when we know its identifier and support all its features."""
    ours = _find_supported(version)
    return (
        ours is not None
        and len(version.features) > 0
        and set(version.features) <= set(ours.features)
        and len(set(version.features)) == len(version.features)
    )


def pick_version(counterparty_versions: list[cpb.Version]) -> cpb.Version:
    """Our first supported version the counterparty offers, with the features both allow."""
    for ours in SUPPORTED_VERSIONS:
        for theirs in counterparty_versions:
            if theirs.identifier != ours.identifier:
                continue
            common = [f for f in ours.features if f in set(theirs.features)]
            if common:
                return cpb.Version(identifier=ours.identifier, features=common)
    offered = [(v.identifier, list(v.features)) for v in counterparty_versions]
    raise VersionMismatch(f"no compatible connection version among {offered}")


def allows_ordering(end: cpb.ConnectionEnd, feature: str) -> bool:
    return len(end.versions) == 1 and feature in end.versions[0].features


def _prefix(ctx: Context) -> cpb.MerklePrefix:
    return cpb.MerklePrefix(key_prefix=ctx.prefix)


def _check_counterparty(cp: cpb.Counterparty, need_connection: bool) -> None:
    validate_client_id(cp.client_id)
    if need_connection:
        validate_connection_id(cp.connection_id)
    elif cp.connection_id:
        raise InvalidMessage("counterparty connection_id must be empty in ConnectionOpenInit")
    if not cp.HasField("prefix") or not cp.prefix.key_prefix:
        raise InvalidMessage("counterparty commitment prefix is empty")


def _next_id(ctx: Context) -> str:
    n = get_sequence(ctx.store, paths.NEXT_CONNECTION_SEQUENCE)
    conn_id = make_connection_id(n)
    if ctx.store.get(paths.connection(conn_id)) is not None:
        raise IdentifierExists(f"connection {conn_id!r} already exists")
    set_sequence(ctx.store, paths.NEXT_CONNECTION_SEQUENCE, n + 1)
    return conn_id


def _counterparty_path(end: cpb.ConnectionEnd) -> bytes:
    return paths.connection(end.counterparty.connection_id)


def open_init(ctx: Context, msg: cpb.MsgConnectionOpenInit) -> str:
    if not msg.HasField("counterparty"):
        raise InvalidMessage("counterparty is missing")
    _check_counterparty(msg.counterparty, need_connection=False)
    clients.require_active(ctx, msg.client_id)
    if msg.HasField("version"):
        if not _is_supported(msg.version):
            raise VersionMismatch(
                f"version {msg.version.identifier!r} {list(msg.version.features)} is not supported"
            )
        versions = [msg.version]
    else:
        versions = list(SUPPORTED_VERSIONS)
    conn_id = _next_id(ctx)
    end = cpb.ConnectionEnd(client_id=msg.client_id, versions=versions, state=INIT,
                            counterparty=msg.counterparty, delay_period=msg.delay_period)
    ctx.store.set(paths.connection(conn_id), encode(end))
    ctx.emit(events.Event.make(events.CONNECTION_OPEN_INIT, connection_id=conn_id,
                               client_id=msg.client_id,
                               counterparty_client_id=msg.counterparty.client_id))
    return conn_id


def open_try(ctx: Context, msg: cpb.MsgConnectionOpenTry) -> str:
    if not msg.HasField("counterparty"):
        raise InvalidMessage("counterparty is missing")
    _check_counterparty(msg.counterparty, need_connection=True)
    height = proof_height_of(msg.proof_height, msg.HasField("proof_height"))
    clients.require_active(ctx, msg.client_id)
    version = pick_version(list(msg.counterparty_versions))
    expected = cpb.ConnectionEnd(
        client_id=msg.counterparty.client_id,
        versions=list(msg.counterparty_versions),
        state=INIT,
        counterparty=cpb.Counterparty(client_id=msg.client_id, prefix=_prefix(ctx)),
        delay_period=msg.delay_period,
    )
    clients.verify_membership(ctx, msg.client_id, height, bytes(msg.proof_init),
                              msg.counterparty.prefix.key_prefix,
                              paths.connection(msg.counterparty.connection_id), encode(expected))
    conn_id = _next_id(ctx)
    end = cpb.ConnectionEnd(client_id=msg.client_id, versions=[version], state=TRYOPEN,
                            counterparty=msg.counterparty, delay_period=msg.delay_period)
    ctx.store.set(paths.connection(conn_id), encode(end))
    ctx.emit(events.Event.make(events.CONNECTION_OPEN_TRY, connection_id=conn_id,
                               client_id=msg.client_id,
                               counterparty_connection_id=msg.counterparty.connection_id))
    return conn_id


def open_ack(ctx: Context, msg: cpb.MsgConnectionOpenAck) -> None:
    end = get_connection(ctx, msg.connection_id)
    if end.state != INIT:
        raise InvalidState(
            f"connection {msg.connection_id!r} is {State.Name(end.state)}, ConnectionOpenAck needs INIT"
        )
    validate_connection_id(msg.counterparty_connection_id)
    height = proof_height_of(msg.proof_height, msg.HasField("proof_height"))
    if not msg.HasField("version") or not _is_supported(msg.version):
        raise VersionMismatch("ConnectionOpenAck version is missing or not supported")
    if not any(_compatible(msg.version, offered) for offered in end.versions):
        raise VersionMismatch(
            f"version {msg.version.identifier!r} {list(msg.version.features)} was not offered "
            f"by connection {msg.connection_id!r}"
        )
    expected = cpb.ConnectionEnd(
        client_id=end.counterparty.client_id,
        versions=[msg.version],
        state=TRYOPEN,
        counterparty=cpb.Counterparty(client_id=end.client_id, connection_id=msg.connection_id,
                                      prefix=_prefix(ctx)),
        delay_period=end.delay_period,
    )
    clients.verify_membership(ctx, end.client_id, height, bytes(msg.proof_try),
                              end.counterparty.prefix.key_prefix,
                              paths.connection(msg.counterparty_connection_id), encode(expected))
    end.state = OPEN
    del end.versions[:]
    end.versions.append(msg.version)
    end.counterparty.connection_id = msg.counterparty_connection_id
    ctx.store.set(paths.connection(msg.connection_id), encode(end))
    ctx.emit(events.Event.make(events.CONNECTION_OPEN_ACK, connection_id=msg.connection_id,
                               counterparty_connection_id=msg.counterparty_connection_id))


def _compatible(version: cpb.Version, offered: cpb.Version) -> bool:
    return version.identifier == offered.identifier and set(version.features) <= set(
        offered.features
    )


def open_confirm(ctx: Context, msg: cpb.MsgConnectionOpenConfirm) -> None:
    end = get_connection(ctx, msg.connection_id)
    if end.state != TRYOPEN:
        raise InvalidState(
            f"connection {msg.connection_id!r} is {State.Name(end.state)}, ConnectionOpenConfirm needs TRYOPEN"
        )
    height = proof_height_of(msg.proof_height, msg.HasField("proof_height"))
    expected = cpb.ConnectionEnd(
        client_id=end.counterparty.client_id,
        versions=list(end.versions),
        state=OPEN,
        counterparty=cpb.Counterparty(client_id=end.client_id, connection_id=msg.connection_id,
                                      prefix=_prefix(ctx)),
        delay_period=end.delay_period,
    )
    clients.verify_membership(ctx, end.client_id, height, bytes(msg.proof_ack),
                              end.counterparty.prefix.key_prefix, _counterparty_path(end),
                              encode(expected))
    end.state = OPEN
    ctx.store.set(paths.connection(msg.connection_id), encode(end))
    ctx.emit(events.Event.make(events.CONNECTION_OPEN_CONFIRM, connection_id=msg.connection_id))
