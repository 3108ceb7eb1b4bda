"""`kakehashi dvp list`: the table fits the terminal, ids stay whole, reasons wrap; JSON keeps all."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from rich.console import Console

from kakehashi.dvp.v1 import dvp_pb2
from relayer.dvp.cli import REASON_WIDTH, trades_table
from relayer.dvp.record import TradeRecord
from tests.conftest import ROOT

TRADE_ID = "T-20240630-0123"
REASON = ("buyer.corda: 623b16b718b74f1f.. has 996700 SC of issuer 118b07b910ce6e57.. free, the trade needs "
          "1000000000000; seller.evm: 0x0303030303030303030303030303030303030303 is not whitelisted for the "
          "security token")


def _record(path: Path) -> TradeRecord:
    rec = TradeRecord(path)
    terms = dvp_pb2.Terms(trade_id=TRADE_ID, st_quantity=50, sc_amount=10**12)
    rec.create(TRADE_ID, "rejected", terms=terms, error=REASON)
    rec.create("T-ok", "settled", terms=dvp_pb2.Terms(trade_id="T-ok", st_quantity=10, sc_amount=1000),
               evm_status="delivered", corda_status="settled", sequence=1)
    return rec


def _lines(width: int, rec: TradeRecord) -> list[str]:
    console = Console(width=width, record=True)
    console.print(trades_table(rec.all()))
    return console.export_text().splitlines()


def test_the_table_fits_the_terminal_with_whole_ids_and_the_whole_reason(tmp_path: Path) -> None:
    rec = _record(tmp_path / "dvp.sqlite")
    try:
        for width in (100, 120, 400):
            lines = _lines(width, rec)
            assert max(len(line) for line in lines) <= width
            assert any(TRADE_ID in line for line in lines)  # never cut: ids get copied from here
            reason_cells = "".join(line.split("│")[-2].strip() for line in lines if line.startswith("│"))
            assert reason_cells.replace(" ", "") == REASON.replace(" ", "")  # wrapped, nothing dropped
        # wide (or piped, which is 400 columns) the reason still wraps at REASON_WIDTH
        assert max(len(line) for line in _lines(400, rec)) < 100 + REASON_WIDTH
    finally:
        rec.close()


def test_json_keeps_each_reason_whole(tmp_path: Path) -> None:
    _record(tmp_path / "dvp.sqlite").close()
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "kakehashi"), "dvp", "list", "--db", str(tmp_path / "dvp.sqlite"),
                          "-c", str(tmp_path / "none.toml"), "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {r["trade_id"]: r["error"] for r in json.loads(out.stdout)}[TRADE_ID] == REASON
