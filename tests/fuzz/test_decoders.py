"""Every outside decoder under hypothesis: random bytes and mutations of the kept corpus.

Bounded here (``make test``); ``make fuzz`` runs the same targets coverage-guided under atheris
(tests/fuzz/run.py). The corpus under tests/fuzz/corpus/ holds the genuine seeds plus what the
fuzzers found interesting, and every file in it is replayed here as a regression.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import rlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.ibc.apps.transfer import FungibleTokenPacketData, ack_succeeded
from chains.ibc.errors import InvalidMessage
from chains.node.config import NodeConfigError, node_config_from_toml
from lightclients.qbft.header import HeaderError, decode_extra_data
from relayer.config.schema import config_from_toml
from relayer.config.tables import ConfigError
from relayer.dvp.trade import TradeError, trade_from_json
from tests.fuzz.targets import TARGETS

CORPUS = Path(__file__).resolve().parent / "corpus"
NAMES = sorted(TARGETS)


def corpus(name: str) -> list[bytes]:
    files = sorted((CORPUS / name).glob("*"))
    assert files, f"no corpus for {name}: run python -m tests.fuzz.seeds"
    return [f.read_bytes() for f in files]


@st.composite
def mutated(draw: st.DrawFn, name: str) -> bytes:
    """A corpus input with a few byte-level edits (what a mutation fuzzer does first)."""
    data = bytearray(draw(st.sampled_from(corpus(name))))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=8))
            continue
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 4))
        if op == 0:
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            del data[i:i + draw(st.integers(1, 16))]
        elif op == 2:
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == 3:
            data[i] ^= 1 << draw(st.integers(0, 7))
        else:
            del data[i:]
    return bytes(data)


@pytest.mark.parametrize("name", NAMES)
def test_corpus_replays_cleanly(name: str) -> None:
    for data in corpus(name):
        TARGETS[name](data)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=1024))
def test_random_bytes(name: str, data: bytes) -> None:
    TARGETS[name](data)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_corpus(name: str, data: st.DataObject) -> None:
    TARGETS[name](data.draw(mutated(name)))


# --- the defects the fuzzers found, pinned -----------------------------------------------------

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


def test_deeply_nested_packet_data_and_acks_are_refused_by_depth_not_by_the_stack() -> None:
    with pytest.raises(InvalidMessage, match="not JSON"):
        FungibleTokenPacketData.decode(b'{"amount":' + DEEP_JSON + b"}")
    assert not ack_succeeded(b'{"result":' + DEEP_JSON + b"}")
    # nine levels is already refused, whatever the caller's stack depth
    assert not ack_succeeded(b'{"result":' + b"[" * 8 + b"]" * 8 + b"}")
    assert ack_succeeded(b'{"result":' + b"[" * 7 + b"]" * 7 + b"}")
    assert ack_succeeded(b'{"result":"[[[[[[[[[[[["}')  # brackets inside strings do not count


def test_deeply_nested_trade_files_and_configs_are_typed_errors() -> None:
    with pytest.raises(TradeError, match="is not JSON"):
        trade_from_json(DEEP_JSON)
    deep_toml = "a = " + "[" * 5000 + "]" * 5000
    with pytest.raises(ConfigError, match="nest too deeply"):
        config_from_toml(deep_toml, Path("."))
    with pytest.raises(NodeConfigError, match="nest too deeply"):
        node_config_from_toml(deep_toml, Path("."))


def test_extra_data_has_one_encoding() -> None:
    """A 4-byte round is the legacy form, whose 'no vote' is 0x80; an empty list there was a
    second encoding of the same extraData (it decoded, and re-encoded to other bytes)."""
    body = [b"\x00" * 32, [b"\x11" * 20], [], b"\x00\x00\x00\x01", []]
    with pytest.raises(HeaderError, match="not as an empty list"):
        decode_extra_data(rlp.encode(body))
    legacy = [b"\x00" * 32, [b"\x11" * 20], b"", b"\x00\x00\x00\x01", []]
    assert decode_extra_data(rlp.encode(legacy)).encode() == rlp.encode(legacy)
