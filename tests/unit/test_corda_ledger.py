"""Corda-style ledger: txids, tear-offs, encumbrances, the Cash contract and the notary cluster."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.corda import merkle, transaction
from chains.corda.cash import (
    ADMISSION,
    CASH,
    AdmissionContract,
    CashContract,
    admission_state,
    cash_state,
)
from chains.corda.contracts import Contract
from chains.corda.notary import DoubleSpend, NotaryCluster, NotaryError, TimeWindowError
from chains.corda.transaction import (
    ComponentGroup,
    SignedTransaction,
    TransactionError,
    WireTransaction,
    component_hash,
    decode_filtered,
    nonce,
    state_ref,
    verify_filtered,
)
from kakehashi.corda.v1 import ledger_pb2 as pb
from lightclients.crypto import ed25519_public_key, sha256

T0 = 1_700_000_000_000_000_000


def seed(name: str) -> bytes:
    return sha256(b"kakehashi-test:" + name.encode())


ISSUER, FIRM_A, FIRM_B, OUTSIDER = (seed(n) for n in ("issuer", "firm-a", "firm-b", "outsider"))
PK = {s: ed25519_public_key(s) for s in (ISSUER, FIRM_A, FIRM_B, OUTSIDER)}
NOTARY_ID = sha256(b"notary-service")
CONTRACTS: dict[str, Contract] = {CASH: CashContract(), ADMISSION: AdmissionContract()}
_salt_counter = [0]


def salt() -> bytes:
    _salt_counter[0] += 1
    return sha256(b"salt" + _salt_counter[0].to_bytes(8, "big"))


def cmd(contract: str, name: str, *signers: bytes, data: bytes = b"") -> pb.Command:
    return pb.Command(contract=contract, name=name, data=data, signers=[PK[s] for s in signers])


def tx(inputs=(), outputs=(), commands=(), references=(), time_window=None) -> WireTransaction:  # type: ignore[no-untyped-def]
    return WireTransaction(
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        commands=tuple(commands),
        notary=NOTARY_ID,
        privacy_salt=salt(),
        references=tuple(references),
        time_window=time_window,
    )


def cluster(n: int = 4) -> NotaryCluster:
    return NotaryCluster("corda-test", NOTARY_ID, [seed(f"notary-{i}") for i in range(n)], CONTRACTS)


def clocks(c: NotaryCluster, now: int = T0) -> list[int]:
    return [now] * len(c.member_seeds)


class Ledger:
    """An issuer that admitted firms A and B and issued them cash."""

    def __init__(self) -> None:
        self.c = cluster()
        adm = tx(outputs=[admission_state(PK[ISSUER], [PK[FIRM_A], PK[FIRM_B]], NOTARY_ID)],
                 commands=[cmd(ADMISSION, "Admit", ISSUER)])
        self.admission = state_ref(self.c_notarise(SignedTransaction(adm).sign(ISSUER)), 0)
        issue = tx(
            outputs=[cash_state(PK[ISSUER], PK[FIRM_A], 100, NOTARY_ID), cash_state(PK[ISSUER], PK[FIRM_B], 50, NOTARY_ID)],
            commands=[cmd(CASH, "Issue", ISSUER)],
            references=[self.admission],
        )
        self.issue_id = self.c_notarise(SignedTransaction(issue).sign(ISSUER))

    def c_notarise(self, stx: SignedTransaction, now: int = T0) -> bytes:
        self.c.notarise(stx, clocks(self.c, now))
        return stx.txid


# --- txid and tear-offs ----------------------------------------------------------------------


def test_txid_golden_preimage() -> None:
    """Pins the documented preimage: leaf = sha256(nonce || component), nonce from salt, group, index."""
    w = WireTransaction(inputs=(), outputs=(cash_state(b"\x01" * 32, b"\x02" * 32, 7, NOTARY_ID),),
                        commands=(), notary=NOTARY_ID, privacy_salt=b"\x05" * 32)
    out = w.outputs[0].SerializeToString(deterministic=True)
    leaf = component_hash(sha256(b"\x05" * 32 + (1).to_bytes(4, "big") + (0).to_bytes(4, "big")), out)
    notary_leaf = component_hash(nonce(b"\x05" * 32, 4, 0), pb.Notary(notary=NOTARY_ID).SerializeToString())
    roots = [merkle.ALL_ONES_HASH] * 8
    roots[ComponentGroup.OUTPUTS] = leaf
    roots[ComponentGroup.NOTARY] = notary_leaf
    assert w.txid == merkle.merkle_root(roots)
    # Golden value: a change to any part of the preimage shows up here.
    assert w.txid.hex() == "52c776d4170ee960dc0a660aa5714b40bd05c23a5313fe16e84b23c4bbe84316"


def test_salt_changes_txid_and_zero_salt_rejected() -> None:
    a = tx(outputs=[cash_state(PK[ISSUER], PK[FIRM_A], 1, NOTARY_ID)])
    b = WireTransaction(inputs=(), outputs=a.outputs, commands=(), notary=NOTARY_ID, privacy_salt=salt())
    assert a.txid != b.txid
    with pytest.raises(TransactionError):
        WireTransaction(inputs=(), outputs=(), commands=(), notary=NOTARY_ID, privacy_salt=bytes(32))


def _three_outputs() -> WireTransaction:
    return tx(
        inputs=[state_ref(b"\x09" * 32, 0)],
        outputs=[cash_state(PK[ISSUER], PK[FIRM_A], amt, NOTARY_ID) for amt in (11, 22, 33)],
        commands=[cmd(CASH, "Move", FIRM_A)],
    )


def test_tear_off_proves_one_output_without_revealing_others() -> None:
    w = _three_outputs()
    ftx = w.tear_off([(ComponentGroup.OUTPUTS, 1)])
    revealed = verify_filtered(decode_filtered(ftx.SerializeToString()))
    assert revealed == {(1, 1): w.outputs[1].SerializeToString(deterministic=True)}
    wire = ftx.SerializeToString()
    for hidden in (w.outputs[0], w.outputs[2], w.inputs[0], w.commands[0]):
        assert hidden.SerializeToString(deterministic=True) not in wire
    # Swapping in a different output, or claiming another txid, fails.
    forged = pb.FilteredTransaction()
    forged.CopyFrom(ftx)
    forged.groups[0].components[0].component = w.outputs[2].SerializeToString(deterministic=True)
    with pytest.raises(TransactionError):
        verify_filtered(forged)
    forged.CopyFrom(ftx)
    forged.txid = b"\x00" * 32
    with pytest.raises(TransactionError):
        verify_filtered(forged)


def test_tear_off_refuses_extra_or_missing_siblings() -> None:
    w = _three_outputs()
    ftx = w.tear_off([(ComponentGroup.OUTPUTS, 0)])
    extra = pb.FilteredTransaction()
    extra.CopyFrom(ftx)
    extra.groups[0].siblings.add(level=0, index=3, hash=bytes(32))
    with pytest.raises(TransactionError, match="does not need"):
        verify_filtered(extra)
    short = pb.FilteredTransaction()
    short.CopyFrom(ftx)
    del short.groups[0].siblings[0]
    with pytest.raises(TransactionError, match="lacks"):
        verify_filtered(short)


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(st.integers(1, 2**40), min_size=1, max_size=9),
    picks=st.sets(st.integers(0, 8), min_size=1, max_size=9),
    also_commands=st.booleans(),
    tamper=st.integers(0, 2**16),
)
def test_tear_off_property(amounts: list[int], picks: set[int], also_commands: bool, tamper: int) -> None:
    w = tx(outputs=[cash_state(PK[ISSUER], PK[FIRM_A], a, NOTARY_ID) for a in amounts],
           commands=[cmd(CASH, "Issue", ISSUER)])
    chosen = sorted({p % len(amounts) for p in picks})
    reveal = [(int(ComponentGroup.OUTPUTS), i) for i in chosen]
    if also_commands:
        reveal.append((int(ComponentGroup.COMMANDS), 0))
    ftx = w.tear_off(reveal)
    revealed = verify_filtered(ftx)
    assert set(revealed) == set(reveal)
    for i in range(len(amounts)):
        if i not in chosen and w.outputs[i] not in [w.outputs[j] for j in chosen]:
            assert w.outputs[i].SerializeToString(deterministic=True) not in ftx.SerializeToString()
    # Flipping one byte of any revealed component breaks the proof.
    comps = [c for g in ftx.groups for c in g.components]
    target = comps[tamper % len(comps)]
    pos = tamper % len(target.component)
    target.component = target.component[:pos] + bytes([target.component[pos] ^ 1]) + target.component[pos + 1 :]
    with pytest.raises(TransactionError):
        verify_filtered(ftx)


# --- notary cluster --------------------------------------------------------------------------


def test_move_notarised_and_double_spend_rejected_naming_conflict() -> None:
    led = Ledger()
    src = state_ref(led.issue_id, 0)
    move1 = tx(inputs=[src], outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 100, NOTARY_ID)],
               commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    assert len(led.c.notarise(SignedTransaction(move1).sign(FIRM_A), clocks(led.c)).approvals) == 4
    move2 = tx(inputs=[src], outputs=[cash_state(PK[ISSUER], PK[FIRM_A], 100, NOTARY_ID)],
               commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    with pytest.raises(DoubleSpend) as err:
        led.c.notarise(SignedTransaction(move2).sign(FIRM_A), clocks(led.c))
    assert err.value.conflicting_txid == move1.txid
    assert move1.txid.hex() in str(err.value)
    assert led.c.ledger.notarised_at(move2.txid) is None


def test_missing_required_signature_rejected() -> None:
    led = Ledger()
    move = tx(inputs=[state_ref(led.issue_id, 0)], outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 100, NOTARY_ID)],
              commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    with pytest.raises(NotaryError, match="missing required signature"):
        led.c.notarise(SignedTransaction(move).sign(FIRM_B), clocks(led.c))
    # A required signer that signed something else is no better.
    stx = SignedTransaction(move)
    stx.sigs[PK[FIRM_A]] = bytes(64)
    with pytest.raises(NotaryError, match="invalid signature"):
        led.c.notarise(stx, clocks(led.c))
    issued = led.c.ledger.output(led.issue_id, 0)
    assert issued is not None and issued.consumed_by is None


def test_signatures_are_verified_once_per_tx_not_per_member(monkeypatch: pytest.MonkeyPatch) -> None:
    led = Ledger()
    calls: list[bytes] = []
    real = transaction.ed25519_verify

    def counted(key: bytes, message: bytes, signature: bytes) -> bool:
        calls.append(key)
        return real(key, message, signature)

    monkeypatch.setattr(transaction, "ed25519_verify", counted)
    move = tx(inputs=[state_ref(led.issue_id, 0)], outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 100, NOTARY_ID)],
              commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    stx = SignedTransaction(move).sign(FIRM_A)
    assert len(led.c.notarise(stx, clocks(led.c)).approvals) == 4
    assert calls == [PK[FIRM_A]]  # one signature, one verification, for four members
    # The verdict is kept for the signatures it was made for only: a forged one is checked anew.
    other = tx(inputs=[state_ref(led.issue_id, 1)], outputs=[cash_state(PK[ISSUER], PK[FIRM_A], 50, NOTARY_ID)],
               commands=[cmd(CASH, "Move", FIRM_B)], references=[led.admission])
    forged = SignedTransaction(other).sign(FIRM_B)
    forged.check_signatures()
    forged.sigs[PK[FIRM_B]] = bytes(64)
    with pytest.raises(NotaryError, match="invalid signature"):
        led.c.notarise(forged, clocks(led.c))


def test_contracts_run_once_per_tx_and_each_member_keeps_its_own_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    from chains.corda import notary

    led = Ledger()
    runs: list[bytes] = []
    real = notary.verify_ledger

    def counted(ltx: object, contracts: object) -> None:
        runs.append(getattr(ltx, "txid", b""))
        real(ltx, contracts)  # type: ignore[arg-type]

    monkeypatch.setattr(notary, "verify_ledger", counted)
    move = tx(inputs=[state_ref(led.issue_id, 0)], outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 100, NOTARY_ID)],
              commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    stx = SignedTransaction(move).sign(FIRM_A)
    assert len(led.c.notarise(stx, clocks(led.c)).approvals) == 4
    assert runs == [stx.txid]  # one contract run serves the four members
    # a member whose clock is outside the time window still refuses on its own
    later = tx(inputs=[state_ref(led.issue_id, 1)], outputs=[cash_state(PK[ISSUER], PK[FIRM_A], 50, NOTARY_ID)],
               commands=[cmd(CASH, "Move", FIRM_B)], references=[led.admission],
               time_window=pb.TimeWindow(from_ns=0, until_ns=T0 + 1000))
    skewed = [T0 + 10**12, *clocks(led.c)[1:]]
    assert len(led.c.notarise(SignedTransaction(later).sign(FIRM_B), skewed).approvals) == 3


def test_owner_must_sign_even_if_command_omits_them() -> None:
    led = Ledger()
    move = tx(inputs=[state_ref(led.issue_id, 0)], outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 100, NOTARY_ID)],
              commands=[cmd(CASH, "Move", FIRM_B)], references=[led.admission])
    with pytest.raises(NotaryError, match="owner"):
        led.c.notarise(SignedTransaction(move).sign(FIRM_B), clocks(led.c))


def test_time_window_checked_against_each_notary_clock() -> None:
    led = Ledger()
    window = pb.TimeWindow(from_ns=T0, until_ns=T0 + 10)
    move = tx(inputs=[state_ref(led.issue_id, 0)], outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 100, NOTARY_ID)],
              commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission], time_window=window)
    stx = SignedTransaction(move).sign(FIRM_A)
    with pytest.raises(TimeWindowError):
        led.c.notarise(stx, clocks(led.c, T0 + 10))
    with pytest.raises(TimeWindowError):
        led.c.notarise(stx, clocks(led.c, T0 - 1))
    # Two of four members with a late clock: 2 < 3, refused; one late member: quorum of 3.
    with pytest.raises(TimeWindowError):
        led.c.notarise(stx, [T0, T0, T0 + 99, T0 + 99])
    assert len(led.c.notarise(stx, [T0, T0 + 5, T0 + 9, T0 + 99]).approvals) == 3


def test_non_admitted_party_cannot_receive_cash() -> None:
    led = Ledger()
    move = tx(inputs=[state_ref(led.issue_id, 0)], outputs=[cash_state(PK[ISSUER], PK[OUTSIDER], 100, NOTARY_ID)],
              commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    with pytest.raises(NotaryError, match="not admitted"):
        led.c.notarise(SignedTransaction(move).sign(FIRM_A), clocks(led.c))
    # Without the admission reference not even an admitted firm can receive.
    move = tx(inputs=[state_ref(led.issue_id, 0)], outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 100, NOTARY_ID)],
              commands=[cmd(CASH, "Move", FIRM_A)])
    with pytest.raises(NotaryError, match="not admitted"):
        led.c.notarise(SignedTransaction(move).sign(FIRM_A), clocks(led.c))


def test_amounts_conserved_and_only_issuer_issues() -> None:
    led = Ledger()
    inflate = tx(inputs=[state_ref(led.issue_id, 0)], outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 101, NOTARY_ID)],
                 commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    with pytest.raises(NotaryError, match="conserve"):
        led.c.notarise(SignedTransaction(inflate).sign(FIRM_A), clocks(led.c))
    fake = tx(outputs=[cash_state(PK[ISSUER], PK[FIRM_A], 5, NOTARY_ID)], commands=[cmd(CASH, "Issue", FIRM_A)],
              references=[led.admission])
    with pytest.raises(NotaryError, match="issuer"):
        led.c.notarise(SignedTransaction(fake).sign(FIRM_A), clocks(led.c))


def test_redeem_by_issuer_and_owner() -> None:
    led = Ledger()
    redeem = tx(inputs=[state_ref(led.issue_id, 1)], outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 20, NOTARY_ID)],
                commands=[cmd(CASH, "Redeem", ISSUER, FIRM_B, data=pb.CashRedeem(amount=30).SerializeToString())],
                references=[led.admission])
    led.c.notarise(SignedTransaction(redeem).sign(ISSUER).sign(FIRM_B), clocks(led.c))
    wrong = tx(inputs=[state_ref(redeem.txid, 0)], outputs=[],
               commands=[cmd(CASH, "Redeem", ISSUER, FIRM_B, data=pb.CashRedeem(amount=19).SerializeToString())])
    with pytest.raises(NotaryError, match="redeemed amount"):
        led.c.notarise(SignedTransaction(wrong).sign(ISSUER).sign(FIRM_B), clocks(led.c))


# --- encumbrances ----------------------------------------------------------------------------


def _locked_pair(led: Ledger) -> WireTransaction:
    """Firm A's cash split into two outputs that encumber each other (a complete cycle)."""
    lock = tx(inputs=[state_ref(led.issue_id, 0)],
              outputs=[cash_state(PK[ISSUER], PK[FIRM_A], 60, NOTARY_ID, encumbrance=1),
                       cash_state(PK[ISSUER], PK[FIRM_A], 40, NOTARY_ID, encumbrance=0)],
              commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    led.c.notarise(SignedTransaction(lock).sign(FIRM_A), clocks(led.c))
    return lock


def test_encumbered_state_spent_without_its_encumbrance_rejected() -> None:
    led = Ledger()
    lock = _locked_pair(led)
    alone = tx(inputs=[state_ref(lock.txid, 0)], outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 60, NOTARY_ID)],
               commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    with pytest.raises(NotaryError, match="encumbered"):
        led.c.notarise(SignedTransaction(alone).sign(FIRM_A), clocks(led.c))
    both = tx(inputs=[state_ref(lock.txid, 0), state_ref(lock.txid, 1)],
              outputs=[cash_state(PK[ISSUER], PK[FIRM_B], 100, NOTARY_ID)],
              commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    led.c.notarise(SignedTransaction(both).sign(FIRM_A), clocks(led.c))


@pytest.mark.parametrize(
    ("encs", "match"),
    [
        ([1, None], "complete cycles"),  # half a cycle: 0 -> 1 but 1 points nowhere
        ([1, 2, 1], "complete cycles"),  # 0 is not anyone's encumbrance
        ([0, None], "itself"),
        ([5, None], "not an output"),
    ],
)
def test_output_encumbrances_must_form_complete_cycles(encs: list[int | None], match: str) -> None:
    led = Ledger()
    outs = [cash_state(PK[ISSUER], PK[FIRM_A], 10, NOTARY_ID, encumbrance=e) for e in encs]
    outs[-1] = cash_state(PK[ISSUER], PK[FIRM_A], 100 - 10 * (len(encs) - 1), NOTARY_ID, encumbrance=encs[-1])
    bad = tx(inputs=[state_ref(led.issue_id, 0)], outputs=outs, commands=[cmd(CASH, "Move", FIRM_A)],
             references=[led.admission])
    with pytest.raises(NotaryError, match=match):
        led.c.notarise(SignedTransaction(bad).sign(FIRM_A), clocks(led.c))


def test_encumbrance_cycle_under_one_notary() -> None:
    from chains.corda.contracts import ContractError, check_output_encumbrances

    mixed = [cash_state(PK[ISSUER], PK[FIRM_A], 60, NOTARY_ID, encumbrance=1),
             cash_state(PK[ISSUER], PK[FIRM_A], 40, sha256(b"other-notary"), encumbrance=0)]
    with pytest.raises(ContractError, match="different notaries"):
        check_output_encumbrances(mixed)
    led = Ledger()
    other = cash_state(PK[ISSUER], PK[FIRM_A], 40, sha256(b"other-notary"), encumbrance=0)
    bad = tx(inputs=[state_ref(led.issue_id, 0)],
             outputs=[cash_state(PK[ISSUER], PK[FIRM_A], 60, NOTARY_ID, encumbrance=1), other],
             commands=[cmd(CASH, "Move", FIRM_A)], references=[led.admission])
    with pytest.raises(NotaryError, match="notar"):
        led.c.notarise(SignedTransaction(bad).sign(FIRM_A), clocks(led.c))


def test_unknown_state_and_wrong_notary_rejected() -> None:
    led = Ledger()
    ghost = tx(inputs=[state_ref(b"\x07" * 32, 0)], outputs=[], commands=[cmd(CASH, "Move", FIRM_A)])
    with pytest.raises(NotaryError, match="not on this ledger"):
        led.c.notarise(SignedTransaction(ghost).sign(FIRM_A), clocks(led.c))
    elsewhere = WireTransaction(inputs=(), outputs=(), commands=(), notary=sha256(b"x"), privacy_salt=salt())
    with pytest.raises(NotaryError, match="different notary"):
        led.c.notarise(SignedTransaction(elsewhere), clocks(led.c))


# --- checkpoints -----------------------------------------------------------------------------


def test_checkpoints_chain_and_commit_txs() -> None:
    led = Ledger()
    cp1 = led.c.checkpoint(T0 + 1)
    assert cp1.checkpoint.height == 1
    assert cp1.checkpoint.tx_root == merkle.merkle_root([led.admission.txid, led.issue_id])
    cp2 = led.c.checkpoint(T0 + 2)
    from lightclients.corda.checkpoint import checkpoint_hash

    assert cp2.checkpoint.prev_hash == checkpoint_hash(cp1.checkpoint)
    assert cp2.checkpoint.tx_root == merkle.ZERO_HASH
    with pytest.raises(NotaryError, match="increase"):
        led.c.checkpoint(T0 + 2)


def test_signed_transaction_wire_roundtrip_and_malformed_input() -> None:
    w = tx(inputs=[state_ref(b"\x09" * 32, 1)], outputs=[cash_state(PK[ISSUER], PK[FIRM_A], 5, NOTARY_ID, encumbrance=0)],
           commands=[cmd(CASH, "Move", FIRM_A)], time_window=pb.TimeWindow(until_ns=T0))
    stx = SignedTransaction(w).sign(FIRM_A).sign(ISSUER)
    back = SignedTransaction.decode(stx.encode())
    assert back.txid == stx.txid and back.sigs == stx.sigs and back.wtx.time_window == w.time_window
    assert SignedTransaction.decode(SignedTransaction(tx(outputs=[])).encode()).wtx.time_window is None
    for junk in (b"\xff\xff", b"\x0a\x02\x2a\x00", b""):
        with pytest.raises(TransactionError):
            SignedTransaction.decode(junk)
