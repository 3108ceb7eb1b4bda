"""The IBC core running inside notarised Corda transactions, proven through the corda client."""

from __future__ import annotations

import pytest

from chains.corda.cash import ADMISSION, CASH, AdmissionContract, CashContract
from chains.corda.contracts import Contract
from chains.corda.ibc_host import IBC_CONTRACT, IbcHostContract, ibc_command
from chains.corda.notary import IbcRejected, NotaryCluster, NotaryError
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.ibc.events import EventLog
from chains.ibc.handler import IbcHandler
from chains.ibc.host import paths
from chains.store.smt import SparseMerkleTree
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.ibc.v1 import client_pb2
from lightclients.corda.checkpoint import quorum
from lightclients.corda.client import (
    CordaLightClient,
    consensus_state_from_checkpoint,
    encode,
    header_message,
)
from lightclients.crypto import ed25519_public_key, sha256
from lightclients.interface import Height, InvalidProof, MemoryClientStore

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
TRUST = 3600 * SEC
LC = CordaLightClient()
RELAYER = sha256(b"relayer")
HOST_TYPE = LC.client_type
CONTRACTS: dict[str, Contract] = {CASH: CashContract(), ADMISSION: AdmissionContract(), IBC_CONTRACT: IbcHostContract()}


def chain(name: str) -> NotaryCluster:
    store = SparseMerkleTree()
    log = EventLog()
    handler = IbcHandler(store, {HOST_TYPE: LC}, b"ibc", log)
    seeds = [sha256(f"{name}-notary-{i}".encode()) for i in range(4)]
    return NotaryCluster(name, sha256(name.encode()), seeds, CONTRACTS, ibc_store=store, ibc=handler)


def client_msgs(of: NotaryCluster) -> client_pb2.MsgCreateClient:
    g = of.latest
    assert g is not None
    cs = lc.ClientState(chain_id=of.chain_id, notary_keys=g.notary_set, threshold=quorum(len(g.notary_set)),
                        latest_height=g.checkpoint.height, trusting_period=TRUST, max_clock_drift=10 * SEC)
    return client_pb2.MsgCreateClient(client_type=HOST_TYPE, client_state=encode(cs),
                                      consensus_state=encode(consensus_state_from_checkpoint(g.checkpoint)))


def ibc_tx(host: NotaryCluster, *msgs: object, salt: bytes, signed: bool = True) -> SignedTransaction:
    w = WireTransaction(inputs=(), outputs=(), commands=tuple(ibc_command(m, [ed25519_public_key(RELAYER)]) for m in msgs),  # type: ignore[arg-type]
                        notary=host.identity, privacy_salt=salt)
    stx = SignedTransaction(w)
    return stx.sign(RELAYER) if signed else stx


def test_ibc_messages_execute_in_notarisation_order_and_are_provable() -> None:
    a, b = chain("corda-a"), chain("corda-b")
    a.checkpoint(T0)
    b.checkpoint(T0)
    watcher = MemoryClientStore()  # a third party's client of chain A
    g = a.signed_checkpoint(1)
    assert g is not None
    LC.initialize(watcher, encode(lc.ClientState(chain_id="corda-a", notary_keys=g.notary_set, threshold=3,
                                                 latest_height=1, trusting_period=TRUST, max_clock_drift=10 * SEC)),
                  encode(consensus_state_from_checkpoint(g.checkpoint)), T0)
    clocks = [T0 + SEC] * 4
    a.notarise(ibc_tx(a, client_msgs(b), salt=sha256(b"1")), clocks)
    a.notarise(ibc_tx(a, client_msgs(b), salt=sha256(b"2")), clocks)
    assert a.ibc is not None
    created = [e.text("client_id") for e in a.ibc.sink.of_type("create_client")]  # type: ignore[attr-defined]
    assert created == ["11-corda-0", "11-corda-1"]
    # Update A's client of B through a notarised tx with B's next checkpoint.
    b_cp = b.checkpoint(T0 + 2 * SEC)
    update = client_pb2.MsgUpdateClient(client_id="11-corda-0", client_message=header_message(b_cp.header(1)))
    a.notarise(ibc_tx(a, update, salt=sha256(b"3")), [T0 + 2 * SEC] * 4)
    cp = a.checkpoint(T0 + 3 * SEC)
    msg = header_message(cp.header(1))
    LC.verify_client_message(watcher, msg, T0 + 3 * SEC)
    LC.update_state(watcher, msg)
    key = paths.client_state("11-corda-0")
    value = a.ibc_store.at(cp.checkpoint.ibc_root).get(key)
    assert value is not None and lc.ClientState.FromString(value).latest_height == 2
    proof = a.ibc_store.at(cp.checkpoint.ibc_root).prove_bytes(key)
    LC.verify_membership(watcher, Height(0, 2), proof, b"ibc", key, value, T0 + 3 * SEC)
    absent = paths.client_state("11-corda-7")
    LC.verify_non_membership(watcher, Height(0, 2), a.ibc_store.at(cp.checkpoint.ibc_root).prove_bytes(absent),
                             b"ibc", absent, T0 + 3 * SEC)
    with pytest.raises(InvalidProof):
        LC.verify_membership(watcher, Height(0, 2), proof, b"ibc", key, value + b"x", T0 + 3 * SEC)


