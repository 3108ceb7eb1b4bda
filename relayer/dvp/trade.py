"""The trade file: what a PTS hands the settlement client, validated before any chain is asked.

Why account identifiers only: the packet and both ledgers carry these values verbatim, and
DESIGN.md keeps personal data off the chains. So a trade names an EVM address (``0x`` + 40
hex) and a Corda party (64 hex, the Ed25519 public key) per side, nothing else.

Why times may be relative: a PTS matching a trade does not read the EVM chain's clock, and
the escrow deadline and packet timeout are judged on that clock. ``deadline_s`` /
``timeout_s`` are seconds after the EVM chain's latest block time when the trade is
resolved (just before locking); ``deadline_ns`` / ``timeout_ns`` are absolute Unix ns on that
clock. Without a timeout the packet times out at the deadline, the latest it may.

Format (JSON object; unknown keys are errors so a misspelt field is never ignored)::

    {"trade_id": "T-0001", "st_quantity": 100, "sc_amount": 25000,
     "seller": {"evm": "0x..", "corda": "<64 hex>"}, "buyer": {"evm": "0x..", "corda": "<64 hex>"},
     "deadline_s": 600, "timeout_s": 300,
     "security_token": "0x..", "sc_brand": "KUSD", "cash_issuer": "<64 hex>", "channel": "channel-0",
     "st_chain": "evm-2"}

``security_token`` (default: the EVM chain's ST), ``sc_brand`` (the SC brand paid in;
default: the Corda chain's default brand, the single SC of trade files written before
brands), ``cash_issuer`` (default: the issuer of ``sc_brand``, as the Corda chain's
``chain_info`` names it), ``channel`` (the Corda end of the dvp channel; default: the
client's) and ``st_chain`` (the id of the EVM chain the ST lives on, which picks the path;
default: the client's only ST chain, so trade files written for one path still work) are
optional. A brand the chain does not issue is not an error here: the trade resolves, and the
pre-check refuses it with the brands the chain does issue.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chains.ibc.apps.dvp import validate_terms
from chains.ibc.errors import InvalidMessage
from kakehashi.dvp.v1 import dvp_pb2

SEC_NS = 1_000_000_000
U64 = 2**64
_TRADE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_EVM = re.compile(r"0x[0-9a-fA-F]{40}")
_CORDA = re.compile(r"[0-9a-fA-F]{64}")
_CHANNEL = re.compile(r"channel-[0-9]{1,19}")
_SC_BRAND = re.compile(r"[A-Za-z0-9._-]{0,32}")
_FIELDS = {"trade_id", "security_token", "st_quantity", "cash_issuer", "sc_amount", "seller", "buyer",
           "deadline_s", "deadline_ns", "timeout_s", "timeout_ns", "channel", "sc_brand",
           "st_chain"}
_CHAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # as relayer.config.schema accepts chain ids


class TradeError(ValueError):
    """A trade that cannot be settled as written; the message starts with the bad field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class Party:
    evm: bytes  # 20-byte address
    corda: bytes  # 32-byte Ed25519 public key


@dataclass(frozen=True)
class When:
    """A point on the EVM chain's clock, relative (seconds after resolution) or absolute (ns)."""

    relative_s: int | None = None
    absolute_ns: int | None = None

    def at(self, evm_now_ns: int) -> int:
        if self.absolute_ns is not None:
            return self.absolute_ns
        assert self.relative_s is not None
        return evm_now_ns + self.relative_s * SEC_NS

    def to_json(self, prefix: str) -> dict[str, int]:
        if self.absolute_ns is not None:
            return {f"{prefix}_ns": self.absolute_ns}
        assert self.relative_s is not None
        return {f"{prefix}_s": self.relative_s}


@dataclass(frozen=True)
class Trade:
    """A parsed trade file; chain defaults and relative times are filled in by :func:`resolve`."""

    trade_id: str
    st_quantity: int
    sc_amount: int
    seller: Party
    buyer: Party
    deadline: When
    timeout: When | None = None
    security_token: bytes | None = None
    cash_issuer: bytes | None = None
    channel: str | None = None
    sc_brand: str | None = None
    st_chain: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "trade_id": self.trade_id, "st_quantity": self.st_quantity, "sc_amount": self.sc_amount,
            "seller": {"evm": "0x" + self.seller.evm.hex(), "corda": self.seller.corda.hex()},
            "buyer": {"evm": "0x" + self.buyer.evm.hex(), "corda": self.buyer.corda.hex()},
            **self.deadline.to_json("deadline"),
        }
        if self.timeout is not None:
            doc.update(self.timeout.to_json("timeout"))
        if self.security_token is not None:
            doc["security_token"] = "0x" + self.security_token.hex()
        if self.cash_issuer is not None:
            doc["cash_issuer"] = self.cash_issuer.hex()
        if self.channel is not None:
            doc["channel"] = self.channel
        if self.sc_brand is not None:
            doc["sc_brand"] = self.sc_brand
        if self.st_chain is not None:
            doc["st_chain"] = self.st_chain
        return doc


