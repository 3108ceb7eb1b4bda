"""Where the CLI's human-readable output goes.

Why one place: rich falls back to 80 columns when stdout is not a terminal, which cut tables
written to a log or a pipe mid-value (and identities get copied from there); every command that prints tables uses this console.
"""

from __future__ import annotations

import sys

from rich.console import Console


def stdout_console() -> Console:
    """A console for stdout: the terminal's width, or wide enough for whole rows when piped."""
    return Console() if sys.stdout.isatty() else Console(width=400, soft_wrap=True)
