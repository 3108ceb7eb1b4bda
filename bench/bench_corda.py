"""Corda chain and client costs, each read as a ratio to a bare Ed25519 verify in the same run.

- notarise_move_us: one Cash Move through a 4-member validating cluster (every member checks
  signatures and contracts, then signs), so it is roughly 4 x (verify + sign) plus Python.
- checkpoint_verify: the light client's verify_client_message on an adjacent header signed by
  all n notaries, against a loop of the same n bare ed25519_verify calls timed around it;
  overhead = ratio - 1 (target <= 25%).
- smt_*: ICS-23 SMT membership / non-membership verification against a 1,000-key store.
"""

from __future__ import annotations

from bench.timing import per_call_us
from chains.corda.cash import (
    ADMISSION,
    CASH,
    AdmissionContract,
    CashContract,
    admission_state,
    cash_state,
)
from chains.corda.contracts import Contract
from chains.corda.notary import NotaryCluster
from chains.corda.transaction import SignedTransaction, WireTransaction, state_ref
from kakehashi.corda.v1 import ledger_pb2 as pb
from kakehashi.corda.v1 import lightclient_pb2 as lc
from lightclients import crypto, ics23
from lightclients.corda.checkpoint import checkpoint_hash, quorum
from lightclients.corda.client import (
    CordaLightClient,
    consensus_state_from_checkpoint,
    encode,
    header_message,
)
from lightclients.interface import MemoryClientStore

T0 = 1_700_000_000 * 10**9
CONTRACTS: dict[str, Contract] = {CASH: CashContract(), ADMISSION: AdmissionContract()}
NOTARY_ID = crypto.sha256(b"bench-notary")


def _seed(name: str) -> bytes:
    return crypto.sha256(name.encode())


def _cluster(n: int) -> NotaryCluster:
    return NotaryCluster("bench", NOTARY_ID, [_seed(f"n{i}") for i in range(n)], CONTRACTS)


def _salt(i: int) -> bytes:
    return crypto.sha256(b"salt" + i.to_bytes(8, "big"))


def _notarisation(min_seconds: float) -> float:
    issuer, a, b = _seed("issuer"), _seed("a"), _seed("b")
    pk = {s: crypto.ed25519_public_key(s) for s in (issuer, a, b)}
    c = _cluster(4)
    now = [T0] * 4

    def cmd(name: str, *signers: bytes) -> pb.Command:
        return pb.Command(contract=CASH if name != "Admit" else ADMISSION, name=name, signers=[pk[s] for s in signers])

    adm = WireTransaction((), (admission_state(pk[issuer], [pk[a], pk[b]], NOTARY_ID),), (cmd("Admit", issuer),),
                          NOTARY_ID, _salt(0))
    c.notarise(SignedTransaction(adm).sign(issuer), now)
    ref = state_ref(adm.txid, 0)
    counter = [1]
    owners = [a, b]

    def issue_then_move() -> None:
        i = counter[0]
        counter[0] += 1
        owner, to = owners[i % 2], owners[(i + 1) % 2]
        issue = WireTransaction((), (cash_state(pk[issuer], pk[owner], 10, NOTARY_ID),), (cmd("Issue", issuer),),
                                NOTARY_ID, _salt(2 * i), references=(ref,))
        c.notarise(SignedTransaction(issue).sign(issuer), now)
        move = WireTransaction((state_ref(issue.txid, 0),), (cash_state(pk[issuer], pk[to], 10, NOTARY_ID),),
                               (cmd("Move", owner),), NOTARY_ID, _salt(2 * i + 1), references=(ref,))
        c.notarise(SignedTransaction(move).sign(owner), now)

    return per_call_us(issue_then_move, min_seconds=min_seconds, max_calls=2000) / 2


def _checkpoint_verify(n: int, min_seconds: float) -> dict[str, float]:
    c = _cluster(n)
    g = c.checkpoint(T0)
    store = MemoryClientStore()
    cs = lc.ClientState(chain_id="bench", notary_keys=g.notary_set, threshold=quorum(n), latest_height=1,
                        trusting_period=3600 * 10**9, max_clock_drift=10**10)
    client = CordaLightClient()
    client.initialize(store, encode(cs), encode(consensus_state_from_checkpoint(g.checkpoint)), T0)
    signed = c.checkpoint(T0 + 1)
    msg = header_message(signed.header(1))
    client.verify_client_message(store, msg, T0 + 1)
    digest = checkpoint_hash(signed.checkpoint)
    pairs = [(bytes(s.public_key), bytes(s.signature)) for s in signed.signatures]

    def bare() -> None:
        for key, sig in pairs:
            crypto.ed25519_verify(key, digest, sig)

    # The bare loop is timed before and after the client, so drift in machine load hits both.
    before = per_call_us(bare, min_seconds=min_seconds)
    us = per_call_us(lambda: client.verify_client_message(store, msg, T0 + 1), min_seconds=min_seconds)
    bare_us = (before + per_call_us(bare, min_seconds=min_seconds)) / 2
    return {"verify_us": round(us, 1), "bare_n_ed25519_us": round(bare_us, 1),
            "ratio_to_n_ed25519": round(us / bare_us, 3), "overhead_pct": round((us / bare_us - 1) * 100, 1)}


def _smt(min_seconds: float) -> dict[str, float]:
    c = _cluster(4)
    for i in range(1000):
        c.ibc_store.set(f"commitments/ports/transfer/channels/channel-0/sequences/{i}".encode(), crypto.sha256(bytes(i)))
    root = c.ibc_store.commit()
    key = b"commitments/ports/transfer/channels/channel-0/sequences/500"
    absent = b"receipts/ports/transfer/channels/channel-0/sequences/1"
    p_in = c.ibc_store.prove_bytes(key)
    p_out = c.ibc_store.prove_bytes(absent)
    value = crypto.sha256(bytes(500))
    assert ics23.verify_membership(ics23.SMT_SPEC, root, p_in, key, value)
    assert ics23.verify_non_membership(ics23.SMT_SPEC, root, p_out, absent)
    return {
        "membership_us": round(per_call_us(lambda: ics23.verify_membership(ics23.SMT_SPEC, root, p_in, key, value),
                                           min_seconds=min_seconds), 1),
        "non_membership_us": round(per_call_us(lambda: ics23.verify_non_membership(ics23.SMT_SPEC, root, p_out, absent),
                                               min_seconds=min_seconds), 1),
        "membership_proof_bytes": len(p_in),
        "non_membership_proof_bytes": len(p_out),
    }


def run(quick: bool) -> dict[str, object]:
    min_seconds = 0.1 if quick else 0.5
    seed = _seed("ed")
    pub = crypto.ed25519_public_key(seed)
    digest = checkpoint_hash(lc.Checkpoint(chain_id="bench", height=1))
    sig = crypto.ed25519_sign(seed, digest)
    assert crypto.ed25519_verify(pub, digest, sig)
    ed_us = per_call_us(lambda: crypto.ed25519_verify(pub, digest, sig), min_seconds=min_seconds)
    notarise_us = _notarisation(min_seconds)
    smt = _smt(min_seconds)
    return {
        "ed25519_verify_us": round(ed_us, 1),
        "notarise_tx_4_members_us": round(notarise_us, 1),
        "notarise_ratio_to_ed25519": round(notarise_us / ed_us, 1),
        "checkpoint_verify": {str(n): _checkpoint_verify(n, min_seconds) for n in (4, 7, 31)},
        "smt_1000_keys": smt,
        "smt_membership_ratio_to_ed25519": round(smt["membership_us"] / ed_us, 3),
    }
