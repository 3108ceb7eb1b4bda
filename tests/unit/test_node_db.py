"""The node database: one atomic transaction per height, nothing lost on SIGKILL."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chains.node.db import DatabaseError, NodeDatabase
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
                         {"latest": str(h).encode()})
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
    for h in range(1, latest + 1):
        assert db.get_block(h) == f"block-{h}".encode()
        assert len(db.txs_at(h)) == 20
        for i in (0, 49):
            data = f"node-{h}-{i}".encode()
            assert db.get_node(_h(data)) == data
    # nothing of the interrupted height is visible
    assert db.get_block(latest + 1) is None
    assert db.txs_at(latest + 1) == []
