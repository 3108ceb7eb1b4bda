"""Count the crypto a piece of code does, and price it at the bare primitives' cost.

Why at the libraries, not at ``lightclients/crypto.py``: every module binds the crypto
functions by name (``from lightclients.crypto import sha256``), some tables hold them
(``ics23._HASHES``) and some hot paths call ``hashlib`` directly, so patching the project's
names would miss calls. Every hash and signature ends in one of a few library entry points
(``hashlib.sha256``, ``sha3.keccak_256``, coincurve's sign / recover / verify, pynacl's sign /
verify), so counting there sees them all, whatever the code under test is refactored into.

Why the counters are off while a step is timed: a Python wrapper costs about 0.2 µs per
call, which is a fifth of a keccak; the budget bench times one round with the libraries
untouched and counts the next, identical round.

The floor of a step is the work it cannot skip at these libraries' speed: each hash,
signature made, signature checked or key recovered, priced at the bare library call measured
in the same run on the same input sizes (hashes by block count, Ed25519 by message length).
Deriving a key pair is counted too but is not floor: a signer that kept its key object would
not pay it (coincurve's ``PrivateKey(secret)`` computes two public points, pynacl's
``SigningKey(seed)`` one), so it shows up as overhead.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import coincurve
import nacl.signing
import sha3

KECCAK = "keccak256"
SHA256 = "sha256"
SECP_SIGN = "secp256k1 sign"
SECP_RECOVER = "secp256k1 recover"
SECP_VERIFY = "secp256k1 verify"
ED_SIGN = "ed25519 sign"
ED_VERIFY = "ed25519 verify"
SECP_KEY = "secp256k1 key derivation"
ED_KEY = "ed25519 key derivation"
FLOOR_PRIMITIVES = (SECP_SIGN, SECP_RECOVER, SECP_VERIFY, ED_SIGN, ED_VERIFY, KECCAK, SHA256)
NOT_FLOOR = (SECP_KEY, ED_KEY)
SHORT = {SECP_SIGN: "secp sign", SECP_RECOVER: "secp recover", SECP_VERIFY: "secp verify",
         ED_SIGN: "ed25519 sign", ED_VERIFY: "ed25519 verify", KECCAK: "keccak", SHA256: "sha256",
         SECP_KEY: "secp keygen", ED_KEY: "ed25519 keygen"}


def keccak_blocks(n: int) -> int:
    return n // 136 + 1  # rate 136 bytes, pad10*1 always adds at least one byte


def sha256_blocks(n: int) -> int:
    return (n + 8) // 64 + 1  # 0x80, then the 8-byte length


@dataclass
class Tally:
    """Calls per primitive and their size units (hash blocks; Ed25519 message bytes)."""

    calls: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)

    def copy(self) -> Tally:
        return Tally(Counter(self.calls), Counter(self.units))

    def __add__(self, other: Tally) -> Tally:
        out = self.copy()
        out.calls.update(other.calls)
        out.units.update(other.units)
        return out

    def __sub__(self, other: Tally) -> Tally:
        out = self.copy()
        out.calls.subtract(other.calls)
        out.units.subtract(other.units)
        return out

    def scale(self, factor: float) -> Tally:
        """Per-trade (fractional) counts from a round's totals."""
        return Tally(Counter({k: v * factor for k, v in self.calls.items()}),
                     Counter({k: v * factor for k, v in self.units.items()}))


