"""EIP-1186 proofs from three independent sources against our standalone verifier.

geth (execution-apis hive fixtures), Besu (its JSON-RPC spec files, roots taken from the
blocks it served them from) and Ethereum mainnet (axiom-eth captures) each produce proofs
with their own trie code; all must verify, and every mutation of them must be refused or
give a different answer (never the original one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import rlp
from rlp.codec import consume_item
from trie import HexaryTrie

from lightclients.crypto import keccak256
from lightclients.mpt import (
    EMPTY_ROOT,
    Account,
    MptProofError,
    verify_account_proof,
    verify_proof,
    verify_storage_proof,
)
from tests.conftest import vector_path


@dataclass(frozen=True)
class Case:
    label: str
    state_root: bytes
    result: dict[str, Any]


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def _io_result(*parts: str) -> dict[str, Any]:
    for line in vector_path(*parts).read_text().splitlines():
        if line.startswith("<< "):
            response: dict[str, Any] = json.loads(line[3:])
            return response["result"]  # type: ignore[no-any-return]
    raise AssertionError(f"no response line in {parts}")


def _execution_apis_cases() -> list[Case]:
    head = _io_result("execution-apis", "tests", "eth_getBlockByNumber", "get-latest.io")
    root = _hex(head["stateRoot"])
    names = ["blockhash", "default-block", "latest", "with-storage"]
    return [
        Case(
            f"execution-apis/{name}",
            root,
            _io_result("execution-apis", "tests", "eth_getProof", f"get-account-proof-{name}.io"),
        )
        for name in names
    ]


def _besu_headers() -> list[list[Any]]:
    data = vector_path("hyperledger-besu", "hive", "testBlockchain.blocks").read_bytes()
    headers, pos = [], 0
    while pos < len(data):
        block, _, pos = consume_item(data, pos)
        headers.append(block[0])
    return headers


def _besu_cases() -> list[Case]:
    headers = _besu_headers()
    by_hash = {keccak256(rlp.encode(h)): h for h in headers}
    by_number = {int.from_bytes(h[8], "big"): h for h in headers}
    folder = vector_path("hyperledger-besu", "eth_getProof")
    cases = []
    for path in sorted(folder.glob("eth_getProof_*.json")):
        doc = json.loads(path.read_text())
        result = doc["response"].get("result")
        if not isinstance(result, dict):
            continue  # JSON-RPC error cases carry no proof
        block = doc["request"]["params"][2]
        if isinstance(block, dict):
            block = block.get("blockHash") or block.get("blockNumber")
        if block in ("latest", "pending"):
            header = headers[-1]
        elif len(_hex(block)) == 32:
            header = by_hash[_hex(block)]
        else:
            header = by_number[int(block, 16)]
        cases.append(Case(f"besu/{path.name}", bytes(header[3]), result))
    return cases


def _axiom_cases() -> list[Case]:
    names = [
        "default_storage_pf",
        "noninclusion_branch_pf",
        "noninclusion_extension_pf",
        "noninclusion_extension_pf2",
        "empty_storage_pf",
    ]
    cases = []
    for name in names:
        result = json.loads(
            vector_path("axiom-eth", "scripts", "input_gen", f"{name}.json").read_text()
        )
        # No header is stored with these captures: the root is the first node's hash.
        cases.append(Case(f"axiom/{name}", keccak256(_hex(result["accountProof"][0])), result))
    return cases


def _all_cases() -> list[Case]:
    return _execution_apis_cases() + _besu_cases() + _axiom_cases()


def _slot(key: str) -> bytes:
    """Storage keys: 0x-hex (geth, Besu) or bare, possibly odd-length hex (axiom)."""
    return int(key.removeprefix("0x") or "0", 16).to_bytes(32, "big")


def _account_of(result: dict[str, Any]) -> Account:
    return Account(
        nonce=int(result["nonce"], 16),
        balance=int(result["balance"], 16),
        storage_root=_hex(result["storageHash"]),
        code_hash=_hex(result["codeHash"]),
    )


def _nodes(result: dict[str, Any], field: str = "accountProof") -> list[bytes]:
    return [_hex(n) for n in result[field]]


def test_the_geth_root_is_the_head_of_its_chain() -> None:
    """The trusted root is anchored in chain.rlp: the last header hashes to the head's hash."""
    head = _io_result("execution-apis", "tests", "eth_getBlockByNumber", "get-latest.io")
    data = vector_path("execution-apis", "tests", "chain.rlp").read_bytes()
    pos, header = 0, None
    while pos < len(data):
        block, _, pos = consume_item(data, pos)
        header = block[0]
    assert header is not None
    assert keccak256(rlp.encode(header)) == _hex(head["hash"])
    assert bytes(header[3]) == _hex(head["stateRoot"])


