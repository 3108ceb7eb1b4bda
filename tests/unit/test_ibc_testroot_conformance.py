"""The IBC conformance suite over the test-only root client, as unit tests of the core.

Issue 3: the conformance suite (tests/conformance) runs with the real light clients; the
test-only client stays in unit tests. Running the same requirement tests here over it keeps
a failure attributable: if a requirement fails only in the real pairs, the client or host is
at fault, if it fails here too, the IBC core is.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import rejected
from tests.conformance.test_bad_input import *  # noqa: F403
from tests.conformance.test_batch_proofs import *  # noqa: F403
from tests.conformance.test_ics02_clients import *  # noqa: F403
from tests.conformance.test_ics03_connections import *  # noqa: F403
from tests.conformance.test_ics04_channels import *  # noqa: F403
from tests.conformance.test_ics04_packets import *  # noqa: F403
from tests.conformance.test_ics20_transfer import *  # noqa: F403
from tests.conformance.test_ics24_host import *  # noqa: F403
from tests.conformance.test_ics26_routing import *  # noqa: F403
from tests.support.pair import Pair

__all__ = ["rejected"]


@pytest.fixture
def pair() -> Pair:
    return Pair()
