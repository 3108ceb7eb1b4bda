"""Prometheus metrics and the health endpoint of the relayer.

Metric names follow Hermes' telemetry where a counterpart exists, so dashboards port over.
Each :class:`Telemetry` owns its registry (no global state), which lets tests and a second
relayer in one process keep separate counts. The HTTP endpoint is prometheus-client's WSGI
app behind a small dispatcher that adds ``/health``; it runs on threads of its own so a slow
scrape never blocks the relaying event loop.

Why a thread per connection, a connection cap and a deadline: with one thread, a single client
that opened a connection and never finished its request held ``/health`` for good (found by the
flood tests). Now each connection gets its own thread for at most ``REQUEST_DEADLINE_S`` (its
socket is shut after that, request and answer included), at most ``MAX_CONNECTIONS`` are served
at once and any beyond are closed at once, so slow or stuck clients cost a bounded number of
threads and ``/health`` answers as long as fewer than that many are stuck.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
MAX_CONNECTIONS = 128
REQUEST_DEADLINE_S = 5.0


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_DEADLINE_S  # each read and write; the deadline below bounds them together

    def log_message(self, format: str, *args: Any) -> None:
        return

    def handle(self) -> None:
        deadline = threading.Timer(REQUEST_DEADLINE_S, self._expire)
        deadline.daemon = True
        deadline.start()
        try:
            super().handle()
        finally:
            deadline.cancel()

    def _expire(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.refused = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)  # over the cap: closed at once, no thread
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class Telemetry:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.send_packet_events = Counter(
            "kakehashi_send_packet_events", "SendPacket events seen", ["chain", "port", "channel"], registry=r
        )
        self.packets_relayed = Counter(
            "kakehashi_packets_relayed", "Packet messages submitted", ["src_chain", "dst_chain", "kind"], registry=r
        )
        self.packets_confirmed = Counter(
            "kakehashi_packets_confirmed", "Packet messages confirmed on the destination",
            ["src_chain", "dst_chain", "kind"], registry=r,
        )
        self.packets_noop = Counter(
            "kakehashi_packets_noop", "Packet messages already handled (another relayer was first)",
            ["dst_chain", "kind"], registry=r,
        )
        self.backlog_size = Gauge(
            "kakehashi_backlog_size", "Packets pending relay", ["chain", "port", "channel"], registry=r
        )
        self.backlog_oldest_sequence = Gauge(
            "kakehashi_backlog_oldest_sequence", "Oldest pending sequence", ["chain", "port", "channel"], registry=r
        )
        self.tx_latency_submitted = Histogram(
            "kakehashi_tx_latency_submitted_seconds", "Event seen to tx accepted by the node", ["chain"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.tx_latency_confirmed = Histogram(
            "kakehashi_tx_latency_confirmed_seconds", "Event seen to tx committed", ["chain"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.tx_errors = Counter("kakehashi_tx_errors", "Failed transactions", ["chain", "kind"], registry=r)
        self.client_height = Gauge(
            "kakehashi_client_height", "Latest height of a client", ["chain", "client_id"], registry=r
        )
        self.client_seconds_to_expiry = Gauge(
            "kakehashi_client_seconds_to_expiry", "Seconds until a client expires", ["chain", "client_id"], registry=r
        )
        self.client_updates = Counter(
            "kakehashi_client_updates", "Client updates submitted", ["chain", "client_id"], registry=r
        )
        self.misbehaviour_submitted = Counter(
            "kakehashi_misbehaviour_submitted", "Misbehaviour evidence submitted", ["chain", "client_id"], registry=r
        )
        self.workers = Gauge("kakehashi_workers", "Running workers", ["type"], registry=r)
        self.settlements = Counter(
            "kakehashi_settlements", "DvP trades reaching a final state", ["outcome"], registry=r
        )
        self.settlement_latency = Histogram(
            "kakehashi_settlement_latency_seconds", "DvP lock to both legs final", buckets=LATENCY_BUCKETS, registry=r
        )
        self._health: Callable[[], dict[str, Any]] = lambda: {"status": "ok"}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def set_health(self, probe: Callable[[], dict[str, Any]]) -> None:
        """``probe()`` returns a JSON-able dict whose "status" is "ok" when healthy."""
        self._health = probe

    def _app(self) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
        metrics = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "/")
            if path == "/health":
                try:
                    report = self._health()
                except Exception as exc:  # a broken probe is itself unhealthy
                    report = {"status": "error", "error": str(exc)}
                code = "200 OK" if report.get("status") == "ok" else "503 Service Unavailable"
                body = json.dumps(report, sort_keys=True, default=str).encode()
                start_response(code, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
            if path == "/metrics":
                return metrics(environ, start_response)  # type: ignore[no-any-return]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics or /health\n"]

        return app

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint; returns the bound port (pass 0 for any free port)."""

        self._server = make_server(host, port, self._app(), server_class=_Server, handler_class=_Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="telemetry", daemon=True)
        self._thread.start()
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
