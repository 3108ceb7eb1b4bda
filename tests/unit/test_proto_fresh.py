"""The committed generated protobuf code must match what `make proto` produces now."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / "kakehashi"
    committed = ROOT / "kakehashi"
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    committed_files = {
        p.relative_to(committed)
        for p in committed.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert fresh_files == committed_files, "generated file set differs: run `make proto`"
    stale = [str(f) for f in sorted(fresh_files) if not filecmp.cmp(fresh / f, committed / f, shallow=False)]
    assert not stale, f"stale generated files (run `make proto`): {stale}"