def test_the_vector_set_is_complete() -> None:
    cases = _all_cases()
    assert len(cases) == 4 + 8 + 5
    known = {
        "cf966b3f77c73436ebd1ef71d85a4561e0a6616d831c2d2bfa540988b892de4f",
        "34727aff24d1c51cd63fdc14515b15ddaa156fa0671c58a96c72b1553819945d",
    }
    assert {c.state_root.hex() for c in cases if c.label.startswith("besu/")} == known
    assert {c.state_root.hex() for c in cases if c.label.startswith("execution-apis/")} == {
        "6da8f636cdc85dbe8c1b5299e5db22f462c041febaf3b78cac1040152ee30b3b"
    }


@pytest.mark.parametrize("case", _all_cases(), ids=lambda c: c.label)
def test_account_and_storage_proofs_verify(case: Case) -> None:
    result = case.result
    account = verify_account_proof(case.state_root, _hex(result["address"]), _nodes(result))
    assert account == _account_of(result)
    assert account is not None
    for entry in result["storageProof"]:
        value = verify_storage_proof(
            account.storage_root, _slot(entry["key"]), _nodes(entry, "proof")
        )
        expected = int(entry["value"], 16)
        assert int.from_bytes(value or b"", "big") == expected
        assert (value is None) == (expected == 0), "zero must be proven absent"


def test_the_absence_cases_are_really_absence_proofs() -> None:
    absent = {
        c.label
        for c in _all_cases()
        for e in c.result["storageProof"]
        if int(e["value"], 16) == 0 and e["proof"]
    }
    assert "besu/eth_getProof_latest.json" in absent
    assert {"axiom/noninclusion_branch_pf", "axiom/noninclusion_extension_pf"} <= absent
    empty_storage = [c for c in _all_cases() if _hex(c.result["storageHash"]) == EMPTY_ROOT]
    assert any(c.label == "axiom/empty_storage_pf" for c in empty_storage)


def test_proofs_also_verify_with_py_trie() -> None:
    """Cross-check: py-trie reads the same values out of the same node lists."""
    for case in _all_cases():
        result = case.result
        leaf = HexaryTrie.get_from_proof(
            case.state_root,
            keccak256(_hex(result["address"])),
            [rlp.decode(n) for n in _nodes(result)],
        )
        assert leaf == verify_proof(
            case.state_root, keccak256(_hex(result["address"])), _nodes(result)
        )


# --- mutations ------------------------------------------------------------------------


