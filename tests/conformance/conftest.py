"""Fixtures of the IBC conformance suite: two hosts back to back, per client pair kind."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chains.ibc.errors import IbcError, TxFailed
from tests.support.host import Host
from tests.support.pair import CLIENT_KINDS, Pair


@pytest.fixture(params=CLIENT_KINDS)
def pair(request: pytest.FixtureRequest) -> Pair:
    return Pair(str(request.param))


@pytest.fixture
def rejected() -> Callable[..., TxFailed]:
    """Run a tx that must fail with ``error``; check the host's root did not move."""

    def check(host: Host, msg: object, error: type[IbcError], match: str | None = None) -> TxFailed:
        before = host.root()
        with pytest.raises(TxFailed) as info:
            host.tx(msg)  # type: ignore[arg-type]
        assert isinstance(info.value.cause, error), info.value
        if match is not None:
            assert match in str(info.value.cause), str(info.value.cause)
        assert host.root() == before, "a failed tx changed the store"
        return info.value

    return check
