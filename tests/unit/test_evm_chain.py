"""The EVM-style chain: txs, contracts, state commitment, sealing, votes and IBC storage."""

from __future__ import annotations

from dataclasses import replace

import pytest
from google.protobuf import any_pb2

from chains.evm import (
    IBC_HANDLER_ADDRESS,
    SECURITY_TOKEN_ADDRESS,
    BlockError,
    EvmChain,
    Message,
    TxError,
    decode_tx,
    make_tx,
    seal_header,
)
from chains.evm.contracts import SecurityToken, mapping_slot
from chains.evm.ibc_contract import account_of
from chains.ibc.host import paths
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from lightclients.crypto import eth_address, secp256k1_public_key
from lightclients.interface import Height
from lightclients.mpt import verify_account_proof, verify_storage_proof
from lightclients.qbft import QbftClient
from lightclients.qbft.header import Vote, decode_header, recover_signers
from tests.unit.test_qbft_support import (
    ADDRS,
    CHAIN_ID,
    ISSUER,
    ISSUER_KEY,
    KEYS,
    NS,
    T0,
    header_msg,
    make_chain,
    new_client,
    now_of,
    produce,
)

LONG_TYPE = QbftClient.client_type
ALICE = b"\xaa" * 20
BOB = b"\xbb" * 20


def _token(method: str, *args: bytes) -> Message:
    return Message(SECURITY_TOKEN_ADDRESS, method, args)


def _issue(chain: EvmChain, nonce: int, *messages: Message) -> bytes:
    return make_tx(ISSUER_KEY, CHAIN_ID, nonce, messages).encode()


def _setup_holders(chain: EvmChain) -> None:
    tx = _issue(chain, 0, _token("whitelist", ISSUER, b"\x01"), _token("whitelist", ALICE, b"\x01"),
                _token("mint", ISSUER, (1000).to_bytes(2, "big")))
    block = chain.produce_block([tx], T0 + NS, KEYS[:4])
    assert block.receipts[0].success, block.receipts[0].reason


def test_replay_wrong_chain_and_bad_signature_rejected_with_reason() -> None:
    chain = make_chain()
    _setup_holders(chain)
    replay = _issue(chain, 0, _token("transfer", ALICE, b"\x01"))
    wrong_chain = make_tx(ISSUER_KEY, CHAIN_ID + 1, 1, [_token("transfer", ALICE, b"\x01")]).encode()
    good = make_tx(ISSUER_KEY, CHAIN_ID, 1, [_token("transfer", ALICE, b"\x01")])
    forged = decode_tx(good.encode())
    bad_sig = type(forged)(forged.chain_id, forged.nonce, forged.messages, forged.signature[:64] + b"\x07").encode()
    assert chain.check_tx(replay) is not None and "replay" in (chain.check_tx(replay) or "")
    assert "wrong chain id" in (chain.check_tx(wrong_chain) or "")
    assert "bad signature" in (chain.check_tx(bad_sig) or "")
    assert "transaction must be" in (chain.check_tx(b"\xc3\x01\x02\x03") or "")
    block = chain.produce_block([replay, wrong_chain, bad_sig, good.encode()], T0 + 2 * NS, KEYS[:4])
    assert [reason.split()[0] for _, reason in block.rejected] == ["nonce", "wrong", "bad"]
    assert len(block.receipts) == 1 and block.receipts[0].success
    assert chain.token.balance_of(chain.state, ALICE) == 1


def test_decode_tx_rejects_malformed() -> None:
    deep = b"\xc0"
    for _ in range(3000):
        deep = (b"\xf9" + len(deep).to_bytes(2, "big") if len(deep) > 55 else bytes([0xC0 + len(deep)])) + deep
    for raw in (b"", b"\x80", b"\xc4\x01\x02\x03\x04", b"\xc0", deep):
        with pytest.raises(TxError):
            decode_tx(raw)


def test_multi_message_tx_is_all_or_nothing() -> None:
    chain = make_chain()
    _setup_holders(chain)
    # whitelist BOB, then a transfer that overdraws: the whole tx must revert.
    tx = _issue(chain, 1, _token("whitelist", BOB, b"\x01"), _token("transfer", BOB, (5000).to_bytes(2, "big")))
    block = chain.produce_block([tx], T0 + 2 * NS, KEYS[:4])
    receipt = block.receipts[0]
    assert not receipt.success and "insufficient balance" in receipt.reason and receipt.logs == ()
    assert receipt.cost > 0
    assert not chain.token.is_whitelisted(chain.state, BOB)
    assert chain.nonce(ISSUER) == 2  # the failed tx still used its nonce


