"""Forged headers sent to the real nodes over gRPC by a relayer that edits genuine ones.

The Corda node runs a 10-qbft client of the EVM chain (QBFT seals, secp256k1); the EVM node
runs an 11-corda client of the Corda chain (notary signatures, Ed25519). Each attack takes
the genuine light-client header the source node serves, breaks one rule, and submits it in an
UpdateClient: the tx must fail naming the rule, and no client state, root or balance moves.
"""

from __future__ import annotations

from dataclasses import replace

from chains.evm.chain import seal_header
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.ibc.v1 import client_pb2
from kakehashi.qbft.v1 import lightclient_pb2 as qpb
from lightclients.corda.checkpoint import notary_set_hash, sign_checkpoint
from lightclients.crypto import (
    ed25519_public_key,
    ed25519_sign,
    eth_address,
    keccak256,
    secp256k1_public_key,
    secp256k1_sign,
    sha256,
)
from lightclients.qbft.header import decode_header
from tests.adversarial.matrix import Attempt, attack
from tests.support.adversary import Net, Node

QBFT = "10-qbft client on the Corda node"
CORDA = "11-corda client on the EVM node"
SEALS = "lightclients/qbft/client.py verify_seals"
NOTARIES = "lightclients/corda/client.py _verify_header"


def _fresh(net: Net, dst: Node) -> int:
    """A height of the other chain at least two above what dst's client trusts, so the update
    skips heights (an adjacent one is checked against the committed next set instead)."""
    src = net.other(dst)
    trusted = net.client_height(dst)
    src.wait_height(trusted + 2)
    return src.height()


def _evm_header(net: Net) -> qpb.Header:
    target = _fresh(net, net.corda)
    header: qpb.Header = net.client_header(net.evm, target, net.client_height(net.corda))
    return header


def _corda_header(net: Net) -> lc.Header:
    target = _fresh(net, net.evm)
    header: lc.Header = net.client_header(net.corda, target, net.client_height(net.evm))
    return header


def _submit_update(net: Net, dst: Node, header: object) -> object:
    msg = client_pb2.MsgUpdateClient(client_id=net.client_on(dst),
                                     client_message=net.header_msg(net.other(dst), header))
    return net.relay(dst, [msg])


# --- QBFT seals ------------------------------------------------------------------------------


@attack("too few QBFT seals (2 of 4)", layer=QBFT, where=SEALS)
def test_qbft_too_few_seals(net: Net, attempt: Attempt) -> None:
    header = _evm_header(net)
    del header.seals[2:]
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.corda, header)
        attempt.failed(res, "ClientFailure", "only 2 of the header's 4 validators sealed it (need > 2/3)")


@attack("one QBFT seal duplicated to fill a quorum", layer=QBFT, where=SEALS)
def test_qbft_duplicated_seals(net: Net, attempt: Attempt) -> None:
    header = _evm_header(net)
    header.seals[:] = [header.seals[0]] * 4
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.corda, header)
        attempt.failed(res, "ClientFailure", "only 1 of the header's 4 validators sealed it")


@attack("forged QBFT seals by keys outside the validator set", layer=QBFT, where=SEALS)
def test_qbft_forged_seals(net: Net, attempt: Attempt) -> None:
    header = _evm_header(net)
    digest = keccak256(header.header_rlp)
    strangers = [secp256k1_sign(sha256(f"stranger-{i}".encode()), digest) for i in range(2)]
    header.seals[2:] = strangers
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.corda, header)
        attempt.failed(res, "ClientFailure", "only 2 of the header's 4 validators sealed it")


@attack("QBFT validator list reordered under the genuine seals", layer=QBFT, where=SEALS)
def test_qbft_reordered_validators(net: Net, attempt: Attempt) -> None:
    header = _evm_header(net)
    decoded = decode_header(header.header_rlp)
    flipped = replace(decoded, extra=replace(decoded.extra, validators=tuple(reversed(decoded.extra.validators))))
    header.header_rlp = flipped.encode()
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.corda, header)
        attempt.failed(res, "ClientFailure", "only 0 of the header's 4 validators sealed it")


@attack("QBFT seals inside extraData instead of beside the header", layer=QBFT,
        where="lightclients/qbft/client.py verify_header")
def test_qbft_seals_inside_extra_data(net: Net, attempt: Attempt) -> None:
    header = _evm_header(net)
    header.header_rlp = decode_header(header.header_rlp).with_seals(list(header.seals)).encode()
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.corda, header)
        attempt.failed(res, "ClientFailure", "header RLP must have an empty seal list")


