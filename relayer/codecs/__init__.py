"""Chain codecs: what the relayer's generic gRPC chain handle needs to know per chain kind.

``codec_for`` builds one from the relayer's secret for that chain and the node's
``chain_info`` app query (EVM: the numeric tx chain id; Corda: the notary identity every tx
must name), so a codec never guesses what the node can tell it.
"""

from __future__ import annotations

from collections.abc import Mapping

from relayer.codecs.common import DEFAULT_DRIFT_NS, DEFAULT_TRUSTING_NS, CodecError
from relayer.codecs.corda import CordaCodec
from relayer.codecs.evm import EvmCodec
from relayer.core.chain import ChainCodec

__all__ = ["CodecError", "CordaCodec", "EvmCodec", "codec_for"]


def codec_for(kind: str, signer_secret: bytes, chain_info: Mapping[str, object], *,
              trusting_period_ns: int = DEFAULT_TRUSTING_NS,
              max_clock_drift_ns: int = DEFAULT_DRIFT_NS) -> ChainCodec:
    """The codec for a chain of ``kind`` ("evm" or "corda") signing with ``signer_secret``."""
    try:
        if kind == "evm":
            evm_chain_id = chain_info["evm_chain_id"]
            if isinstance(evm_chain_id, bool) or not isinstance(evm_chain_id, int):
                raise CodecError("chain_info.evm_chain_id must be an integer")
            return EvmCodec(signer_secret, evm_chain_id, trusting_period_ns=trusting_period_ns,
                            max_clock_drift_ns=max_clock_drift_ns)
        if kind == "corda":
            notary = chain_info["notary_identity"]
            if not isinstance(notary, str):
                raise CodecError("chain_info.notary_identity must be a hex string")
            return CordaCodec(signer_secret, bytes.fromhex(notary), trusting_period_ns=trusting_period_ns,
                              max_clock_drift_ns=max_clock_drift_ns)
    except KeyError as exc:
        raise CodecError(f"chain_info lacks {exc.args[0]!r} for a {kind} chain") from None
    except ValueError as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"chain_info for a {kind} chain is malformed: {exc}") from None
    raise CodecError(f"unknown chain kind {kind!r}; expected evm or corda")
