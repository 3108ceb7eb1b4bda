"""The matrix's own bookkeeping: the docs list exactly the attacks the code tries, and the
state check cannot pass a test whose state moved."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial.matrix import Attempt, Outcome, declared

DOC = Path(__file__).resolve().parents[2] / "docs" / "RELIABILITY.md"


def _documented() -> list[str]:
    text = DOC.read_text()
    section = text.split("## Attack matrix", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and line.endswith("` |")]


def test_docs_list_every_attack_in_order() -> None:
    rows = [r.markdown() for r in declared()]
    assert len(rows) >= 40
    assert _documented() == rows, "regenerate the table: python -m tests.adversarial.matrix"


def test_attack_names_and_tests_are_unique() -> None:
    rows = declared()
    assert len({r.name for r in rows}) == len(rows)
    assert len({r.test for r in rows}) == len(rows)


def test_watch_fails_an_attack_that_moved_the_state() -> None:
    outcome = Outcome("moved", "test")
    state = {"balance": 10}
    with pytest.raises(AssertionError, match="state changed"), Attempt(outcome).watch(lambda: dict(state)):
        state["balance"] = 9
    assert outcome.checked_state and outcome.state_changed
