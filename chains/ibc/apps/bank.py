"""The bank seam of the apps: a host's token ledger as the transfer app needs it.

Apps receive a bank bound to the transaction's store overlay (``Callable[[IbcStore], Bank]``)
so that a host using :class:`StoreBank` gets atomicity with the IBC state for free; a host
with its own ledger binds its own and must give the same all-or-nothing guarantee.
"""

from __future__ import annotations

from typing import Protocol

from chains.ibc.errors import IbcError
from chains.ibc.host.store import IbcStore

MAX_AMOUNT = 2**256 - 1


class BankError(IbcError):
    """Insufficient funds, bad account or bad amount."""


class Bank(Protocol):
    def balance(self, account: str, denom: str) -> int: ...

    def supply(self, denom: str) -> int: ...

    def transfer(self, sender: str, receiver: str, denom: str, amount: int) -> None: ...

    def mint(self, account: str, denom: str, amount: int) -> None: ...

    def burn(self, account: str, denom: str, amount: int) -> None: ...


def validate_account(account: str) -> str:
    if not account or len(account) > 128 or "/" in account or not account.isprintable():
        raise BankError(f"account {account!r} must be 1..128 printable characters without '/'")
    return account


def validate_denom(denom: str) -> str:
    if not denom or len(denom) > 512 or not denom.isprintable() or any(not p for p in denom.split("/")):
        raise BankError(f"denom {denom!r} must be 1..512 printable characters with no empty path part")
    return denom


def _amount(amount: int) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_AMOUNT:
        raise BankError(f"amount {amount!r} must be a positive integer below 2^256")
    return amount


class StoreBank:
    """Balances and supplies kept in the IBC store itself (decimal ASCII values).

    Keys live under ``bank/`` so they never collide with ICS-24 paths.
    """

    def __init__(self, store: IbcStore) -> None:
        self.store = store

    @staticmethod
    def _balance_key(account: str, denom: str) -> bytes:
        return f"bank/balances/{validate_account(account)}/{validate_denom(denom)}".encode()

    @staticmethod
    def _supply_key(denom: str) -> bytes:
        return f"bank/supply/{validate_denom(denom)}".encode()

    def _read(self, key: bytes) -> int:
        raw = self.store.get(key)
        return 0 if raw is None else int(raw.decode())

    def _write(self, key: bytes, value: int) -> None:
        if value == 0:
            self.store.delete(key)
        else:
            self.store.set(key, str(value).encode())

    def balance(self, account: str, denom: str) -> int:
        return self._read(self._balance_key(account, denom))

    def supply(self, denom: str) -> int:
        return self._read(self._supply_key(denom))

    def transfer(self, sender: str, receiver: str, denom: str, amount: int) -> None:
        _amount(amount)
        src, dst = self._balance_key(sender, denom), self._balance_key(receiver, denom)
        have = self._read(src)
        if have < amount:
            raise BankError(f"{sender} holds {have} {denom}, cannot send {amount}")
        self._write(src, have - amount)
        self._write(dst, self._read(dst) + amount)

    def mint(self, account: str, denom: str, amount: int) -> None:
        _amount(amount)
        key, supply_key = self._balance_key(account, denom), self._supply_key(denom)
        supply = self._read(supply_key) + amount
        if supply > MAX_AMOUNT:
            raise BankError(f"minting {amount} {denom} would overflow its supply")
        self._write(key, self._read(key) + amount)
        self._write(supply_key, supply)

    def burn(self, account: str, denom: str, amount: int) -> None:
        _amount(amount)
        key, supply_key = self._balance_key(account, denom), self._supply_key(denom)
        have = self._read(key)
        if have < amount:
            raise BankError(f"{account} holds {have} {denom}, cannot burn {amount}")
        self._write(key, have - amount)
        self._write(supply_key, self._read(supply_key) - amount)
