"""The relayer process: config -> keys -> chain handles -> telemetry/MQTT -> Supervisor.

Why one place for the wiring: `start` and every one-shot CLI command (create, query, tx,
clear) need the same handles built the same way, and every failure an operator can cause
(unreachable node, missing key, wrong passphrase, bad config) must surface as one
``DaemonError`` line before anything is sent, not as a traceback halfway through.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import structlog

from chains.node.client import NodeClient, NodeError, RetryPolicy
from relayer.codecs import CodecError, codec_for
from relayer.config.schema import ChainConfig, Config, PathConfig
from relayer.config.tlsfiles import client_tls
from relayer.core.chain import GrpcChainHandle
from relayer.core.hub import Hub
from relayer.core.supervisor import settings_from_config
from relayer.core.workers import EventPublisher, Services
from relayer.ops.keystore import Keystore, KeystoreError
from relayer.ops.logs import configure_logging
from relayer.ops.mqtt import MqttPublisher, broker_access
from relayer.ops.telemetry import Telemetry

log = structlog.get_logger("kakehashi.daemon")

SEC_NS = 1_000_000_000


class DaemonError(Exception):
    """A failure the operator can fix (node down, key missing, bad passphrase); one line."""


@dataclass
class OpenChain:
    config: ChainConfig
    client: NodeClient
    handle: GrpcChainHandle


def node_client(chain: ChainConfig) -> NodeClient:
    return NodeClient(chain.grpc_addr, tls=client_tls(chain.tls),
                      retry=RetryPolicy(attempts=3, timeout_s=chain.rpc_timeout_s))


async def probe(client: NodeClient, chain_id: str) -> int:
    """The node's latest height; an unreachable node is a DaemonError naming the chain."""
    try:
        return int((await client.status()).latest_height)
    except (NodeError, grpc.RpcError, OSError) as exc:
        raise DaemonError(f"chain {chain_id}: node at {client.address} is unreachable ({exc})") from None


def signer_secret(config: Config, chain: ChainConfig, passphrase: str, key_name: str | None = None) -> bytes:
    if config.keystore is None:
        raise DaemonError("global.keystore is not set in the config")
    name = key_name or chain.key_name
    try:
        return Keystore(config.keystore).secret(name, passphrase)
    except KeystoreError as exc:
        raise DaemonError(f"chain {chain.id}: {exc}") from None


async def open_chain(config: Config, chain: ChainConfig, passphrase: str | None,
                     key_name: str | None = None) -> OpenChain:
    """A handle on one configured chain, signing with its key (or ``key_name``).

    ``passphrase=None`` opens it read-only: queries need no key, so an operator can inspect
    a path without unlocking the keystore. The codec then holds a fresh random key that owns
    nothing, so whatever it might sign could never pass for the relayer's.
    """
    secret = os.urandom(32) if passphrase is None else signer_secret(config, chain, passphrase, key_name)
    client = node_client(chain)
    try:
        await probe(client, chain.id)
        info = await client.query_app("chain_info")
        codec = codec_for(chain.kind, secret, info, trusting_period_ns=int(chain.trusting_period_s * SEC_NS),
                          max_clock_drift_ns=int(chain.max_clock_drift_s * SEC_NS))
    except (NodeError, grpc.RpcError) as exc:
        await client.close()
        raise DaemonError(f"chain {chain.id}: node at {chain.grpc_addr} is unreachable ({exc})") from None
    except CodecError as exc:
        await client.close()
        raise DaemonError(f"chain {chain.id}: {exc}") from None
    except BaseException:
        await client.close()
        raise
    if chain.prover == "proxy":  # proven through proxy services (relayer/proxy/prover.py)
        from relayer.proxy.prover import proxy_handle

        return OpenChain(chain, client, proxy_handle(chain.id, client, codec, chain.proxy))
    return OpenChain(chain, client, GrpcChainHandle(chain.id, client, codec))


@contextlib.asynccontextmanager
async def opened(config: Config, passphrase: str | None, *chain_ids: str,
                 key_name: str | None = None) -> AsyncIterator[list[OpenChain]]:
    """Open the named chains (all configured ones if none), closing every channel afterwards."""
    wanted = [config.chain(c) for c in chain_ids] if chain_ids else list(config.chains)
    done: list[OpenChain] = []
    try:
        for chain in wanted:
            done.append(await open_chain(config, chain, passphrase, key_name))
        yield done
    finally:
        for oc in done:
            close = getattr(oc.handle, "close", None)
            if close is not None:
                await close()
            await oc.client.close()
            if (aclose := getattr(oc.handle, "aclose", None)) is not None:
                await aclose()


def services_for(config: Config, telemetry: Telemetry, mqtt: MqttPublisher | None) -> Services:
    return Services(settings=settings_from_config(config), telemetry=telemetry, mqtt=mqtt)


def path_services(config: Config, telemetry: Telemetry, mqtt: MqttPublisher | None,
                  path: PathConfig) -> Services:
    """One path's services: its metrics view and, when the daemon serves several paths, its
    own MQTT topics (``{prefix}/{path}/...``; a single-path daemon keeps the plain topics)."""
    publisher: EventPublisher | None = mqtt
    if mqtt is not None and len(config.paths) > 1:
        publisher = mqtt.on_path(path.name)
    return Services(settings=settings_from_config(config), telemetry=telemetry.for_path(path.name), mqtt=publisher)


async def run(config: Config, passphrase: str, stop: asyncio.Event, ports: tuple[str, ...] = ("transfer", "dvp"),
              on_ready: asyncio.Event | None = None) -> None:
    """Relay every configured path until ``stop`` is set, then shut down cleanly."""
    if not config.paths:
        raise DaemonError("the config names no path to relay")
    chain_ids = list(dict.fromkeys(c for p in config.paths for c in (p.a_chain, p.b_chain)))
    telemetry = Telemetry(path_label=True)
    async with opened(config, passphrase, *chain_ids) as opened_chains:
        mqtt = None
        if config.mqtt.enabled:
            mqtt = MqttPublisher(config.mqtt.host, config.mqtt.port, prefix=config.mqtt.topic_prefix,
                                 client_id=config.mqtt.client_id, qos=config.mqtt.qos,
                                 access=broker_access(config.mqtt))
            mqtt.start()
        if config.telemetry.enabled:
            try:
                bound = telemetry.serve(config.telemetry.host, config.telemetry.port)
            except OSError as exc:
                raise DaemonError(f"telemetry: cannot listen on {config.telemetry.host}:"
                                  f"{config.telemetry.port} ({exc})") from None
            log.info("telemetry listening", host=config.telemetry.host, port=bound)
        handles = {oc.config.id: oc.handle for oc in opened_chains}
        sup = Hub(handles, config.paths, lambda p: path_services(config, telemetry, mqtt, p), ports=ports)
        try:
            await sup.start()
            log.info("relayer started", chains=chain_ids, paths=[p.name for p in config.paths],
                     workers=len(sup.workers))
            if on_ready is not None:
                on_ready.set()
            await stop.wait()
            log.info("relayer stopping")
        finally:
            with contextlib.suppress(Exception):
                await sup.stop()
            if mqtt is not None:
                with contextlib.suppress(Exception):
                    await mqtt.drain(5.0)
                    await mqtt.stop()
            telemetry.close()
    log.info("relayer stopped")


def start(config: Config, passphrase: str) -> None:
    """Blocking entry point of ``kakehashi start``: runs until SIGTERM or SIGINT."""
    configure_logging(config.log_level, config.log_format)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(config, passphrase, stop)

    asyncio.run(main())
