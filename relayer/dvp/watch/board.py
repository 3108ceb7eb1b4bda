"""The settlement board behind ``kakehashi dvp watch``: trades by state, path and SC brand.

Why a model apart from the loop that feeds it: the board merges two sources that disagree in
timing — the trade record (SQLite, what this client's settle/feed wrote, authoritative for
its own trades) and the MQTT feed (events of every client publishing to the broker, seconds
earlier than the next record read and including trades this record never saw) — and the
merge rule is easier to test without a broker or a terminal. ``relayer/dvp/watch/live.py`` runs the
I/O; this module only folds rows and events into per-trade entries and renders them.

Merge rule: an entry is keyed by trade id. A record row replaces the entry's state whenever
the row changed (the record re-reads the chains); an event may only move a trade forward
(``EVENT_STATE`` order), so a late or replayed event never rolls a settled trade back.

Path: the Corda end of the trade's dvp channel, prefixed by the ST chain when the record or
the event names one (``st_chain``), so a board over several ST chains groups per path.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from relayer.dvp.record import TradeRow

# Columns of the summary, in the order a trade passes through them.
IN_FLIGHT = ("locking", "evm-locked", "corda-locked", "locked", "delivered")
COLUMNS = ("in flight", "settled", "refunded", "reclaimed", "rejected", "failed")
_BUCKET = {**{s: "in flight" for s in IN_FLIGHT}, "settled": "settled", "refunded-error": "refunded",
           "refunded-timeout": "refunded", "reclaimed": "reclaimed", "rejected": "rejected",
           "lock-failed": "failed", "none": "failed"}
# How far along each state is; events only ever move a trade to a later one.
EVENT_STATE = {"locked": 1, "delivered": 2, "settled": 3, "refunded-error": 3, "refunded-timeout": 3, "reclaimed": 4}
DEFAULT_BRAND = "(default)"
RECENT = 12


@dataclass
class Entry:
    """One trade as the board shows it."""

    trade_id: str
    state: str
    path: str = "-"
    brand: str = DEFAULT_BRAND
    sc_amount: int | None = None
    latency_s: float | None = None
    error: str | None = None
    updated_s: float = 0.0
    source: str = "record"  # or "mqtt": seen only on the feed

    @property
    def bucket(self) -> str:
        return _BUCKET.get(self.state, "in flight")


def _path(channel: str | None, st_chain: str | None) -> str:
    if st_chain and channel:
        return f"{st_chain}/{channel}"
    return st_chain or channel or "-"


def _brand(name: str | None) -> str:
    return name if name else DEFAULT_BRAND


@dataclass
class Board:
    entries: dict[str, Entry] = field(default_factory=dict)
    record_error: str | None = None
    mqtt_status: str | None = None  # None: no broker configured
    events_seen: int = 0

    def apply_row(self, row: TradeRow) -> None:
        """A record row (new or changed since the last read) replaces what the board had."""
        terms = row.terms
        latency = None
        if row.locked_s is not None and row.final_s is not None:
            latency = row.final_s - row.locked_s
        self.entries[row.trade_id] = Entry(
            trade_id=row.trade_id, state=row.state,
            path=_path(row.channel, getattr(row, "st_chain", None)),
            brand=_brand(terms.sc_brand if terms is not None else None),
            sc_amount=int(terms.sc_amount) if terms is not None else None,
            latency_s=latency, error=row.error, updated_s=row.updated_s, source="record")

    def apply_event(self, body: dict[str, Any], now_s: float | None = None) -> bool:
        """A settlement event from MQTT; False when it is not one (or moves nothing)."""
        trade_id, event = body.get("trade_id"), body.get("event")
        if not isinstance(trade_id, str) or not trade_id or event not in EVENT_STATE:
            return False
        self.events_seen += 1
        now = time.time() if now_s is None else now_s
        old = self.entries.get(trade_id)
        if old is not None and EVENT_STATE.get(old.state, 0) >= EVENT_STATE[event]:
            return False
        channel = body.get("channel") if isinstance(body.get("channel"), str) else None
        st_chain = body.get("st_chain") if isinstance(body.get("st_chain"), str) else None
        amount = body.get("sc_amount")
        brand = body.get("sc_brand")
        entry = old or Entry(trade_id=trade_id, state=event, source="mqtt")
        entry.state = str(event)
        entry.updated_s = now
        if old is None or entry.path == "-":
            entry.path = _path(channel, st_chain)
        if isinstance(brand, str) and (old is None or entry.source == "mqtt"):
            entry.brand = _brand(brand)
        if isinstance(amount, int) and entry.sc_amount is None:
            entry.sc_amount = amount
        self.entries[trade_id] = entry
        return True

    # --- views ---------------------------------------------------------------------------

    def counts(self) -> dict[tuple[str, str], Counter[str]]:
        """(path, brand) -> trades per summary column."""
        out: dict[tuple[str, str], Counter[str]] = {}
        for e in self.entries.values():
            out.setdefault((e.path, e.brand), Counter())[e.bucket] += 1
        return out

    def summary(self) -> Table:
        table = Table(title="trades by path and SC brand", title_justify="left")
        table.add_column("path", no_wrap=True)
        table.add_column("brand", no_wrap=True)
        for col in COLUMNS:
            table.add_column(col, justify="right")
        table.add_column("total", justify="right")
        table.add_column("p50 s", justify="right")
        totals: Counter[str] = Counter()
        for (path, brand), c in sorted(self.counts().items()):
            lat = [e.latency_s for e in self.entries.values()
                   if (e.path, e.brand) == (path, brand) and e.state == "settled" and e.latency_s is not None]
            table.add_row(path, brand, *(str(c[k]) for k in COLUMNS), str(sum(c.values())),
                          f"{statistics.median(lat):.1f}" if lat else "-")
            totals.update(c)
        if len(self.counts()) > 1:
            table.add_row("all", "", *(str(totals[k]) for k in COLUMNS), str(sum(totals.values())), "",
                          style="bold")
        return table

    def recent(self, n: int = RECENT) -> Table:
        table = Table(title=f"latest {n} changes", title_justify="left")
        for name in ("trade", "state", "path", "brand", "SC", "latency s"):
            table.add_column(name, no_wrap=True)
        table.add_column("reason", overflow="fold", max_width=48)
        newest = sorted(self.entries.values(), key=lambda e: (e.updated_s, e.trade_id), reverse=True)[:n]
        for e in newest:
            state = e.state if e.source == "record" else f"{e.state} (mqtt)"
            table.add_row(e.trade_id, state, e.path, e.brand, "-" if e.sc_amount is None else str(e.sc_amount),
                          "-" if e.latency_s is None else f"{e.latency_s:.1f}", e.error or "")
        return table

    def render(self, source: str) -> Group:
        status = f"record {source}: {len(self.entries)} trades"
        if self.record_error:
            status += f" — record unreadable: {self.record_error}"
        if self.mqtt_status is not None:
            status += f"; MQTT {self.mqtt_status} ({self.events_seen} events)"
        return Group(Text(status), self.summary(), self.recent())


__all__ = ["EVENT_STATE", "Board", "Entry"]
