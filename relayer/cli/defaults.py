"""Where the CLI looks for what a command line did not name.

Why the testnet's config is a fallback: a new user's first commands run in the checkout right
after ``make run`` or ``kakehashi testnet up``, where the only relayer config is the testnet's
(``.testnet/relayer/relayer.toml``); the documented default (``config/relayer.toml``) still wins
when it exists, and the fallback is said on stderr so nobody mistakes which chains were asked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_CONFIG = Path("config/relayer.toml")
TESTNET_HOME = Path(".testnet")
TESTNET_CONFIG = TESTNET_HOME / "relayer" / "relayer.toml"


def config_path(ns: argparse.Namespace) -> Path:
    """The relayer config of this command: ``-c``, else the default, else the testnet's.

    Resolves once per command line (``ns.config`` holds the answer afterwards), so the notice
    is printed at most once.
    """
    if ns.config is None:
        chosen = DEFAULT_CONFIG
        if not DEFAULT_CONFIG.exists() and TESTNET_CONFIG.exists():
            chosen = TESTNET_CONFIG
            print(f"no -c given and no {DEFAULT_CONFIG}: using the testnet's config {TESTNET_CONFIG}",
                  file=sys.stderr)
        ns.config = str(chosen)
    return Path(ns.config)
