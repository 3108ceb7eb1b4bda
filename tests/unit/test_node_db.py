"""The node database: one atomic transaction per height, nothing lost on SIGKILL."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.node.db import DatabaseError, NodeCache, NodeDatabase
from tests.conftest import ROOT


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_commit_and_reopen(tmp_path: Path) -> None:
    db = NodeDatabase(tmp_path / "node.db")
    db.nodes.put(_h(b"n1"), b"n1")
    assert db.nodes.get(_h(b"n1")) == b"n1"  # buffered nodes are readable before commit
    assert db.get_node(_h(b"n1")) is None
    db.commit_height(1, _h(b"b1"), b"b1", [(_h(b"t1"), b"r1")], {"root": b"R1"})
    db.close()
    db = NodeDatabase(tmp_path / "node.db")
    assert db.latest_height() == 1
    assert db.get_block(1) == b"b1"
    assert db.get_node(_h(b"n1")) == b"n1"
    assert db.get_tx(_h(b"t1")) == (1, 0, b"r1")
    assert db.get_meta("root") == b"R1"


def test_height_gap_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    db = NodeDatabase(tmp_path / "node.db")
    db.commit_height(1, _h(b"b1"), b"b1")
    db.nodes.put(_h(b"n"), b"n")
    with pytest.raises(DatabaseError, match="does not follow"):
        db.commit_height(3, _h(b"b3"), b"b3")
    assert db.latest_height() == 1
    assert db.get_node(_h(b"n")) is None


def test_duplicate_tx_hash_rolls_back_whole_height(tmp_path: Path) -> None:
    db = NodeDatabase(tmp_path / "node.db")
    db.commit_height(1, _h(b"b1"), b"b1", [(_h(b"t"), b"r")])
    db.nodes.put(_h(b"n2"), b"n2")
    with pytest.raises(DatabaseError):
        db.commit_height(2, _h(b"b2"), b"b2", [(_h(b"t"), b"again")])
    assert db.latest_height() == 1
    assert db.get_block(2) is None
    assert db.get_node(_h(b"n2")) is None
    assert db.nodes.get(_h(b"n2")) == b"n2"  # kept for a retry
    db.commit_height(2, _h(b"b2"), b"b2", [(_h(b"t2"), b"r2")])
    assert db.get_node(_h(b"n2")) == b"n2"


WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from chains.node.db import NodeDatabase
    db = NodeDatabase(sys.argv[1])
    h = db.latest_height()
    print("ready", flush=True)
    while True:
        h += 1
        for i in range(50):
            data = f"node-{h}-{i}".encode()
            db.nodes.put(hashlib.sha256(data).digest(), data)
        txs = [(hashlib.sha256(f"tx-{h}-{i}".encode()).digest(), f"r-{h}-{i}".encode()) for i in range(20)]
        db.commit_height(h, hashlib.sha256(f"b{h}".encode()).digest(), f"block-{h}".encode(), txs,
                         {"latest": str(h).encode()},
                         {b"latest": str(h).encode(), b"k%d" % h: b"v", b"k%d" % (h - 2): None})
    """
)


