"""Shared builders for the QBFT light-client and EVM chain tests (holds no tests itself)."""

from __future__ import annotations

from chains.evm import EvmChain
from lightclients.crypto import eth_address, secp256k1_public_key
from lightclients.interface import MemoryClientStore
from lightclients.qbft import QbftClient, encode_header_message

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
CHAIN_ID = 1337
KEYS = [bytes([i + 1]) * 32 for i in range(8)]
ADDRS = [eth_address(secp256k1_public_key(k)) for k in KEYS]
ISSUER_KEY = b"\x42" * 32
ISSUER = eth_address(secp256k1_public_key(ISSUER_KEY))
TRUSTING = 24 * 3600 * NS
DRIFT = 10 * NS


def make_chain(validators: int = 4, first: int = 0) -> EvmChain:
    return EvmChain(CHAIN_ID, ADDRS[first : first + validators], T0, token_issuer=ISSUER)


def produce(chain: EvmChain, seconds: int, keys: list[bytes] | None = None) -> int:
    """Produce one empty block at T0 + seconds, sealed by ``keys`` (default: first 4)."""
    chain.produce_block([], T0 + seconds * NS, KEYS[:4] if keys is None else keys)
    return chain.height


def new_client(
    chain: EvmChain, height: int, *, trusting: int = TRUSTING, drift: int = DRIFT
) -> tuple[QbftClient, MemoryClientStore]:
    cs = chain.qbft_client_state(height, trusting, drift)
    cons = chain.qbft_consensus_state(height)
    client, store = QbftClient(), MemoryClientStore()
    client.initialize(store, cs, cons, chain.header(height).timestamp * NS)
    return client, store


def header_msg(chain: EvmChain, height: int, trusted: int, seals: list[bytes] | None = None) -> bytes:
    header = chain.light_client_header(height, trusted)
    if seals is not None:
        del header.seals[:]
        header.seals.extend(seals)
    return encode_header_message(header)


def now_of(chain: EvmChain, height: int, after: int = 1) -> int:
    return (chain.header(height).timestamp + after) * NS
