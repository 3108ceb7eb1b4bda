"""The hand-written RLP encoder equals the rlp package byte for byte (chains/evm/rlp_fast.py).

Golden vectors pin the Ethereum wiki's examples and the chain's own tx and receipt bytes, so
a change in either encoder shows up as a changed hash, not as a silent fork.
"""

from __future__ import annotations

import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.evm import Message, Receipt, Transaction
from chains.evm.contracts import Log
from chains.evm.rlp_fast import encode
from lightclients.crypto import keccak256

GOLDEN = [
    (b"dog", "83646f67"),
    ([b"cat", b"dog"], "c88363617483646f67"),
    (b"", "80"),
    ([], "c0"),
    (0, "80"),
    (b"\x00", "00"),
    (15, "0f"),
    (1024, "820400"),
    ([[], [[]], [[], [[]]]], "c7c0c1c0c3c0c1c0"),
    (b"Lorem ipsum dolor sit amet, consectetur adipisicing elit",
     "b8384c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e7365637465747572206164697069736963696e6720656c6974"),
    (2**64, "89010000000000000000"),
]


def test_golden_vectors() -> None:
    for item, want in GOLDEN:
        assert encode(item).hex() == want
        assert bytes(rlp.encode(item)).hex() == want


_ITEMS = st.recursive(st.binary(max_size=80) | st.integers(min_value=0, max_value=2**300),
                      lambda inner: st.lists(inner, max_size=6), max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(_ITEMS)
def test_equals_the_rlp_package(item: object) -> None:
    assert encode(item) == bytes(rlp.encode(item))


def test_tx_and_receipt_bytes_are_pinned() -> None:
    msgs = (Message(b"\x11" * 20, "transfer", (b"\x22" * 20, b"\x05")), Message(b"\x33" * 20, "ibc", (b"x" * 60,)))
    tx = Transaction(4242, 7, msgs, b"\x44" * 65)
    items = [tx.chain_id, tx.nonce, [[m.to, m.method.encode(), list(m.args)] for m in msgs], tx.signature]
    assert tx.encode() == bytes(rlp.encode(items))
    assert tx.signing_hash() == keccak256(bytes(rlp.encode(items[:3])))
    assert tx.signing_hash().hex() == "81e258c7fe5cdc6419c66e41edbf3ed02a5e2ebcc4d2579d9b768c51415a65ef"
    assert keccak256(tx.encode()).hex() == "2214db9eef365810055f4c0d57ebbb0040a88e11fcf1f326eaf9b117f6bc65d8"  # from the rlp-package encoder
    receipt = Receipt(b"\x55" * 32, True, "", (Log(b"\x66" * 20, "transfer", (("from", b"\x01"), ("amount", b""))),),
                      26_000)
    logs = [[b"\x66" * 20, b"transfer", [[b"from", b"\x01"], [b"amount", b""]]]]
    assert receipt.encode() == bytes(rlp.encode([1, 26_000, b"", logs]))
    failed = Receipt(b"\x55" * 32, False, "message 0: no", (), 21_000)
    assert failed.encode() == bytes(rlp.encode([0, 21_000, b"message 0: no", []]))
    assert keccak256(receipt.encode() + failed.encode()).hex() == \
        "ba06285b36bb4b455dc57306cc4138861a3c4b535b68b104e6b1903e29feec7d"
