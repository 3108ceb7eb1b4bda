"""Public QBFT / IBFT 2.0 vectors through the header codec and the QBFT seal rule."""

from __future__ import annotations

from typing import Any

import pytest
import rlp

from lightclients.crypto import keccak256
from lightclients.qbft.client import verify_seals
from lightclients.qbft.header import (
    ExtraData,
    HeaderError,
    QbftHeader,
    Vote,
    decode_extra_data,
    decode_header,
    recover_signers,
)
from tests.conftest import load_vector


def _hex(s: str) -> bytes:
    return bytes.fromhex(s.removeprefix("0x"))


@pytest.fixture(scope="module")
def besu() -> Any:
    return load_vector("besu-qbft-elc", "qbft_header_7528.json")


@pytest.fixture(scope="module")
def anvil() -> Any:
    return load_vector("foundry-anvil", "ibft2_block_5618555.json")


def test_besu_header_decodes_and_reencodes(besu: Any) -> None:
    raw = _hex(besu["header_rlp_with_seals"])
    header = decode_header(raw)
    exp = besu["expected"]
    assert header.encode() == raw
    assert header.number == exp["number"]
    assert header.timestamp == exp["timestamp"]
    assert header.state_root.hex() == exp["state_root"]
    assert header.extra.round == exp["round"]
    assert [v.hex() for v in header.extra.validators] == exp["validators"]
    assert [s.hex() for s in header.extra.seals] == exp["committed_seals"]
    assert not header.extra.legacy


def test_besu_commit_hash_signers_and_block_hash(besu: Any) -> None:
    header = decode_header(_hex(besu["header_rlp_with_seals"]))
    derived = besu["collector_derived_not_in_source"]
    assert header.signing_rlp().hex() == besu["header_rlp_without_seals"]
    assert header.commit_hash().hex() == besu["expected"]["commit_hash"]
    signers = recover_signers(header.commit_hash(), header.extra.seals)
    assert [s.hex() for s in signers] == derived["recovered_signers_in_seal_order"]
    assert header.block_hash().hex() == derived["qbft_onchain_block_hash_besu_rule"]
    assert keccak256(header.encode()).hex() == derived["keccak256_of_header_rlp_with_seals"]


def test_besu_quorum_three_of_four(besu: Any) -> None:
    header = decode_header(_hex(besu["header_rlp_with_seals"]))
    vals = header.extra.validators
    seals = header.extra.seals
    assert len(verify_seals(header.commit_hash(), seals, vals, vals)) == 3
    with pytest.raises(HeaderError, match="> 2/3"):
        verify_seals(header.commit_hash(), seals[:2], vals, vals)
    with pytest.raises(HeaderError, match="> 2/3"):
        verify_seals(header.commit_hash(), [seals[0], seals[0], seals[1]], vals, vals)


def test_besu_extra_data_vectors(besu: Any) -> None:
    for case in besu["extra_data_vectors"]:
        raw = _hex(case["extra_data_rlp"])
        extra = decode_extra_data(raw)
        exp = case["expected"]
        assert extra.round == exp["round"]
        assert len(extra.vanity) == exp["vanity_len"]
        assert len(extra.validators) == exp["validators_count"]
        assert len(extra.seals) == exp["committed_seals_count"]
        assert extra.encode() == raw


def _anvil_header(anvil: Any) -> QbftHeader:
    block = rlp.decode(_hex(anvil["block_rlp"]))
    return decode_header(rlp.encode(block[0]))


def test_ibft2_block_seal_hash_recovers_listed_signers(anvil: Any) -> None:
    header = _anvil_header(anvil)
    derived = anvil["collector_derived"]
    assert header.number == derived["number"]
    assert header.extra.legacy
    assert [v.hex() for v in header.extra.validators] == derived["extra_data"]["validators"]
    assert header.ibft2_committed_seal_hash().hex() == derived["committed_seal_hash_ibft2"]
    assert header.ibft2_block_hash().hex() == derived["onchain_block_hash_ibft2"]
    signers = recover_signers(header.ibft2_committed_seal_hash(), header.extra.seals)
    assert [s.hex() for s in signers] == derived["recovered_signers_in_seal_order"]
    assert set(signers) <= set(header.extra.validators)
    vals = header.extra.validators
    verify_seals(header.ibft2_committed_seal_hash(), header.extra.seals, vals, vals)


def test_ibft2_block_rejected_under_qbft_rule(anvil: Any) -> None:
    header = _anvil_header(anvil)
    vals = header.extra.validators
    signers = recover_signers(header.commit_hash(), header.extra.seals)
    assert not set(signers) & set(vals)
    with pytest.raises(HeaderError, match="only 0 of the header's 4 validators"):
        verify_seals(header.commit_hash(), header.extra.seals, vals, vals)


def _extra_from_json(obj: dict[str, Any]) -> ExtraData:
    vote = obj["vote"]
    return ExtraData(
        vanity=_hex(obj["vanityData"]),
        validators=tuple(_hex(v) for v in obj["validators"]),
        vote=None if vote is None else Vote(_hex(vote["recipient"]), vote["voteType"] == "0xff"),
        round=obj["round"],
        seals=tuple(_hex(s) for s in obj["seals"]),
        legacy=True,
    )


def test_consensys_extra_data_legacy_roundtrip() -> None:
    cases = load_vector("consensys-qbft-tests", "BftExtraDataRLPTests", "bft_extra_data.json")
    assert len(cases) == 4
    for name, case in cases.items():
        raw = _hex(case["rlp"])
        decoded = decode_extra_data(raw)
        assert decoded == _extra_from_json(case["qbft_extra_data"]), name
        assert decoded.encode() == raw, name
        assert _extra_from_json(case["qbft_extra_data"]).encode() == raw, name


def test_consensys_block_header_hashes_and_signers() -> None:
    data = load_vector("consensys-qbft-tests", "BftBlockHeaderHashTests", "bft_block_headers_data.json")
    case = data["hash_of_qbft_block_header"]
    h = case["qbft_block_header"]
    header = QbftHeader(
        parent_hash=_hex(h["parentHash"]),
        ommers_hash=_hex(h["ommersHash"]),
        coinbase=_hex(h["coinbase"]),
        state_root=_hex(h["stateRoot"]),
        tx_root=_hex(h["transactionsRoot"]),
        receipts_root=_hex(h["receiptsRoot"]),
        bloom=_hex(h["logsBloom"]),
        difficulty=h["difficulty"],
        number=h["number"],
        gas_limit=h["gasLimit"],
        gas_used=h["gasUsed"],
        timestamp=h["timestamp"],
        extra=decode_extra_data(_hex(h["extraData"])),
        mix_hash=_hex(h["mixHash"]),
        nonce=h["nonce"].to_bytes(8, "big"),
    )
    assert header.extra.legacy
    assert decode_header(header.encode()) == header
    assert "0x" + header.ibft2_block_hash().hex() == case["on_chain_hash"]
    assert "0x" + header.ibft2_committed_seal_hash().hex() == case["committed_seal_hash"]
    signers = recover_signers(header.ibft2_committed_seal_hash(), header.extra.seals)
    assert [s.hex() for s in signers] == [
        "7e5f4552091a69125d5dfcb7b8c2659029395bdf",
        "2b5ad5c4795c026514f8317c7a215e218dccd6cf",
        "6813eb9362372eef6200f3b1dbc3f819671cba69",
        "1eff47bc3a10a45d4b230b5d10e37751fe6aa718",
    ]