@pytest.mark.parametrize("delay", [0.15, 0.4])
def test_sigkill_mid_load_loses_nothing_committed(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "node.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    db = NodeDatabase(path)
    latest = db.latest_height()
    assert latest > 0, "writer committed nothing before the kill"
    assert db.get_meta("latest") == str(latest).encode()
    assert db.get_state(b"latest") == str(latest).encode()  # the flat state moved with the height
    assert db.get_states([b"k%d" % latest, b"k%d" % (latest - 1), b"k%d" % (latest - 2)]) == [b"v", b"v", None]
    for h in range(1, latest + 1):
        assert db.get_block(h) == f"block-{h}".encode()
        assert len(db.txs_at(h)) == 20
        for i in (0, 49):
            data = f"node-{h}-{i}".encode()
            assert db.get_node(_h(data)) == data
    # nothing of the interrupted height is visible
    assert db.get_block(latest + 1) is None
    assert db.txs_at(latest + 1) == []


def test_node_cache_keeps_its_byte_bound_and_evicts_least_recently_used() -> None:
    cache = NodeCache(2_000)  # an entry here costs 100 + 32 + bookkeeping: 7 fit
    keys = [_h(b"%d" % i) for i in range(40)]
    for k in keys[:7]:
        cache.add(k, b"x" * 100)
    assert len(cache) == 7 and cache.get(keys[0]) == b"x" * 100  # keys[0] is now the most recent
    cache.add(keys[7], b"y" * 100)  # evicts the least recently used: keys[1]
    assert cache.get(keys[1]) is None and cache.get(keys[0]) == b"x" * 100
    for k in keys[8:]:
        cache.add(k, b"y" * 100)
        assert cache.bytes <= cache.max_bytes
    assert cache.get(keys[-1]) == b"y" * 100 and len(cache) == 7
    cache.add(_h(b"big"), b"z" * 5_000)  # larger than the whole cache: not kept
    assert cache.get(_h(b"big")) is None and cache.bytes <= cache.max_bytes
    with pytest.raises(ValueError):
        NodeCache(-1)


def test_state_changes_commit_with_their_height_or_not_at_all(tmp_path: Path) -> None:
    db = NodeDatabase(tmp_path / "node.db")
    db.commit_height(1, _h(b"b1"), b"b1", [(_h(b"t"), b"r")], state={b"a": b"1", b"b": b"2"})
    with pytest.raises(DatabaseError):
        db.commit_height(2, _h(b"b2"), b"b2", [(_h(b"t"), b"dup")], state={b"a": b"X", b"b": None})
    assert db.get_states([b"a", b"b", b"c"]) == [b"1", b"2", None]
    db.commit_height(2, _h(b"b2"), b"b2", state={b"a": b"3", b"b": None})
    assert db.get_states([b"a", b"b"]) == [b"3", None]
    db.write_state({b"c": b"4"}, {"m": b"v"})
    assert db.get_state(b"c") == b"4" and db.get_meta("m") == b"v"


# A run of heights: each puts content-addressed nodes, then commits, fails to commit, or drops them.
_RUNS = st.lists(st.tuples(st.lists(st.binary(min_size=1, max_size=300), max_size=8),
                           st.sampled_from(["commit", "fail", "discard"])), max_size=25)


@settings(max_examples=40, deadline=None)
@given(_RUNS, st.integers(min_value=0, max_value=3_000))
def test_a_cached_node_read_is_never_stale_nor_uncommitted(tmp_path_factory: pytest.TempPathFactory,
                                                           runs: list[tuple[list[bytes], str]],
                                                           cache_bytes: int) -> None:
    """Whatever the cache size, get_node answers exactly what SQLite holds under that hash:
    a node's content is fixed by its hash, and nodes of a height that did not commit are
    never served as stored (the buffer still serves its own pending nodes)."""
    db = NodeDatabase(tmp_path_factory.mktemp("db") / "node.db", node_cache_bytes=cache_bytes)
    stored: dict[bytes, bytes] = {}
    height = 0
    for nodes, outcome in runs:
        pending = {_h(n): n for n in nodes}
        for k, v in pending.items():
            db.nodes.put(k, v)
        if outcome == "commit":
            height += 1
            db.commit_height(height, _h(b"b%d" % height), b"b")
            stored.update(pending)
        elif outcome == "fail":
            with pytest.raises(DatabaseError):
                db.commit_height(height + 1, _h(b"x"), b"x", [(_h(b"t"), b"1"), (_h(b"t"), b"2")])
            for k, v in pending.items():
                assert db.nodes.get(k) == v  # kept for the retry
            db.nodes.discard()
        else:
            db.nodes.discard()
        for k in list(pending) + list(stored):
            for _ in range(2):  # a miss, then (maybe) a hit
                got = db.get_node(k)
                assert got == stored.get(k)
                assert got is None or _h(got) == k
        assert db.node_cache.bytes <= cache_bytes
    raw = sqlite3.connect(db.path).execute("SELECT hash, data FROM nodes").fetchall()
    assert {bytes(k): bytes(v) for k, v in raw} == stored
    db.close()