def test_security_token_whitelist_and_issuer_rules() -> None:
    chain = make_chain()
    _setup_holders(chain)
    alice_key = KEYS[7]
    holder = eth_address(secp256k1_public_key(alice_key))
    txs = [
        _issue(chain, 1, _token("transfer", BOB, b"\x05")),  # BOB not whitelisted
        make_tx(alice_key, CHAIN_ID, 0, [_token("mint", holder, b"\x05")]).encode(),  # not issuer
        _issue(chain, 2, _token("transfer", ALICE, b"\x05")),
    ]
    block = chain.produce_block(txs, T0 + 2 * NS, KEYS[:4])
    assert [r.success for r in block.receipts] == [False, False, True]
    assert "recipient is not whitelisted" in block.receipts[0].reason
    assert "only the issuer" in block.receipts[1].reason
    assert chain.token.balance_of(chain.state, ALICE) == 5
    assert chain.token.total_supply(chain.state) == 1000


def test_header_at_h_commits_state_after_block_h() -> None:
    chain = make_chain()
    _setup_holders(chain)
    h = chain.height
    slot = mapping_slot(ISSUER, SecurityToken.BALANCES)
    for height, expected in ((h, b"\x03\xe8"), (h - 1, None)):
        proof = chain.prove(SECURITY_TOKEN_ADDRESS, [slot], height)
        account = verify_account_proof(chain.header(height).state_root, SECURITY_TOKEN_ADDRESS, proof.account_proof)
        assert account is not None
        assert verify_storage_proof(account.storage_root, slot, proof.storage_proofs[slot]) == expected


def test_block_production_is_deterministic_and_byte_exact() -> None:
    a, b = make_chain(), make_chain()
    _setup_holders(a)
    _setup_holders(b)
    assert a.header(1).encode() == b.header(1).encode()
    header = decode_header(a.header(1).encode())
    assert header == a.header(1)
    assert set(recover_signers(header.commit_hash(), header.extra.seals)) == set(ADDRS[:4])
    assert header.parent_hash == a.header(0).block_hash()


