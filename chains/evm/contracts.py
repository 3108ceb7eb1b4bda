"""Built-in contracts at fixed addresses, each keeping its state in its own storage trie.

There is no EVM bytecode: a contract is Python run by the chain, but its state layout
follows Solidity's (mapping slot = keccak256(key32 || slot32)) so that storage proofs look
exactly like those of a real contract. A contract raises :class:`ContractError` to fail the
whole transaction; the chain reverts every write the transaction made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from chains.evm.state import WorldState
from lightclients.crypto import keccak256


class ContractError(ValueError):
    """A contract call was refused; the message is the receipt's failure reason."""


@dataclass(frozen=True, slots=True)
class Log:
    """A receipt event: the emitting contract, an event name and named byte attributes."""

    address: bytes
    name: str
    attributes: tuple[tuple[str, bytes], ...]


@dataclass(slots=True)
class CallContext:
    state: WorldState
    sender: bytes
    height: int
    time_ns: int
    logs: list[Log] = field(default_factory=list)
    cost: int = 0


class Contract(Protocol):
    address: bytes

    def call(self, ctx: CallContext, method: str, args: tuple[bytes, ...]) -> None: ...


def builtin_address(name: str) -> bytes:
    """Fixed, collision-free address of a built-in contract (no private key can own it)."""
    return keccak256(b"kakehashi.evm.builtin:" + name.encode())[12:]


def mapping_slot(key: bytes, slot: int) -> bytes:
    return keccak256(key.rjust(32, b"\x00") + slot.to_bytes(32, "big"))


def _address_arg(args: tuple[bytes, ...], i: int) -> bytes:
    if len(args) <= i or len(args[i]) != 20:
        raise ContractError(f"argument {i} must be a 20-byte address")
    return args[i]


def _amount_arg(args: tuple[bytes, ...], i: int) -> int:
    if len(args) <= i or not 1 <= len(args[i]) <= 32 or args[i][0] == 0:
        raise ContractError(f"argument {i} must be a positive canonical integer")
    return int.from_bytes(args[i], "big")


def encode_amount(amount: int) -> bytes:
    return amount.to_bytes(max(1, (amount.bit_length() + 7) // 8), "big")


# Cost units: a flat per-call fee plus a fee per storage write, so receipts show that
# larger transactions cost more without modelling EVM gas.
CALL_COST = 5_000
WRITE_COST = 20_000


class SecurityToken:
    """A security token: only the issuer mints; every holder must be whitelisted.

    Storage: slot 0 = issuer, slot 1 = total supply, mapping 2 = whitelist,
    mapping 3 = balances. The whitelist is checked on mint and on every transfer for both
    sides, as ST platforms enforce transfer restrictions at the token itself.

    The one holder outside the whitelist is the DvP escrow (``escrow``): it may hold ST only
    through :meth:`escrow_move`, which no transaction can reach except through the escrow
    contract's own code, and it can never be whitelisted. So ST reaches or leaves the escrow
    only by a lock, a delivery or a reclaim, and the escrow's balance is always the sum of
    the quantities it holds locked.
    """

    ISSUER_SLOT = bytes(32)
    SUPPLY_SLOT = (1).to_bytes(32, "big")
    WHITELIST = 2
    BALANCES = 3

    def __init__(self, address: bytes, issuer: bytes, escrow: bytes | None = None) -> None:
        self.address = address
        self.issuer = issuer
        self.escrow = escrow

    def install(self, state: WorldState) -> None:
        acct = state.account(self.address)
        acct.code_hash = keccak256(b"kakehashi.evm.security-token")
        state.set_storage(self.address, self.ISSUER_SLOT, self.issuer)

    def balance_of(self, state: WorldState, holder: bytes) -> int:
        return state.get_storage(self.address, mapping_slot(holder, self.BALANCES))

    def is_whitelisted(self, state: WorldState, holder: bytes) -> bool:
        return state.get_storage(self.address, mapping_slot(holder, self.WHITELIST)) == 1

    def total_supply(self, state: WorldState) -> int:
        return state.get_storage(self.address, self.SUPPLY_SLOT)

    def _write(self, ctx: CallContext, slot: bytes, value: int) -> None:
        ctx.state.set_storage(self.address, slot, value)
        ctx.cost += WRITE_COST

    def _only_issuer(self, ctx: CallContext) -> None:
        if ctx.sender != self.issuer:
            raise ContractError("only the issuer may do this")

    def call(self, ctx: CallContext, method: str, args: tuple[bytes, ...]) -> None:
        ctx.cost += CALL_COST
        state = ctx.state
        if method == "whitelist":
            self._only_issuer(ctx)
            holder = _address_arg(args, 0)
            if holder == self.escrow:
                raise ContractError("the DvP escrow cannot be whitelisted: it holds ST only by escrow moves")
            allowed = len(args) > 1 and args[1] == b"\x01"
            self._write(ctx, mapping_slot(holder, self.WHITELIST), 1 if allowed else 0)
            ctx.logs.append(Log(self.address, "whitelist", (("holder", holder), ("allowed", b"\x01" if allowed else b""))))
        elif method == "mint":
            self._only_issuer(ctx)
            to, amount = _address_arg(args, 0), _amount_arg(args, 1)
            if not self.is_whitelisted(state, to):
                raise ContractError("recipient is not whitelisted")
            supply = self.total_supply(state) + amount
            if supply >= 2**256:
                raise ContractError("total supply overflows")
            self._write(ctx, self.SUPPLY_SLOT, supply)
            self._write(ctx, mapping_slot(to, self.BALANCES), self.balance_of(state, to) + amount)
            ctx.logs.append(Log(self.address, "mint", (("to", to), ("amount", encode_amount(amount)))))
        elif method == "transfer":
            to, amount = _address_arg(args, 0), _amount_arg(args, 1)
            self.transfer(ctx, ctx.sender, to, amount)
        else:
            raise ContractError(f"security token has no method {method!r}")

    def transfer(self, ctx: CallContext, sender: bytes, to: bytes, amount: int) -> None:
        state = ctx.state
        if not self.is_whitelisted(state, sender):
            raise ContractError("sender is not whitelisted")
        if not self.is_whitelisted(state, to):
            raise ContractError("recipient is not whitelisted")
        self._move(ctx, sender, to, amount)

    def escrow_move(self, ctx: CallContext, sender: bytes, to: bytes, amount: int) -> None:
        """Move ST into or out of the DvP escrow: only the escrow contract calls this.

        Exactly one side is the escrow; the other must be whitelisted, so every holder but
        the escrow stays on the whitelist.
        """
        if self.escrow is None or (sender == self.escrow) == (to == self.escrow):
            raise ContractError("an escrow move goes between the DvP escrow and one holder")
        holder = to if sender == self.escrow else sender
        if not self.is_whitelisted(ctx.state, holder):
            raise ContractError(f"0x{holder.hex()} is not whitelisted")
        self._move(ctx, sender, to, amount)

    def _move(self, ctx: CallContext, sender: bytes, to: bytes, amount: int) -> None:
        state = ctx.state
        have = self.balance_of(state, sender)
        if have < amount:
            raise ContractError(f"insufficient balance: have {have}, need {amount}")
        self._write(ctx, mapping_slot(sender, self.BALANCES), have - amount)
        self._write(ctx, mapping_slot(to, self.BALANCES), self.balance_of(state, to) + amount)
        ctx.logs.append(
            Log(self.address, "transfer", (("from", sender), ("to", to), ("amount", encode_amount(amount))))
        )