def test_failing_ibc_message_refuses_the_whole_tx() -> None:
    a = chain("corda-a")
    a.checkpoint(T0)
    bad = client_pb2.MsgCreateClient(client_type=HOST_TYPE, client_state=b"\xff", consensus_state=b"")
    stx = ibc_tx(a, bad, salt=sha256(b"x"))
    root = a.ibc_store.root
    with pytest.raises(IbcRejected, match="message 0 failed"):
        a.notarise(stx, [T0 + SEC] * 4)
    assert a.ledger.notarised_at(stx.txid) is None and not a.pending
    assert a.ibc_store.commit() == root


def test_ibc_command_needs_a_signature_and_a_host() -> None:
    a = chain("corda-a")
    b = chain("corda-b")
    a.checkpoint(T0)
    b.checkpoint(T0)
    with pytest.raises(NotaryError, match="missing required signature"):
        a.notarise(ibc_tx(a, client_msgs(b), salt=sha256(b"y"), signed=False), [T0 + SEC] * 4)
    plain = NotaryCluster("plain", sha256(b"plain"), [sha256(b"p")], CONTRACTS)
    with pytest.raises(IbcRejected, match="no IBC host"):
        plain.notarise(ibc_tx(plain, client_msgs(b), salt=sha256(b"z")), [T0])


def test_checkpoint_time_not_before_ibc_execution() -> None:
    a, b = chain("corda-a"), chain("corda-b")
    a.checkpoint(T0)
    b.checkpoint(T0)
    a.notarise(ibc_tx(a, client_msgs(b), salt=sha256(b"w")), [T0 + 5 * SEC] * 4)
    with pytest.raises(NotaryError, match="precede"):
        a.checkpoint(T0 + 4 * SEC)
    assert a.checkpoint(T0 + 5 * SEC).checkpoint.height == 2


def test_transfer_sender_must_be_a_signer_of_the_command() -> None:
    from chains.corda.ibc_host import account_of
    from chains.ibc.apps.bank import StoreBank
    from kakehashi.ibc.v1 import transfer_pb2

    a = chain("corda-a")
    a.checkpoint(T0)
    victim = account_of(sha256(b"victim"))
    StoreBank(a.ibc_store).mint(victim, "jpy", 10)
    steal = transfer_pb2.MsgTransfer(source_port="transfer", source_channel="channel-0", denom="jpy", amount="10",
                                     sender=victim, receiver="thief", timeout_timestamp=T0 + 100 * SEC)
    with pytest.raises(NotaryError, match="sender must be the account of a signer"):
        a.notarise(ibc_tx(a, steal, salt=sha256(b"steal")), [T0 + SEC] * 4)
    assert StoreBank(a.ibc_store).balance(victim, "jpy") == 10
