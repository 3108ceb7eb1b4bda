"""Two workers feed one client: the UpdateClient leading a tx must not go backwards.

Found by bench/bench_relayer_grpc.py: a pass whose recv half took many blocks built its acks'
update for the pass's (old) height after the other direction's worker had moved the same
client past it, and every ack tx failed with "header height ... is not above trusted height".
"""

from __future__ import annotations

import pytest

from chains.ibc.host import paths
from relayer.core.workers import StaleProofHeight, update_if_needed
from tests.support.pair import Pair
from tests.support.relaying import HostHandle


async def test_update_is_built_only_while_the_client_is_below_the_proof_height() -> None:
    pair = Pair()
    pair.open_connection()
    a, b = HostHandle(pair.a), HostHandle(pair.b)
    client_on_b = pair.client[pair.b.chain_id]

    pair.a.idle(2)
    target = pair.a.height
    msg = await update_if_needed(a, b, client_on_b, target)
    assert msg is not None and msg.client_id == client_on_b
    pair.b.tx(msg)
    pair.trust(pair.b, target)
    assert pair.b.store.get(paths.consensus_state(client_on_b, target)) is not None

    # reached already (by us or another worker): nothing to send, the proofs verify as they are
    assert await update_if_needed(a, b, client_on_b, target) is None

    # moved past a height it holds no state for: the pass must re-prove at a fresh height
    pair.a.idle(1)
    skipped = pair.a.height
    pair.a.idle(1)
    pair.update(pair.b)
    with pytest.raises(StaleProofHeight, match="past proof height"):
        await update_if_needed(a, b, client_on_b, skipped)
    assert await update_if_needed(a, b, client_on_b, pair.a.height) is None
