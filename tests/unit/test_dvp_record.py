"""The trade record: a real SQLite file in WAL mode; events are marked published exactly once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kakehashi.dvp.v1 import dvp_pb2
from relayer.dvp.record import RecordError, TradeRecord


def terms() -> dvp_pb2.Terms:
    return dvp_pb2.Terms(trade_id="T-1", security_token=b"\x01" * 20, st_quantity=5, cash_issuer=b"\x02" * 32,
                         sc_amount=50, seller_evm=b"\x03" * 20, buyer_evm=b"\x04" * 20, seller_corda=b"\x05" * 32,
                         buyer_corda=b"\x06" * 32, deadline_ns=99)


def test_rows_survive_reopening_and_the_file_is_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dvp.sqlite"
    rec = TradeRecord(path)
    row = rec.create("T-1", "locking", terms=terms(), timeout_ns=90, channel="channel-0", locked_s=1.5)
    assert (row.state, row.terms, row.timeout_ns, row.locked_s) == ("locking", terms(), 90, 1.5)
    rec.update("T-1", state="settled", evm_status="delivered", corda_status="settled", sequence=7, final_s=3.0)
    rec.create("T-2", "rejected", error="buyer.evm: not whitelisted")
    rec.close()
    again = TradeRecord(path)
    try:
        rows = again.all()
        assert [(r.trade_id, r.state) for r in rows] == [("T-1", "settled"), ("T-2", "rejected")]
        doc = rows[0].to_json()
        assert doc["terms"]["st_quantity"] == 5 and doc["sequence"] == 7 and doc["corda_status"] == "settled"
        assert rows[1].terms is None and rows[1].to_json()["error"].startswith("buyer.evm")
        assert again.get("nope") is None
    finally:
        again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_create_again_keeps_history_and_events_publish_once(tmp_path: Path) -> None:
    rec = TradeRecord(tmp_path / "dvp.sqlite")
    try:
        rec.create("T-1", "rejected", error="x")
        assert rec.mark_published("T-1", "locked") is True
        assert rec.mark_published("T-1", "locked") is False
        assert rec.mark_published("T-1", "settled") is True
        rec.create("T-1", "locking", error=None)
        row = rec.get("T-1")
        assert row is not None and row.state == "locking" and row.error is None
        assert row.published == ["locked", "settled"]
        with pytest.raises(RecordError, match="unknown trade column"):
            rec.update("T-1", evil="x")
    finally:
        rec.close()


def test_unopenable_path_is_a_record_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(RecordError, match="trade record"):
        TradeRecord(tmp_path / "file" / "dvp.sqlite")