@attack("QBFT validator rotation not signed by the old quorum", layer=QBFT, where=SEALS)
def test_qbft_rotation_without_old_quorum(net: Net, attempt: Attempt) -> None:
    header = _evm_header(net)
    decoded = decode_header(header.header_rlp)
    keys = [sha256(f"impostor-{i}".encode()) for i in range(4)]
    impostors = tuple(eth_address(secp256k1_public_key(k)) for k in keys)
    forged = replace(decoded, extra=replace(decoded.extra, validators=impostors))
    header.header_rlp = forged.encode()
    header.seals[:] = list(seal_header(forged, keys).extra.seals)
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.corda, header)
        attempt.failed(res, "ClientFailure", "only 0 of the 4 trusted validators sealed the header (need > 1/3)")


# --- notary signatures -------------------------------------------------------------------------


@attack("too few notary signatures (2 of 4)", layer=CORDA, where=NOTARIES)
def test_corda_too_few_signatures(net: Net, attempt: Attempt) -> None:
    header = _corda_header(net)
    del header.signatures[2:]
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.evm, header)
        attempt.failed(res, "ClientFailure", "only 2 of 4 notaries signed; more than 2/3 (3) required")


@attack("one notary signature duplicated to fill a quorum", layer=CORDA,
        where="lightclients/corda/checkpoint.py count_signers")
def test_corda_duplicated_signatures(net: Net, attempt: Attempt) -> None:
    header = _corda_header(net)
    first = lc.NotarySignature()
    first.CopyFrom(header.signatures[0])
    del header.signatures[:]
    header.signatures.extend([first] * 4)
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.evm, header)
        attempt.failed(res, "ClientFailure", "only 1 of 4 notaries signed")


@attack("forged notary signatures under the real notary keys", layer=CORDA,
        where="lightclients/corda/checkpoint.py count_signers")
def test_corda_forged_signatures(net: Net, attempt: Attempt) -> None:
    header = _corda_header(net)
    for i in (2, 3):  # the real keys, signatures made by someone else's key
        header.signatures[i].signature = ed25519_sign(sha256(f"forger-{i}".encode()), b"\x00" * 32)
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.evm, header)
        attempt.failed(res, "ClientFailure", "only 2 of 4 notaries signed")


@attack("notary signatures re-paired with the wrong keys", layer=CORDA,
        where="lightclients/corda/checkpoint.py count_signers")
def test_corda_reordered_signatures(net: Net, attempt: Attempt) -> None:
    header = _corda_header(net)
    sigs = [bytes(s.signature) for s in header.signatures]
    for i, s in enumerate(header.signatures):
        s.signature = sigs[(i + 1) % len(sigs)]
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.evm, header)
        attempt.failed(res, "ClientFailure", "only 0 of 4 notaries signed")


@attack("notary set reordered (a different set for rotation)", layer=CORDA, where=NOTARIES)
def test_corda_reordered_notary_set(net: Net, attempt: Attempt) -> None:
    header = _corda_header(net)
    keys = list(header.notary_set.public_keys)
    del header.notary_set.public_keys[:]
    header.notary_set.public_keys.extend(reversed(keys))
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.evm, header)
        attempt.failed(res, "ClientFailure", "header notary set does not hash to the checkpoint's notary_set_hash")


def _impostor_checkpoint(header: lc.Header) -> lc.Header:
    """The genuine checkpoint re-signed by a notary set the chain never committed."""
    seeds = [sha256(f"impostor-notary-{i}".encode()) for i in range(4)]
    keys = [ed25519_public_key(s) for s in seeds]
    header.checkpoint.notary_set_hash = notary_set_hash(keys)
    del header.notary_set.public_keys[:]
    header.notary_set.public_keys.extend(keys)
    del header.signatures[:]
    header.signatures.extend(sign_checkpoint(s, header.checkpoint) for s in seeds)
    return header


@attack("notary rotation (skipping heights) not signed by the old quorum", layer=CORDA, where=NOTARIES)
def test_corda_rotation_without_old_quorum(net: Net, attempt: Attempt) -> None:
    header = _impostor_checkpoint(_corda_header(net))
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.evm, header)
        attempt.failed(res, "ClientFailure", "only 0 of 4 trusted notaries signed; more than 1/3 required")


@attack("notary rotation (adjacent height) the previous checkpoint did not commit", layer=CORDA, where=NOTARIES)
def test_corda_rotation_not_committed(net: Net, attempt: Attempt) -> None:
    trusted = net.client_height(net.evm)
    header = _impostor_checkpoint(net.client_header(net.corda, trusted + 1, trusted))
    with attempt.watch(net.snapshot):
        res = _submit_update(net, net.evm, header)
        attempt.failed(res, "ClientFailure", "notary set rotation was not committed by the previous checkpoint")
