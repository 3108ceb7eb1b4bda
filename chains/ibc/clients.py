"""ICS-02 client semantics on top of the light-client modules a host registers.

The core owns identifiers, status gating and events; everything about headers and proofs is
the module's. Errors from modules (:class:`ClientError`) become :class:`ClientFailure` or
:class:`ProofFailed` naming the client and, for proofs, the path.

Multiproofs (the batch wire contract): a proof field holding a module's multiproof form
(``BatchProofModule.is_batch_proof``) is opened once against the consensus state at the
message's proof height and kept in the transaction's ``Context.openings`` under
(client id, proof height, counterparty prefix); the message's own path is then checked
against the opening. A later message of the same transaction whose proof field is EMPTY is
checked against the openings under its own (client, height, prefix): exact path and value
for membership, absence for non-membership. An empty proof with no opening, or a path no
opening covers, fails. A single proof works as before. The client's status is checked at
every use, so a client frozen earlier in the transaction fails every later use.
"""

from __future__ import annotations

from chains.ibc import events
from chains.ibc.context import Context
from chains.ibc.errors import ClientFailure, IdentifierExists, InvalidMessage, NotFound, ProofFailed
from chains.ibc.host import paths
from chains.ibc.host.identifiers import client_id as make_client_id
from chains.ibc.host.identifiers import validate_client_id, validate_client_type
from chains.ibc.host.store import ClientStoreView, get_sequence, set_sequence
from kakehashi.ibc.v1 import client_pb2
from lightclients.interface import (
    BatchOpening,
    BatchProofModule,
    ClientError,
    Height,
    LightClientModule,
    Status,
)


def _module(ctx: Context, client_id: str) -> tuple[LightClientModule, ClientStoreView]:
    validate_client_id(client_id)
    raw = ctx.store.get(paths.client_type_key(client_id))
    if raw is None:
        raise NotFound(f"client {client_id!r} does not exist")
    client_type = raw.decode()
    module = ctx.clients.get(client_type)
    if module is None:
        raise ClientFailure(f"client {client_id!r} has type {client_type!r}, which this host does not support")
    return module, ClientStoreView(ctx.store, paths.client_prefix(client_id))


def status(ctx: Context, client_id: str) -> Status:
    module, view = _module(ctx, client_id)
    return module.status(view, ctx.now_ns)


def require_active(ctx: Context, client_id: str) -> tuple[LightClientModule, ClientStoreView]:
    module, view = _module(ctx, client_id)
    state = module.status(view, ctx.now_ns)
    if state is not Status.ACTIVE:
        raise ClientFailure(f"client {client_id!r} is {state.value}, not Active")
    return module, view


def latest_height(ctx: Context, client_id: str) -> Height:
    module, view = _module(ctx, client_id)
    return module.latest_height(view)


def timestamp_at(ctx: Context, client_id: str, height: Height) -> int:
    module, view = require_active(ctx, client_id)
    try:
        return module.timestamp_at_height(view, height)
    except ClientError as exc:
        raise ClientFailure(f"client {client_id!r} has no consensus state at {height}: {exc}") from exc


def create_client(ctx: Context, msg: client_pb2.MsgCreateClient) -> str:
    client_type = validate_client_type(msg.client_type)
    module = ctx.clients.get(client_type)
    if module is None:
        raise ClientFailure(f"client type {client_type!r} is not registered on this host")
    n = get_sequence(ctx.store, paths.NEXT_CLIENT_SEQUENCE)
    client_id = validate_client_id(make_client_id(client_type, n))
    if ctx.store.get(paths.client_type_key(client_id)) is not None or ctx.store.get(
        paths.client_state(client_id)
    ) is not None:
        raise IdentifierExists(f"client {client_id!r} already exists")
    view = ClientStoreView(ctx.store, paths.client_prefix(client_id))
    try:
        module.initialize(view, bytes(msg.client_state), bytes(msg.consensus_state), ctx.now_ns)
    except ClientError as exc:
        raise ClientFailure(f"cannot create {client_type} client: {exc}") from exc
    ctx.store.set(paths.client_type_key(client_id), client_type.encode())
    set_sequence(ctx.store, paths.NEXT_CLIENT_SEQUENCE, n + 1)
    height = module.latest_height(view)
    ctx.emit(events.Event.make(events.CREATE_CLIENT, client_id=client_id,
                               client_type=client_type, consensus_height=str(height)))
    return client_id


