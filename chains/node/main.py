"""`kakehashi node init` and `kakehashi node start`: the node process.

``start`` writes the bound gRPC address to HOME/node.addr once it is serving, so tools that
started it with port 0 (the local testnet) can find it, and removes it on shutdown. SIGTERM
and SIGINT stop the block loop between blocks, then the server, then close the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any

import structlog

from chains.node.config import NodeConfig, NodeConfigError, load_node_config, render_node_config
from chains.node.db import NodeDatabase
from chains.node.kinds import chain_kind
from chains.node.prune import Prunable, Pruner
from chains.node.runtime import BlockLoopHalted, NodeRuntime, RuntimeConfig
from chains.node.service import TlsFiles, build_server, mark_serving

log = structlog.get_logger("kakehashi.node")


class NodeInitError(ValueError):
    """`node init` refused (existing home, bad arguments)."""


def init_home(
    home: Path,
    kind: str,
    chain_id: str,
    validators: int,
    grpc_address: str = "127.0.0.1:0",
    block_period_s: float = 1.0,
    genesis_time_ns: int | None = None,
) -> dict[str, Any]:
    home = Path(home)
    if (home / "node.toml").exists():
        raise NodeInitError(f"{home} already holds a node (node.toml exists); pick another --home")
    if not 1 <= validators <= 100:
        raise NodeInitError(f"--validators must be 1..100, got {validators}")
    impl = chain_kind(kind)
    home.mkdir(parents=True, exist_ok=True)
    (home / "keys").mkdir(exist_ok=True, mode=0o700)
    (home / "data").mkdir(exist_ok=True)
    summary = impl.init_genesis(home, chain_id, validators, genesis_time_ns or time.time_ns())
    # The chain's intended block period is part of its genesis; node.toml's [block] period
    # is what a node runs with (an operator may slow a single node down, e.g. for tests).
    genesis_path = home / "genesis.json"
    genesis = json.loads(genesis_path.read_text())
    genesis["block_period_ms"] = int(block_period_s * 1000)
    genesis_path.write_text(json.dumps(genesis, indent=2, sort_keys=True) + "\n")
    (home / "node.toml").write_text(render_node_config(chain_id, kind, grpc_address, block_period_s))
    load_node_config(home)  # what we wrote must validate
    return summary


async def serve(config: NodeConfig, grpc_address: str | None = None, stop: asyncio.Event | None = None) -> None:
    config.db_path.parent.mkdir(parents=True, exist_ok=True)
    db = NodeDatabase(config.db_path)
    app = chain_kind(config.kind).open_app(config, db)
    pruner = None
    if config.retain_heights:
        if not isinstance(app, Prunable):
            raise NodeConfigError(f"storage.retain_heights: the {config.kind} ledger cannot prune")
        pruner = Pruner(db, app, config.retain_heights)
    runtime = NodeRuntime(
        app,
        db,
        RuntimeConfig(
            block_period_s=config.block_period_s,
            max_block_txs=config.max_block_txs,
            max_block_bytes=config.max_block_bytes,
            max_mempool=config.max_mempool,
            max_mempool_bytes=config.max_mempool_bytes,
            retain_heights=config.retain_heights,
        ),
        pruner=pruner,
    )
    tls = None if config.tls is None else TlsFiles(config.tls.cert_file, config.tls.key_file, config.tls.client_ca_file)
    server, port = build_server(runtime, grpc_address or config.grpc_address, tls)
    await server.start()
    await mark_serving(server)
    host = (grpc_address or config.grpc_address).rsplit(":", 1)[0]
    addr_file = config.home / "node.addr"
    addr_file.write_text(f"{host}:{port}\n")
    log.info("node serving", chain_id=config.chain_id, kind=config.kind, grpc=f"{host}:{port}",
             height=app.latest_height())
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    producer = asyncio.create_task(runtime.run())
    stopped = asyncio.create_task(stop.wait())
    try:
        # A block loop that dies must take the node down: answering queries and health checks
        # for a chain that no longer advances would hide the failure from every client.
        await asyncio.wait({producer, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("node stopping", chain_id=config.chain_id)
        stopped.cancel()
        await server.health_servicer.enter_graceful_shutdown()
        await runtime.stop()
        halted = None
        try:
            await producer
        except BlockLoopHalted as exc:
            halted = exc
        await server.stop(2)
        addr_file.unlink(missing_ok=True)
        db.close()
    if halted is not None:
        raise halted


def start(home: Path, grpc_address: str | None = None) -> None:
    config = load_node_config(home)
    try:
        asyncio.run(serve(config, grpc_address))
    except BlockLoopHalted as exc:
        raise SystemExit(f"error: {exc}") from None
