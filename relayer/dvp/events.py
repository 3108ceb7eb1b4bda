"""Settlement events for back offices (MQTT) and operators (Prometheus).

Topic ``{prefix}/dvp/{trade_id}/{event}``, one JSON object, QoS 1, through the relayer's
queueing publisher (a slow or absent broker never stalls settlement). Events: locked,
delivered, settled, refunded-error, refunded-timeout, reclaimed. Each is published once per
trade per client: the trade record remembers what went out, so a restarted client that
re-reads a trade's final state does not announce it twice.

Metrics reuse the relayer's registry pattern: ``kakehashi_settlements_total{outcome}`` and
``kakehashi_settlement_latency_seconds`` (lock to both legs final, as this client saw it).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import structlog

from relayer.dvp.record import TradeRecord
from relayer.ops.mqtt import MqttPublisher
from relayer.ops.telemetry import Telemetry

log = structlog.get_logger("kakehashi.dvp")

EVENTS = ("locked", "delivered", "settled", "refunded-error", "refunded-timeout", "reclaimed")
FINAL = ("settled", "refunded-error", "refunded-timeout")
_LEVEL = re.compile(r"[#+/\x00]")


def dvp_topic(prefix: str, trade_id: str, event: str) -> str:
    for part in (trade_id, event):
        if not part or _LEVEL.search(part):
            raise ValueError(f"MQTT topic level {part!r} is empty or contains '#', '+', '/' or NUL")
    return f"{prefix}/dvp/{trade_id}/{event}"


class DvpPublisher(MqttPublisher):
    """The relayer's publisher with DvP topics (one level fewer than the packet topics)."""

    def publish_trade(self, trade_id: str, event: str, payload: dict[str, Any]) -> None:
        body = {"event": event, "trade_id": trade_id, "time": time.time(), **payload}
        if len(self._queue) >= self._max_queue:
            self._queue.popleft()
            self.dropped += 1
            log.warning("mqtt queue full; dropped the oldest event", dropped=self.dropped)
        self._queue.append((dvp_topic(self.prefix, trade_id, event),
                            json.dumps(body, sort_keys=True, default=str).encode()))
        self._has_items.set()


class DvpEvents:
    """Where settlement events go; every sink is optional."""

    def __init__(self, mqtt: DvpPublisher | None = None, telemetry: Telemetry | None = None,
                 record: TradeRecord | None = None) -> None:
        self.mqtt = mqtt
        self.telemetry = telemetry or Telemetry()
        self.record = record
        self.seen: dict[str, list[str]] = {}

    def emit(self, trade_id: str, event: str, payload: dict[str, Any], latency_s: float | None = None) -> bool:
        """Publish ``event`` for the trade unless already published; True when it went out now."""
        if event not in EVENTS:
            raise ValueError(f"unknown DvP event {event!r}")
        if self.record is not None and self.record.get(trade_id) is not None:
            if not self.record.mark_published(trade_id, event):
                return False
        else:
            done = self.seen.setdefault(trade_id, [])
            if event in done:
                return False
            done.append(event)
        self.seen.setdefault(trade_id, [])
        if event not in self.seen[trade_id]:
            self.seen[trade_id].append(event)
        if self.mqtt is not None:
            self.mqtt.publish_trade(trade_id, event, payload)
        if event in FINAL or event == "reclaimed":
            self.telemetry.settlements.labels(outcome=event).inc()
        if event in FINAL and latency_s is not None:
            self.telemetry.settlement_latency.observe(max(0.0, latency_s))
        log.info("dvp event", trade_id=trade_id, dvp_event=event)
        return True
