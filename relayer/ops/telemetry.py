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
import copy
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


class _OnPath:
    """A metric whose ``path`` label is fixed, so callers label the rest exactly as before."""

    def __init__(self, metric: Any, path: str) -> None:
        self._metric, self._path = metric, path

    def labels(self, **labels: str) -> Any:
        return self._metric.labels(path=self._path, **labels)

    def __getattr__(self, name: str) -> Any:  # inc/observe/set of a metric without other labels
        return getattr(self._metric.labels(path=self._path), name)


# name -> (type, help, labels, extra kwargs); one table so the path label is added in one place
_METRICS: dict[str, tuple[type, str, list[str], dict[str, Any]]] = {
    "send_packet_events": (Counter, "SendPacket events seen", ["chain", "port", "channel"], {}),
    "packets_relayed": (Counter, "Packet messages submitted", ["src_chain", "dst_chain", "kind"], {}),
    "packets_confirmed": (Counter, "Packet messages confirmed on the destination",
                          ["src_chain", "dst_chain", "kind"], {}),
    "packets_noop": (Counter, "Packet messages already handled (another relayer was first)",
                     ["dst_chain", "kind"], {}),
    "backlog_size": (Gauge, "Packets pending relay", ["chain", "port", "channel"], {}),
    "backlog_oldest_sequence": (Gauge, "Oldest pending sequence", ["chain", "port", "channel"], {}),
    "tx_latency_submitted": (Histogram, "Event seen to tx accepted by the node", ["chain"],
                             {"buckets": LATENCY_BUCKETS}),
    "tx_latency_confirmed": (Histogram, "Event seen to tx committed", ["chain"], {"buckets": LATENCY_BUCKETS}),
    "tx_errors": (Counter, "Failed transactions", ["chain", "kind"], {}),
    "client_height": (Gauge, "Latest height of a client", ["chain", "client_id"], {}),
    "client_seconds_to_expiry": (Gauge, "Seconds until a client expires", ["chain", "client_id"], {}),
    "client_updates": (Counter, "Client updates submitted", ["chain", "client_id"], {}),
    "misbehaviour_submitted": (Counter, "Misbehaviour evidence submitted", ["chain", "client_id"], {}),
    "workers": (Gauge, "Running workers", ["type"], {}),
    "settlements": (Counter, "DvP trades reaching a final state", ["outcome"], {}),
    "settlement_latency": (Histogram, "DvP lock to both legs final", [], {"buckets": LATENCY_BUCKETS}),
}
_NAMES = {"tx_latency_submitted": "kakehashi_tx_latency_submitted_seconds",
          "tx_latency_confirmed": "kakehashi_tx_latency_confirmed_seconds",
          "settlement_latency": "kakehashi_settlement_latency_seconds"}


class Telemetry:
    """The relayer's metrics. With ``path_label`` every metric carries a ``path`` label (a
    daemon serving several paths, or a feed settling on several): :meth:`for_path` gives the
    view one path's workers write through, sharing this registry and endpoint."""

    send_packet_events: Any
    packets_relayed: Any
    packets_confirmed: Any
    packets_noop: Any
    backlog_size: Any
    backlog_oldest_sequence: Any
    tx_latency_submitted: Any
    tx_latency_confirmed: Any
    tx_errors: Any
    client_height: Any
    client_seconds_to_expiry: Any
    client_updates: Any
    misbehaviour_submitted: Any
    workers: Any
    settlements: Any
    settlement_latency: Any

    def __init__(self, path_label: bool = False) -> None:
        r = self.registry = CollectorRegistry()
        self.path_label = path_label
        self.path = ""
        self._raw: dict[str, Any] = {}
        for attr, (kind, doc, labels, extra) in _METRICS.items():
            name = _NAMES.get(attr, f"kakehashi_{attr}")
            self._raw[attr] = kind(name, doc, ["path", *labels] if path_label else labels, registry=r, **extra)
        self._bind("")
        self._root = self
        self._health: Callable[[], dict[str, Any]] = lambda: {"status": "ok"}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _bind(self, path: str) -> None:
        self.path = path
        for attr, metric in self._raw.items():
            setattr(self, attr, _OnPath(metric, path) if self.path_label else metric)

    def for_path(self, path: str) -> Telemetry:
        """The view of one path (the same object when metrics carry no path label)."""
        if not self.path_label:
            return self
        view = copy.copy(self)
        view._bind(path)
        return view

    def set_health(self, probe: Callable[[], dict[str, Any]]) -> None:
        """``probe()`` returns a JSON-able dict whose "status" is "ok" when healthy."""
        self._root._health = probe

    def _app(self) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
        metrics = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "/")
            if path == "/health":
                try:
                    report = self._root._health()
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