def update_client(ctx: Context, msg: client_pb2.MsgUpdateClient) -> list[Height]:
    """Verify and apply a header; a message that proves misbehaviour freezes the client."""
    if not msg.client_message:
        raise InvalidMessage("client_message is empty")
    module, view = require_active(ctx, msg.client_id)
    before = module.latest_height(view)
    try:
        module.verify_client_message(view, bytes(msg.client_message), ctx.now_ns)
        if module.check_for_misbehaviour(view, bytes(msg.client_message)):
            module.update_state_on_misbehaviour(view, bytes(msg.client_message))
            ctx.emit(events.Event.make(events.CLIENT_MISBEHAVIOUR, client_id=msg.client_id))
            return []
        heights = module.update_state(view, bytes(msg.client_message))
    except ClientError as exc:
        raise ClientFailure(f"client {msg.client_id!r} rejected the update: {exc}") from exc
    after = module.latest_height(view)
    if after < before:
        raise ClientFailure(f"client {msg.client_id!r} latest height went back from {before} to {after}")
    if not heights:
        ctx.emit(events.Event.make(events.NOOP, reason="duplicate header", client_id=msg.client_id))
        return []
    ctx.emit(events.Event.make(
        events.UPDATE_CLIENT, client_id=msg.client_id,
        consensus_heights=",".join(str(h) for h in heights),
        header=bytes(msg.client_message),
    ))
    return heights


def submit_misbehaviour(ctx: Context, msg: client_pb2.MsgSubmitMisbehaviour) -> None:
    if not msg.misbehaviour:
        raise InvalidMessage("misbehaviour is empty")
    module, view = require_active(ctx, msg.client_id)
    try:
        module.verify_client_message(view, bytes(msg.misbehaviour), ctx.now_ns)
        if not module.check_for_misbehaviour(view, bytes(msg.misbehaviour)):
            raise ClientFailure(f"evidence for client {msg.client_id!r} does not prove misbehaviour")
        module.update_state_on_misbehaviour(view, bytes(msg.misbehaviour))
    except ClientError as exc:
        raise ClientFailure(f"client {msg.client_id!r} rejected the evidence: {exc}") from exc
    ctx.emit(events.Event.make(events.CLIENT_MISBEHAVIOUR, client_id=msg.client_id))


def _opening(
    ctx: Context,
    module: LightClientModule,
    view: ClientStoreView,
    client_id: str,
    height: Height,
    proof: bytes,
    prefix: bytes,
    path: bytes,
) -> BatchOpening | None:
    """The opening ``path`` is checked against: a multiproof in ``proof`` opened now, or for
    an empty proof one opened earlier in this transaction; None for a single proof."""
    key = (client_id, height, bytes(prefix))
    if proof:
        if not isinstance(module, BatchProofModule) or not module.is_batch_proof(proof):
            return None
        try:
            opening = module.open_batch(view, height, prefix, proof, ctx.now_ns)
        except ClientError as exc:
            raise ProofFailed(f"multiproof at {height} via {client_id}: {exc}") from exc
        ctx.openings.setdefault(key, []).append(opening)
        return opening
    opened = ctx.openings.get(key)
    if not opened:
        raise ProofFailed(
            f"empty proof for {path.decode()} at {height}: no multiproof for client {client_id} "
            f"at {height} with prefix {prefix.hex()} was opened earlier in this transaction"
        )
    for opening in opened:
        if opening.covers(path):
            return opening
    raise ProofFailed(
        f"empty proof for {path.decode()} at {height}: the multiproof opened in this "
        f"transaction for client {client_id} does not cover it"
    )


def verify_membership(
    ctx: Context, client_id: str, height: Height, proof: bytes, prefix: bytes, path: bytes,
    value: bytes,
) -> None:
    module, view = require_active(ctx, client_id)
    opening = _opening(ctx, module, view, client_id, height, proof, prefix, path)
    try:
        if opening is None:
            module.verify_membership(view, height, proof, prefix, path, value, ctx.now_ns)
        else:
            opening.verify_membership(path, value)
    except ClientError as exc:
        raise ProofFailed(f"proof of {path.decode()} at {height} via {client_id}: {exc}") from exc


def verify_non_membership(
    ctx: Context, client_id: str, height: Height, proof: bytes, prefix: bytes, path: bytes
) -> None:
    module, view = require_active(ctx, client_id)
    opening = _opening(ctx, module, view, client_id, height, proof, prefix, path)
    try:
        if opening is None:
            module.verify_non_membership(view, height, proof, prefix, path, ctx.now_ns)
        else:
            opening.verify_non_membership(path)
    except ClientError as exc:
        raise ProofFailed(
            f"absence proof of {path.decode()} at {height} via {client_id}: {exc}"
        ) from exc
