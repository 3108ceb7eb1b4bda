"""Atomic DvP settlement client: trade files, pre-check, settle, status, the feed, events.

Plain-Python entry points (used by the CLI, ``make run`` and the DvP benchmark)::

    async with await Ledgers.connect(evm_addr, corda_addr, channel) as ledgers:
        client = DvpClient(ledgers, record=TradeRecord(path))
        reasons = await client.precheck(trade)
        result = await client.settle(trade, seller_key, buyer_seed)
"""

from relayer.dvp.client import DvpClient, DvpError, Settlement, derive_state
from relayer.dvp.events import DvpEvents, DvpPublisher
from relayer.dvp.keys import KeyMaterialError, KeyRing
from relayer.dvp.ledgers import LedgerError, Ledgers
from relayer.dvp.record import TradeRecord
from relayer.dvp.trade import ResolvedTrade, Trade, TradeError, load_trade, parse_trade, resolve

__all__ = [
    "DvpClient",
    "DvpError",
    "DvpEvents",
    "DvpPublisher",
    "KeyMaterialError",
    "KeyRing",
    "LedgerError",
    "Ledgers",
    "ResolvedTrade",
    "Settlement",
    "Trade",
    "TradeError",
    "TradeRecord",
    "derive_state",
    "load_trade",
    "parse_trade",
    "resolve",
]
