"""The wholesale stablecoin: Cash states and the issuer's Admission list.

Wholesale means only parties the issuer admitted (securities firms) may hold the coin. The
admitted set is an Admission state of the issuer; a transaction that creates Cash owned by
anyone but the issuer must carry that Admission as a reference input naming every new owner,
so admission is checked against notarised ledger data rather than an off-ledger list.
Commands (contract "Cash"): Issue (issuer signs), Move (every input owner signs), Redeem
(issuer and every input owner sign; inputs - outputs = redeemed amount). Amounts are
conserved per (issuer, brand) on Move.

Brands: an issuer (an SC trust) may issue several stablecoins for different purposes. A
brand is a name on the Cash state, so the coin is the pair (issuer, brand): only the issuer
can create it (Issue needs its signature), no Move can turn one brand into another (amounts
are conserved per pair), and each brand has its own Admission (Admission.brand), so being
admitted to one brand admits nobody to another. Why on the state rather than in a registry
of names: the issuer's key already namespaces what it issues, so no party has to own a
global name table, and every contract check is a comparison of fields of the states in the
transaction. "" is the unnamed brand (states written before brands existed).

DvP escrow: Cash owned by ``DVP_ESCROW_OWNER`` (a hash nobody holds a key for) is the buyer's
stablecoin locked for one trade. Its guard is not a signature but the DvpLock it is cycled
with: such Cash must be encumbered by a ``DvP`` state whenever it is created or consumed, so
the ledger forces the DvpLock contract (chains/corda/dvp.py) to run on every transaction that
touches it, and that contract allows only the lock and its three exits. Because the encumbrance
is the guard, escrow Cash needs no owner signature to move, and the escrow, holding only in
trust, needs no admission. It moves only under Move, so it is never issued or redeemed. The two
names live here rather than in dvp.py because the Cash rules must recognise them and dvp.py
builds on this module; dvp.py re-exports them.
"""

from __future__ import annotations

import re
from collections import defaultdict

from google.protobuf.message import DecodeError

from chains.corda.contracts import ContractError, LedgerTransaction
from kakehashi.corda.v1 import ledger_pb2 as pb
from lightclients.crypto import sha256

CASH = "Cash"
ADMISSION = "Admission"
DVP = "DvP"
DVP_ESCROW_OWNER = sha256(b"kakehashi.corda.dvp-escrow")
_U64 = 2**64
_BRAND = re.compile(r"[A-Za-z0-9._-]{0,32}")


def valid_brand(brand: str) -> bool:
    return _BRAND.fullmatch(brand) is not None


def brand_key(issuer: bytes, brand: str) -> str:
    """How node queries name a coin: the issuer's hex key, then ``/brand`` for a named brand
    (the unnamed brand keeps the bare key that answers used before brands)."""
    return issuer.hex() if not brand else f"{issuer.hex()}/{brand}"


def parse_cash(state: pb.TransactionState) -> pb.Cash:
    cash = pb.Cash()
    try:
        cash.ParseFromString(state.data)
    except DecodeError:
        raise ContractError("Cash state data does not decode") from None
    if len(cash.issuer) != 32 or len(cash.owner) != 32 or cash.amount == 0:
        raise ContractError("Cash needs a 32-byte issuer and owner and a positive amount")
    if not valid_brand(cash.brand):
        raise ContractError("Cash brand must be 0-32 characters of [A-Za-z0-9._-]")
    return cash


def _parse_admission(state: pb.TransactionState) -> pb.Admission:
    adm = pb.Admission()
    try:
        adm.ParseFromString(state.data)
    except DecodeError:
        raise ContractError("Admission state data does not decode") from None
    if len(adm.issuer) != 32:
        raise ContractError("Admission needs a 32-byte issuer")
    if not valid_brand(adm.brand):
        raise ContractError("Admission brand must be 0-32 characters of [A-Za-z0-9._-]")
    return adm


def cash_state(issuer: bytes, owner: bytes, amount: int, notary: bytes, encumbrance: int | None = None,
               brand: str = "") -> pb.TransactionState:
    data = pb.Cash(issuer=issuer, owner=owner, amount=amount, brand=brand).SerializeToString(deterministic=True)
    st = pb.TransactionState(contract=CASH, data=data, participants=[owner], notary=notary)
    if encumbrance is not None:
        st.has_encumbrance = True
        st.encumbrance = encumbrance
    return st


def admission_state(issuer: bytes, holders: list[bytes], notary: bytes, brand: str = "") -> pb.TransactionState:
    data = pb.Admission(issuer=issuer, holders=holders, brand=brand).SerializeToString(deterministic=True)
    return pb.TransactionState(contract=ADMISSION, data=data, participants=[issuer], notary=notary)


