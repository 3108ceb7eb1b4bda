"""The settlement board's merge of record rows and MQTT events (relayer/dvp/watch/board.py)."""

from __future__ import annotations

import io

from rich.console import Console

from kakehashi.dvp.v1 import dvp_pb2
from relayer.dvp.record import TradeRow
from relayer.dvp.watch.board import DEFAULT_BRAND, Board


def row(trade_id: str, state: str, brand: str = "", channel: str = "channel-1", updated: float = 1.0,
        locked: float | None = None, final: float | None = None) -> TradeRow:
    return TradeRow(trade_id=trade_id, state=state, channel=channel, updated_s=updated, locked_s=locked,
                    final_s=final, terms=dvp_pb2.Terms(trade_id=trade_id, sc_amount=7, sc_brand=brand))


def text(board: Board) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(board.render("x.sqlite"))
    return console.export_text()


def test_counts_group_by_path_and_brand() -> None:
    b = Board()
    for r in (row("T-1", "settled", locked=1.0, final=3.0), row("T-2", "settled", "KUSD", locked=1.0, final=2.0),
              row("T-3", "locked", "KUSD"), row("T-4", "rejected", "NOPE"),
              row("T-5", "refunded-timeout", channel="channel-3"), row("T-6", "lock-failed", "KUSD")):
        b.apply_row(r)
    counts = b.counts()
    assert counts[("channel-1", DEFAULT_BRAND)] == {"settled": 1}
    assert counts[("channel-1", "KUSD")] == {"settled": 1, "in flight": 1, "failed": 1}
    assert counts[("channel-1", "NOPE")] == {"rejected": 1}
    assert counts[("channel-3", DEFAULT_BRAND)] == {"refunded": 1}
    out = text(b)
    assert "KUSD" in out and "NOPE" in out and "(default)" in out and "all" in out
    assert "2.0" in out  # the median latency of the KUSD path's settled trade


def test_events_move_trades_forward_only_and_add_trades_of_other_clients() -> None:
    b = Board()
    b.apply_row(row("T-1", "settled", updated=5.0))
    assert not b.apply_event({"trade_id": "T-1", "event": "locked"})  # a late event: no rollback
    assert b.entries["T-1"].state == "settled"
    assert b.apply_event({"trade_id": "T-9", "event": "locked", "channel": "channel-2", "st_chain": "evm-b",
                          "sc_brand": "KUSD", "sc_amount": 40}, now_s=9.0)
    assert b.apply_event({"trade_id": "T-9", "event": "settled", "channel": "channel-2"}, now_s=10.0)
    e = b.entries["T-9"]
    assert (e.state, e.path, e.brand, e.sc_amount, e.source) == ("settled", "evm-b/channel-2", "KUSD", 40, "mqtt")
    assert not b.apply_event({"trade_id": "T-9", "event": "bogus"})
    assert not b.apply_event({"event": "settled"})
    assert "settled (mqtt)" in text(b)
    # The record, once it has the trade, is what the board shows.
    b.apply_row(row("T-9", "settled", "KUSD", channel="channel-2", updated=11.0))
    assert b.entries["T-9"].source == "record"


def test_a_record_row_with_an_st_chain_names_the_path() -> None:
    r = row("T-1", "locked")
    r.st_chain = "evm-2"  # type: ignore[attr-defined]  # a record that names the ST chain (routing)
    b = Board()
    b.apply_row(r)
    assert b.entries["T-1"].path == "evm-2/channel-1"
