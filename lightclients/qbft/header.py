"""QBFT block header codec and the hash preimages seals are made over.

The chain (chains/evm) builds and seals headers with this module and the light client
verifies them with it, so both sides share one definition of every hash:

- header RLP: the 15 Ethereum header fields in their order (parentHash, ommersHash,
  coinbase, stateRoot, txRoot, receiptsRoot, bloom, difficulty, number, gasLimit, gasUsed,
  timestamp, extraData, mixHash, nonce); fields a later fork appends (e.g. baseFee) are kept
  as raw trailing items so a real header re-encodes byte for byte;
- extraData = RLP([vanity32, [validator20...], vote, round, [seal65...]]) where vote is
  [] or [recipient20, 0xff (add) | 0x00 (drop)] and round a minimal integer;
- commit hash (what every committed seal signs) = keccak256(header RLP with the seal list
  emptied and the round kept);
- on-chain block hash (Besu's rule) = keccak256(header RLP with the seal list emptied and
  the round set to 0), so that a block's identity does not depend on which round sealed it.

The legacy encoding of the ConsenSys reference tests and IBFT 2.0 (no vote as the empty
string 0x80, round as a fixed 4-byte big-endian value) is decoded and re-encoded byte for
byte: ``ExtraData.legacy`` remembers the form. IBFT 2.0's own hashes (seal list omitted
instead of emptied) are provided only so real IBFT 2.0 data can be checked; the light
client uses the QBFT rule alone, which is why an IBFT 2.0 block fails it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import rlp
from rlp.codec import consume_length_prefix
from rlp.exceptions import DecodingError

from lightclients.crypto import CryptoError, keccak256, secp256k1_recover_address

VANITY_LEN = 32
ADDRESS_LEN = 20
SEAL_LEN = 65
VOTE_ADD = b"\xff"
VOTE_DROP = b"\x00"
_LEGACY_ROUND_LEN = 4

_RlpItem = bytes | list["_RlpItem"]


class HeaderError(ValueError):
    """A header or extraData is malformed; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Vote:
    """A proposer's vote to add (``add=True``) or drop ``recipient`` from the validators."""

    recipient: bytes
    add: bool


@dataclass(frozen=True, slots=True)
class ExtraData:
    vanity: bytes
    validators: tuple[bytes, ...]
    vote: Vote | None
    round: int
    seals: tuple[bytes, ...]
    legacy: bool = False

    def encode(self) -> bytes:
        return bytes(rlp.encode(self._items(include_round=True, include_seals=True)))

    def _items(self, *, include_round: bool, include_seals: bool) -> list[object]:
        vote: object
        if self.vote is None:
            vote = b"" if self.legacy else []
        else:
            vote = [self.vote.recipient, VOTE_ADD if self.vote.add else VOTE_DROP]
        items: list[object] = [self.vanity, list(self.validators), vote]
        if include_round:
            items.append(
                self.round.to_bytes(_LEGACY_ROUND_LEN, "big") if self.legacy else self.round
            )
        if include_seals:
            items.append(list(self.seals))
        return items


@dataclass(frozen=True, slots=True)
class QbftHeader:
    parent_hash: bytes
    ommers_hash: bytes
    coinbase: bytes
    state_root: bytes
    tx_root: bytes
    receipts_root: bytes
    bloom: bytes
    difficulty: int
    number: int
    gas_limit: int
    gas_used: int
    timestamp: int
    extra: ExtraData
    mix_hash: bytes
    nonce: bytes
    trailing: tuple[bytes, ...] = ()

    def _encode_with(self, extra_data: bytes) -> bytes:
        return bytes(
            rlp.encode(
                [
                    self.parent_hash,
                    self.ommers_hash,
                    self.coinbase,
                    self.state_root,
                    self.tx_root,
                    self.receipts_root,
                    self.bloom,
                    self.difficulty,
                    self.number,
                    self.gas_limit,
                    self.gas_used,
                    self.timestamp,
                    extra_data,
                    self.mix_hash,
                    self.nonce,
                    *self.trailing,
                ]
            )
        )

    def encode(self) -> bytes:
        """The header RLP exactly as sealed on chain (seals included)."""
        return self._encode_with(self.extra.encode())

    def without_seals(self) -> QbftHeader:
        return replace(self, extra=replace(self.extra, seals=()))

    def signing_rlp(self) -> bytes:
        """The header RLP with an empty seal list: the commit hash preimage."""
        return self.without_seals().encode()

    def commit_hash(self) -> bytes:
        return keccak256(self.signing_rlp())

    def block_hash(self) -> bytes:
        """Besu's on-chain QBFT block hash: seals emptied and round 0."""
        extra = replace(self.extra, seals=(), round=0)
        return keccak256(self._encode_with(extra.encode()))

    def ibft2_committed_seal_hash(self) -> bytes:
        """IBFT 2.0 / pre-2021 QBFT seal hash: extraData = RLP([vanity, validators, vote, round])."""
        items = self.extra._items(include_round=True, include_seals=False)
        return keccak256(self._encode_with(bytes(rlp.encode(items))))

    def ibft2_block_hash(self) -> bytes:
        """IBFT 2.0 on-chain hash: extraData = RLP([vanity, validators, vote])."""
        items = self.extra._items(include_round=False, include_seals=False)
        return keccak256(self._encode_with(bytes(rlp.encode(items))))

    def with_seals(self, seals: Sequence[bytes]) -> QbftHeader:
        return replace(self, extra=replace(self.extra, seals=tuple(seals)))


