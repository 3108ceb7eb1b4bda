"""The Corda leg of DvP: what a lock and an exit cost the notary cluster, against a Cash Move.

All three are notarised by the same 4-member validating cluster in the same run, so the
ratios are the comparable figures:
- move_us: a plain Cash Move (signatures, Cash contract, uniqueness);
- lock_us: the buyer's lock tx (Cash + DvpLock contracts, then MsgDvpSend through the IBC
  core: packet commitment and trade index written to the SMT);
- exit_us: a RefundOnError exit (the DvpLock checks, then MsgAcknowledgement with an ICS-23
  proof verified by the 10-qbft client of the EVM chain), one exit per tx;
- batched_exit_us: the same exits, ``batch`` per tx, per exit.
The acks are real: the packets are received by the EVM chain's dvp module (no escrow there,
so each gets an error ack), and the proofs come from that chain's committed state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chains.corda.cash import (
    ADMISSION,
    CASH,
    AdmissionContract,
    CashContract,
    admission_state,
    cash_state,
)
from chains.corda.dvp import (
    DVP,
    REFUND_ON_ERROR,
    DvpContract,
    exit_parts,
    install,
    lock_of,
    lock_transaction,
)
from chains.corda.ibc_host import IBC_CONTRACT, IbcHostContract, ibc_command
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import SECURITY_TOKEN_ADDRESS
from chains.ibc.apps.dvp import VERSION
from chains.ibc.context import to_proto
from chains.ibc.host import paths
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.crypto import ed25519_public_key, sha256
from tests.support.cordahost import CordaHost
from tests.support.evmhost import EvmHost
from tests.support.pair import make_pair

SEC = 1_000_000_000
ISSUER, BUYER, SELLER, RELAYER = (sha256(f"bench-dvp:{n}".encode()) for n in ("issuer", "buyer", "seller", "relayer"))
PK = {s: ed25519_public_key(s) for s in (ISSUER, BUYER, SELLER, RELAYER)}


class _Bench:
    def __init__(self) -> None:
        pair = make_pair("corda-evm")
        corda, evm = pair.a, pair.b
        assert isinstance(corda, CordaHost) and isinstance(evm, EvmHost)
        self.pair, self.corda, self.evm = pair, corda, evm
        corda.cluster.contracts = {CASH: CashContract(), ADMISSION: AdmissionContract(),
                                   IBC_CONTRACT: IbcHostContract(), DVP: DvpContract()}
        install(corda.handler)
        self.channel, _ = pair.open_channel(port="dvp", version=VERSION)
        self.notary = corda.cluster.identity
        self.salt_n = 0
        adm = self.wtx([], [admission_state(PK[ISSUER], [PK[BUYER], PK[SELLER]], self.notary)],
                       [pb.Command(contract=ADMISSION, name="Admit", signers=[PK[ISSUER]])], [])
        self.notarise(SignedTransaction(adm).sign(ISSUER))
        self.admission = pb.StateRef(txid=adm.txid, index=0)
        issue = self.wtx([], [cash_state(PK[ISSUER], PK[BUYER], 10**12, self.notary),
                              cash_state(PK[ISSUER], PK[SELLER], 10**12, self.notary)],
                         [pb.Command(contract=CASH, name="Issue", signers=[PK[ISSUER]])], [self.admission])
        self.notarise(SignedTransaction(issue).sign(ISSUER))
        self.buyer_cash = (pb.StateRef(txid=issue.txid, index=0), pb.Cash(issuer=PK[ISSUER], owner=PK[BUYER],
                                                                          amount=10**12))
        self.seller_cash = (pb.StateRef(txid=issue.txid, index=1), 10**12)
        self.seal()

    def salt(self) -> bytes:
        self.salt_n += 1
        return sha256(b"bench-dvp-salt" + self.salt_n.to_bytes(8, "big"))

    def wtx(self, inputs: list[pb.StateRef], outputs: list[pb.TransactionState], commands: list[pb.Command],
            references: list[pb.StateRef]) -> WireTransaction:
        return WireTransaction(inputs=tuple(inputs), outputs=tuple(outputs), commands=tuple(commands),
                               notary=self.notary, privacy_salt=self.salt(), references=tuple(references))

    def notarise(self, stx: SignedTransaction) -> None:
        self.corda.cluster.notarise(stx, [self.corda.now_ns] * len(self.corda.seeds))

    def seal(self) -> None:
        self.corda.next_block()
        self.corda._checkpoint()

    def move(self) -> None:
        ref, amount = self.seller_cash
        out = cash_state(PK[ISSUER], PK[SELLER], amount, self.notary)
        stx = SignedTransaction(self.wtx([ref], [out], [pb.Command(contract=CASH, name="Move",
                                                                   signers=[PK[SELLER]])], [self.admission]))
        self.notarise(stx.sign(SELLER))
        self.seller_cash = (pb.StateRef(txid=stx.txid, index=0), amount)

    def lock(self, trade_id: str) -> SignedTransaction:
        terms = dvp_pb2.Terms(trade_id=trade_id, security_token=SECURITY_TOKEN_ADDRESS, st_quantity=1,
                              cash_issuer=PK[ISSUER], sc_amount=1, seller_evm=b"\x01" * 20, buyer_evm=b"\x02" * 20,
                              seller_corda=PK[SELLER], buyer_corda=PK[BUYER],
                              deadline_ns=self.evm.now_ns + 3000 * SEC)
        stx = lock_transaction(terms, self.channel, self.evm.now_ns + 2000 * SEC, BUYER, [self.buyer_cash],
                               self.admission, self.notary, self.salt())
        self.notarise(stx)
        change = pb.Cash()
        change.ParseFromString(stx.wtx.outputs[2].data)
        self.buyer_cash = (pb.StateRef(txid=stx.txid, index=2), change)
        return stx


def _timed(fn: Callable[[int], object], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def run(quick: bool) -> dict[str, object]:
    n = 8 if quick else 64
    batch = 4 if quick else 16
    b = _Bench()
    move_us = _timed(lambda i: b.move(), n)
    locks: list[SignedTransaction] = []
    lock_us = _timed(lambda i: locks.append(b.lock(f"B-{i}")), 2 * n)
    b.seal()
    packets = [e.packet() for e in b.corda.events.of_type("send_packet") if e.text("src_port") == "dvp"]
    height = b.pair.update(b.evm)
    recvs = []
    for p in packets:
        assert p is not None
        proof = b.corda.prove(paths.packet_commitment("dvp", b.channel, p.sequence), height)
        recvs.append(chpb.MsgRecvPacket(packet=p, proof_commitment=proof, proof_height=to_proto(height),
                                        signer="relayer"))
    b.evm.tx(*recvs)
    acks = {e.packet().sequence: e.get("ack") for e in b.evm.events.of_type("write_acknowledgement")}  # type: ignore[union-attr]
    evm_height = b.pair.update(b.corda)
    exits = []
    for stx, p in zip(locks, packets, strict=True):
        assert p is not None
        ack = acks[p.sequence]
        assert ack is not None
        proof = b.evm.prove(paths.packet_ack("dvp", p.destination_channel, p.sequence), evm_height)
        msg = chpb.MsgAcknowledgement(packet=p, acknowledgement=ack, proof_acked=proof,
                                      proof_height=to_proto(evm_height), signer="relayer")
        lock = lock_of(stx.wtx.outputs[1])
        assert lock is not None
        exits.append((stx.txid, lock, msg))

    def one_exit_tx(group: list[tuple[bytes, dvp_pb2.DvpLock, chpb.MsgAcknowledgement]]) -> None:
        inputs: list[pb.StateRef] = []
        outputs: list[pb.TransactionState] = []
        commands: list[pb.Command] = []
        for txid, lock, msg in group:
            i, o, c = exit_parts(REFUND_ON_ERROR, pb.StateRef(txid=txid, index=1), lock,
                                 pb.StateRef(txid=txid, index=0), len(outputs), b.notary)
            inputs += i
            outputs += o
            commands += [*c, ibc_command(msg, [PK[RELAYER]])]
        b.notarise(SignedTransaction(b.wtx(inputs, outputs, commands, [b.admission])).sign(RELAYER))

    exit_us = _timed(lambda i: one_exit_tx([exits[i]]), n)
    rest = exits[n:]
    batched_us = _timed(lambda i: one_exit_tx(rest[i * batch:(i + 1) * batch]), len(rest) // batch) / batch
    return {
        "trades": 2 * n,
        "move_us": round(move_us, 1),
        "lock_us": round(lock_us, 1),
        "exit_us": round(exit_us, 1),
        "batch": batch,
        "batched_exit_us": round(batched_us, 1),
        "lock_ratio_to_move": round(lock_us / move_us, 2),
        "exit_ratio_to_move": round(exit_us / move_us, 2),
        "batched_exit_ratio_to_move": round(batched_us / move_us, 2),
    }