class CryptoCounter:
    """Patches the library entry points while active; ``tally`` is what ran meanwhile."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.active = False
        self._undo: list[Callable[[], None]] = []

    def _count(self, name: str, units: int) -> None:
        self.tally.calls[name] += 1
        self.tally.units[name] += units

    def _patch(self, owner: Any, attr: str, make: Callable[[Any], Any]) -> None:
        raw = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        setattr(owner, attr, make(getattr(owner, attr)))
        self._undo.append(lambda: setattr(owner, attr, raw))

    @contextmanager
    def counting(self) -> Iterator[Tally]:
        if self.active:
            raise RuntimeError("the crypto counter is already active")
        self.active = True
        count = self._count

        def hashed(name: str, blocks: Callable[[int], int]) -> Callable[[Any], Any]:
            def make(orig: Any) -> Any:
                def counted(data: Any = b"", *args: Any, **kwargs: Any) -> Any:
                    count(name, blocks(len(data)))
                    return orig(data, *args, **kwargs)
                return counted
            return make

        def method(name: str, size_arg: int | None = None) -> Callable[[Any], Any]:
            def make(orig: Any) -> Any:
                def counted(self_: Any, *args: Any, **kwargs: Any) -> Any:
                    count(name, len(args[size_arg]) if size_arg is not None and len(args) > size_arg else 0)
                    return orig(self_, *args, **kwargs)
                return counted
            return make

        def recover(orig: Any) -> Any:
            def counted(cls: Any, *args: Any, **kwargs: Any) -> Any:
                count(SECP_RECOVER, 0)
                return orig(*args, **kwargs)
            return classmethod(counted)

        try:
            self._patch(hashlib, "sha256", hashed(SHA256, sha256_blocks))
            self._patch(sha3, "keccak_256", hashed(KECCAK, keccak_blocks))
            self._patch(coincurve.PrivateKey, "sign_recoverable", method(SECP_SIGN))
            self._patch(coincurve.PrivateKey, "__init__", method(SECP_KEY))
            self._patch(coincurve.PublicKey, "from_signature_and_message", recover)
            self._patch(coincurve.PublicKey, "verify", method(SECP_VERIFY))
            self._patch(nacl.signing.SigningKey, "sign", method(ED_SIGN, 0))
            self._patch(nacl.signing.SigningKey, "__init__", method(ED_KEY))
            self._patch(nacl.signing.VerifyKey, "verify", method(ED_VERIFY, 0))
            yield self.tally
        finally:
            while self._undo:
                self._undo.pop()()
            self.active = False


def cpu_us(fn: Callable[[], object], min_seconds: float) -> float:
    """Mean process-CPU microseconds per call (the same clock the budget's steps use)."""
    fn()
    calls, batch = 0, 1
    start = time.process_time()
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        elapsed = time.process_time() - start
        if elapsed >= min_seconds:
            return elapsed / calls * 1e6
        batch *= 2


@dataclass(frozen=True)
class BareCosts:
    """µs per call of each primitive at the libraries' speed: ``base`` plus ``per_unit`` per
    size unit beyond the first (a hash block; an Ed25519 message byte)."""

    base: dict[str, float]
    per_unit: dict[str, float]

    def cost_us(self, name: str, calls: float, units: float) -> float:
        if name in (KECCAK, SHA256):
            return calls * self.base[name] + (units - calls) * self.per_unit[name]
        return calls * self.base[name] + units * self.per_unit.get(name, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {"base_us": {k: round(v, 3) for k, v in self.base.items()},
                "per_unit_us": {k: round(v, 5) for k, v in self.per_unit.items()}}


def measure_bare(min_seconds: float) -> BareCosts:
    """Each primitive called straight on its library with ready key objects."""
    secret = hashlib.sha256(b"bench-budget secp").digest()
    digest = hashlib.sha256(b"digest").digest()
    priv = coincurve.PrivateKey(secret)
    sig = priv.sign_recoverable(digest, hasher=None)
    pub = priv.public_key
    der = priv.sign(digest, hasher=None)
    seed = hashlib.sha256(b"bench-budget ed25519").digest()
    signing = nacl.signing.SigningKey(seed)
    vk_bytes = bytes(signing.verify_key)
    short, long_ = b"m" * 32, b"m" * 1056
    ed_short, ed_long = signing.sign(short).signature, signing.sign(long_).signature
    one_k, many_k = b"k" * 32, b"k" * (136 * 16 + 32)  # 1 and 17 keccak blocks
    one_s, many_s = b"s" * 32, b"s" * (64 * 16 + 32)  # 1 and 17 sha256 blocks

    def t(fn: Callable[[], object]) -> float:
        return cpu_us(fn, min_seconds)

    base = {
        KECCAK: t(lambda: sha3.keccak_256(one_k).digest()),
        SHA256: t(lambda: hashlib.sha256(one_s).digest()),
        SECP_SIGN: t(lambda: priv.sign_recoverable(digest, hasher=None)),
        SECP_RECOVER: t(lambda: coincurve.PublicKey.from_signature_and_message(sig, digest, hasher=None)),
        SECP_VERIFY: t(lambda: pub.verify(der, digest, hasher=None)),
        ED_SIGN: t(lambda: signing.sign(short)),
        ED_VERIFY: t(lambda: nacl.signing.VerifyKey(vk_bytes).verify(short, ed_short)),
        SECP_KEY: t(lambda: coincurve.PrivateKey(secret)),
        ED_KEY: t(lambda: nacl.signing.SigningKey(seed)),
    }
    per_unit = {
        KECCAK: (t(lambda: sha3.keccak_256(many_k).digest()) - base[KECCAK]) / 16,
        SHA256: (t(lambda: hashlib.sha256(many_s).digest()) - base[SHA256]) / 16,
        ED_SIGN: max(0.0, (t(lambda: signing.sign(long_)) - base[ED_SIGN]) / (len(long_) - len(short))),
        ED_VERIFY: max(0.0, (t(lambda: nacl.signing.VerifyKey(vk_bytes).verify(long_, ed_long)) - base[ED_VERIFY])
                       / (len(long_) - len(short))),
    }
    # The Ed25519 base was measured on a 32-byte message: the size term counts from there.
    for name in (ED_SIGN, ED_VERIFY):
        base[name] -= per_unit[name] * len(short)
    return BareCosts(base, per_unit)


def floor_us(tally: Tally, costs: BareCosts) -> float:
    return sum(costs.cost_us(n, tally.calls[n], tally.units[n]) for n in FLOOR_PRIMITIVES if tally.calls[n])


def describe(calls: dict[str, float]) -> str:
    """'1 secp recover + 31 keccak' from calls per trade (shares shown to two significant digits)."""
    parts = []
    for name in FLOOR_PRIMITIVES:
        n = calls.get(name, 0.0)
        if n > 0.0005:
            parts.append(f"{_num(n)} {SHORT[name]}")
    return " + ".join(parts) if parts else "no crypto"


def _num(n: float) -> str:
    if n < 1:
        return f"{n:.2g}"
    if abs(n - round(n)) < 0.005 or n >= 100:
        return str(round(n))
    return f"{n:.1f}" if n >= 10 else f"{n:.2g}"
