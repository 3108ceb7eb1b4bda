"""``kakehashi dvp watch``: the settlement board (board.py, a pure model and its rendering) and
the loop that feeds it from the trade record and the MQTT feed (live.py)."""

from relayer.dvp.watch.board import Board, Entry
from relayer.dvp.watch.live import RecordReader, WatchError, live, once

__all__ = ["Board", "Entry", "RecordReader", "WatchError", "live", "once"]
