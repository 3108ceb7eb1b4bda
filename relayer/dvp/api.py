"""One-call entry points over node addresses and raw key material (for ``make run`` and benches).

Each call opens both nodes, does one thing and closes them again; a caller settling many
trades should keep one :class:`DvpClient` instead (see ``relayer.dvp``), which also keeps the
per-account nonce and Cash-input bookkeeping that concurrent settlements share.
"""

from __future__ import annotations

from pathlib import Path

from relayer.dvp.client import DvpClient, Settlement
from relayer.dvp.events import DvpEvents
from relayer.dvp.ledgers import Ledgers
from relayer.dvp.record import TradeRecord
from relayer.dvp.trade import ResolvedTrade, Trade
from relayer.ops.telemetry import Telemetry


async def precheck(trade: Trade | ResolvedTrade, *, evm: str, corda: str, channel: str | None = None) -> list[str]:
    """Every reason ``trade`` would fail now ([] = go); locks nothing."""
    async with await Ledgers.connect(evm, corda, channel) as ledgers:
        return await DvpClient(ledgers).precheck(trade)


async def settle(trade: Trade | ResolvedTrade, *, evm: str, corda: str, seller_key: bytes, buyer_seed: bytes,
                 channel: str | None = None, record: Path | None = None, telemetry: Telemetry | None = None,
                 follow: bool = True, wait_s: float | None = None) -> Settlement:
    """Pre-check, lock both legs (seller's secp256k1 key, buyer's Ed25519 seed), follow to the end."""
    rec = TradeRecord(record) if record is not None else None
    try:
        async with await Ledgers.connect(evm, corda, channel) as ledgers:
            client = DvpClient(ledgers, record=rec, events=DvpEvents(None, telemetry, rec))
            return await client.settle(trade, seller_key, buyer_seed, follow=follow, wait_s=wait_s)
    finally:
        if rec is not None:
            rec.close()


async def status(trade_id: str, *, evm: str, corda: str, record: Path | None = None) -> Settlement:
    """The trade as both chains see it now."""
    rec = TradeRecord(record) if record is not None else None
    try:
        async with await Ledgers.connect(evm, corda) as ledgers:
            return await DvpClient(ledgers, record=rec).status(trade_id)
    finally:
        if rec is not None:
            rec.close()


async def reclaim(trade_id: str, *, evm: str, corda: str, key: bytes, wait: bool = False,
                  record: Path | None = None) -> Settlement:
    """Return a still-locked ST escrow to its seller once the deadline passed (``key``: anyone's)."""
    rec = TradeRecord(record) if record is not None else None
    try:
        async with await Ledgers.connect(evm, corda) as ledgers:
            return await DvpClient(ledgers, record=rec).reclaim(trade_id, key, wait=wait)
    finally:
        if rec is not None:
            rec.close()
