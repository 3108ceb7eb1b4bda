"""Transactions forged, replayed or signed by the wrong party, sent to the real nodes over gRPC.

Admission refusals come back as the gRPC status of SubmitTx (INVALID_ARGUMENT with the
reason); rules that need the ledger are checked when the tx executes, so the tx is included
as FAILED with the reason, and nothing it carried takes effect.
"""

from __future__ import annotations

import dataclasses

import grpc

from chains.corda.cash import CASH, cash_state
from chains.corda.ibc_host import ibc_command
from chains.corda.transaction import SignedTransaction
from chains.evm import Message as EvmCall
from chains.evm import Transaction, decode_tx
from chains.evm.chain import SECURITY_TOKEN_ADDRESS
from kakehashi.corda.v1 import ledger_pb2 as lpb
from kakehashi.ibc.v1 import transfer_pb2
from kakehashi.node.v1 import node_pb2
from relayer.codecs.corda import fresh_salt
from tests.adversarial.matrix import Attempt, attack
from tests.support.adversary import CordaParty, Net

ADMISSION = "chains/node/runtime.py submit (check_tx)"
EVM_ADMISSION = "chains/node/apps/evm.py check_tx"
CORDA_ADMISSION = "chains/node/apps/corda.py check_tx"


def _st_transfer(net: Net, sender: str, to: str, amount: int, nonce: int | None = None) -> bytes:
    acct = net.evm_account(sender)
    return acct.tx([EvmCall(SECURITY_TOKEN_ADDRESS, "transfer",
                            (net.evm_account(to).address, amount.to_bytes(1, "big")))], nonce=nonce)


def _cash_move(net: Net, owner: CordaParty, *signers: bytes, to: CordaParty | None = None) -> tuple[bytes, lpb.StateRef]:
    """A Move of one of ``owner``'s Cash states (to itself unless ``to``), signed by ``signers``."""
    (ref, cash), *_ = net.cash_of(owner, 1)
    out = cash_state(bytes(cash.issuer), (to or owner).key, int(cash.amount), owner.notary)
    wtx = owner.wtx((ref,), (out,), (lpb.Command(contract=CASH, name="Move", signers=[owner.key]),),
                    (net.admission(),))
    stx = SignedTransaction(wtx)
    for seed in signers:
        stx.sign(seed)
    return stx.encode(), ref


# --- EVM admission ---------------------------------------------------------------------------


@attack("EVM tx with a signature that recovers no key", layer="EVM node admission", where=EVM_ADMISSION)
def test_evm_tx_bad_signature(net: Net, attempt: Attempt) -> None:
    tx = decode_tx(_st_transfer(net, "alice", "bob", 1))
    forged = Transaction(tx.chain_id, tx.nonce, tx.messages, tx.signature[:32] + bytes(32) + tx.signature[64:])
    with attempt.watch(net.snapshot):
        exc = net.evm.refusal(forged.encode())
        attempt.refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "transaction rejected: bad signature")


@attack("EVM tx signed for another chain id (cross-chain replay)", layer="EVM node admission", where=EVM_ADMISSION)
def test_evm_tx_wrong_chain_id(net: Net, attempt: Attempt) -> None:
    own = int(net.evm.info()["evm_chain_id"])
    acct = net.evm_account("alice")
    raw = acct.tx([EvmCall(SECURITY_TOKEN_ADDRESS, "transfer", (net.evm_account("bob").address, b"\x01"))],
                  chain_id=own + 1)
    with attempt.watch(net.snapshot):
        exc = net.evm.refusal(raw)
        attempt.refused(exc, grpc.StatusCode.INVALID_ARGUMENT, f"wrong chain id {own + 1}")


@attack("replayed signed EVM tx (its nonce is used)", layer="EVM node admission", where=EVM_ADMISSION)
def test_evm_tx_replayed(net: Net, attempt: Attempt) -> None:
    raw = _st_transfer(net, "alice", "bob", 1)
    assert net.evm.submit(raw).status == node_pb2.TX_STATUS_COMMITTED
    with attempt.watch(net.snapshot):
        exc = net.evm.refusal(raw)
        attempt.refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "already used; next nonce is")


@attack("new EVM tx reusing a spent nonce", layer="EVM node admission", where=EVM_ADMISSION)
def test_evm_tx_nonce_reused(net: Net, attempt: Attempt) -> None:
    assert net.evm.submit(_st_transfer(net, "alice", "bob", 1)).status == node_pb2.TX_STATUS_COMMITTED
    used = net.evm_account("alice").nonce() - 1
    raw = _st_transfer(net, "alice", "bob", 2, nonce=used)
    with attempt.watch(net.snapshot):
        exc = net.evm.refusal(raw)
        attempt.refused(exc, grpc.StatusCode.INVALID_ARGUMENT, f"nonce {used} already used")


@attack("ICS-20 transfer from another's account (tx signed by the wrong key)", layer="EVM IBC handler contract",
        where="chains/evm/ibc_contract.py IbcHandlerContract.call")
