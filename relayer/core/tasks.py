"""Stopping background tasks: cancel them, then wait until each has really ended.

Why wait and not only cancel: ``cancel()`` only asks; a task that is still unwinding (closing
a stream, publishing a last event) would otherwise outlive the object that stopped it and
touch a node client or broker connection that its owner closes next. All are cancelled
before the first is awaited, so they unwind together rather than one after another. The
``CancelledError`` each ends with is the expected result and is swallowed; any other error a
task ended with is raised, as awaiting it would.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel every one of ``tasks`` and wait for each to finish."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
