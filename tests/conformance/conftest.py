"""Fixtures of the IBC conformance suite: two real hosts back to back, per pair kind.

The suite runs with the real light clients only (issue 3: the test-only client stays in
unit tests): EVM+Corda with a real client each way, and each real chain against itself.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chains.ibc.errors import IbcError, TxFailed
from tests.support.basehost import ChainHost
from tests.support.pair import REAL_KINDS, HostPair, make_pair


@pytest.fixture(params=REAL_KINDS)
def pair(request: pytest.FixtureRequest) -> HostPair:
    return make_pair(str(request.param))


@pytest.fixture
def rejected() -> Callable[..., TxFailed]:
    """Run a tx that must fail with ``error``; check the host's root did not move."""

    def check(host: ChainHost, msg: object, error: type[IbcError], match: str | None = None) -> TxFailed:
        before = host.root()
        with pytest.raises(TxFailed) as info:
            host.tx(msg)  # type: ignore[arg-type]
        assert isinstance(info.value.cause, error), info.value
        if match is not None:
            assert match in str(info.value.cause), str(info.value.cause)
        assert host.root() == before, "a failed tx changed the store"
        return info.value

    return check
