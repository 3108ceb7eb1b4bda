"""MQTT event publisher for back offices (aiomqtt, QoS 1).

Why a queue and a background task: relaying must never wait on a slow or absent broker.
Events are queued (bounded) and a single task publishes them in order, reconnecting with
backoff; an event is dropped from the queue only after the broker acknowledged it (QoS 1
PUBACK, which aiomqtt's publish awaits), so a broker restart loses nothing that was queued.
When the queue is full the oldest event is dropped and counted, and the drop is logged.

Topics: ``{prefix}/{chain}/{port}/{channel}/{event}``, or ``{prefix}/{path}/{chain}/...`` for a
daemon serving several paths; payload: one JSON object.

A broker on another host is reached over TLS (mutual TLS when the config names a client
certificate) with a username and password (:class:`BrokerAccess`, from ``[mqtt]``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import structlog

from relayer.core.tasks import cancel_and_wait

if TYPE_CHECKING:
    from relayer.config.schema import Mqtt

log = structlog.get_logger("kakehashi.mqtt")
_TOPIC_PART = re.compile(r"[#+/\x00]")


def topic_for(prefix: str, chain: str, port: str, channel: str, event: str) -> str:
    parts = [chain, port, channel, event]
    for p in parts:
        if not p or _TOPIC_PART.search(p):
            raise ValueError(f"MQTT topic level {p!r} is empty or contains '#', '+', '/' or NUL")
    return "/".join([prefix, *parts])


@dataclass(frozen=True)
class BrokerAccess:
    """TLS and credentials towards a broker; ``use_tls`` with no ``ca_file`` trusts the system's roots."""

    use_tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``aiomqtt.Client`` beyond host, port and identifier."""
        kw: dict[str, Any] = {}
        if self.use_tls:
            kw["tls_params"] = aiomqtt.TLSParameters(
                ca_certs=str(self.ca_file) if self.ca_file else None,
                certfile=str(self.cert_file) if self.cert_file else None,
                keyfile=str(self.key_file) if self.key_file else None,
            )
        if self.username is not None:
            kw["username"], kw["password"] = self.username, self.password
        return kw


def broker_access(m: Mqtt) -> BrokerAccess:
    """The access an ``[mqtt]`` table describes (its password file was checked at config load)."""
    password = m.password_file.read_text().strip() if m.password_file is not None else None
    if m.tls is None:
        return BrokerAccess(username=m.username, password=password)
    return BrokerAccess(True, m.tls.ca_file, m.tls.cert_file, m.tls.key_file, m.username, password)


class MqttPublisher:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        prefix: str = "kakehashi",
        client_id: str = "kakehashi-relayer",
        qos: int = 1,
        max_queue: int = 100_000,
        access: BrokerAccess | None = None,
    ) -> None:
        self.host, self.port, self.prefix, self.client_id, self.qos = host, port, prefix, client_id, qos
        self.access = access or BrokerAccess()
        self._queue: deque[tuple[str, bytes]] = deque()
        self._max_queue = max_queue
        self._has_items = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.dropped = 0
        self.connected = False

    def on_path(self, path: str) -> PathPublisher:
        """This publisher's connection with one path's topics (``{prefix}/{path}/...``)."""
        return PathPublisher(self, path)

    def publish(self, chain: str, port: str, channel: str, event: str, payload: dict[str, Any],
                path: str | None = None) -> None:
        """Queue one event; never blocks."""
        body = {"event": event, "chain": chain, "port": port, "channel": channel, "time": time.time(), **payload}
        prefix = self.prefix
        if path is not None:
            if not path or _TOPIC_PART.search(path):
                raise ValueError(f"MQTT topic level {path!r} is empty or contains '#', '+', '/' or NUL")
            prefix, body["path"] = f"{self.prefix}/{path}", path
        if len(self._queue) >= self._max_queue:
            self._queue.popleft()
            self.dropped += 1
            log.warning("mqtt queue full; dropped the oldest event", dropped=self.dropped)
        self._queue.append(
            (topic_for(prefix, chain, port, channel, event), json.dumps(body, sort_keys=True, default=str).encode())
        )
        self._has_items.set()

    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mqtt-publisher")

    async def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued event was acknowledged by the broker (True) or time ran out."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._queue and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        return not self._queue

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            client = aiomqtt.Client(self.host, self.port, identifier=self.client_id, timeout=10,
                                    **self.access.client_kwargs())
            try:
                async with client:
                    self.connected = True
                    backoff = 0.2
                    log.info("mqtt connected", host=self.host, port=self.port)
                    while True:
                        if not self._queue:
                            self._has_items.clear()
                            await self._has_items.wait()
                            continue
                        topic, payload = self._queue[0]
                        await client.publish(topic, payload, qos=self.qos)
                        self._queue.popleft()
                        self.published += 1
            except aiomqtt.MqttError as exc:
                self.connected = False
                log.warning("mqtt unavailable; retrying", error=str(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                release_client(client)


def release_client(client: aiomqtt.Client) -> None:
    """Leave nothing of a finished connection attempt that asyncio would report later.

    Why, two aiomqtt 2.x gaps that a broker drop or a shutdown mid-connect hit:
    - when the broker drops while a publish waits for its PUBACK, the publish times out and the
      context exit returns early, so the "Unexpected disconnection" stored on a future is never
      read and asyncio prints "Future exception was never retrieved" at each drop;
    - when the task is cancelled while waiting for CONNACK (a feed stopping because its broker
      refused it), paho keeps the socket on the loop, and the late CONNACK or close calls back
      into the cancelled future: "Exception in callback ... CancelledError" with a traceback.
    The errors themselves are handled (the publisher reconnects, or is stopping); this marks
    the first read and unhooks the callbacks of an abandoned connect.
    """
    fut = getattr(client, "_disconnected", None)
    if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
        fut.exception()
    connected = getattr(client, "_connected", None)
    if isinstance(connected, asyncio.Future) and connected.cancelled():
        paho = client._client
        paho.on_connect = None
        paho.on_disconnect = None


class PathPublisher:
    """One path's view of a shared publisher: same connection and queue, the path's topics."""

    def __init__(self, publisher: MqttPublisher, path: str) -> None:
        self.publisher, self.path = publisher, path

    def publish(self, chain: str, port: str, channel: str, event: str, payload: dict[str, Any]) -> None:
        self.publisher.publish(chain, port, channel, event, payload, path=self.path)
