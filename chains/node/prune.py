"""Pruning for ``storage.retain_heights``: delete what the node no longer serves, a little per block.

Why mark and sweep rather than reference counts: trie and SMT nodes are content-addressed and
shared between heights (and within one: every receipt's leaf points at the same stored value),
so a node may be deleted only when no retained root reaches it. Counting references would put
a write on every child of every new node, on the hot path of every block. Marking walks the
state instead, off the hot path, and needs one fact the database keeps cheaply
(``chains/node/db.py``): node ids grow with the height that last wrote a node. With E the
earliest retained height, the nodes with ids below E's first id are the only candidates, and
of those a root at E or later can still reach exactly the ones the root at E reaches (the tries
are persistent: a new node refers to nodes written in its own height or reached by the
previous root). So one pass is: walk from the roots at E, marking candidate ids in a bitmap,
then delete the unmarked candidates. Blocks keep committing meanwhile: what they write gets
newer ids, and what they refer to was reached from a root at E or later, so the pass stays
right.

The work is split into steps of a bounded number of nodes, one step after each block, so a
pass never holds the block loop for long; a pass starts every ``gc_every`` heights. Each step
also deletes the rows of heights below E (blocks, tx results, and the app's own per-height
rows, see :class:`Prunable`). Nothing of this is needed again: queries below E are refused,
and a restart opens at the latest height's snapshot.

What a pruned node still serves: state, proofs, headers, blocks and tx results of the retained
heights; ``GetBlock`` below them answers NOT_FOUND and ``StreamBlocks`` starts at the earliest
retained block. A relayer needs the blocks that carry the events of packets it has not relayed
yet, so its nodes must retain more heights than its longest outage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import structlog

from chains.node.db import DatabaseError, NodeDatabase

log = structlog.get_logger("kakehashi.node.prune")


@runtime_checkable
class Prunable(Protocol):
    """What a chain app tells the pruner about its state and its own per-height rows."""

    def gc_roots(self, height: int) -> list[tuple[bytes, str]]:
        """The stored nodes the state at ``height`` starts from, each with its kind."""
        ...

    def gc_children(self, kind: str, data: bytes) -> list[tuple[bytes, str]]:
        """The stored nodes a node of ``kind`` refers to, with their kinds."""
        ...

    def prune_history(self, below: int, limit: int) -> int:
        """Delete up to ``limit`` of the app's own rows needed only by heights below ``below``."""
        ...


@dataclass
class _Pass:
    """One mark-and-sweep at height ``at``: candidates are node ids below ``limit``."""

    at: int
    limit: int
    stack: list[tuple[bytes, str]]
    marks: bytearray
    sweep_from: int = 0
    visited: int = 0
    marked: int = 0
    deleted: int = 0

    def mark(self, node_id: int) -> None:
        self.marks[node_id >> 3] |= 1 << (node_id & 7)

    def marked_id(self, node_id: int) -> bool:
        return bool(self.marks[node_id >> 3] & (1 << (node_id & 7)))


@dataclass
class PruneStats:
    passes: int = 0
    nodes_deleted: int = 0
    rows_deleted: int = 0
    last_pass: dict[str, int] = field(default_factory=dict)


class Pruner:
    def __init__(self, db: NodeDatabase, app: Prunable, retain: int, *, gc_every: int | None = None,
                 step_nodes: int = 2000, step_rows: int = 500) -> None:
        if retain < 1:
            raise ValueError("retain_heights must be at least 1 to prune")
        if not db.node_ids:
            raise DatabaseError("storage.retain_heights: this database stores trie nodes without ids (made by an "
                                "older node); pruning needs a database initialised by this version")
        self.db, self.app, self.retain = db, app, retain
        self.gc_every = gc_every or max(1, retain // 2)
        self.step_nodes, self.step_rows = step_nodes, step_rows
        self.stats = PruneStats()
        self._pass: _Pass | None = None
        self._last_at = 0

    def earliest(self, latest: int) -> int:
        return max(1, latest - self.retain + 1)

    def step(self, latest: int) -> None:
        """One bounded slice of work after the block at ``latest`` committed."""
        below = self.earliest(latest)
        if below <= 1:
            return
        rows = self.db.prune_below(below, self.step_rows)
        rows += self.app.prune_history(below, self.step_rows)
        self.stats.rows_deleted += rows
        if self._pass is None and below >= self._last_at + self.gc_every:
            self._start(below)
        if self._pass is not None:
            self._advance(self._pass)

    def _start(self, at: int) -> None:
        limit = self.db.first_node_id(at)
        if limit is None:  # heights written before node ids were tracked: not prunable yet
            return
        self._pass = _Pass(at, limit, list(self.app.gc_roots(at)), bytearray((limit >> 3) + 1))
        self._last_at = at

    def _advance(self, p: _Pass) -> None:
        budget = self.step_nodes
        while p.stack and budget > 0:
            batch = [p.stack.pop() for _ in range(min(len(p.stack), budget, 500))]
            budget -= len(batch)
            rows = self.db.node_rows([h for h, _ in batch])
            for h, kind in batch:
                row = rows.get(h)
                if row is None:
                    continue  # not stored (an empty root, an unused code hash)
                node_id, data = row
                p.visited += 1
                if node_id < p.limit:
                    p.mark(node_id)
                    p.marked += 1
                p.stack.extend(self.app.gc_children(kind, data))
        if p.stack or budget <= 0:
            return
        # marking done: sweep the candidates in id order
        while budget > 0 and p.sweep_from < p.limit:
            chunk = self.db.node_ids_between(p.sweep_from, p.limit, min(budget, 5000))
            if not chunk:
                p.sweep_from = p.limit
                break
            budget -= len(chunk)
            p.sweep_from = chunk[-1][0] + 1
            doomed = [(i, h) for i, h in chunk if not p.marked_id(i)]
            self.db.delete_nodes(doomed)
            p.deleted += len(doomed)
        if p.sweep_from >= p.limit:
            self.stats.passes += 1
            self.stats.nodes_deleted += p.deleted
            self.stats.last_pass = {"height": p.at, "visited": p.visited, "kept": p.marked, "deleted": p.deleted}
            log.info("pruned state nodes", height=p.at, visited=p.visited, kept=p.marked, deleted=p.deleted)
            self._pass = None


def walk(app: Prunable, db: NodeDatabase, roots: Sequence[tuple[bytes, str]]) -> set[bytes]:
    """Every stored node reachable from ``roots`` (for tests: what a pass must keep)."""
    seen: set[bytes] = set()
    stack = list(roots)
    while stack:
        h, kind = stack.pop()
        row = db.node_rows([h]).get(h)
        if row is None:
            continue
        seen.add(h)
        stack.extend(app.gc_children(kind, row[1]))
    return seen