def _outcome(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except MptProofError as exc:
        return ("rejected", str(exc))


def _flips(nodes: list[bytes]) -> list[list[bytes]]:
    """Copies of ``nodes`` with one byte changed, at the start, middle and end of each node."""
    variants = []
    for i, node in enumerate(nodes):
        for pos in sorted({0, 1, len(node) // 2, len(node) - 1}):
            changed = bytearray(node)
            changed[pos] ^= 0x01
            variants.append([*nodes[:i], bytes(changed), *nodes[i + 1 :]])
    return variants


def _structural(nodes: list[bytes]) -> list[list[bytes]]:
    """Truncated, extended, reordered and duplicated node lists."""
    variants = [nodes[:-1], [*nodes, nodes[-1]], [*nodes, b"\xc0"], nodes[1:]]
    if len(nodes) > 1:
        variants.append([nodes[1], nodes[0], *nodes[2:]])
    return [v for v in variants if v != nodes]


@pytest.mark.parametrize("case", _all_cases(), ids=lambda c: c.label)
def test_mutated_account_proofs_are_rejected(case: Case) -> None:
    result = case.result
    address = _hex(result["address"])
    nodes = _nodes(result)
    genuine = verify_account_proof(case.state_root, address, nodes)
    for variant in _flips(nodes) + _structural(nodes):
        outcome = _outcome(partial(verify_account_proof, case.state_root, address, variant))
        assert isinstance(outcome, tuple), f"mutated proof accepted: {outcome}"
    other_address = bytes([address[0] ^ 0x80]) + address[1:]
    assert _outcome(partial(verify_account_proof, case.state_root, other_address, nodes)) != genuine
    other_root = bytes([case.state_root[0] ^ 0x01]) + case.state_root[1:]
    assert isinstance(_outcome(partial(verify_account_proof, other_root, address, nodes)), tuple)


@pytest.mark.parametrize("case", _all_cases(), ids=lambda c: c.label)
def test_mutated_storage_proofs_are_rejected(case: Case) -> None:
    storage_root = _hex(case.result["storageHash"])
    for entry in case.result["storageProof"]:
        slot = _slot(entry["key"])
        nodes = _nodes(entry, "proof")
        genuine = verify_storage_proof(storage_root, slot, nodes)
        variants = _flips(nodes) + _structural(nodes) if nodes else [[b"\xc0"], [b"\x80", b"\x80"]]
        for variant in variants:
            outcome = _outcome(partial(verify_storage_proof, storage_root, slot, variant))
            assert isinstance(outcome, tuple), f"mutated storage proof accepted: {outcome}"
        other_slot = (int.from_bytes(slot, "big") + 1).to_bytes(32, "big")
        moved = _outcome(partial(verify_storage_proof, storage_root, other_slot, nodes))
        if genuine is None:
            # Another slot may be absent through the same nodes; it must never gain a value.
            assert moved is None or isinstance(moved, tuple)
        else:
            assert moved != genuine
        other_root = bytes([storage_root[0] ^ 0x01]) + storage_root[1:]
        assert isinstance(_outcome(partial(verify_storage_proof, other_root, slot, nodes)), tuple)


def _forge_leaf(nodes: list[bytes], value: bytes) -> tuple[bytes, list[bytes]] | None:
    """Replace the value in the proof's final leaf and re-link every parent to it.

    Returns the forged root and nodes, or None when the proof does not end in a leaf.
    """
    last = rlp.decode(nodes[-1])
    if len(last) != 2 or last[0][0] >> 4 < 2:
        return None
    forged = [*nodes[:-1], rlp.encode([last[0], value])]
    for i in range(len(nodes) - 2, -1, -1):
        old, new = keccak256(nodes[i + 1]), keccak256(forged[i + 1])
        assert nodes[i].count(old) == 1
        forged[i] = nodes[i].replace(old, new)
    return keccak256(forged[0]), forged


@pytest.mark.parametrize("case", _all_cases(), ids=lambda c: c.label)
def test_a_changed_value_changes_the_root(case: Case) -> None:
    """A well-formed proof of another value exists only under another root."""
    result = case.result
    address = _hex(result["address"])
    genuine = _account_of(result)
    richer = rlp.encode(
        [genuine.nonce, genuine.balance + 1, genuine.storage_root, genuine.code_hash]
    )
    forged = _forge_leaf(_nodes(result), richer)
    assert forged is not None, "an account proof of a present account ends in its leaf"
    forged_root, forged_nodes = forged
    assert forged_root != case.state_root
    account = verify_account_proof(forged_root, address, forged_nodes)
    assert account is not None and account.balance == genuine.balance + 1
    with pytest.raises(MptProofError):
        verify_account_proof(case.state_root, address, forged_nodes)
    for entry in result["storageProof"]:
        if int(entry["value"], 16) == 0:
            continue
        slot, nodes = _slot(entry["key"]), _nodes(entry, "proof")
        forged = _forge_leaf(nodes, rlp.encode(b"\x01\x02"))
        assert forged is not None
        forged_root, forged_nodes = forged
        assert verify_storage_proof(forged_root, slot, forged_nodes) == b"\x01\x02"
        with pytest.raises(MptProofError):
            verify_storage_proof(genuine.storage_root, slot, forged_nodes)
