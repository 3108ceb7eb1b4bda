"""The relayer's proxy prover: proves a chain to its counterparty through proxy services.

As the reference LCP relayer wraps its origin prover, :class:`ProxyChainHandle` wraps the
direct one: it is the chain's ordinary gRPC handle (same node, same codec, same txs), and
only what the counterparty verifies changes. The direct header and the direct proof are
still built from the node, then handed to each operator's proxy service, whose (SIMULATED)
enclave verifies them with the hosted direct client and signs an UpdateState or a
VerifyMembership; the handle merges the operators' signatures into one message. So the
supervisor, workers and planner run unchanged in both modes.

- Hosted clients: one per source chain in each proxy, id = this chain's id. ``client_init``
  creates it (or reuses an active one with the same parameters) from the node's latest
  state and builds the ``12-proxy`` client state the config pins (code hash, authority,
  operators, k, key expiration).
- Proof heights: a proof is queried before the update that brings the counterparty to its
  height, so the hosted client may not trust that height yet; the handle then feeds it the
  header from the newest height it trusts below (unsigned: verified and stored only).
- Keys: the handle renews enclave keys itself. When a proxy's newest key has less than
  ``key_renew_before`` left (wall clock), it asks for a new one; until the old key expires
  both sign, and every update carries the signing keys' registrations, so the counterparty
  learns the new key from the next update and nothing stops at the switch.
- Multiproofs: where the relayer proves a transaction's packets with one multiproof
  (``query_multi``), the handle sends the node's multiproof and the paths' values to each
  proxy and returns one signed VerifyMembershipBatch, which the counterparty opens once.
- k-of-n: every proxy is asked; at least k must answer, with byte-identical messages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from chains.node.client import NodeClient
from kakehashi.proxy.v1 import proxy_pb2 as pb
from kakehashi.proxy.v1 import service_pb2 as spb
from lightclients.interface import ClientError, ClientStore, Height, LightClientModule
from lightclients.proxy.client import CLIENT_TYPE, ProxyLightClient, decode_client_message
from lightclients.proxy.messages import encode, height, hex_address, parse_update
from relayer.config.proxy import ProxyConfig
from relayer.config.tlsfiles import client_tls
from relayer.core.chain import ChainCodec, ChainHandle, GrpcChainHandle, QueryResult
from relayer.proxy.client import ProxyError, ProxyServiceClient

log = structlog.get_logger("kakehashi.proxy.prover")

SEC_NS = 1_000_000_000
MAX_SIGNING_KEYS = 2  # the newest key and, during a rotation, the one before it


class ProverError(RuntimeError):
    """The proxies could not produce what the counterparty needs; the message says why."""


@dataclass
class _Proxy:
    client: ProxyServiceClient
    keys: list[tuple[bytes, int]] | None = None  # (address, attested_at), oldest first
    trusted: set[Height] = field(default_factory=set)  # heights its hosted client is known to hold
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ProxyChainHandle(GrpcChainHandle):
    """This chain, proven to its counterparty by the proxies (see the module docstring)."""

    def __init__(self, chain_id: str, node: NodeClient, codec: ChainCodec, config: ProxyConfig,
                 clock: Callable[[], int] = time.time_ns) -> None:
        super().__init__(chain_id, node, codec)
        self.proxy_config = config
        self.elc_id = chain_id
        self.clock = clock
        tls = client_tls(config.tls)
        self.proxies = [_Proxy(ProxyServiceClient(a, timeout_s=config.rpc_timeout_s, tls=tls)) for a in config.addrs]

    async def aclose(self) -> None:
        for p in self.proxies:
            await p.client.close()

    def light_client(self) -> LightClientModule:
        return ProxyLightClient()

    async def complete_view(self, host: ChainHandle, client_id: str, store: ClientStore) -> None:
        """Nothing to copy: a proxy client keeps no side state a header needs (the direct
        codec's completion, e.g. Corda notary sets, is about the direct client)."""

    # --- fan-out over the operators' proxies ---------------------------------------------------

    async def _each(self, what: str, fn: Callable[[_Proxy], Awaitable[spb.SignedResponse]]) -> tuple[bytes, bytes]:
        """(signed message, its client-message registrations) from >= k proxies that agree."""
        got = await asyncio.gather(*(fn(p) for p in self.proxies), return_exceptions=True)
        ok = [r for r in got if isinstance(r, spb.SignedResponse)]
        errors = [r for r in got if isinstance(r, BaseException)]
        for e in errors:
            if not isinstance(e, ProxyError | ProverError):
                raise e
        if len(ok) < self.proxy_config.threshold:
            reasons = "; ".join(str(e) for e in errors)
            raise ProverError(f"{what} for {self.chain_id}: {len(ok)} of the {self.proxy_config.threshold} "
                              f"proxies needed answered ({reasons})")
        message = ok[0].signed.message
        if any(r.signed.message != message for r in ok):
            raise ProverError(f"{what} for {self.chain_id}: the proxies signed different statements")
        signed = pb.SignedMessage(message=message, signatures=[s for r in ok for s in r.signed.signatures])
        regs = [g for r in ok for g in r.registrations]
        return encode(signed), encode(pb.ClientMessage(update=signed, registrations=regs))

    # --- enclave keys ----------------------------------------------------------------------

    async def _signers(self, p: _Proxy) -> list[bytes]:
        """The keys this proxy signs with now, renewing its newest before it expires."""
        cfg = self.proxy_config
        expiration = int(cfg.key_expiration_s * SEC_NS)
        async with p.lock:
            if p.keys is None:
                info = await p.client.info()
                if bytes(info.code_hash) != cfg.code_hash:
                    raise ProverError(f"proxy {p.client.address} runs enclave code {bytes(info.code_hash).hex()}, "
                                      f"the config pins {cfg.code_hash.hex()}")
                if bytes(info.operator) not in cfg.operators:
                    raise ProverError(f"proxy {p.client.address} is run by {hex_address(info.operator)}, not one "
                                      "of the configured operators")
                p.keys = sorted(((bytes(k.address), int(k.attested_at)) for k in info.keys), key=lambda k: k[1])
            now = self.clock()
            live = [k for k in p.keys if k[1] + expiration > now]
            if not live or live[-1][1] + expiration - now < int(cfg.key_renew_before_s * SEC_NS):
                key = await p.client.new_enclave_key()
                p.keys.append((bytes(key.address), int(key.attested_at)))
                live.append(p.keys[-1])
                log.info("enclave key renewed", proxy=p.client.address, key=hex_address(key.address),
                         replaces=hex_address(live[-2][0]) if len(live) > 1 else None)
            return [a for a, _ in reversed(live[-MAX_SIGNING_KEYS:])]

    async def _call(self, p: _Proxy, fn: Callable[[list[bytes]], Awaitable[spb.SignedResponse]]) -> spb.SignedResponse:
        """Sign with the proxy's current keys; a proxy that lost a key (reset home) is re-read once."""
        try:
            return await fn(await self._signers(p))
        except ProxyError as exc:
            if "holds no attested key" not in exc.details:
                raise
            p.keys = None
            return await fn(await self._signers(p))

    # --- hosted clients --------------------------------------------------------------------

    async def _trust(self, p: _Proxy, at: Height) -> None:
        """Have the proxy's hosted client hold a consensus state at ``at``."""
        if at in p.trusted:
            return
        async with p.lock:
            if at in p.trusted:
                return
            got = await p.client.query_client(self.elc_id, at)
            if not got.has_height:
                below = height(got.trusted_below)
                if below.is_zero():
                    raise ProverError(f"the proxy {p.client.address} trusts no height of {self.chain_id} below {at}")
                header = await GrpcChainHandle.build_header(self, below, at)
                await p.client.update_client(self.elc_id, header, [])
            p.trusted.add(at)

    async def client_init(self) -> tuple[str, bytes, bytes]:
        client_type, client_state, consensus_state = await super().client_init()
        got = await asyncio.gather(*(p.client.create_client(self.elc_id, client_type, client_state, consensus_state)
                                     for p in self.proxies), return_exceptions=True)
        ok = [g for g in got if isinstance(g, spb.CreateClientResponse)]
        if len(ok) < self.proxy_config.threshold:
            raise ProverError(f"creating the hosted client of {self.chain_id}: "
                              + "; ".join(str(g) for g in got if isinstance(g, BaseException)))
        first = ok[0]
        if any((g.state_id, height(g.height)) != (first.state_id, height(first.height)) for g in ok):
            raise ProverError(f"the proxies' hosted clients of {self.chain_id} start from different states "
                              f"({sorted(str(height(g.height)) for g in ok)}); they must follow the chain together")
        cfg = self.proxy_config
        cs = pb.ClientState(code_hash=cfg.code_hash, authority=cfg.authority, allow_simulated=cfg.allow_simulated,
                            key_expiration=int(cfg.key_expiration_s * SEC_NS), operators=list(cfg.operators),
                            operators_threshold=cfg.threshold, trusting_period=first.trusting_period,
                            latest_height=first.height, proxied_client_type=first.client_type)
        cons = pb.ConsensusState(state_id=first.state_id, timestamp=first.timestamp)
        for p in self.proxies:
            p.trusted.add(height(first.height))
        log.info("proxy client state built", chain=self.chain_id, height=str(height(first.height)),
                 reused=first.reused, operators=len(cfg.operators), threshold=cfg.threshold)
        return CLIENT_TYPE, encode(cs), encode(cons)

    def header_identity(self, client_message: bytes) -> bytes | None:
        """What names the state a proxy update installs: (post height, post state id). The
        misbehaviour watch compares it instead of re-verifying a header it already knows."""
        try:
            up = parse_update(bytes(decode_client_message(client_message).update.message))
        except ClientError:
            return None
        return encode(up.post_height) + bytes(up.post_state_id)

    # --- what the counterparty verifies ------------------------------------------------------

    async def build_header(self, trusted: Height, target: Height) -> bytes:
        direct = await super().build_header(trusted, target)

        async def one(p: _Proxy) -> spb.SignedResponse:
            await self._trust(p, trusted)
            out = await self._call(p, lambda keys: p.client.update_client(self.elc_id, direct, keys))
            p.trusted.add(target)
            return out

        _, message = await self._each(f"update to {target}", one)
        return message

    async def build_misbehaviour(self, conflicting: bytes, target: Height) -> bytes:
        """The genuine statement from the state the conflicting one claims to follow: the
        counterparty holds the conflicting state at ``target``, so this one freezes it."""
        up = parse_update(bytes(decode_client_message(conflicting).update.message))
        return await self.build_header(height(up.prev_height), target)

    async def query_multi(self, paths: Sequence[bytes], height: Height) -> tuple[list[bytes | None], bytes]:
        """The proxy's multiproof form: one enclave statement over the node's multiproof of
        ``paths`` (the counterparty opens it once: one set of signatures per transaction)."""
        values, multiproof = await super().query_multi(paths, height)
        items = list(zip(paths, values, strict=True))

        async def one(p: _Proxy) -> spb.SignedResponse:
            await self._trust(p, height)
            return await self._call(p, lambda keys: p.client.verify_batch(self.elc_id, height, self.prefix, items,
                                                                          multiproof, keys))

        signed, _ = await self._each(f"batch proof of {len(paths)} paths at {height}", one)
        return values, signed

    async def query(self, path: bytes, height: Height | None = None, prove: bool = True) -> QueryResult:
        res = await super().query(path, height, prove)
        if not prove or not res.proof:
            return res
        at, prefix = res.height, self.prefix

        async def one(p: _Proxy) -> spb.SignedResponse:
            await self._trust(p, at)
            if res.value is None:
                return await self._call(p, lambda keys: p.client.verify_non_membership(
                    self.elc_id, at, prefix, path, res.proof, keys))
            value = res.value
            return await self._call(p, lambda keys: p.client.verify_membership(
                self.elc_id, at, prefix, path, value, res.proof, keys))

        signed, _ = await self._each(f"proof of {path.decode(errors='replace')} at {at}", one)
        return QueryResult(res.value, signed, at)


def proxy_handle(chain_id: str, node: NodeClient, codec: ChainCodec, config: ProxyConfig | None) -> ProxyChainHandle:
    if config is None:
        raise ProverError(f"chain {chain_id}: prover = \"proxy\" without a [chains.proxy] table")
    return ProxyChainHandle(chain_id, node, codec, config)