def test_block_needs_more_than_two_thirds_of_validators_and_advancing_time() -> None:
    chain = make_chain()
    root = chain.state.trie.root_hash
    with pytest.raises(BlockError, match="not more than 2/3"):
        chain.produce_block([], T0 + NS, KEYS[:2])
    with pytest.raises(BlockError, match="not more than 2/3"):
        chain.produce_block([], T0 + NS, KEYS[4:8])
    with pytest.raises(BlockError, match="does not advance"):
        chain.produce_block([], T0 + NS // 2, KEYS[:4])
    assert chain.height == 0 and chain.state.trie.root_hash == root
    chain.produce_block([], T0 + NS, KEYS[:3])
    assert len(chain.header(1).extra.seals) == 3


def test_validator_votes_change_the_set_after_a_majority() -> None:
    chain = make_chain()
    produce(chain, 1)
    chain.produce_block([], T0 + 2 * NS, KEYS[:4], vote=Vote(ADDRS[4], True))
    chain.produce_block([], T0 + 3 * NS, KEYS[:4], vote=Vote(ADDRS[4], True))
    assert len(chain.validators) == 4  # 2 of 4 is not a majority
    chain.produce_block([], T0 + 4 * NS, KEYS[:4], vote=Vote(ADDRS[4], True))
    assert ADDRS[4] in chain.validators
    assert chain.header(4).extra.vote == Vote(ADDRS[4], True)
    assert ADDRS[4] not in chain.header(4).extra.validators
    produce(chain, 5, KEYS[:4])
    assert ADDRS[4] in chain.header(5).extra.validators
    with pytest.raises(BlockError, match="already in the set"):
        chain.produce_block([], T0 + 6 * NS, KEYS[:4], vote=Vote(ADDRS[4], True))
    for second in (6, 7, 8):  # 3 distinct proposers of 5 is a majority
        chain.produce_block([], T0 + second * NS, KEYS[:5], vote=Vote(ADDRS[0], False))
    assert ADDRS[0] not in chain.validators and len(chain.validators) == 4


def _any(msg: client_pb2.MsgCreateClient) -> bytes:
    packed = any_pb2.Any()
    packed.Pack(msg, type_url_prefix="/")
    return packed.SerializeToString(deterministic=True)


def test_ibc_handler_commitments_are_provable_to_a_qbft_client() -> None:
    """Chain A creates a qbft client of chain B in a tx; a client of A proves that state."""
    a = EvmChain(CHAIN_ID, ADDRS[:4], T0, token_issuer=ISSUER, clients={LONG_TYPE: QbftClient()})
    produce(a, 1)
    b = make_chain()
    produce(b, 1)
    watcher, wstore = new_client(a, 1)
    create = client_pb2.MsgCreateClient(
        client_type=LONG_TYPE,
        client_state=b.qbft_client_state(1, 3600 * NS, 10 * NS),
        consensus_state=b.qbft_consensus_state(1),
    )
    tx = _issue(a, 0, Message(IBC_HANDLER_ADDRESS, "ibc", (_any(create),)))
    block = a.produce_block([tx], T0 + 2 * NS, KEYS[:4])
    assert block.receipts[0].success, block.receipts[0].reason
    assert any(f"{LONG_TYPE}-0".encode() in b"".join(v for _, v in log.attributes)
               for log in block.receipts[0].logs)
    now = now_of(a, 2)
    watcher.verify_client_message(wstore, header_msg(a, 2, 1), now)
    watcher.update_state(wstore, header_msg(a, 2, 1))
    path = paths.client_state(f"{LONG_TYPE}-0")
    value = a.ibc.store.get(path)
    assert value is not None
    watcher.verify_membership(wstore, Height(0, 2), a.ibc_proof(path, 2), IBC_HANDLER_ADDRESS, path, value, now)
    # a failing IBC message in a tx leaves neither the core's data nor its commitments behind
    bad = _issue(a, 1, Message(IBC_HANDLER_ADDRESS, "ibc", (_any(create),)), _token("mint", BOB, b"\x01"))
    block = a.produce_block([bad], T0 + 3 * NS, KEYS[:4])
    assert not block.receipts[0].success
    assert a.ibc.store.get(paths.client_state(f"{LONG_TYPE}-1")) is None
    watcher.update_state(wstore, header_msg(a, 3, 2))
    watcher.verify_non_membership(wstore, Height(0, 3), a.ibc_proof(paths.client_state(f"{LONG_TYPE}-1"), 3),
                                  IBC_HANDLER_ADDRESS, paths.client_state(f"{LONG_TYPE}-1"), now_of(a, 3))


def test_ics20_transfer_sender_must_be_the_tx_signer() -> None:
    chain = make_chain()
    msg = transfer_pb2.MsgTransfer(
        source_port="transfer", source_channel="channel-0", denom="stake", amount="5",
        sender=account_of(ALICE), receiver="someone", timeout_timestamp=T0 + 3600 * NS,
    )
    packed = any_pb2.Any()
    packed.Pack(msg, type_url_prefix="/")
    forged = _issue(chain, 0, Message(IBC_HANDLER_ADDRESS, "ibc", (packed.SerializeToString(),)))
    msg.sender = account_of(ISSUER)
    packed.Pack(msg, type_url_prefix="/")
    own = _issue(chain, 1, Message(IBC_HANDLER_ADDRESS, "ibc", (packed.SerializeToString(),)))
    block = chain.produce_block([forged, own], T0 + NS, KEYS[:4])
    assert "sender must be the tx signer" in block.receipts[0].reason
    # the signer's own transfer passes authentication and reaches the app (no funds)
    assert not block.receipts[1].success and "holds 0 stake" in block.receipts[1].reason


def test_import_block_replays_to_identical_state_and_refuses_tampering() -> None:
    source, replica = make_chain(), make_chain()
    _setup_holders(source)
    tx = _issue(source, 1, _token("transfer", ALICE, b"\x07"))
    source.produce_block([tx], T0 + 2 * NS, KEYS[:4], vote=Vote(ADDRS[4], True))
    replica.import_block(source.header(1), source.blocks[1].txs)
    root = replica.state.trie.root_hash
    block = source.blocks[2]
    bad_state = seal_header(replace(block.header, state_root=bytes(32)), KEYS[:4])
    for header, txs, reason in (
        (bad_state, block.txs, "stateRoot"),
        (block.header, (), "transactionsRoot"),
        (block.header.with_seals(block.header.extra.seals[:2]), block.txs, "not final"),
        (source.header(1), source.blocks[1].txs, "does not extend"),
    ):
        with pytest.raises(BlockError, match=reason):
            replica.import_block(header, txs)
        assert replica.height == 1 and replica.state.trie.root_hash == root
        assert replica.token.balance_of(replica.state, ALICE) == 0
    replica.import_block(block.header, block.txs)
    assert replica.header(2).encode() == source.header(2).encode()
    assert replica.token.balance_of(replica.state, ALICE) == 7
    assert replica.state.trie.root_hash == source.state.trie.root_hash
