"""Host-side IBC cost per packet (send, recv, ack), proofs excluded, as a channel fills up.

Proof verification is the light client's cost and is benchmarked with the clients; here the
counterparty client accepts any proof so what remains is the core's own work: store reads and
writes through the transaction overlay, commitments, events. Each size runs on a fresh pair of
hosts; the per-packet cost is the mean over the last ``window`` packets of each phase, when the
channel already holds close to ``n`` commitments/receipts/acks. Flat means the ratio of the
largest size's cost to the smallest's stays near 1.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from chains.ibc import packets
from chains.ibc.context import to_proto
from chains.ibc.events import Event
from kakehashi.ibc.v1 import channel_pb2 as chpb
from lightclients.interface import Height
from tests.support.host import SECOND
from tests.support.pair import Pair


class _Discard:
    def emit(self, height: Height, event: Event) -> None:
        return None


def _measure(n: int, window: int) -> dict[str, float]:
    pair = Pair(provable=False, verify_proofs=False)
    ca, cb = pair.open_channel()
    a, b = pair.a, pair.b
    a_height_known_to_b = pair.update(b)  # B's client of A accepts any proof at this height
    b_height_known_to_a = pair.update(a)
    timeout = b.now_ns + 10**6 * SECOND
    # Hosts keep their events; here they would only measure the test log's growth.
    a.handler.sink = b.handler.sink = _Discard()
    sent: list[chpb.Packet] = []
    costs: dict[str, float] = {}

    def timed(phase: str, step: Any, count: int) -> None:
        start = 0.0
        for i in range(count):
            if i == count - window:
                # As timeit does: the collector's full-heap passes scale with everything the
                # process holds (event logs, test blocks), not with the core's work per packet.
                gc.collect()
                gc.disable()
                start = time.perf_counter()
            step(i)
        costs[phase] = (time.perf_counter() - start) / window * 1e6
        gc.enable()

    def send(i: int) -> None:
        a.next_block(1)
        seq = a.handler.call(
            lambda ctx: packets.send_packet(ctx, "mock", ca, Height(0, 0), timeout, b"p%d" % i),
            a.height, a.now_ns)
        sent.append(chpb.Packet(sequence=seq, source_port="mock", source_channel=ca,
                                destination_port="mock", destination_channel=cb, data=b"p%d" % i,
                                timeout_timestamp=timeout))

    def recv(i: int) -> None:
        b.next_block(1)
        msg = chpb.MsgRecvPacket(packet=sent[i], proof_commitment=b"-", proof_height=to_proto(a_height_known_to_b),
                                 signer="bench")
        b.handler.execute([msg], b.height, b.now_ns)

    def ack(i: int) -> None:
        a.next_block(1)
        packet = sent[i]
        msg = chpb.MsgAcknowledgement(packet=packet, acknowledgement=b"ok:" + packet.data[:16],
                                      proof_acked=b"-", proof_height=to_proto(b_height_known_to_a), signer="bench")
        a.handler.execute([msg], a.height, a.now_ns)

    timed("send_us", send, n)
    timed("recv_us", recv, n)
    timed("ack_us", ack, n)
    return costs


def run(quick: bool) -> dict[str, Any]:
    sizes = [1_000, 10_000] if quick else [1_000, 100_000]
    window = 500
    by_size = {str(n): _measure(n, window) for n in sizes}
    small, large = by_size[str(sizes[0])], by_size[str(sizes[-1])]
    ratios = {phase: round(large[phase] / small[phase], 3) for phase in small}
    return {
        "sizes": sizes,
        "window": window,
        "per_packet_us": {k: {p: round(v, 2) for p, v in d.items()} for k, d in by_size.items()},
        "ratio_largest_to_smallest": ratios,
        "note": "host-side cost only; proof verification excluded (accept-all client)",
    }
