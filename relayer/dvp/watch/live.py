"""``kakehashi dvp watch``: the settlement board, live, from the trade record and the MQTT feed.

Why both sources: the record (SQLite, WAL) is what this back office's settle/feed wrote and
is read incrementally (rows updated since the last read), so the board costs a few rows per
refresh however long the history; the MQTT feed is optional and adds trades other clients
settle, and shows an event before the next record read. The board (``relayer/dvp/watch/board.py``)
merges them; this module only reads, subscribes and redraws.

Why the broker is allowed to be absent or down: a dashboard must not fail because the event
bus restarts; it says so in its status line and reconnects with backoff, while the record
keeps the board current.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

import aiomqtt
from rich.console import Console
from rich.live import Live

from relayer.core.tasks import cancel_and_wait
from relayer.dvp.record import RecordError, TradeRecord
from relayer.dvp.watch.board import Board
from relayer.ops.mqtt import BrokerAccess

RECONNECT_MAX_S = 5.0


class WatchError(RuntimeError):
    """The board cannot be shown (for ``--once``: there is no record to show)."""


class RecordReader:
    """Incremental reads of one trade record; opens it once the file exists."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._record: TradeRecord | None = None
        self._since = 0.0

    def poll(self, board: Board) -> int:
        """Fold rows changed since the last poll into ``board``; how many there were."""
        if self._record is None:
            if not self.path.is_file():
                board.record_error = "not created yet"
                return 0
            self._record = TradeRecord(self.path)
        try:
            rows = self._record.changed_since(self._since)
        except Exception as exc:  # sqlite3.Error under a writer's schema change, a vanished file
            board.record_error = str(exc)
            return 0
        board.record_error = None
        for row in rows:
            board.apply_row(row)
            self._since = max(self._since, row.updated_s)
        return len(rows)

    def close(self) -> None:
        if self._record is not None:
            self._record.close()


def once(path: Path, console: Console) -> Board:
    """One frame of the board from the record alone (tests, scripts, cron mails)."""
    if not path.is_file():
        raise WatchError(f"no trade record at {path} (pass --db FILE or -c RELAYER.toml)")
    reader, board = RecordReader(path), Board()
    try:
        reader.poll(board)
    except RecordError as exc:
        raise WatchError(str(exc)) from None
    finally:
        reader.close()
    console.print(board.render(str(path)))
    return board


async def _follow_mqtt(board: Board, host: str, port: int, prefix: str, access: BrokerAccess | None,
                       stop: asyncio.Event) -> None:
    """Fold every settlement event under ``{prefix}/dvp/`` into the board until ``stop``.

    Subscribes to the whole subtree and reads trade id and event from the JSON body, so a
    topic layout with more levels (per path) needs no change here."""
    delay = 0.5
    while not stop.is_set():
        try:
            async with aiomqtt.Client(host, port, identifier=f"kakehashi-dvp-watch-{os.getpid()}",
                                      timeout=10, **(access or BrokerAccess()).client_kwargs()) as client:
                await client.subscribe(f"{prefix}/dvp/#", qos=1)
                board.mqtt_status = f"connected to {host}:{port}"
                delay = 0.5
                async for msg in client.messages:
                    payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                    with contextlib.suppress(ValueError, RecursionError):
                        body = json.loads(payload)
                        if isinstance(body, dict):
                            board.apply_event(body)
        except aiomqtt.MqttError as exc:
            board.mqtt_status = f"disconnected from {host}:{port} ({exc}); retrying"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, RECONNECT_MAX_S)


async def live(path: Path, console: Console, *, broker: tuple[str, int, str, BrokerAccess] | tuple[str, int, str] | None = None,
               interval_s: float = 1.0, stop: asyncio.Event | None = None, board: Board | None = None) -> Board:
    """Redraw the board until ``stop`` is set or SIGINT / SIGTERM arrives; returns the last board.
    A console that is not a terminal gets the last frame once, when the board stops."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    board, reader = board or Board(), RecordReader(path)
    mqtt = None
    if broker is not None:
        board.mqtt_status = f"connecting to {broker[0]}:{broker[1]}"
        host, port, prefix = broker[0], broker[1], broker[2]
        access = broker[3] if len(broker) > 3 else None
        mqtt = asyncio.create_task(_follow_mqtt(board, host, port, prefix, access, stop))
    try:
        with Live(console=console, get_renderable=lambda: board.render(str(path)), refresh_per_second=4,
                  screen=False, redirect_stdout=False, redirect_stderr=False):
            while not stop.is_set():
                reader.poll(board)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_s)
    finally:
        stop.set()
        if mqtt is not None:
            await cancel_and_wait(mqtt)
        reader.close()
        for sig in installed:
            loop.remove_signal_handler(sig)
    return board


__all__ = ["RecordReader", "WatchError", "live", "once"]
