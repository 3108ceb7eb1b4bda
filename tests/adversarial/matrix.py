"""The attack matrix: one test per attack, a registry of outcomes, and the table the docs carry.

Each attack test is marked ``@attack(name, layer=..., where=...)`` and takes the ``attempt``
fixture. It reads the state an attack could move before and after (``attempt.watch``) and
asserts the exact rejection (``attempt.failed`` / ``refused`` / ``noop`` / ``raised``). The
fixture records both facts per test, refuses a test that checked only one of them, and the
session ends with ``attacks tried: N, rejected: N, state changed: N`` (tests/adversarial/
conftest.py). ``python -m tests.adversarial.matrix`` prints the markdown rows of the
"Attack matrix" table in docs/RELIABILITY.md, which a test keeps equal to the code.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from kakehashi.node.v1 import node_pb2

HERE = Path(__file__).resolve().parent


def attack(name: str, *, layer: str, where: str) -> pytest.MarkDecorator:
    """Mark a test as one attack of the matrix (``where``: the code that must refuse it)."""
    return pytest.mark.attack(name=name, layer=layer, where=where)


@dataclass
class Outcome:
    name: str
    layer: str
    rejected: bool = False
    checked_state: bool = False
    state_changed: bool = False


OUTCOMES: dict[str, Outcome] = {}
# Each finished attack's outcome as its test report carried it (the summary's source: under
# xdist the attacks run in worker processes and only their reports reach the summary).
REPORTED: dict[str, dict[str, Any]] = {}


@dataclass
class Attempt:
    """One attack's bookkeeping; the assertions raise, the records feed the session summary."""

    outcome: Outcome

    @contextlib.contextmanager
    def watch(self, read: Callable[[], Any]) -> Iterator[None]:
        """Read the state before and after the block; any difference fails the attack."""
        before = read()
        yield
        after = read()
        self.outcome.checked_state = True
        if before != after:
            self.outcome.state_changed = True
            raise AssertionError(f"{self.outcome.name}: state changed\n" + _diff(before, after))

    def _rejected(self) -> None:
        self.outcome.rejected = True

    def failed(self, res: node_pb2.TxResult, *fragments: str) -> None:
        """The tx was included and reverted (TX_STATUS_FAILED) for the reason named."""
        assert res.status == node_pb2.TX_STATUS_FAILED, f"expected FAILED, got {res.status}: {res.reason}"
        for f in fragments:
            assert f in res.reason, f"{f!r} not in the reason: {res.reason}"
        self._rejected()

    def refused(self, exc: grpc.RpcError, code: grpc.StatusCode, *fragments: str) -> None:
        """The node refused the request itself with ``code`` and a reason naming the rule."""
        assert exc.code() == code, f"expected {code}, got {exc.code()}: {exc.details()}"
        for f in fragments:
            assert f in (exc.details() or ""), f"{f!r} not in the reason: {exc.details()}"
        self._rejected()

    def noop(self, res: node_pb2.TxResult, reason: str) -> None:
        """A replay: the tx commits as a no-op that names why (duplicate relay is harmless)."""
        assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason
        reasons = [bytes(a.value).decode() for e in res.events if e.type == "noop"
                   for a in e.attributes if a.key == "reason"]
        assert reason in reasons, f"no noop with reason {reason!r}: {reasons}"
        assert not [e.type for e in res.events if e.type in ("recv_packet", "acknowledge_packet", "timeout_packet",
                                                               "write_acknowledgement")], "the replay ran again"
        self._rejected()

    def raised(self, exc: BaseException, error: type[BaseException], *fragments: str) -> None:
        """In-process: the typed error (a TxFailed's cause, or the error itself) and its text."""
        cause = getattr(exc, "cause", exc)
        assert isinstance(cause, error), f"expected {error.__name__}, got {type(cause).__name__}: {cause}"
        for f in fragments:
            assert f in str(cause), f"{f!r} not in: {cause}"
        self._rejected()


def _diff(before: Any, after: Any) -> str:
    a = json.dumps(before, indent=1, sort_keys=True, default=repr).splitlines()
    b = json.dumps(after, indent=1, sort_keys=True, default=repr).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "before", "after", lineterm="", n=1))


@pytest.fixture
def attempt(request: pytest.FixtureRequest) -> Iterator[Attempt]:
    marker = request.node.get_closest_marker("attack")
    if marker is None:
        raise pytest.UsageError(f"{request.node.nodeid} uses `attempt` without @attack(...)")
    outcome = Outcome(marker.kwargs["name"], marker.kwargs["layer"])
    OUTCOMES[request.node.nodeid] = outcome
    got = Attempt(outcome)
    yield got
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.passed:
        assert outcome.rejected, f"{outcome.name}: the test never asserted the rejection"
        assert outcome.checked_state, f"{outcome.name}: the test never compared the state"


def summary() -> str | None:
    if not REPORTED:
        return None
    tried = len(REPORTED)
    rejected = sum(bool(o["rejected"]) for o in REPORTED.values())
    changed = sum(bool(o["state_changed"]) for o in REPORTED.values())
    return f"attacks tried: {tried}, rejected: {rejected}, state changed: {changed}"


# --- the documented table ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    layer: str
    where: str
    test: str

    def markdown(self) -> str:
        return f"| {self.name} | {self.layer} | {self.where} | `{self.test}` |"


def declared() -> list[Row]:
    """Every @attack in tests/adversarial/test_*.py, in file and line order (read, not imported)."""
    rows = []
    for path in sorted(HERE.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                  and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                  for t in n.targets if isinstance(t, ast.Name)}

        def value(expr: ast.expr, consts: dict[str, str] = consts) -> str:
            if isinstance(expr, ast.Name):
                return consts[expr.id]
            got = ast.literal_eval(expr)
            assert isinstance(got, str), got
            return got

        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name) and deco.func.id == "attack":
                    args = [value(a) for a in deco.args]
                    kw = {str(k.arg): value(k.value) for k in deco.keywords}
                    rows.append(Row(args[0], kw["layer"], kw["where"], f"{path.stem}::{node.name}"))
    return rows


def table() -> str:
    head = "| attack | layer | where rejected | test |\n|---|---|---|---|"
    return "\n".join([head, *(r.markdown() for r in declared())])


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
