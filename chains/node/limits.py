"""The size limits of a node's gRPC API and of what it holds in memory, shared by the server that
enforces them and the client that keeps its calls within them.

Each bounds how long one call can hold the node's single event loop (which also produces
blocks) or how much memory callers can pin; a request past a limit is refused with
INVALID_ARGUMENT naming it, RESOURCE_EXHAUSTED when the node is full, or by gRPC itself with
RESOURCE_EXHAUSTED for the message size.
"""

from __future__ import annotations

# One request on the wire.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# One response: a block with its results (its raw txs are bounded by block.max_bytes, 2 MiB by
# default) or a batch of proofs may be larger than any request; clients accept 16 MiB.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# Calls the gRPC server queues until the node's event loop takes them; gRPC cancels calls
# beyond it (CANCELLED) without reading them. Each waiting call holds ~10 KB.
MAX_PENDING_CALLS = 10_000
# Block streams (StreamBlocks) open at once. A stream whose client stops reading still holds
# what gRPC buffered for it (measured: ~1.5 MB each with 100 KB blocks), so the count is what
# bounds that memory; a relayer or settlement client opens one or two per node.
MAX_BLOCK_STREAMS = 64
# A block stream whose next block gRPC cannot hand to the client for this long is ended (the
# client stopped reading), freeing what was buffered for it; the client reconnects from where
# it was (every block source here does).
STREAM_WRITE_TIMEOUT_S = 10.0
# Items one batched call may carry (txs, paths, app queries, packet sequences): enough for a
# block's worth of trades or packets, few enough that one call cannot hold the event loop for
# long (4096 unreceived-packet look-ups take about 0.3 s on the Corda node; 500,000 took 33 s).
MAX_BATCH_ITEMS = 4096
# One signed transaction, whatever the chain kind: the EVM ledger's own bound
# (chains/evm/tx.py MAX_TX_BYTES).
MAX_TX_BYTES = 1 << 20
# Raw tx bytes one block takes from the mempool (a block always takes its first tx, and every
# tx fits): keeps every block, results included, under MAX_RESPONSE_BYTES, so GetBlock and
# StreamBlocks can always serve it. Normal blocks are far below it (500 DvP locks ~ 0.8 MiB).
MAX_BLOCK_TX_BYTES = 2 * MAX_TX_BYTES
# Default mempool byte budget (`mempool.max_bytes`): with the count bound (`mempool.max_size`,
# 10,000) alone, 10,000 txs of 1 MiB could pin 10 GB.
DEFAULT_MEMPOOL_BYTES = 64 * 1024 * 1024
# Decoded, signature-checked txs an app keeps from admission to their block, by raw size: a
# cache, so a miss only costs decoding again; bounded so a flood cannot grow it.
ADMITTED_CACHE_BYTES = 64 * 1024 * 1024
