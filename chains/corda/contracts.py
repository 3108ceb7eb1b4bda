"""Contract verification of a resolved transaction, and Corda 4's encumbrance rules.

A contract is code named by each state; it runs on every transaction that consumes or
creates one of its states, or carries one of its commands, and rejects by raising
ContractError. (Corda runs contracts for states only. Running them for commands too means no
command rides along unverified: the IBC host's rules, e.g. that a dvp packet is acknowledged
only together with its lock's exit, apply to transactions that hold no IBC state.)
Encumbrance rules are the ledger's, checked before any contract runs:
- an encumbered input (state i of tx T, encumbrance e) is spendable only if StateRef(T, e)
  is an input of the same transaction;
- an output's encumbrance must name another output of the same transaction, the encumbered
  outputs must form complete cycles (every encumbered output is itself some output's
  encumbrance, exactly once), and a cycle lives under one notary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from kakehashi.corda.v1 import ledger_pb2 as pb


class ContractError(ValueError):
    """A contract or ledger rule rejected the transaction."""


@dataclass(frozen=True)
class StateAndRef:
    state: pb.TransactionState
    ref: pb.StateRef


@dataclass(frozen=True)
class LedgerTransaction:
    """A transaction with inputs and references resolved, as contracts see it."""

    txid: bytes
    inputs: tuple[StateAndRef, ...]
    references: tuple[StateAndRef, ...]
    outputs: tuple[pb.TransactionState, ...]
    commands: tuple[pb.Command, ...]
    signers: frozenset[bytes]
    notary: bytes
    time_window: pb.TimeWindow | None
    # The notaries' IBC host store as it stands before this tx executes (None on a ledger
    # without an IBC host). The cluster notarises in order, so this read is as deterministic
    # as the ledger itself; the DvP exits use it to name the one packet their lock sent.
    ibc_view: Callable[[bytes], bytes | None] | None = None

    def commands_for(self, contract: str) -> list[pb.Command]:
        return [c for c in self.commands if c.contract == contract]

    def inputs_of(self, contract: str) -> list[pb.TransactionState]:
        return [s.state for s in self.inputs if s.state.contract == contract]

    def outputs_of(self, contract: str) -> list[pb.TransactionState]:
        return [s for s in self.outputs if s.contract == contract]


class Contract(Protocol):
    name: str

    def verify(self, ltx: LedgerTransaction) -> None: ...


def check_input_encumbrances(ltx: LedgerTransaction) -> None:
    present = {(bytes(s.ref.txid), int(s.ref.index)) for s in ltx.inputs}
    for s in ltx.inputs:
        if s.state.has_encumbrance and (bytes(s.ref.txid), int(s.state.encumbrance)) not in present:
            raise ContractError(
                f"input {s.ref.txid.hex()[:16]}:{s.ref.index} is encumbered by output "
                f"{s.state.encumbrance} of that tx, which is not an input"
            )


def check_output_encumbrances(outputs: Sequence[pb.TransactionState]) -> None:
    encumbered = {i: int(s.encumbrance) for i, s in enumerate(outputs) if s.has_encumbrance}
    for i, e in encumbered.items():
        if e >= len(outputs):
            raise ContractError(f"output {i}'s encumbrance {e} is not an output of this transaction")
        if e == i:
            raise ContractError(f"output {i} encumbers itself")
        if outputs[e].notary != outputs[i].notary:
            raise ContractError(f"encumbered outputs {i} and {e} are assigned to different notaries")
    targets = sorted(encumbered.values())
    if targets != sorted(encumbered):
        raise ContractError("output encumbrances do not form complete cycles (a chain is not closed)")


def verify_ledger(ltx: LedgerTransaction, contracts: Mapping[str, Contract]) -> None:
    for s in [*ltx.inputs, *ltx.references]:
        if s.state.notary != ltx.notary:
            raise ContractError("an input or reference state is assigned to a different notary")
    for out in ltx.outputs:
        if out.notary != ltx.notary:
            raise ContractError("an output is assigned to a different notary (notary change is not supported)")
    check_input_encumbrances(ltx)
    check_output_encumbrances(ltx.outputs)
    for c in ltx.commands:
        if c.contract not in contracts:
            raise ContractError(f"command names unknown contract {c.contract!r}")
    names = {s.state.contract for s in ltx.inputs} | {s.contract for s in ltx.outputs}
    names |= {c.contract for c in ltx.commands}
    for name in sorted(names):
        contract = contracts.get(name)
        if contract is None:
            raise ContractError(f"no contract {name!r} is installed")
        contract.verify(ltx)