# --- decoding ---------------------------------------------------------------------------


def _rlp_decode(data: object, what: str) -> _RlpItem:
    """Canonical RLP decode of a whole byte string into nested lists of bytes.

    The pyrlp decoder is exact but builds sedes objects per item; headers are decoded on
    every light-client update, so this walks the items with pyrlp's own length-prefix
    reader (which rejects non-canonical prefixes) and only slices bytes.
    """
    if not isinstance(data, bytes | bytearray):
        raise HeaderError(f"{what} must be bytes, got {type(data).__name__}")
    raw = bytes(data)
    try:
        item, end = _consume(raw, 0, len(raw))
    except (DecodingError, IndexError) as exc:
        raise HeaderError(f"{what} is not canonical RLP: {exc or 'truncated'}") from None
    if end != len(raw):
        raise HeaderError(f"{what} is not canonical RLP: trailing bytes")
    return item


_MAX_DEPTH = 4  # header or extraData list > validators / vote / seals list > item


def _consume(raw: bytes, pos: int, limit: int, depth: int = 0) -> tuple[_RlpItem, int]:
    if depth > _MAX_DEPTH:
        raise DecodingError("lists nested deeper than any header field", raw)
    if pos >= limit:
        raise DecodingError("item runs past its enclosing list", raw)
    _, kind, length, start = consume_length_prefix(raw, pos)
    end = start + length
    if end > limit:
        raise DecodingError("item runs past its enclosing list", raw)
    if kind is bytes:
        return raw[start:end], end
    items: list[_RlpItem] = []
    while start < end:
        b0 = raw[start]
        if b0 < 0x80:  # single byte: inlined, as most header fields are short strings
            items.append(raw[start : start + 1])
            start += 1
        elif b0 < 0xB8:
            stop = start + 1 + b0 - 0x80
            if stop > end or (b0 == 0x81 and raw[start + 1] < 0x80):
                raise DecodingError("short string is truncated or not minimally encoded", raw)
            items.append(raw[start + 1 : stop])
            start = stop
        else:
            item, start = _consume(raw, start, end, depth + 1)
            items.append(item)
    return items, end


def _fixed(item: _RlpItem, length: int, name: str) -> bytes:
    if not isinstance(item, bytes) or len(item) != length:
        raise HeaderError(f"{name} must be a {length}-byte string")
    return item


def _uint(item: _RlpItem, name: str, max_len: int = 32) -> int:
    if not isinstance(item, bytes) or len(item) > max_len:
        raise HeaderError(f"{name} must be an integer of at most {max_len} bytes")
    if item[:1] == b"\x00":
        raise HeaderError(f"{name} has a leading zero byte (non-canonical integer)")
    return int.from_bytes(item, "big")


