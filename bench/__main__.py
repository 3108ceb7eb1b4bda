"""Run every benchmark module and write one JSON file per module under bench/results/.

Each ``bench/bench_<name>.py`` exposes ``run(quick: bool) -> dict``. Results carry the
machine facts next to the numbers, because ratios measured in one run are the only
comparable figures on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    if sys.argv[1:2] == ["report"]:
        from bench.report import main as report

        report(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench", description="run kakehashi benchmarks (`report` rebuilds docs/PERFORMANCE.md)")
    parser.add_argument("names", nargs="*", help="benchmark names (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke runs")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--st-chains", type=int, default=1, metavar="N",
                        help="dvp: N EVM ST chains around one Corda chain, throughput per path and in total "
                             "(written to NAME_stN.json; default 1, the single-path run)")
    ns = parser.parse_args()
    available = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    names = ns.names or available
    unknown = set(names) - set(available)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; available: {available}")
    ns.out.mkdir(parents=True, exist_ok=True)
    # Benchmarks time code, not logging: keep structlog quiet unless something is wrong.
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.time()
        if ns.st_chains > 1:
            if "st_chains" not in inspect.signature(module.run).parameters:
                parser.error(f"{name} has no --st-chains mode (dvp has)")
            result = module.run(quick=ns.quick, st_chains=ns.st_chains)
        else:
            result = module.run(quick=ns.quick)
        doc = {
            "benchmark": name,
            "quick": ns.quick,
            "started_unix": started,
            "seconds": round(time.time() - started, 3),
            "machine": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
            },
            "results": result,
        }
        path = ns.out / (f"{name}_st{ns.st_chains}.json" if ns.st_chains > 1 else f"{name}.json")
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        print(f"{name}: wrote {path}")


if __name__ == "__main__":
    main()