@dataclass(frozen=True)
class ResolvedTrade:
    """Terms exactly as both legs will carry them, plus the packet's timeout and channel."""

    terms: dvp_pb2.Terms
    timeout_ns: int
    channel: str

    @property
    def trade_id(self) -> str:
        return self.terms.trade_id


def _uint(doc: dict[str, Any], name: str, *, positive: bool = True) -> int:
    if name not in doc:
        raise TradeError(name, "missing (an integer is required)")
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TradeError(name, f"expected an integer, got {value!r}")
    if not (1 if positive else 0) <= value < U64:
        raise TradeError(name, f"expected {'a positive' if positive else 'a non-negative'} uint64, got {value}")
    return value


def _evm(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not _EVM.fullmatch(value):
        raise TradeError(field, f"expected a 0x-prefixed 20-byte hex EVM address, got {value!r}")
    return bytes.fromhex(value[2:])


def _corda(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not _CORDA.fullmatch(value.removeprefix("0x")):
        raise TradeError(field, f"expected a 32-byte hex Ed25519 public key (64 hex), got {value!r}")
    return bytes.fromhex(value.removeprefix("0x"))


def _party(doc: dict[str, Any], name: str) -> Party:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise TradeError(name, 'expected an object {"evm": "0x..", "corda": "<64 hex>"}')
    extra = set(value) - {"evm", "corda"}
    if extra:
        raise TradeError(f"{name}.{sorted(extra)[0]}", "unknown field (a party has only evm and corda)")
    return Party(_evm(value.get("evm"), f"{name}.evm"), _corda(value.get("corda"), f"{name}.corda"))


def _when(doc: dict[str, Any], name: str, required: bool) -> When | None:
    rel, ab = f"{name}_s", f"{name}_ns"
    if rel in doc and ab in doc:
        raise TradeError(rel, f"give either {rel} (seconds from now) or {ab} (absolute), not both")
    if rel in doc:
        return When(relative_s=_uint(doc, rel))
    if ab in doc:
        return When(absolute_ns=_uint(doc, ab))
    if required:
        raise TradeError(rel, f"missing: give {rel} (seconds from now on the EVM clock) or {ab} (Unix ns)")
    return None


def parse_trade(doc: Any) -> Trade:
    """Validate a trade document; :class:`TradeError` names the first bad field."""
    if not isinstance(doc, dict):
        raise TradeError("trade", "expected a JSON object")
    unknown = set(doc) - _FIELDS
    if unknown:
        raise TradeError(sorted(unknown)[0], f"unknown field; expected some of {sorted(_FIELDS)}")
    trade_id = doc.get("trade_id")
    if not isinstance(trade_id, str) or not _TRADE_ID.fullmatch(trade_id):
        raise TradeError("trade_id", f"expected 1-64 characters of [A-Za-z0-9._-], got {trade_id!r}")
    seller, buyer = _party(doc, "seller"), _party(doc, "buyer")
    if seller.evm == buyer.evm:
        raise TradeError("buyer.evm", "buyer and seller must be different EVM accounts")
    if seller.corda == buyer.corda:
        raise TradeError("buyer.corda", "buyer and seller must be different Corda parties")
    deadline = _when(doc, "deadline", True)
    assert deadline is not None
    timeout = _when(doc, "timeout", False)
    if (timeout is not None and deadline.relative_s is not None and timeout.relative_s is not None
            and timeout.relative_s > deadline.relative_s):
        raise TradeError("timeout_s", "the packet timeout must not be later than the deadline")
    if (timeout is not None and deadline.absolute_ns is not None and timeout.absolute_ns is not None
            and timeout.absolute_ns > deadline.absolute_ns):
        raise TradeError("timeout_ns", "the packet timeout must not be later than the deadline")
    channel = doc.get("channel")
    if channel is not None and (not isinstance(channel, str) or not _CHANNEL.fullmatch(channel)):
        raise TradeError("channel", f"expected a channel id like channel-0, got {channel!r}")
    sc_brand = doc.get("sc_brand")
    if sc_brand is not None and (not isinstance(sc_brand, str) or not _SC_BRAND.fullmatch(sc_brand)):
        raise TradeError("sc_brand", f"expected an SC brand name (0-32 characters of [A-Za-z0-9._-]), got {sc_brand!r}")
    st_chain = doc.get("st_chain")
    if st_chain is not None and (not isinstance(st_chain, str) or not _CHAIN_ID.fullmatch(st_chain)):
        raise TradeError("st_chain", f"expected an EVM chain id like evm-2, got {st_chain!r}")
    return Trade(
        trade_id=trade_id,
        st_quantity=_uint(doc, "st_quantity"),
        sc_amount=_uint(doc, "sc_amount"),
        seller=seller,
        buyer=buyer,
        deadline=deadline,
        timeout=timeout,
        security_token=_evm(doc["security_token"], "security_token") if "security_token" in doc else None,
        cash_issuer=_corda(doc["cash_issuer"], "cash_issuer") if "cash_issuer" in doc else None,
        channel=channel,
        sc_brand=sc_brand,
        st_chain=st_chain,
    )


def trade_from_json(raw: str | bytes, where: str = "trade") -> Trade:
    """A trade from the bytes of a file or a feed message; anything malformed is a TradeError."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the stack
        raise TradeError("trade", f"{where} is not JSON: {exc}") from None
    return parse_trade(doc)


def load_trade(path: Path) -> Trade:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TradeError("trade", f"cannot read {path}: {exc.strerror or exc}") from None
    return trade_from_json(raw, str(path))


def resolve_brand(trade: Trade, brands: dict[str, bytes], default_brand: str,
                  default_issuer: bytes) -> tuple[str, bytes]:
    """(SC brand, its issuer) a trade pays in: what it names, else the chain's defaults.

    A trade naming only ``cash_issuer`` (files from before brands) pays in the default brand
    when that issuer issues it, else in the issuer's first brand. An unknown brand keeps the
    named (or default) issuer so that the pre-check, not the parser, refuses it by name.
    """
    if trade.sc_brand is not None:
        return trade.sc_brand, trade.cash_issuer or brands.get(trade.sc_brand, default_issuer)
    issuer = trade.cash_issuer or brands.get(default_brand, default_issuer)
    if brands.get(default_brand) == issuer:
        return default_brand, issuer
    own = [name for name, key in brands.items() if key == issuer]
    return (own[0] if own else default_brand), issuer


def resolve(trade: Trade, *, evm_now_ns: int, security_token: bytes, cash_issuer: bytes,
            channel: str | None, brands: dict[str, bytes] | None = None,
            default_brand: str = "") -> ResolvedTrade:
    """Fix the chain defaults and the clock; the result is what gets hashed and locked.
    ``brands`` (name -> issuer) and ``default_brand`` are the Corda chain's SC brands."""
    deadline = trade.deadline.at(evm_now_ns)
    timeout = trade.timeout.at(evm_now_ns) if trade.timeout is not None else deadline
    if not 0 < deadline < U64:
        raise TradeError("deadline", "resolves outside uint64 nanoseconds")
    if not 0 < timeout < U64:
        raise TradeError("timeout", "resolves outside uint64 nanoseconds")
    chan = trade.channel or channel
    if not chan:
        raise TradeError("channel", "no dvp channel: name one in the trade or pass --channel")
    brand, issuer = resolve_brand(trade, brands if brands is not None else {default_brand: cash_issuer},
                                  default_brand, cash_issuer)
    terms = dvp_pb2.Terms(
        trade_id=trade.trade_id, security_token=trade.security_token or security_token,
        st_quantity=trade.st_quantity, cash_issuer=issuer, sc_amount=trade.sc_amount,
        seller_evm=trade.seller.evm, buyer_evm=trade.buyer.evm, seller_corda=trade.seller.corda,
        buyer_corda=trade.buyer.corda, deadline_ns=deadline, sc_brand=brand)
    try:
        validate_terms(terms)
    except InvalidMessage as exc:
        raise TradeError("trade", str(exc)) from None
    return ResolvedTrade(terms, timeout, chan)
