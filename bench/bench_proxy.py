"""Direct vs proxy verification: what the receiving chain pays per update and per proof, at 4 and
100 validators (QBFT) / notaries (Corda), and DvP end to end in both modes.

On-chain cost is what the receiving chain's light-client module spends inside its IBC
handler: ``verify_client_message`` for an update, ``verify_membership`` for a proof. For each
it reports the time in this host (Python, same run, so direct/proxy ratios compare across
machines), the signature verifications it made (counted by wrapping the primitives the
clients call), and the bytes the transaction carries. Direct clients verify a quorum of
validator seals (QBFT: secp256k1 recoveries, stopping at > 2/3; Corda: Ed25519 over every
notary signature) and an MPT / ICS-23 proof; the proxy client verifies k enclave signatures
(here k = 1, and 2-of-3 operators) and compares hashes, whatever n is. The proxy's "first
update" also registers its enclave key (authority and operator signatures, once per key).

Inside a transaction of 16 proofs (the relayer's one-multiproof-per-tx contract) direct
clients open one multiproof and the proxy client one enclave statement (one set of
signatures for all 16): ``batch_16_us_per_proof`` is the cost per proof there.

The work does not vanish: the enclave (SIMULATED, here in-process) runs the direct client
off-chain, so ``enclave_update_us`` / ``enclave_proof_us`` are reported beside the on-chain
costs. The end-to-end part runs bench_dvp's DvP workload (real nodes, the real relayer, and
in proxy mode a real proxy process over gRPC) once per mode at one size.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench.timing import per_call_us
from chains.corda.notary import NotaryCluster
from chains.evm import IBC_HANDLER_ADDRESS, EvmChain
from chains.evm.ibc_proofs import ibc_multiproof
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.proxy.v1 import proxy_pb2 as ppb
from lightclients import crypto
from lightclients.corda import checkpoint as corda_checkpoint
from lightclients.corda import client as corda_client
from lightclients.corda.checkpoint import quorum
from lightclients.corda.client import (
    CordaLightClient,
    consensus_state_from_checkpoint,
    header_message,
)
from lightclients.interface import BatchProofModule, Height, LightClientModule, MemoryClientStore
from lightclients.proxy import messages as proxy_messages
from lightclients.proxy.attestation import SimulatedAuthority, operator_sign, registration
from lightclients.proxy.client import ProxyLightClient
from lightclients.proxy.enclave import Enclave, Signed
from lightclients.qbft import client as qbft_client
from lightclients.qbft.client import QbftClient, encode_header_message

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
TP = 3600 * NS
DRIFT = 10 * NS
PATH = b"commitments/ports/dvp/channels/channel-1/sequences/1"
VALUE = crypto.sha256(b"packet commitment")
CODE_HASH = crypto.sha256(b"bench enclave bundle")
SIZES = (4, 100)
BATCH = 16  # proofs per transaction in the batch measurement (one multiproof / one statement)
BATCH_PATHS = sorted(b"commitments/ports/dvp/channels/channel-1/sequences/%d" % (100 + i) for i in range(BATCH))


@dataclass
class Source:
    """One tracked chain at heights 1 (trusted) and 2 (the update), with a proof at 2."""

    client_type: str
    module: LightClientModule
    client_state: bytes
    consensus_state: bytes
    header: bytes
    proof: bytes
    prefix: bytes
    now: int
    batch_paths: list[bytes]
    multiproof: bytes  # the direct multiproof of batch_paths at height 2


def _qbft(n: int) -> Source:
    keys = [crypto.sha256(b"v%d" % i) for i in range(n)]
    addrs = [crypto.eth_address(crypto.secp256k1_public_key(k)) for k in keys]
    chain = EvmChain(1, addrs, T0, token_issuer=addrs[0])
    for i in range(200):  # unrelated IBC state, so the proof has a realistic depth
        chain.ibc.store.set(b"commitments/filler/%d" % i, b"v%d" % i)
    chain.ibc.store.set(PATH, VALUE)
    for p in BATCH_PATHS:
        chain.ibc.store.set(p, VALUE)
    chain.produce_block([], T0 + NS, keys)
    chain.produce_block([], T0 + 2 * NS, keys)
    root = chain.prove(IBC_HANDLER_ADDRESS, [], 2).storage_root
    return Source(QbftClient.client_type, QbftClient(), chain.qbft_client_state(1, TP, DRIFT),
                  chain.qbft_consensus_state(1), encode_header_message(chain.light_client_header(2, 1)),
                  chain.ibc_proof(PATH, 2), IBC_HANDLER_ADDRESS, (chain.header(2).timestamp + 1) * NS,
                  BATCH_PATHS, ibc_multiproof(chain.state.store, root, BATCH_PATHS))


def _corda(n: int) -> Source:
    cluster = NotaryCluster("bench", crypto.sha256(b"bench-notary"), [crypto.sha256(b"n%d" % i) for i in range(n)], {})
    for i in range(1000):
        cluster.ibc_store.set(b"commitments/filler/%d" % i, crypto.sha256(bytes(i)))
    first = cluster.checkpoint(T0)
    cluster.ibc_store.set(PATH, VALUE)
    for p in BATCH_PATHS:
        cluster.ibc_store.set(p, VALUE)
    second = cluster.checkpoint(T0 + NS)
    cs = lc.ClientState(chain_id="bench", notary_keys=first.notary_set, threshold=quorum(n), latest_height=1,
                        trusting_period=TP, max_clock_drift=DRIFT)
    return Source(CordaLightClient.client_type, CordaLightClient(), corda_client.encode(cs),
                  corda_client.encode(consensus_state_from_checkpoint(first.checkpoint)),
                  header_message(second.header(1)), cluster.ibc_store.prove_bytes(PATH), b"ibc", T0 + 2 * NS,
                  BATCH_PATHS, cluster.ibc_store.prove_many_bytes(BATCH_PATHS))


class Counter:
    """Counts calls to the signature primitives as the clients see them (their module names)."""

    SITES = ((qbft_client, "secp256k1_recover_address"), (proxy_messages, "secp256k1_recover_address"),
             (corda_checkpoint, "ed25519_verify"))

    def __init__(self) -> None:
        self.calls = 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        saved = [(mod, name, getattr(mod, name)) for mod, name in self.SITES]

        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            def counted(*args: Any) -> Any:
                self.calls += 1
                return fn(*args)
            return counted

        for mod, name, fn in saved:
            setattr(mod, name, wrap(fn))
        try:
            yield
        finally:
            for mod, name, fn in saved:
                setattr(mod, name, fn)


def _sigs(fn: Callable[[], object]) -> int:
    c = Counter()
    with c.counting():
        fn()
    return c.calls


def _direct(src: Source, min_seconds: float) -> dict[str, Any]:
    store = MemoryClientStore()
    src.module.initialize(store, src.client_state, src.consensus_state, src.now)
    src.module.verify_client_message(store, src.header, src.now)
    update_sigs = _sigs(lambda: src.module.verify_client_message(store, src.header, src.now))
    update_us = per_call_us(lambda: src.module.verify_client_message(store, src.header, src.now),
                            min_seconds=min_seconds)
    src.module.update_state(store, src.header)
    h2 = src.module.latest_height(store)

    def proof() -> None:
        src.module.verify_membership(store, h2, src.proof, src.prefix, PATH, VALUE, src.now)

    proof()
    module = src.module
    assert isinstance(module, BatchProofModule)

    def batch() -> None:
        opening = module.open_batch(store, h2, src.prefix, src.multiproof, src.now)
        for p in src.batch_paths:
            opening.verify_membership(p, VALUE)

    batch()
    return {"update_us": round(update_us, 1), "update_signature_checks": update_sigs,
            "update_bytes": len(src.header), "proof_us": round(per_call_us(proof, min_seconds=min_seconds), 1),
            "proof_signature_checks": _sigs(proof), "proof_bytes": len(src.proof),
            f"batch_{BATCH}_us_per_proof": round(per_call_us(batch, min_seconds=min_seconds) / BATCH, 1),
            f"batch_{BATCH}_bytes_per_proof": round(len(src.multiproof) / BATCH, 1)}


@dataclass
class _Op:
    secret: bytes
    address: bytes
    enclave: Enclave
    elc: MemoryClientStore
    key: bytes


def _operators(count: int, authority: SimulatedAuthority, src: Source) -> list[_Op]:
    ops = []
    for i in range(count):
        secret = crypto.sha256(b"operator %d" % i)
        counter = [0]

        def draw(n: int, i: int = i, counter: list[int] = counter) -> bytes:
            counter[0] += 1
            return crypto.sha256(b"bench randomness %d/%d" % (i, counter[0]))[:n]

        enclave = Enclave(CODE_HASH, draw)
        address = crypto.eth_address(crypto.secp256k1_public_key(secret))
        key = enclave.new_key()
        report, sig = authority.attest(CODE_HASH, key, address, src.now)
        enclave.attach(key, registration(report, sig, operator_sign(secret, report)))
        elc = MemoryClientStore()
        enclave.create_client(elc, src.client_type, src.client_state, src.consensus_state, src.now)
        ops.append(_Op(secret, address, enclave, elc, key))
    return sorted(ops, key=lambda o: o.address)


def _merge(outs: list[Signed]) -> tuple[ppb.SignedMessage, list[ppb.EnclaveKeyRegistration]]:
    signed = ppb.SignedMessage(message=outs[0].message.message,
                               signatures=[s for o in outs for s in o.message.signatures])
    return signed, [r for o in outs for r in o.registrations]


def _proxy(src: Source, min_seconds: float, operators: int = 1, threshold: int = 1) -> dict[str, Any]:
    authority = SimulatedAuthority(crypto.sha256(b"bench authority"))
    ops = _operators(operators, authority, src)
    signers = ops[:threshold]
    # first-time updates on fresh copies of the hosted client (a repeated header is a no-op now)
    base = copy.deepcopy(ops[0].elc)
    timed = []
    for _ in range(3 if min_seconds < 0.2 else 10):
        elc = copy.deepcopy(base)
        started = time.perf_counter()
        ops[0].enclave.update_client(elc, src.header, src.now, [ops[0].key])
        timed.append(time.perf_counter() - started)
    enclave_update_us = sum(timed) / len(timed) * 1e6
    signed, regs = _merge([o.enclave.update_client(o.elc, src.header, src.now, [o.key]) for o in signers])
    message = proxy_messages.encode(ppb.ClientMessage(update=signed, registrations=regs))
    info = ops[0].enclave.state(ops[0].elc, Height(0, 1))  # the trusted state both clients start from
    cs = ppb.ClientState(code_hash=CODE_HASH, authority=authority.address, allow_simulated=True,
                         key_expiration=24 * 3600 * NS, operators=[o.address for o in ops],
                         operators_threshold=threshold, trusting_period=TP,
                         latest_height=proxy_messages.height_pb(info.height), proxied_client_type=src.client_type)
    cons = ppb.ConsensusState(state_id=info.state_id, timestamp=info.timestamp)
    client = ProxyLightClient()

    def fresh() -> MemoryClientStore:
        store = MemoryClientStore()
        client.initialize(store, proxy_messages.encode(cs), proxy_messages.encode(cons), src.now)
        return store

    first = fresh()
    first_sigs = _sigs(lambda: client.verify_client_message(first, message, src.now))
    first_us = per_call_us(lambda: client.verify_client_message(fresh(), message, src.now), min_seconds=min_seconds)
    store = fresh()
    client.verify_client_message(store, message, src.now)
    client.update_state(store, message)  # the keys are registered from here on
    # steady state: keys known, the height new (re-verifying an applied update is a no-op)
    steady = fresh()
    for key, value in store.items():
        if key.startswith("meta/enclaveKeys/"):
            steady.set(key, value)
    steady_sigs = _sigs(lambda: client.verify_client_message(steady, message, src.now))
    steady_us = per_call_us(lambda: client.verify_client_message(steady, message, src.now), min_seconds=min_seconds)
    noop_us = per_call_us(lambda: client.verify_client_message(store, message, src.now), min_seconds=min_seconds)
    h2 = client.latest_height(store)
    ehost = ops[0]
    enclave_proof_us = per_call_us(lambda: ehost.enclave.verify_membership(
        ehost.elc, h2, src.prefix, PATH, VALUE, src.proof, src.now, [ehost.key]), min_seconds=min_seconds)
    proof_signed, _ = _merge([o.enclave.verify_membership(o.elc, h2, src.prefix, PATH, VALUE, src.proof, src.now,
                                                          [o.key]) for o in signers])
    proof = proxy_messages.encode(proof_signed)

    def verify_proof() -> None:
        client.verify_membership(store, h2, proof, src.prefix, PATH, VALUE, src.now)

    verify_proof()
    items: list[tuple[bytes, bytes | None]] = [(p, VALUE) for p in src.batch_paths]
    batch_signed, _ = _merge([o.enclave.verify_batch(o.elc, h2, src.prefix, items, src.multiproof, src.now, [o.key])
                              for o in signers])
    batch_proof = proxy_messages.encode(batch_signed)

    def verify_batch() -> None:
        opening = client.open_batch(store, h2, src.prefix, batch_proof, src.now)
        for p in src.batch_paths:
            opening.verify_membership(p, VALUE)

    verify_batch()
    return {"operators": f"{threshold}-of-{operators}",
            f"batch_{BATCH}_us_per_proof": round(per_call_us(verify_batch, min_seconds=min_seconds) / BATCH, 1),
            f"batch_{BATCH}_signature_checks": _sigs(verify_batch),
            f"batch_{BATCH}_bytes_per_proof": round(len(batch_proof) / BATCH, 1),
            "update_us": round(steady_us, 1), "update_signature_checks": steady_sigs,
            "repeated_update_noop_us": round(noop_us, 1),
            "update_bytes": len(proxy_messages.encode(ppb.ClientMessage(update=signed))),
            "first_update_with_key_registration_us": round(first_us, 1),
            "first_update_signature_checks": first_sigs, "first_update_bytes": len(message),
            "proof_us": round(per_call_us(verify_proof, min_seconds=min_seconds), 1),
            "proof_signature_checks": _sigs(verify_proof), "proof_bytes": len(proof),
            "enclave_update_us": round(enclave_update_us, 1), "enclave_proof_us": round(enclave_proof_us, 1)}


def _onchain(quick: bool) -> dict[str, Any]:
    min_seconds = 0.1 if quick else 0.4
    out: dict[str, Any] = {}
    for kind, build in (("qbft", _qbft), ("corda", _corda)):
        for n in SIZES:
            src = build(n)
            direct = _direct(src, min_seconds)
            proxy = _proxy(src, min_seconds)
            row: dict[str, Any] = {"direct": direct, "proxy": proxy, "ratio_direct_to_proxy": {
                "update_us": round(direct["update_us"] / proxy["update_us"], 2),
                "proof_us": round(direct["proof_us"] / proxy["proof_us"], 2),
                "update_bytes": round(direct["update_bytes"] / proxy["update_bytes"], 2),
                "proof_bytes": round(direct["proof_bytes"] / proxy["proof_bytes"], 2),
                f"batch_{BATCH}_us_per_proof": round(direct[f"batch_{BATCH}_us_per_proof"]
                                                    / proxy[f"batch_{BATCH}_us_per_proof"], 2)}}
            if n == SIZES[-1]:
                row["proxy_2_of_3"] = _proxy(src, min_seconds, operators=3, threshold=2)
            out[f"{kind}_{n}"] = row
    return out


def _e2e(quick: bool) -> dict[str, Any]:
    from bench import bench_dvp

    size = 20 if quick else 1000
    out: dict[str, Any] = {}
    # quick (make test's smoke run): proxy mode only; `bench dvp --quick` covers direct mode
    for prover in (("proxy",) if quick else ("direct", "proxy")):
        started = time.monotonic()
        got = bench_dvp.run(quick, prover=prover, sizes=(size,))
        row = got.get(f"n{size}", {})
        out[prover] = {k: row.get(k) for k in ("trades", "settled", "settled_per_s", "latency_p50_s", "latency_p99_s",
                                                "latency_max_s", "truncated", "error")}
        out[prover]["tx_errors"] = got.get("relayer", {}).get("tx_errors")
        out[prover]["wall_s_including_setup"] = round(time.monotonic() - started, 1)
    d, p = out.get("direct", {}), out["proxy"]
    if d.get("settled_per_s") and p.get("settled_per_s"):
        out["proxy_throughput_vs_direct"] = round(p["settled_per_s"] / d["settled_per_s"], 2)
    if d.get("latency_p50_s") and p.get("latency_p50_s"):
        out["proxy_p50_latency_vs_direct"] = round(p["latency_p50_s"] / d["latency_p50_s"], 2)
    return out


def run(quick: bool) -> dict[str, Any]:
    return {"onchain": _onchain(quick), "dvp_end_to_end": _e2e(quick),
            "note": "proxy = LCP-style client over a SIMULATED enclave; k = 1 unless stated"}
