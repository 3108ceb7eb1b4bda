"""Cost of one packet round trip over each conformance pair, against the test-only pair.

A round trip is five blocks: the send, the client update and recv on the receiver, the
client update and ack on the sender. The real pairs add block sealing (QBFT seals or notary
signatures), MPT/SMT proofs and their verification by the real clients; the ratio to the
``testroot`` pair measured in the same run is what says how much the real hosts cost the
conformance suite.
"""

from __future__ import annotations

import time
from typing import Any

from tests.support.host import SECOND
from tests.support.pair import CLIENT_KINDS, make_pair


def _round_trips_ms(kind: str, n: int) -> float:
    pair = make_pair(kind)
    ca, _ = pair.open_channel()
    a, b = pair.a, pair.b
    start = time.perf_counter()
    for i in range(n):
        packet = a.send("mock", ca, b"bench %d" % i, timeout_ns=b.now_ns + 1800 * SECOND)
        b.tx(pair.recv_msg(packet, b))
        ack = pair.last_event(b, "write_acknowledgement").get("ack") or b""
        a.tx(pair.ack_msg(packet, ack, a))
    return (time.perf_counter() - start) / n * 1e3


def run(quick: bool) -> dict[str, Any]:
    n = 10 if quick else 100
    ms = {kind: _round_trips_ms(kind, n) for kind in CLIENT_KINDS}
    base = ms["testroot"]
    return {
        "round_trips_per_kind": n,
        "ms_per_round_trip": {k: round(v, 3) for k, v in ms.items()},
        "ratio_to_testroot": {k: round(v / base, 2) for k, v in ms.items()},
    }
