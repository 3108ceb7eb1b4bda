"""The size limits of a node's gRPC API, shared by the server that enforces them and the
client that keeps its calls within them.

Each bounds how long one call can hold the node's single event loop (which also produces
blocks) or how much memory one caller can pin; a request past a limit is refused with
INVALID_ARGUMENT naming it, or by gRPC itself with RESOURCE_EXHAUSTED for the message size.
"""

from __future__ import annotations

# One request on the wire.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# One response: a block with its results (its raw txs are bounded by block.max_bytes, 2 MiB by
# default) or a batch of proofs may be larger than any request; clients accept 16 MiB.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# Items one batched call may carry (txs, paths, app queries, packet sequences): enough for a
# block's worth of trades or packets, few enough that one call cannot hold the event loop for
# long (4096 unreceived-packet look-ups take about 0.3 s on the Corda node; 500,000 took 33 s).
MAX_BATCH_ITEMS = 4096
# One signed transaction, whatever the chain kind: the EVM ledger's own bound
# (chains/evm/tx.py MAX_TX_BYTES), so a full mempool has a known byte ceiling on both kinds.
MAX_TX_BYTES = 1 << 20
