"""ethereum/tests RLP vectors against the ``rlp`` package, the codec every chain module uses.

Header hashes, seals and trie nodes are all RLP, so encode must be byte-exact and decode
must refuse every non-canonical form (otherwise one header would have several hashes).
"""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from rlp.sedes import big_endian_int

from tests.conftest import load_vector


def _to_rlp_input(value: Any) -> Any:
    """JSON test input to the Python value rlp encodes: '#digits' is a big integer."""
    if isinstance(value, str):
        return int(value[1:]) if value.startswith("#") else value.encode("utf-8")
    if isinstance(value, list):
        return [_to_rlp_input(item) for item in value]
    assert isinstance(value, int)
    return value


def _matches(decoded: Any, expected: Any) -> bool:
    """rlp decodes to bytes and lists only; integers are compared through the int sedes."""
    if isinstance(expected, int):
        return isinstance(decoded, bytes) and bool(big_endian_int.deserialize(decoded) == expected)
    if isinstance(expected, bytes):
        return bool(decoded == expected)
    return (
        isinstance(decoded, list)
        and len(decoded) == len(expected)
        and all(_matches(d, e) for d, e in zip(decoded, expected, strict=True))
    )


def test_valid_rlp_encodes_to_out_and_decodes_back() -> None:
    cases = load_vector("ethereum-tests", "RLPTests", "rlptest.json")
    assert len(cases) == 28
    for name, case in cases.items():
        value = _to_rlp_input(case["in"])
        out = bytes.fromhex(case["out"].removeprefix("0x"))
        assert rlp.encode(value) == out, name
        assert _matches(rlp.decode(out), value), name


def test_invalid_rlp_is_rejected_on_decode() -> None:
    cases = load_vector("ethereum-tests", "RLPTests", "invalidRLPTest.json")
    assert len(cases) == 26
    for name, case in cases.items():
        assert case["in"] == "INVALID"
        try:
            decoded = rlp.decode(bytes.fromhex(case["out"].removeprefix("0x")))
        except rlp.exceptions.DecodingError:
            continue
        pytest.fail(f"{name}: invalid RLP decoded to {decoded!r}")


def test_random_rlp_example_decodes() -> None:
    cases = load_vector("ethereum-tests", "RLPTests", "RandomRLPTests", "example.json")
    assert len(cases) == 1
    for case in cases.values():
        assert case["in"] == "VALID"
        out = bytes.fromhex(case["out"].removeprefix("0x"))
        assert rlp.encode(rlp.decode(out)) == out
