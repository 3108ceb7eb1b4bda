"""Fixtures of the attack matrix: one live network per session and the outcome registry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.adversarial.matrix import OUTCOMES, REPORTED, attempt, summary
from tests.support.adversary import Net, start_net, stop_net

__all__ = ["attempt"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "attack(name, layer, where): one attack of the matrix (tests/adversarial)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    elif rep.when == "teardown" and item.nodeid in OUTCOMES:
        # Reports travel from xdist workers to the process that prints the summary; fixtures' state does not.
        rep.user_properties.append(("attack_outcome", asdict(OUTCOMES[item.nodeid])))
    return rep


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == "attack_outcome":
            REPORTED[report.nodeid] = value


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = summary()
    if line is not None:
        terminalreporter.write_sep("=", "attack matrix")
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """EVM + Corda nodes with a transfer and a dvp channel, shared by every gRPC attack."""
    root: Path = tmp_path_factory.mktemp("adversary")
    network = start_net(root)
    try:
        yield network
    finally:
        stop_net(network)
