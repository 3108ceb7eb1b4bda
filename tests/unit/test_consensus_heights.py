"""The shared consensus-height index, its monotonic-time rule, and the stored-state reads over them."""

from __future__ import annotations

from typing import Any

import pytest

from lightclients.consensus_heights import breaks_monotonic_time, record_height, stored_heights
from lightclients.corda.client import CordaLightClient
from lightclients.interface import ClientError, Height, MemoryClientStore, Status
from lightclients.proxy.client import ProxyLightClient
from lightclients.qbft.client import QbftClient
from lightclients.stored_state import StoredStateClient


def test_index_is_sorted_and_idempotent() -> None:
    store = MemoryClientStore()
    for h in (Height(1, 5), Height(0, 9), Height(1, 2), Height(1, 5)):
        record_height(store, h)
    assert stored_heights(store) == [Height(0, 9), Height(1, 2), Height(1, 5)]


def test_time_must_increase_with_height_against_both_neighbours() -> None:
    store = MemoryClientStore()
    times = {Height(1, 10): 100, Height(1, 20): 200}
    for h in times:
        record_height(store, h)
    at = times.get
    assert not breaks_monotonic_time(store, Height(1, 15), 150, at)
    assert breaks_monotonic_time(store, Height(1, 15), 100, at)  # not after the one below
    assert breaks_monotonic_time(store, Height(1, 15), 200, at)  # not before the one above
    assert breaks_monotonic_time(store, Height(1, 30), 199, at)
    assert not breaks_monotonic_time(store, Height(1, 5), 99, at)
    assert not breaks_monotonic_time(store, Height(1, 20), 200, at)  # a height is not its own neighbour


@pytest.mark.parametrize(("client", "text"), [
    (QbftClient(), "client state is not initialised"),
    (CordaLightClient(), "client is not initialised"),
    (ProxyLightClient(), "client state is not initialised"),
])
def test_a_client_never_initialised_is_unknown_and_refuses_reads_in_its_words(
    client: StoredStateClient[Any, Any], text: str,
) -> None:
    store = MemoryClientStore()
    assert client.status(store, 1) is Status.UNKNOWN
    with pytest.raises(ClientError) as err:
        client.latest_height(store)
    assert str(err.value) == text
