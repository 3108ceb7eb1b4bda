"""Routing trades to their path: one SC chain (Corda, the hub), several ST chains (EVM spokes).

A trade names its ST chain (``st_chain``; default: the only one there is), and this router
hands it to the settlement client of that chain's path. Why one client per ST chain rather
than one client with several EVM nodes: each path has its own dvp channel, escrow contract,
clock and nonces, and a :class:`DvpClient` already owns exactly one such set. What the paths
share is the Corda side: one node client and block stream, and one book of the buyers' SC
holds and reserved Cash inputs (a buyer paying on two paths at once must not pick the same
Cash twice), so the clients of the spokes share the hub client's.

A trade for an ST chain this router does not know is refused before anything is read or
locked, with the known chains in the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chains.node.client import ClientTls
from relayer.dvp.client import DvpClient, DvpError, Settlement
from relayer.dvp.events import DvpEvents
from relayer.dvp.ledgers import LedgerError, Ledgers
from relayer.dvp.record import TradeRecord
from relayer.dvp.trade import ResolvedTrade, Trade


@dataclass(frozen=True)
class Route:
    """One ST chain's path: its EVM node, and the path's name for metrics and topics."""

    st_chain: str
    path: str
    evm_addr: str
    evm_tls: ClientTls | None = None


class DvpRouter:
    def __init__(self, clients: dict[str, DvpClient], routes: Sequence[Route], record: TradeRecord | None) -> None:
        self.clients = clients
        self.routes = {r.st_chain: r for r in routes}
        self.record = record
        self.channels: dict[str, str] = {}  # ST chain -> the Corda end of its path's dvp channel

    @classmethod
    async def connect(cls, routes: Sequence[Route], corda_addr: str, *, corda_tls: ClientTls | None = None,
                      channel: str | None = None, record: TradeRecord | None = None,
                      events: Callable[[Route, TradeRecord | None], DvpEvents] | None = None) -> DvpRouter:
        """Open every route's EVM node and the Corda node once. ``channel`` (``--channel``) is
        only for a single route; with several, each route's dvp channel is found on the chains."""
        if not routes:
            raise DvpError("no ST chain to settle on: the config names no evm chain")
        clients: dict[str, DvpClient] = {}
        hub: Ledgers | None = None
        try:
            for route in routes:
                if hub is None:
                    led = hub = await Ledgers.connect(route.evm_addr, corda_addr, evm_tls=route.evm_tls,
                                                      corda_tls=corda_tls)
                else:
                    led = await Ledgers.spoke(route.evm_addr, hub, evm_tls=route.evm_tls)
                rec = record.scoped(st_chain=route.st_chain) if record is not None else None
                ev = events(route, rec) if events is not None else DvpEvents(record=rec)
                first = next(iter(clients.values()), None)
                clients[route.st_chain] = DvpClient(led, record=rec, events=ev, share_corda_with=first)
            router = cls(clients, routes, record)
            await router._find_channels(channel)
        except BaseException:
            for c in clients.values():
                await c.ledgers.close()
            if hub is not None and not any(c.ledgers is hub for c in clients.values()):
                await hub.close()
            raise
        return router

    async def _find_channels(self, channel: str | None) -> None:
        if channel is not None and len(self.clients) == 1:
            (only,) = self.clients.values()
            only.ledgers.channel = channel
            self.channels[next(iter(self.clients))] = channel
            return
        found = await asyncio.gather(*(c.ledgers.dvp_channels() for c in self.clients.values()))
        for st_chain, chans in zip(self.clients, found, strict=True):
            if chans:  # the first dvp channel of the path is its default; a trade may name another
                self.clients[st_chain].ledgers.channel = chans[0]
                self.channels[st_chain] = chans[0]

    async def close(self) -> None:
        for c in self.clients.values():
            if c.ledgers.owns_corda:
                continue
            await c.ledgers.close()
        for c in self.clients.values():
            if c.ledgers.owns_corda:
                await c.ledgers.close()

    async def __aenter__(self) -> DvpRouter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- routing ---------------------------------------------------------------------------

    @property
    def st_chains(self) -> list[str]:
        return list(self.clients)

    def route_reasons(self, trade: Trade | ResolvedTrade) -> list[str]:
        """Why the trade cannot be routed ([] = it can): an unknown ST chain, or a trade that
        names a dvp channel leading to another ST chain than its own."""
        if isinstance(trade, ResolvedTrade):
            return []
        if trade.st_chain is None:
            if len(self.clients) == 1:
                return []
            return [f"st_chain: missing; this client settles on several ST chains ({', '.join(self.clients)}), "
                    f"so a trade must name one"]
        if trade.st_chain not in self.clients:
            return [f"st_chain: {trade.st_chain!r} is not an ST chain of this client "
                    f"(known: {', '.join(self.clients)})"]
        return []

    def client_for(self, trade: Trade | ResolvedTrade) -> DvpClient:
        """The client of the trade's ST chain; DvpError (naming the known chains) when none."""
        reasons = self.route_reasons(trade)
        if reasons:
            raise DvpError(reasons[0])
        if isinstance(trade, ResolvedTrade) or trade.st_chain is None:
            return next(iter(self.clients.values()))
        return self.clients[trade.st_chain]

    def path_of(self, st_chain: str) -> str:
        return self.routes[st_chain].path

    async def precheck(self, trade: Trade | ResolvedTrade) -> list[str]:
        reasons = self.route_reasons(trade)
        if reasons:
            return reasons
        client = self.client_for(trade)
        out = await client.precheck(trade)
        return out + await self._channel_reasons(client, trade)

    async def _channel_reasons(self, client: DvpClient, trade: Trade | ResolvedTrade) -> list[str]:
        chan = trade.channel if isinstance(trade, (Trade, ResolvedTrade)) else None
        if not chan or len(self.clients) == 1:
            return []
        view = await client.ledgers.channel_view(chan)
        if view is not None and view.evm_state != 0:
            return []
        mine = next(k for k, v in self.clients.items() if v is client)
        return [f"channel: dvp/{chan} on the Corda chain does not lead to ST chain {mine}"
                + (f" (its dvp channel is {self.channels[mine]})" if mine in self.channels else "")]

    async def settle(self, trade: Trade | ResolvedTrade, seller_key: bytes, buyer_seed: bytes,
                     **kwargs: Any) -> Settlement:
        """As :meth:`DvpClient.settle` on the trade's path; an unroutable trade is rejected with
        nothing read or locked."""
        reasons = self.route_reasons(trade)
        if not reasons:
            client = self.client_for(trade)
            reasons = await self._channel_reasons(client, trade)
            if not reasons:
                return await client.settle(trade, seller_key, buyer_seed, **kwargs)
        return Settlement(trade.trade_id, "rejected", reasons=reasons)

    async def existing(self, trade: Trade) -> Settlement | None:
        if self.route_reasons(trade):
            return None
        return await self.client_for(trade).existing(trade)

    async def client_of(self, trade_id: str) -> DvpClient:
        """The client of the path a trade was settled on: from the record, else the ST chain
        whose escrow holds the trade id, else the first."""
        row = self.record.get(trade_id) if self.record is not None else None
        if row is not None and row.st_chain in self.clients:
            return self.clients[row.st_chain]
        if len(self.clients) > 1:
            escrows = await asyncio.gather(*(c.ledgers.escrow(trade_id) for c in self.clients.values()))
            for client, escrow in zip(self.clients.values(), escrows, strict=True):
                if escrow.get("status", "none") != "none":
                    return client
        return next(iter(self.clients.values()))

    async def status(self, trade_id: str) -> Settlement:
        return await (await self.client_of(trade_id)).status(trade_id)

    async def escrow(self, trade_id: str) -> dict[str, Any]:
        return await (await self.client_of(trade_id)).ledgers.escrow(trade_id)

    async def reclaim(self, trade_id: str, key: bytes, **kwargs: Any) -> Settlement:
        return await (await self.client_of(trade_id)).reclaim(trade_id, key, **kwargs)


__all__ = ["DvpRouter", "LedgerError", "Route"]