class AdmissionContract:
    """The issuer alone creates or replaces its admission list (command Admit)."""

    name = ADMISSION

    def verify(self, ltx: LedgerTransaction) -> None:
        cmds = ltx.commands_for(ADMISSION)
        if len(cmds) != 1 or cmds[0].name != "Admit":
            raise ContractError("Admission states change only under exactly one Admit command")
        for st in [*ltx.inputs_of(ADMISSION), *ltx.outputs_of(ADMISSION)]:
            adm = _parse_admission(st)
            if adm.issuer not in ltx.signers or adm.issuer not in cmds[0].signers:
                raise ContractError("only the issuer may change its admission list")


class CashContract:
    name = CASH

    def _admitted(self, ltx: LedgerTransaction) -> dict[tuple[bytes, str], set[bytes]]:
        admitted: dict[tuple[bytes, str], set[bytes]] = defaultdict(set)
        for ref in ltx.references:
            if ref.state.contract == ADMISSION:
                adm = _parse_admission(ref.state)
                admitted[(bytes(adm.issuer), adm.brand)].update(bytes(h) for h in adm.holders)
        return admitted

    @staticmethod
    def _check_escrow(ltx: LedgerTransaction, cmd: pb.Command) -> None:
        """Escrow Cash is always cycled with a DvpLock, as an output and as an input."""
        touched = False
        for i, st in enumerate(ltx.outputs):
            if st.contract == CASH and bytes(parse_cash(st).owner) == DVP_ESCROW_OWNER:
                touched = True
                enc = int(st.encumbrance)
                if not st.has_encumbrance or enc >= len(ltx.outputs) or ltx.outputs[enc].contract != DVP:
                    raise ContractError(f"escrow cash output {i} must be encumbered by a DvP lock output")
        inputs = {(bytes(s.ref.txid), int(s.ref.index)): s.state for s in ltx.inputs}
        for s in ltx.inputs:
            if s.state.contract == CASH and bytes(parse_cash(s.state).owner) == DVP_ESCROW_OWNER:
                touched = True
                lock = inputs.get((bytes(s.ref.txid), int(s.state.encumbrance)))
                if not s.state.has_encumbrance or lock is None or lock.contract != DVP:
                    raise ContractError("escrow cash may only be consumed together with the DvP lock encumbering it")
        if touched and cmd.name != "Move":
            raise ContractError("escrow cash is created and consumed only by a Move")

    def verify(self, ltx: LedgerTransaction) -> None:
        # Identical commands count once: a relayer batching several DvP exits brings one
        # signer-less Move per exit, and they mean the same thing.
        cmds = list({c.SerializeToString(deterministic=True): c for c in ltx.commands_for(CASH)}.values())
        if len(cmds) != 1:
            raise ContractError("a Cash transaction needs exactly one Cash command")
        cmd = cmds[0]
        ins = [parse_cash(s) for s in ltx.inputs_of(CASH)]
        outs = [parse_cash(s) for s in ltx.outputs_of(CASH)]
        signers = set(ltx.signers) & {bytes(k) for k in cmd.signers}
        admitted = self._admitted(ltx)
        self._check_escrow(ltx, cmd)
        for o in outs:
            if o.owner in (o.issuer, DVP_ESCROW_OWNER):
                continue
            if bytes(o.owner) not in admitted[(bytes(o.issuer), o.brand)]:
                raise ContractError(
                    f"{o.owner.hex()[:16]} is not admitted to hold this issuer's cash of brand {o.brand!r}")
        in_sum: dict[tuple[bytes, str], int] = defaultdict(int)
        out_sum: dict[tuple[bytes, str], int] = defaultdict(int)
        for c in ins:
            in_sum[(bytes(c.issuer), c.brand)] += c.amount
        for c in outs:
            out_sum[(bytes(c.issuer), c.brand)] += c.amount
        owners = {bytes(c.owner) for c in ins} - {DVP_ESCROW_OWNER}
        if not owners <= signers:
            raise ContractError("every owner of consumed cash must sign")
        if cmd.name == "Issue":
            if ins or not outs:
                raise ContractError("Issue consumes no cash and creates some")
            if not {issuer for issuer, _ in out_sum} <= signers:
                raise ContractError("only the issuer may issue its cash, and it must sign")
        elif cmd.name == "Move":
            if not ins or dict(in_sum) != dict(out_sum):
                raise ContractError("Move must conserve the amount of each issuer's cash of each brand")
        elif cmd.name == "Redeem":
            redeem = pb.CashRedeem()
            try:
                redeem.ParseFromString(cmd.data)
            except DecodeError:
                raise ContractError("Redeem data does not decode") from None
            if len(in_sum) != 1:
                raise ContractError("Redeem consumes cash of exactly one issuer and brand")
            coin = next(iter(in_sum))
            if coin[0] not in signers:
                raise ContractError("the issuer must sign a redemption")
            if set(out_sum) - {coin} or in_sum[coin] - out_sum[coin] != redeem.amount or redeem.amount == 0:
                raise ContractError("Redeem must destroy exactly the redeemed amount")
        else:
            raise ContractError(f"unknown Cash command {cmd.name!r}")
        if any(v >= _U64 for v in [*in_sum.values(), *out_sum.values()]):
            raise ContractError("cash amount overflows uint64")
