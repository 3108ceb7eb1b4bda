"""Read access to both ledgers for the settlement client: every fact it acts on comes from here.

Why the client reads the chains and never the relayer: the relayer is untrusted (anyone may
run one, and several may race), while each chain's state is final once committed. So the
lock states, balances, admissions, channel and client status are all node queries
(``QueryApp`` / ``QueryIbc``) against the two nodes the operator chose.

Why reads are per height: an answer only changes when a block commits, and a client with
hundreds of trades in flight asks the same chain-wide facts (channel, clients, admissions, a
party's balance or Cash) many times per block. Each chain's :class:`ChainWatch` follows its
block stream; a fact is read once at the head height it names and shared by every trade that
asks at that height (:meth:`Ledgers.at_head`). Per-trade questions (an escrow, a lock) still go
to the node, and the node client merges the concurrent ones into one batched call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import DecodeError

from chains.corda.cash import brand_key
from chains.ibc.host import paths
from chains.node.client import ClientTls, NodeClient, NodeError, RetryPolicy
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from kakehashi.node.v1 import node_pb2
from lightclients.corda.client import CordaLightClient
from lightclients.interface import (
    CLIENT_STATE_KEY,
    ClientError,
    LightClientModule,
    MemoryClientStore,
    Status,
    consensus_state_key,
)
from lightclients.proxy.client import ProxyLightClient
from lightclients.qbft.client import QbftClient
from relayer.core.watch import ChainWatch

T = TypeVar("T")
# heights of answers kept below a chain's head (late readers at an older head still share them)
KEPT_HEIGHTS = 4
# how many blocks old an advisory fact may be when the current head's is not read yet
ADVISORY_STALE_BLOCKS = 3
# Balances and Cash carry the height they were read at, and the settlement client's holds and
# input reservations are exact at any height they cover (kept 8 blocks), so it may take an
# older answer; every other caller reads at the head (the default, max_stale=0).
EXACT_STALE_BLOCKS = 2


class LedgerError(RuntimeError):
    """A node could not answer or answered something the client cannot use; names the chain."""


@dataclass(frozen=True)
class ChannelView:
    """The dvp channel as both chains see it."""

    corda_channel: str
    evm_channel: str
    corda_state: int
    evm_state: int
    corda_client: str  # the Corda chain's client of the EVM chain
    evm_client: str  # the EVM chain's client of the Corda chain
    ordering: int
    version: str


def _module_for(client_id: str) -> LightClientModule:
    if client_id.startswith(QbftClient.client_type + "-"):
        return QbftClient()
    if client_id.startswith(CordaLightClient.client_type + "-"):
        return CordaLightClient()
    if client_id.startswith(ProxyLightClient.client_type + "-"):
        return ProxyLightClient()
    raise LedgerError(f"client {client_id} is of an unknown type")


class Ledgers:
    """Node clients for the EVM chain (ST) and the Corda chain (SC), with their chain_info."""

    def __init__(self, evm: NodeClient, corda: NodeClient, evm_info: dict[str, Any],
                 corda_info: dict[str, Any], channel: str | None = None) -> None:
        self.evm, self.corda = evm, corda
        self.evm_info, self.corda_info = evm_info, corda_info
        self.channel = channel
        self.evm_watch, self.corda_watch = ChainWatch(evm), ChainWatch(corda)
        self.owns_corda = True  # False for a spoke sharing the hub's Corda client (:meth:`spoke`)
        self._memo: dict[tuple[bool, int], dict[Hashable, asyncio.Future[Any]]] = {}

    @classmethod
    async def connect(cls, evm_addr: str, corda_addr: str, channel: str | None = None, *,
                      evm_tls: ClientTls | None = None, corda_tls: ClientTls | None = None,
                      retry: RetryPolicy | None = None) -> Ledgers:
        """Open both nodes (``host:port``) and read their chain_info; ``channel`` is the Corda
        end of the dvp channel used when a trade names none."""
        # Ten attempts back off for ~15 s in all: long enough to ride out a node restart (found
        # by the chaos soak: with four, ~0.7 s, a 2 s Corda restart failed the feed's trades in
        # flight and their settlement events were never published though the relayer settled them)
        retry = retry or RetryPolicy(attempts=10, timeout_s=15.0)
        evm, corda = NodeClient(evm_addr, tls=evm_tls, retry=retry), NodeClient(corda_addr, tls=corda_tls, retry=retry)
        try:
            evm_info = await _ask(evm, "EVM", "chain_info")
            corda_info = await _ask(corda, "Corda", "chain_info")
        except BaseException:
            await evm.close()
            await corda.close()
            raise
        for key in ("evm_chain_id", "security_token", "dvp_escrow"):
            if key not in evm_info:
                await evm.close()
                await corda.close()
                raise LedgerError(f"EVM node at {evm_addr}: chain_info lacks {key!r} (is it the EVM chain?)")
        for key in ("notary_identity", "issuer"):
            if key not in corda_info:
                await evm.close()
                await corda.close()
                raise LedgerError(f"Corda node at {corda_addr}: chain_info lacks {key!r} (is it the Corda chain?)")
        return cls(evm, corda, evm_info, corda_info, channel)

    @classmethod
    async def spoke(cls, evm_addr: str, hub: Ledgers, channel: str | None = None, *,
                    evm_tls: ClientTls | None = None, retry: RetryPolicy | None = None) -> Ledgers:
        """Another EVM chain's ledgers, sharing ``hub``'s Corda node client and block watch (one
        stream of the SC chain, whatever the number of ST chains); closing it leaves them open."""
        evm = NodeClient(evm_addr, tls=evm_tls, retry=retry or RetryPolicy(attempts=4, timeout_s=15.0))
        try:
            evm_info = await _ask(evm, "EVM", "chain_info")
        except BaseException:
            await evm.close()
            raise
        for key in ("evm_chain_id", "security_token", "dvp_escrow"):
            if key not in evm_info:
                await evm.close()
                raise LedgerError(f"EVM node at {evm_addr}: chain_info lacks {key!r} (is it the EVM chain?)")
        led = cls(evm, hub.corda, evm_info, hub.corda_info, channel)
        await led.corda_watch.close()
        led.corda_watch, led.owns_corda = hub.corda_watch, False
        return led

    async def dvp_channels(self) -> list[str]:
        """The Corda ends of the dvp channels that lead to this EVM chain (both ends name each
        other), read from the chains: how a spoke's client finds its path's channel."""
        raw = await _raw(self.corda, "Corda", paths.NEXT_CHANNEL_SEQUENCE.decode())
        count = int(client_pb2.NextSequence.FromString(raw).sequence) if raw else 0
        found = []
        for n in range(count):
            view = await self._channel_view(f"channel-{n}")
            if view is not None and view.evm_state != chpb.STATE_UNINITIALIZED_UNSPECIFIED:
                found.append(view.corda_channel)
        return found

    async def close(self) -> None:
        await self.evm_watch.close()
        await self.evm.close()
        if self.owns_corda:
            await self.corda_watch.close()
            await self.corda.close()

    def watch(self, on_evm: bool) -> ChainWatch:
        return self.evm_watch if on_evm else self.corda_watch

    async def submit_and_wait(self, on_evm: bool, tx: bytes) -> node_pb2.TxResult:
        """Submit a tx outside the settlement flow (a whitelist change, a hand-made lock) and
        wait for its block; later reads of this object see its effect."""
        node = self.evm if on_evm else self.corda
        try:
            result = await node.submit_and_wait(tx)
        except NodeError as exc:
            raise LedgerError(f"{'EVM' if on_evm else 'Corda'} node at {node.address}: {exc.details or exc}") from None
        if result.height:
            self.watch(on_evm).saw(int(result.height))
        return result

    async def at_head(self, on_evm: bool, key: Hashable, fetch: Callable[[int], Awaitable[T]],
                      max_stale: int = 0) -> tuple[T, int]:
        """(``fetch(height)``, height) at the chain's current head, shared by every caller that
        asks the same ``key`` at that head; answers of old heights are dropped.

        ``max_stale`` > 0 lets a caller take the answer of a head up to that many blocks old
        while the current head's is fetched in the background (stale-while-revalidate): for
        facts a pre-check only advises on (channel and client state, admissions), which the chain
        enforces again anyway, waiting for a fresh read every block put several round trips to a
        busy node in front of every trade."""
        height = (await self.watch(on_evm).current()).height
        table = self._memo.setdefault((on_evm, height), {})
        fut = table.get(key)
        if fut is None or (fut.done() and fut.exception() is not None):
            fut = table[key] = asyncio.ensure_future(fetch(height))
            for old in [k for k in self._memo if k[0] == on_evm and k[1] < height - KEPT_HEIGHTS]:
                del self._memo[old]
        if not fut.done() and max_stale > 0:
            oldest = max(height - min(max_stale, KEPT_HEIGHTS), self.watch(on_evm).floor)  # never below our own write
            for h in range(height - 1, oldest - 1, -1):
                prev = self._memo.get((on_evm, h), {}).get(key)
                if prev is not None and prev.done() and prev.exception() is None:
                    return prev.result(), h
        return await asyncio.shield(fut), height

    async def __aenter__(self) -> Ledgers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- chain facts --------------------------------------------------------------------

    @property
    def evm_chain_id(self) -> int:
        return int(self.evm_info["evm_chain_id"])

    @property
    def security_token(self) -> bytes:
        return bytes.fromhex(str(self.evm_info["security_token"]).removeprefix("0x"))

    @property
    def escrow_address(self) -> bytes:
        return bytes.fromhex(str(self.evm_info["dvp_escrow"]).removeprefix("0x"))

    @property
    def notary(self) -> bytes:
        return bytes.fromhex(str(self.corda_info["notary_identity"]))

    @property
    def cash_issuer(self) -> bytes:
        return bytes.fromhex(str(self.corda_info["issuer"]))

    @property
    def default_brand(self) -> str:
        """The SC brand a trade without ``sc_brand`` pays in: the default brand of ``issuer``."""
        return str(self.corda_info.get("brand", ""))

    @property
    def brands(self) -> dict[str, bytes]:
        """SC brand name -> issuer key, as the Corda chain's genesis declares them."""
        got = self.corda_info.get("brands")
        if not isinstance(got, dict):
            return {self.default_brand: self.cash_issuer}
        return {str(name): bytes.fromhex(str(key)) for name, key in got.items()}

    async def evm_time_ns(self) -> int:
        """The EVM chain's latest block time (from its block stream, not a query per call)."""
        try:
            return (await self.evm_watch.current()).time_ns
        except NodeError as exc:
            raise LedgerError(f"EVM node: {exc}") from None

    async def corda_time_ns(self) -> int:
        try:
            return (await self.corda_watch.current()).time_ns
        except NodeError as exc:
            raise LedgerError(f"Corda node: {exc}") from None

    async def escrow(self, trade_id: str) -> dict[str, Any]:
        """The EVM escrow of ``trade_id`` (status none / locked / delivered / reclaimed)."""
        got: dict[str, Any] = await _ask(self.evm, "EVM", "dvp_escrow", trade_id=trade_id)
        return got

    async def lock(self, trade_id: str) -> dict[str, Any]:
        """The Corda DvpLock of ``trade_id`` (none / locked / settled / refunded_error / refunded_timeout)."""
        got: dict[str, Any] = await _ask(self.corda, "Corda", "dvp_lock", trade_id=trade_id)
        return got

    async def st_holding(self, holder: bytes) -> tuple[int, bool]:
        """(ST balance, whitelisted) of an EVM account."""
        balance, listed, _ = await self.st_holding_at(holder)
        return balance, listed

    async def st_holding_at(self, holder: bytes, max_stale: int = 0) -> tuple[int, bool, int]:
        """(ST balance, whitelisted, the EVM height they were read at), shared per head."""
        async def fetch(height: int) -> Any:
            return await _ask(self.evm, "EVM", "security_token", height=height, holder="0x" + holder.hex())
        got, height = await self.at_head(True, ("security_token", holder), fetch, max_stale=max_stale)
        return int(got["balance"]), bool(got["whitelisted"]), height

    async def st_supply(self) -> int:
        return int((await _ask(self.evm, "EVM", "security_token"))["total_supply"])

    async def cash_of(self, owner: bytes) -> list[dict[str, Any]]:
        return (await self.cash_at(owner))[0]

    async def cash_at(self, owner: bytes, max_stale: int = 0) -> tuple[list[dict[str, Any]], int]:
        """(the owner's unconsumed Cash states, the Corda height they were read at), per head."""
        async def fetch(height: int) -> Any:
            return await _ask(self.corda, "Corda", "cash_states", height=height, owner=owner.hex())
        rows, height = await self.at_head(False, ("cash_states", owner), fetch, max_stale=max_stale)
        return rows, height  # shared by every caller at this head: read, never change

    async def sc_balance(self, owner: bytes, issuer: bytes, brand: str | None = None) -> int:
        return (await self.sc_balance_at(owner, issuer, brand=brand))[0]

    async def sc_balance_at(self, owner: bytes, issuer: bytes, max_stale: int = 0, *,
                            brand: str | None = None) -> tuple[int, int]:
        """(the owner's SC of ``issuer``'s ``brand`` (None: the default brand), the Corda height
        it was read at), shared per head."""
        brand = self.default_brand if brand is None else brand
        async def fetch(height: int) -> Any:
            return await _ask(self.corda, "Corda", "balances", height=height, owner=owner.hex())
        got, height = await self.at_head(False, ("balances", owner), fetch, max_stale=max_stale)
        return int(got["by_brand"].get(brand_key(issuer, brand), 0)), height

    async def admission(self, issuer: bytes, max_stale: int = 0, *,
                        brand: str | None = None) -> tuple[dict[str, Any] | None, set[bytes]]:
        """(Admission state ref, admitted holders) of ``issuer``'s ``brand`` (None: the default
        brand); (None, {}) without one."""
        brand = self.default_brand if brand is None else brand
        async def fetch(height: int) -> Any:
            return await _ask(self.corda, "Corda", "holders", height=height)
        got, _ = await self.at_head(False, "holders", fetch, max_stale=max_stale)
        entry = got.get(brand_key(issuer, brand)) if isinstance(got, dict) else None
        if entry is None:
            return None, set()
        return dict(entry["admission"]), {bytes.fromhex(h) for h in entry["holders"]}

    async def channel_view(self, corda_channel: str) -> ChannelView | None:
        """Both ends of the dvp channel whose Corda end is ``corda_channel`` (None if absent),
        read once per Corda head."""
        got, _ = await self.at_head(False, ("channel_view", corda_channel), lambda _h: self._channel_view(corda_channel),
                                    max_stale=ADVISORY_STALE_BLOCKS)
        view: ChannelView | None = got
        return view

    async def _channel_view(self, corda_channel: str) -> ChannelView | None:
        port = "dvp"
        mine = await _ibc(self.corda, "Corda", paths.channel(port, corda_channel).decode(), chpb.Channel)
        if mine is None:
            return None
        async def theirs_end() -> Any:
            if not mine.counterparty.channel_id:
                return None
            return await _ibc(self.evm, "EVM", paths.channel(mine.counterparty.port_id or port,
                                                             mine.counterparty.channel_id).decode(), chpb.Channel)

        async def corda_connection() -> Any:
            if not mine.connection_hops:
                return None
            return await _ibc(self.corda, "Corda", paths.connection(mine.connection_hops[0]).decode(),
                              cpb.ConnectionEnd)

        theirs, corda_conn = await asyncio.gather(theirs_end(), corda_connection())
        if theirs is not None and (theirs.counterparty.port_id, theirs.counterparty.channel_id) != (port, corda_channel):
            theirs = None  # that end belongs to another channel: this one does not lead to this EVM chain
        evm_conn = await _ibc(self.evm, "EVM", paths.connection(theirs.connection_hops[0]).decode(),
                              cpb.ConnectionEnd) if theirs is not None and theirs.connection_hops else None
        return ChannelView(
            corda_channel=corda_channel,
            evm_channel=mine.counterparty.channel_id,
            corda_state=mine.state,
            evm_state=theirs.state if theirs is not None else chpb.STATE_UNINITIALIZED_UNSPECIFIED,
            corda_client=corda_conn.client_id if corda_conn is not None else "",
            evm_client=evm_conn.client_id if evm_conn is not None else "",
            ordering=mine.ordering,
            version=mine.version,
        )

    async def client_status(self, on_evm: bool, client_id: str, at_ns: list[int]) -> list[Status]:
        """The client's status at each of ``at_ns`` as its own module judges it (from its latest
        consensus state: the time the relayer would have to refresh it by). The client's states
        are read once per head of the chain that hosts it."""
        module = _module_for(client_id)
        store, _ = await self.at_head(on_evm, ("client", client_id), lambda _h: self._client_store(on_evm, client_id),
                                      max_stale=ADVISORY_STALE_BLOCKS)
        if store is None:
            return [Status.UNKNOWN for _ in at_ns]
        try:
            return [module.status(store, t) for t in at_ns]
        except (ClientError, ValueError, KeyError):
            return [Status.UNKNOWN for _ in at_ns]

    async def _client_store(self, on_evm: bool, client_id: str) -> MemoryClientStore | None:
        node, name = (self.evm, "EVM") if on_evm else (self.corda, "Corda")
        module = _module_for(client_id)
        store = MemoryClientStore()
        raw = await _raw(node, name, paths.client_state(client_id).decode())
        if raw is None:
            return None
        store.set(CLIENT_STATE_KEY, raw)
        try:
            latest = module.latest_height(store)
        except (ClientError, ValueError, KeyError):
            return store
        cons = await _raw(node, name, paths.consensus_state(client_id, latest).decode())
        if cons is not None:
            store.set(consensus_state_key(latest), cons)
        return store


async def _ask(node: NodeClient, chain: str, query: str, height: int = 0, **args: Any) -> Any:
    try:
        return await node.query_app(query, height, **args)
    except NodeError as exc:
        raise LedgerError(f"{chain} node at {node.address}: {query}: {exc.details or exc}") from None


async def _raw(node: NodeClient, chain: str, path: str) -> bytes | None:
    try:
        res = await node.query_ibc(path, prove=False)
    except NodeError as exc:
        raise LedgerError(f"{chain} node at {node.address}: {path}: {exc.details or exc}") from None
    return bytes(res.value) if res.found else None


async def _ibc(node: NodeClient, chain: str, path: str, cls: type[Any]) -> Any:
    raw = await _raw(node, chain, path)
    if raw is None:
        return None
    msg = cls()
    try:
        msg.ParseFromString(raw)
    except DecodeError:
        raise LedgerError(f"{chain} node: {path} does not decode as {cls.__name__}") from None
    return msg
