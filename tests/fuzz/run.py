"""``make fuzz``: every fuzz target under atheris for a bounded number of inputs, with figures.

Each target runs in its own process (libFuzzer owns the process and exits at the end) over its
corpus in tests/fuzz/corpus/<target>/, where new interesting inputs are kept; afterwards the
corpus is minimised (libFuzzer's merge) so it stays small enough to replay in ``make test``.
A crash, an input slower than ``--timeout`` seconds (a hang) or a process over the memory limit
fails the run; the offending input is written to tests/fuzz/crashes/. The table printed at the
end (inputs tried, seconds, inputs per second, corpus size per target) is what
docs/RELIABILITY.md records.

    python -m tests.fuzz.run [--total 1000000] [--only rlp_tx,corda_tx] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"
DONE = re.compile(r"Done (\d+) runs in (\d+) second")


@dataclass
class Result:
    target: str
    runs: int
    seconds: float
    corpus: int
    ok: bool
    detail: str = ""

    @property
    def per_second(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


def _targets() -> list[str]:
    # Read the registry without importing the code under test uninstrumented in this process.
    out = subprocess.run([sys.executable, "-c", "from tests.fuzz.targets import TARGETS; print(*sorted(TARGETS))"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def _libfuzzer(target: str, flags: list[str], dirs: list[Path], timeout_s: float) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tests.fuzz.atheris_main", target, *flags, *map(str, dirs)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)


def fuzz(target: str, runs: int, per_input_timeout: int, max_len: int) -> Result:
    corpus = CORPUS / target
    corpus.mkdir(parents=True, exist_ok=True)
    CRASHES.mkdir(exist_ok=True)
    started = time.monotonic()
    flags = [f"-runs={runs}", f"-timeout={per_input_timeout}", f"-max_len={max_len}", "-rss_limit_mb=3072",
             f"-artifact_prefix={CRASHES}/{target}-", "-print_final_stats=1"]
    try:
        got = _libfuzzer(target, flags, [corpus], timeout_s=max(600.0, runs / 50))
    except subprocess.TimeoutExpired:
        return Result(target, 0, time.monotonic() - started, len(list(corpus.iterdir())), False,
                      "the whole run did not finish in time")
    seconds = time.monotonic() - started
    done = DONE.search(got.stderr)
    if got.returncode != 0 or done is None:
        tail = "\n".join(got.stderr.splitlines()[-40:])
        return Result(target, 0, seconds, len(list(corpus.iterdir())), False, tail)
    _minimise(target, corpus, max_len)
    return Result(target, int(done.group(1)), seconds, len(list(corpus.iterdir())), True)


def _minimise(target: str, corpus: Path, max_len: int) -> None:
    """Keep only inputs that add coverage (libFuzzer -merge=1), so the corpus stays small."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "corpus"
        fresh.mkdir()
        got = _libfuzzer(target, ["-merge=1", f"-max_len={max_len}"], [fresh, corpus], timeout_s=600)
        if got.returncode != 0 or not any(fresh.iterdir()):
            return  # keep what we have rather than lose the corpus
        seeds = {p.name: p.read_bytes() for p in corpus.glob("seed-*")}
        shutil.rmtree(corpus)
        shutil.copytree(fresh, corpus)
        for name, data in seeds.items():  # the genuine inputs always stay
            (corpus / name).write_bytes(data)


def table(results: list[Result]) -> str:
    lines = ["| target | inputs tried | seconds | inputs/s | corpus files | result |", "|---|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| `{r.target}` | {r.runs:,} | {r.seconds:.0f} | {r.per_second:,.0f} | {r.corpus} | "
                     f"{'ok' if r.ok else 'FAILED'} |")
    total = sum(r.runs for r in results)
    lines.append(f"| **total** | **{total:,}** | {sum(r.seconds for r in results):.0f} | | "
                 f"{sum(r.corpus for r in results)} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total", type=int, default=1_000_000, help="inputs over all targets (split evenly)")
    parser.add_argument("--only", default="", help="comma-separated targets (default: all)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take before it is a hang")
    parser.add_argument("--max-len", type=int, default=16384, help="largest input libFuzzer generates")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    names = _targets()
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(names)
        if unknown:
            parser.error(f"unknown targets {sorted(unknown)}; expected some of {names}")
        names = wanted
    per_target = -(-args.total // len(names))
    results = []
    for name in names:
        print(f"fuzzing {name}: {per_target:,} inputs ...", flush=True)
        result = fuzz(name, per_target, args.timeout, args.max_len)
        results.append(result)
        print(f"  {name}: {result.runs:,} inputs in {result.seconds:.0f} s ({result.per_second:,.0f}/s), "
              f"corpus {result.corpus}{'' if result.ok else ' FAILED'}", flush=True)
        if not result.ok:
            print(result.detail, flush=True)
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) | {"per_second": r.per_second} for r in results], indent=2) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