def decode_extra_data(data: bytes) -> ExtraData:
    """Parse QBFT extraData; the legacy form (0x80 vote / 4-byte round) is recognised."""
    items = _rlp_decode(data, "extraData")
    if not isinstance(items, list) or len(items) != 5:
        raise HeaderError("extraData must be an RLP list of 5 items [vanity, validators, vote, round, seals]")
    vanity_raw, validators_raw, vote_raw, round_raw, seals_raw = items
    vanity = _fixed(vanity_raw, VANITY_LEN, "extraData vanity")
    if not isinstance(validators_raw, list):
        raise HeaderError("extraData validators must be a list")
    validators = tuple(_fixed(v, ADDRESS_LEN, "validator address") for v in validators_raw)
    legacy = False
    vote: Vote | None
    if vote_raw == b"":
        legacy, vote = True, None
    elif vote_raw == []:
        vote = None
    elif isinstance(vote_raw, list) and len(vote_raw) == 2:
        recipient = _fixed(vote_raw[0], ADDRESS_LEN, "vote recipient")
        if vote_raw[1] not in (VOTE_ADD, VOTE_DROP):
            raise HeaderError("vote type must be 0xff (add) or 0x00 (drop)")
        vote = Vote(recipient, vote_raw[1] == VOTE_ADD)
    else:
        raise HeaderError("vote must be [] or [recipient, type]")
    if not isinstance(round_raw, bytes):
        raise HeaderError("round must be a byte string")
    if len(round_raw) == _LEGACY_ROUND_LEN and round_raw[0] == 0:
        legacy = True
        rnd = int.from_bytes(round_raw, "big")
    else:
        rnd = _uint(round_raw, "round", _LEGACY_ROUND_LEN)
    if legacy and len(round_raw) != _LEGACY_ROUND_LEN:
        raise HeaderError("legacy extraData (0x80 vote) must carry a 4-byte round")
    if legacy and vote is None and vote_raw != b"":
        # A 4-byte round is the legacy form, whose "no vote" is 0x80; with [] the bytes would
        # re-encode differently, i.e. a second encoding of the same header.
        raise HeaderError("legacy extraData (4-byte round) writes no vote as 0x80, not as an empty list")
    if not isinstance(seals_raw, list):
        raise HeaderError("extraData seals must be a list")
    seals = tuple(_fixed(s, SEAL_LEN, "committed seal") for s in seals_raw)
    return ExtraData(vanity, validators, vote, rnd, seals, legacy)


def decode_header(data: bytes) -> QbftHeader:
    """Parse a header RLP strictly: every field has its Ethereum length and canonical integers."""
    items = _rlp_decode(data, "header")
    if not isinstance(items, list) or len(items) < 15:
        raise HeaderError("header must be an RLP list of at least 15 fields")
    if not all(isinstance(i, bytes) for i in items):
        raise HeaderError("header fields must be byte strings")
    f: list[bytes] = [i for i in items if isinstance(i, bytes)]
    header = QbftHeader(
        parent_hash=_fixed(f[0], 32, "parentHash"),
        ommers_hash=_fixed(f[1], 32, "ommersHash"),
        coinbase=_fixed(f[2], 20, "coinbase"),
        state_root=_fixed(f[3], 32, "stateRoot"),
        tx_root=_fixed(f[4], 32, "transactionsRoot"),
        receipts_root=_fixed(f[5], 32, "receiptsRoot"),
        bloom=_fixed(f[6], 256, "logsBloom"),
        difficulty=_uint(f[7], "difficulty"),
        number=_uint(f[8], "number", 8),
        gas_limit=_uint(f[9], "gasLimit", 8),
        gas_used=_uint(f[10], "gasUsed", 8),
        timestamp=_uint(f[11], "timestamp", 8),
        extra=decode_extra_data(f[12]),
        mix_hash=_fixed(f[13], 32, "mixHash"),
        nonce=_fixed(f[14], 8, "nonce"),
        trailing=tuple(f[15:]),
    )
    # No re-encode check is needed: pyrlp's decoder refuses non-canonical length prefixes,
    # integers are checked minimal above and the extraData fields have fixed shapes, so
    # QbftHeader.encode() reproduces ``data`` exactly (pinned by the vector tests).
    return header


# --- seals ------------------------------------------------------------------------------


def recover_signers(digest: bytes, seals: Sequence[bytes]) -> list[bytes]:
    """Signer address of each seal, in order; a malformed seal is a HeaderError."""
    signers = []
    for i, seal in enumerate(seals):
        try:
            signers.append(secp256k1_recover_address(digest, seal))
        except CryptoError as exc:
            raise HeaderError(f"committed seal {i} is invalid: {exc}") from None
    return signers
