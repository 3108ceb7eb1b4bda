"""``kakehashi dvp watch`` against a real trade record (SQLite) and a real mosquitto broker.

No chain runs here: the board reads what settlement clients wrote (the record) and published
(MQTT). test_dvp.py shows the board over a record written by real settlements.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
from rich.console import Console

from kakehashi.dvp.v1 import dvp_pb2
from relayer.dvp import watch
from relayer.dvp.record import TradeRecord
from relayer.dvp.watch.board import Board

BIN = Path(sys.executable).parent / "kakehashi"


def _record(path: Path) -> None:
    record = TradeRecord(path)
    try:
        record.create("T-own", "settled", terms=dvp_pb2.Terms(trade_id="T-own", sc_amount=5, sc_brand="KUSD"),
                      channel="channel-1", locked_s=time.time() - 2, final_s=time.time())
    finally:
        record.close()


async def test_live_board_adds_trades_seen_on_mqtt(tmp_path: Path, mosquitto: Any) -> None:
    db = tmp_path / "dvp.sqlite"
    _record(db)
    body = {"event": "delivered", "trade_id": "T-other", "channel": "channel-2", "sc_brand": "KUSD",
            "sc_amount": 9, "state": "delivered"}
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="watch-test") as pub:
        # Retained, so the board sees it whenever its subscription lands.
        await pub.publish("kakehashi/dvp/T-other/delivered", json.dumps(body), qos=1, retain=True)
    out = io.StringIO()
    board, stop = Board(), asyncio.Event()
    task = asyncio.create_task(watch.live(db, Console(file=out, width=200), broker=(mosquitto.host, mosquitto.port,
                                          "kakehashi"), interval_s=0.1, stop=stop, board=board))
    deadline = time.monotonic() + 30
    while "T-other" not in board.entries or "T-own" not in board.entries:
        assert time.monotonic() < deadline and not task.done(), (board.entries, board.mqtt_status)
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 15)
    assert board.entries["T-other"].state == "delivered" and board.entries["T-other"].source == "mqtt"
    assert board.mqtt_status is not None and board.mqtt_status.startswith("connected")
    frame = out.getvalue()
    assert "T-other" in frame and "delivered (mqtt)" in frame and "T-own" in frame


async def test_live_board_survives_an_absent_broker(tmp_path: Path) -> None:
    db = tmp_path / "dvp.sqlite"
    _record(db)
    board, stop = Board(), asyncio.Event()
    task = asyncio.create_task(watch.live(db, Console(file=io.StringIO()), broker=("127.0.0.1", 1, "kakehashi"),
                                          interval_s=0.1, stop=stop, board=board))
    deadline = time.monotonic() + 20
    while not (board.mqtt_status or "").startswith("disconnected") or "T-own" not in board.entries:
        assert time.monotonic() < deadline and not task.done(), board.mqtt_status
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 15)


def test_ctrl_c_exits_cleanly_with_the_last_frame(tmp_path: Path) -> None:
    db = tmp_path / "dvp.sqlite"
    _record(db)
    proc = subprocess.Popen([str(BIN), "dvp", "watch", "--db", str(db), "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
    try:
        time.sleep(2.0)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"T-own" in out and b"KUSD" in out and b"Traceback" not in err


def test_once_prints_one_frame_and_a_missing_record_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "dvp.sqlite"
    missing = subprocess.run([str(BIN), "dvp", "watch", "--once", "--db", str(db)], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1 and f"no trade record at {db}" in missing.stderr + missing.stdout
    assert not db.exists()  # looking did not create it
    _record(db)
    got = subprocess.run([str(BIN), "dvp", "watch", "--once", "--db", str(db)], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert got.returncode == 0, got.stderr
    assert "T-own" in got.stdout and "settled" in got.stdout and "KUSD" in got.stdout
