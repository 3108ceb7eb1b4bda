"""The EVM-style account chain with QBFT-style finality (sans-I/O)."""

from chains.evm.chain import (
    IBC_HANDLER_ADDRESS,
    SECURITY_TOKEN_ADDRESS,
    Block,
    BlockError,
    EvmChain,
    Receipt,
    seal_header,
)
from chains.evm.tx import Message, Transaction, TxError, decode_tx, make_tx

__all__ = [
    "IBC_HANDLER_ADDRESS",
    "SECURITY_TOKEN_ADDRESS",
    "Block",
    "BlockError",
    "EvmChain",
    "Message",
    "Receipt",
    "Transaction",
    "TxError",
    "decode_tx",
    "make_tx",
    "seal_header",
]
