"""``python -m bench report``: charts and tables for docs/PERFORMANCE.md from bench/results/*.json.

Why generated: the figures in the docs must be the figures of the last run, so the tables and
PNG charts are rebuilt from the JSON the benchmarks wrote, never typed by hand. The prose in
docs/PERFORMANCE.md stays hand-written; each generated part sits between
``<!-- report:NAME -->`` and ``<!-- /report:NAME -->`` markers and is replaced in place (a
missing result leaves its part saying so). ``bench/progress.json`` (committed) holds the
before/after figures of each structural change, measured when the change landed.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "PERFORMANCE.md"
IMG = ROOT / "docs" / "img"


def _load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _run_line(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    quick = " (quick sizes)" if doc.get("quick") else ""
    return (f"_Run: `python -m bench {doc['benchmark']}`{quick}, {doc['seconds']:.0f} s, "
            f"{m.get('cpus')} CPUs, Python {m.get('python')}._")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- parts ---------------------------------------------------------------------------------

def part_dvp(results: Path) -> str:
    doc = _load(results, "dvp")
    if doc is None:
        return "_No `dvp` result yet: run `python -m bench dvp`._"
    res = doc["results"]
    rows = []
    for key in sorted((k for k in res if re.fullmatch(r"n\d+", k)), key=lambda k: int(k[1:])):
        r = res[key]
        cpu = r.get("cpu_ms_per_trade") or {}
        rows.append([f"{r['trades']:,}", r["concurrency"], r["settled"], r.get("settled_per_s"),
                     r.get("latency_p50_s"), r.get("latency_p99_s"), r.get("latency_p50_block_periods"),
                     r.get("latency_p99_block_periods"), cpu.get("total"), r.get("cpu_cores_busy"),
                     "yes" if all(r["chain_check"].values()) else "**NO**"])
    out = [_run_line(doc), "", _table(
        ["trades", "in flight", "settled", "settled/s", "p50 s", "p99 s", "p50 periods", "p99 periods",
         "CPU ms/trade (all processes)", "cores busy", "ST+SC conserved"], rows)]
    relayer = res.get("relayer")
    if relayer:
        out += ["", f"Relayer: peak RSS {relayer.get('peak_rss_mib')} MiB, txs confirmed EVM "
                f"{relayer.get('txs_confirmed_evm')} / Corda {relayer.get('txs_confirmed_corda')}, "
                f"tx errors {relayer.get('tx_errors')}."]
    sweep = res.get("sweep")
    if sweep:
        out += ["", "Offered load sweep (same network, one size per point):", "", _table(
            ["in flight", "trades", "settled/s", "p50 s", "p99 s"],
            [[p["concurrency"], p["trades"], p.get("settled_per_s"), p.get("latency_p50_s"), p.get("latency_p99_s")]
             for p in sweep])]
        out += ["", _chart_sweep(sweep)]
    return "\n".join(out)


def _chart_sweep(sweep: list[dict[str, Any]]) -> str:
    plt = _plt()
    xs = [p["concurrency"] for p in sweep]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(xs, [p.get("settled_per_s") or 0 for p in sweep], "o-", color="tab:blue", label="settled trades/s")
    ax1.set_xlabel("trades in flight (offered load)")
    ax1.set_ylabel("settled trades/s", color="tab:blue")
    ax1.set_xscale("log", base=2)
    ax2 = ax1.twinx()
    ax2.plot(xs, [p.get("latency_p50_s") or 0 for p in sweep], "s--", color="tab:orange", label="p50 latency")
    ax2.plot(xs, [p.get("latency_p99_s") or 0 for p in sweep], "^--", color="tab:red", label="p99 latency")
    ax2.set_ylabel("latency, s (lock -> both legs final)")
    fig.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88))
    ax1.set_title("DvP settlement: throughput and latency against offered load")
    fig.tight_layout()
    return _save(fig, "dvp_load.png", "DvP throughput and latency against offered load")


def part_relayer(results: Path) -> str:
    doc = _load(results, "relayer_grpc")
    if doc is None:
        return "_No `relayer_grpc` result yet: run `python -m bench relayer_grpc`._"
    res = doc["results"]
    rows = []
    for key in sorted((k for k in res if re.fullmatch(r"n\d+", k)), key=lambda k: int(k[1:])):
        r = res[key]
        rows.append([f"{r['transfers']:,}", r.get("packets_per_s"), r.get("latency_p50_s"), r.get("latency_p99_s"),
                     r.get("relayer_peak_rss_mib"), r.get("evm_packet_msgs_per_relayer_tx"),
                     r.get("relayer_tx_errors")])
    return "\n".join([_run_line(doc), "", _table(
        ["transfers", "packets/s", "p50 s", "p99 s", "relayer RSS MiB", "EVM msgs per relayer tx", "tx errors"],
        rows)])


def part_history(results: Path) -> str:
    doc = _load(results, "dvp_history")
    if doc is None:
        return "_No `dvp_history` result yet: run `python -m bench dvp_history`._"
    res = doc["results"]
    windows = res.get("windows", [])
    rows = [[f"{w['settled_before']:,}", w.get("settled_per_s"), w.get("cpu_ms_per_trade"),
             w.get("latency_p50_s"), w.get("corda_balances_query_ms"), w.get("evm_escrow_query_ms")]
            for w in windows if w.get("report")]
    out = [_run_line(doc), "", _table(
        ["trades already settled", "settled/s", "CPU ms/trade", "p50 s", "Corda balances query ms",
         "EVM escrow query ms"], rows)]
    if res.get("flatness"):
        f = res["flatness"]
        out += ["", f"Cost per trade at {f['last_at']:,} settled / at {f['first_at']:,} settled: "
                f"**{f['cpu_ratio']}x** CPU (goal <= 1.2x); throughput ratio {f['throughput_ratio']}x."]
    restart = res.get("restart")
    if restart:
        out += ["", "Restart with that history behind the nodes (SIGTERM, start, first answer):", "",
                _table(["node", "trades settled", "height", "restart s"],
                       [[r["node"], f"{r['trades']:,}", f"{r['height']:,}", r["restart_s"]] for r in restart])]
    if windows:
        out += ["", _chart_history(windows)]
    return "\n".join(out)


def _chart_history(windows: list[dict[str, Any]]) -> str:
    plt = _plt()
    xs = [w["settled_before"] for w in windows]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(xs, [w.get("cpu_ms_per_trade") or 0 for w in windows], "o-", color="tab:blue",
             label="CPU ms per trade (all processes)")
    ax1.set_xlabel("trades already settled on the chains")
    ax1.set_ylabel("CPU ms per trade", color="tab:blue")
    ax1.set_ylim(bottom=0)
    ax2 = ax1.twinx()
    ax2.plot(xs, [w.get("settled_per_s") or 0 for w in windows], "s--", color="tab:green", label="settled/s")
    ax2.set_ylabel("settled trades/s", color="tab:green")
    ax2.set_ylim(bottom=0)
    ax1.set_title("Cost per trade against history size")
    fig.tight_layout()
    return _save(fig, "dvp_history.png", "Cost per trade against history size")


def part_budget(results: Path) -> str:
    doc = _load(results, "budget")
    if doc is None:
        return "_No `budget` result yet: run `python -m bench budget`._"
    res = doc["results"]
    rows = [[s["step"], s["where"], s["measured_us"], s["floor_us"], s["floor_is"],
             s.get("overhead") if s.get("overhead") is not None else "-"] for s in res["steps"]]
    total = res["total"]
    rows.append(["**total per trade**", "", f"**{total['measured_us']}**", f"**{total['floor_us']}**", "",
                 f"**{total['overhead']}**"])
    return "\n".join([_run_line(doc), "", _table(
        ["step of a trade's life", "process", "measured µs", "floor µs", "the floor is", "overhead x"], rows)])


def part_progress(results: Path) -> str:
    path = HERE / "progress.json"
    if not path.exists():
        return "_No bench/progress.json._"
    steps: list[dict[str, Any]] = json.loads(path.read_text())
    rows = [[s["change"], s.get("dvp_settled_per_s"), s.get("dvp_p50_s"), s.get("relayer_packets_per_s"),
             s.get("note", "")] for s in steps]
    out = [_table(["change", "DvP settled/s", "DvP p50 s", "relayer packets/s (10k)", "measured with"], rows)]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [s["short"] for s in steps]
    ax.bar(range(len(steps)), [s.get("dvp_settled_per_s") or 0 for s in steps], color="tab:blue")
    ax.set_xticks(range(len(steps)), labels, rotation=30, ha="right")
    ax.set_ylabel("settled DvP trades/s")
    ax.set_title("DvP throughput after each structural change")
    fig.tight_layout()
    out += ["", _save(fig, "dvp_progress.png", "DvP throughput after each change")]
    return "\n".join(out)


def part_multiproof(results: Path) -> str:
    doc = _load(results, "multiproof")
    if doc is None:
        return "_No `multiproof` result yet: run `python -m bench multiproof`._"
    res = doc["results"]
    out = [_run_line(doc), ""]
    rows = []
    for kind in ("qbft", "corda"):
        r = res.get(kind) or {}
        for size, v in sorted((r.get("per_batch") or {}).items(), key=lambda kv: int(kv[0])):
            rows.append([kind, size, v.get("single_us_per_proof"), v.get("multi_us_per_proof"),
                         v.get("single_bytes_per_path"), v.get("multi_bytes_per_path")])
    if rows:
        out.append(_table(["client", "batch", "single µs/proof", "multi µs/proof", "single bytes/path",
                           "multi bytes/path"], rows))
    else:
        out.append("```\n" + json.dumps(res, indent=1)[:3000] + "\n```")
    return "\n".join(out)


def _save(fig: Any, name: str, alt: str) -> str:
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG / name, dpi=110)
    _plt().close(fig)
    return f"![{alt}](img/{name})"


PARTS: dict[str, Callable[[Path], str]] = {
    "dvp": part_dvp, "relayer": part_relayer, "history": part_history, "budget": part_budget,
    "progress": part_progress, "multiproof": part_multiproof,
}


def render(text: str, results: Path) -> str:
    for name, fn in PARTS.items():
        start, end = f"<!-- report:{name} -->", f"<!-- /report:{name} -->"
        if start not in text:
            continue
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{fn(results)}\n{end}{tail}"
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench report",
                                     description="rebuild docs/PERFORMANCE.md's tables and charts")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--doc", type=Path, default=DOC)
    ns = parser.parse_args(argv)
    ns.doc.write_text(render(ns.doc.read_text(), ns.results))
    print(f"report: wrote {ns.doc} and charts under {IMG}")
