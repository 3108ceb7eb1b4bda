"""The small chaos soak inside `make test`: a few hundred trades and transfers under >= 5 seeded
faults (every kind the full soak injects), judged from the chains by the same verdict.

The full size runs with `make soak`; this one keeps the harness itself from rotting and catches
a regression in crash recovery, packet dedup, supply conservation or MQTT delivery.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos import soak
from tests.chaos.verdict import to_json_safe

pytestmark = pytest.mark.slow


def test_small_soak_loses_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("KAKEHASHI_SOAK_SEED", "7"))
    report = soak.run(soak.SMALL, seed, tmp_path, log=lambda *_: None)
    print(soak.table(report))
    assert len(report.faults) >= 5
    assert report.trades["offered"] == soak.SMALL.trades
    assert report.processes["left_behind"] == []
    assert report.passed, to_json_safe(report.problems)
