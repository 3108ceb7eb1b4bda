"""DvP on the hub: one Corda SC chain, several EVM ST chains, one relayer daemon for every path.

``python -m bench dvp --st-chains N`` (bench_dvp.run with ``st_chains``): N EVM nodes (the
second with 7 validators, as the testnet's evm-2) and one Corda node, a connection and a dvp
channel per EVM<->Corda path, one ``kakehashi start`` serving all of them (per-path workers,
one block stream per chain). Two phases on the same network, so their ratio is measured in
one run on one loaded machine:

1. one path: ``n`` trades on evm-1's path only, ``concurrency`` in flight (the single-path
   figure, as ``bench dvp`` measures it);
2. every path at once: ``n`` trades on each path, ``concurrency`` in flight on each, through
   settlement clients that share the Corda side (node, block stream, the buyer's Cash book:
   :class:`relayer.dvp.router.DvpRouter`'s arrangement).

Reported: settled/s per path and in total in phase 2, next to phase 1's, and their ratio
(``scaling``: total of phase 2 over phase 1). Every path's ST moves are checked on its own
chain, and the SC moved over all paths once per settled trade.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_dvp import (
    AMOUNT,
    CLEAR_INTERVAL,
    CLEAR_LIMIT,
    CORDA_PERIOD_S,
    EVM_PERIOD_S,
    MAX_MSG_NUM,
    RELAYER_KEYS,
    ExitWatch,
    Net,
    TimedClient,
    _size,
    split_cash,
)
from chains.ibc.apps import dvp as dvp_app
from lightclients.crypto import ed25519_public_key
from relayer.dvp import Ledgers
from tests.support.live import (
    NodeProc,
    Procs,
    RelayerSetup,
    add_keys,
    create_path,
    free_port,
    http_get,
    kj,
    start_daemon,
    start_node,
    wait_ready,
    write_config,
)

SIZE_QUICK, SIZE_FULL = 20, 300  # trades per path and phase
CONCURRENCY_QUICK, CONCURRENCY_FULL = 20, 128  # in flight per path
BUDGET_S = 240.0


def _validators(k: int) -> int:
    return 7 if k == 2 else 4


def _setup(root: Path, procs: Procs, st_chains: int) -> tuple[list[Net], NodeProc, int, Any]:
    corda = start_node(root, "corda", "corda-bench", f"{int(CORDA_PERIOD_S * 1000)}ms", procs)
    evms = [start_node(root, "evm", f"evm-bench-{k}", f"{int(EVM_PERIOD_S * 1000)}ms", procs, _validators(k))
            for k in range(1, st_chains + 1)]
    add_keys(root / "keys", [*((e, RELAYER_KEYS["evm"]) for e in evms), (corda, RELAYER_KEYS["corda"])])
    port = free_port()
    keys = {e.chain_id: f"{e.chain_id}-{RELAYER_KEYS['evm']}" for e in evms}
    keys[corda.chain_id] = f"{corda.chain_id}-{RELAYER_KEYS['corda']}"
    # no [[paths]]: the default is every evm/corda pair, one path per EVM chain
    cfg = write_config(root / "relayer.toml", [*evms, corda], RelayerSetup(
        metrics_port=port, max_msg_num=MAX_MSG_NUM, clear_limit=CLEAR_LIMIT, clear_interval=CLEAR_INTERVAL,
        keys=keys))
    nets = []
    for evm in evms:
        path = create_path(cfg, evm, corda, channel=False)
        chan = kj("create", "channel", "-c", str(cfg), "--a-chain", evm.chain_id, "--a-connection",
                  path.a_connection, "--a-port", dvp_app.PORT_ID, "--b-port", dvp_app.PORT_ID,
                  "--channel-version", dvp_app.VERSION)
        nets.append(Net(evm, corda, chan["b_channel"]))
    daemon = start_daemon(procs, cfg)
    wait_ready(daemon, port)
    for net in nets:
        net.relayer = daemon
    return nets, corda, port, daemon


async def _sc(led: Ledgers, corda: NodeProc) -> dict[str, int]:
    out = {name: await led.sc_balance(ed25519_public_key(corda.key(f"holder-{name}")), led.cash_issuer)
           for name in ("firm-a", "firm-b")}
    out["escrow"] = await led.sc_balance(bytes.fromhex(str(led.corda_info["dvp_escrow_owner"])), led.cash_issuer)
    return out


def run_paths(quick: bool, st_chains: int) -> dict[str, Any]:
    n = SIZE_QUICK if quick else SIZE_FULL
    concurrency = CONCURRENCY_QUICK if quick else CONCURRENCY_FULL
    out: dict[str, Any] = {"settings": {
        "st_chains": st_chains, "paths": [f"evm-bench-{k}:corda-bench" for k in range(1, st_chains + 1)],
        "validators": {f"evm-bench-{k}": _validators(k) for k in range(1, st_chains + 1)},
        "evm_block_period_s": EVM_PERIOD_S, "corda_block_period_s": CORDA_PERIOD_S,
        "trades_per_path": n, "concurrency_per_path": concurrency, "relayer_daemons": 1,
        "max_msg_num": MAX_MSG_NUM, "clear_limit": CLEAR_LIMIT, "feeding_budget_s": BUDGET_S,
        "phases": "one_path: evm-bench-1 alone; all_paths: every path at once, same network, same run",
        "throughput": "settled trades over first EVM lock -> last Corda exit, per path; total = sum over paths "
                      "of settled over the phase's overall span"}}
    with tempfile.TemporaryDirectory(prefix="bench-dvp-paths-") as tmp:
        procs = Procs()
        try:
            nets, corda, port, daemon = _setup(Path(tmp), procs, st_chains)

            async def go() -> None:
                hub = await Ledgers.connect(nets[0].evm.addr, corda.addr, nets[0].channel)
                leds = [hub] + [await Ledgers.spoke(net.evm.addr, hub, net.channel) for net in nets[1:]]
                watches = [ExitWatch(net.channel) for net in nets]
                start = int((await hub.corda.status()).latest_height) + 1
                tasks = [asyncio.create_task(w.run(hub.corda, start)) for w in watches]
                try:
                    firm_b = corda.key("holder-firm-b")
                    await split_cash(hub, firm_b, ed25519_public_key(firm_b), concurrency * st_chains)
                    first = TimedClient(hub)
                    clients = [first] + [TimedClient(led, share_corda_with=first) for led in leds[1:]]
                    # phase 1: one path alone
                    out["one_path"] = await _size(clients[0], watches[0], nets[0], n, concurrency, "one", BUDGET_S)
                    # phase 2: every path at once
                    sc_before = await _sc(hub, corda)
                    started = time.monotonic()
                    per = await asyncio.gather(*(
                        _size(c, w, net, n, concurrency, f"all{k}", BUDGET_S, sc_check=False)
                        for k, (c, w, net) in enumerate(zip(clients, watches, nets, strict=True))))
                    wall = time.monotonic() - started
                    sc_after = await _sc(hub, corda)
                    settled = sum(p["settled"] for p in per)
                    spans = [p["span_s_first_lock_to_last_exit"] for p in per if p["settled"]]
                    span = max(spans) if spans else 0.0
                    out["all_paths"] = {
                        "per_path": {f"evm-bench-{k + 1}:corda-bench": p for k, p in enumerate(per)},
                        "total": {"trades": n * st_chains, "settled": settled, "wall_s": round(wall, 2),
                                  "span_s": round(span, 2),
                                  "settled_per_s": round(settled / span, 2) if span > 0 else None},
                        "sc_check": {"moved_exactly_the_settled_amounts":
                                     sc_before["firm-b"] - sc_after["firm-b"] == sc_after["firm-a"] - sc_before["firm-a"]
                                     == settled * AMOUNT,
                                     "escrow_back_to_start": sc_after["escrow"] == sc_before["escrow"]}}
                    one = out["one_path"].get("settled_per_s")
                    total = out["all_paths"]["total"]["settled_per_s"]
                    out["scaling"] = {
                        "one_path_settled_per_s": one,
                        "per_path_settled_per_s": {k: p.get("settled_per_s")
                                                   for k, p in out["all_paths"]["per_path"].items()},
                        "all_paths_total_settled_per_s": total,
                        "total_over_one_path": round(total / one, 2) if one and total else None}
                finally:
                    for t in tasks:
                        t.cancel()
                    for t in tasks:
                        with contextlib.suppress(asyncio.CancelledError):
                            await t
                    for led in leds[1:]:
                        await led.close()
                    await hub.close()

            asyncio.run(go())
            code, text = http_get(port, "/metrics")
            if code == 200:
                confirmed: dict[str, float] = {}
                for line in text.splitlines():
                    if line.startswith("kakehashi_packets_confirmed_total{") and 'path="' in line:
                        path = line.split('path="', 1)[1].split('"', 1)[0]
                        confirmed[path] = confirmed.get(path, 0.0) + float(line.rsplit(" ", 1)[1])
                out["relayer"] = {"packets_confirmed_by_path": confirmed,
                                  "peak_rss_mib": round(daemon.peak_rss_kib() / 1024, 1)}
        finally:
            procs.stop_all()
    return out