def test_evm_transfer_sender_not_signer(net: Net, attempt: Attempt) -> None:
    victim = net.evm_account("alice").hex
    msg = transfer_pb2.MsgTransfer(source_port="transfer", source_channel=net.evm_transfer, denom="stake", amount="7",
                                   sender=victim, receiver=net.corda_party("holder-firm-c").account,
                                   timeout_timestamp=net.corda.time_ns() + 600 * 10**9)
    with attempt.watch(net.snapshot):
        res = net.evm.submit(net.evm_account("carol").ibc_tx([msg]))
        attempt.failed(res, "MsgTransfer sender must be the tx signer")


# --- Corda admission and uniqueness ------------------------------------------------------------


@attack("Corda tx moving a party's Cash signed by someone else", layer="Corda node admission",
        where=CORDA_ADMISSION)
def test_corda_tx_signed_by_wrong_key(net: Net, attempt: Attempt) -> None:
    owner, thief = net.corda_party("holder-firm-b"), net.corda_party("holder-firm-c")
    raw, _ = _cash_move(net, owner, thief.seed, to=thief)
    with attempt.watch(net.snapshot):
        exc = net.corda.refusal(raw)
        attempt.refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "missing required signature(s)")


@attack("Corda tx whose signature is over another txid", layer="Corda node admission", where=CORDA_ADMISSION)
def test_corda_tx_bad_signature(net: Net, attempt: Attempt) -> None:
    owner = net.corda_party("holder-firm-b")
    raw, _ = _cash_move(net, owner, owner.seed)
    stx = SignedTransaction.decode(raw)
    other = dataclasses.replace(stx.wtx, privacy_salt=fresh_salt())
    stolen = SignedTransaction(other, {owner.key: stx.sigs[owner.key]})
    with attempt.watch(net.snapshot):
        exc = net.corda.refusal(stolen.encode())
        attempt.refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "invalid signature by")


@attack("replayed notarised Corda tx", layer="Corda node admission", where=ADMISSION)
def test_corda_tx_replayed(net: Net, attempt: Attempt) -> None:
    owner = net.corda_party("holder-firm-b")
    raw, _ = _cash_move(net, owner, owner.seed)
    assert net.corda.submit(raw).status == node_pb2.TX_STATUS_COMMITTED
    with attempt.watch(net.snapshot):
        exc = net.corda.refusal(raw)
        attempt.refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "is already committed")


@attack("Corda double spend: consumed Cash spent again in a fresh tx", layer="Corda notary cluster",
        where="chains/corda/notary.py check_unique")
def test_corda_double_spend(net: Net, attempt: Attempt) -> None:
    owner = net.corda_party("holder-firm-b")
    raw, ref = _cash_move(net, owner, owner.seed)
    assert net.corda.submit(raw).status == node_pb2.TX_STATUS_COMMITTED
    respent = dataclasses.replace(SignedTransaction.decode(raw).wtx, privacy_salt=fresh_salt())
    with attempt.watch(net.snapshot):
        res = net.corda.submit(SignedTransaction(respent).sign(owner.seed).encode())
        attempt.failed(res, f"input {bytes(ref.txid).hex()[:16]}:{ref.index} was already consumed by tx")


@attack("Corda IBC command naming the relayer as signer, signed by another key", layer="Corda node admission",
        where=CORDA_ADMISSION)
def test_corda_ibc_signer_did_not_sign(net: Net, attempt: Attempt) -> None:
    update, _ = net.update(net.corda)
    relayer, impostor = net.corda_relayer, net.corda_party("holder-firm-a")
    wtx = impostor.wtx(commands=(ibc_command(update, [relayer.key]),))
    with attempt.watch(net.snapshot):
        exc = net.corda.refusal(impostor.sign(wtx))
        attempt.refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "missing required signature(s)")


@attack("Corda IBC command that names no signer", layer="Corda IBC host contract",
        where="chains/corda/ibc_host.py IbcHostContract.verify")
def test_corda_ibc_command_without_signer(net: Net, attempt: Attempt) -> None:
    update, _ = net.update(net.corda)
    relayer = net.corda_relayer
    wtx = relayer.wtx(commands=(ibc_command(update, []),))
    with attempt.watch(net.snapshot):
        res = net.corda.submit(relayer.sign(wtx))
        attempt.failed(res, "IBC commands are 'Execute' and name a signer")


@attack("Corda ICS-20 transfer spending an account whose key did not sign", layer="Corda IBC host contract",
        where="chains/corda/ibc_host.py _unpack")
def test_corda_transfer_sender_not_signer(net: Net, attempt: Attempt) -> None:
    victim, thief = net.corda_party("holder-firm-a"), net.corda_party("holder-firm-c")
    msg = transfer_pb2.MsgTransfer(source_port="transfer", source_channel=net.corda_transfer, denom="jpy", amount="5",
                                   sender=victim.account, receiver=net.evm_account("carol").hex,
                                   timeout_timestamp=net.evm.time_ns() + 600 * 10**9)
    with attempt.watch(net.snapshot):
        res = net.corda.submit(thief.ibc_tx([msg]))
        attempt.failed(res, "MsgTransfer sender must be the account of a signer of its command")
