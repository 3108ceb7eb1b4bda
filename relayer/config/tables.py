"""The TOML table reader every relayer-config table is parsed with, and its value checks.

Why a module of its own: every table (chains, paths, telemetry, the proxy's) must report
errors the same way — starting with the exact key (``chains[1].grpc_addr``) — and refuse
unknown keys, so the reader and the checks are written once and each table's parser imports
them, whichever package the table belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d|days?)?\s*$")
_UNITS = {
    None: 1.0,
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
HOSTPORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


class ConfigError(ValueError):
    """Invalid relayer configuration; the message starts with the offending key."""


class Section:
    """A TOML table being consumed; whatever is left unconsumed is an unknown key."""

    def __init__(self, where: str, table: Any) -> None:
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
        self.where = where
        self.left = dict(table)

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def take(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if name not in self.left:
            return default
        value = self.left.pop(name)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(f"{self.key(name)}: expected {_names(kinds)}, got a boolean")
        if not isinstance(value, kinds):
            raise ConfigError(f"{self.key(name)}: expected {_names(kinds)}, got {type(value).__name__}")
        return value

    def required(self, name: str, kind: type) -> Any:
        if name not in self.left:
            raise ConfigError(f"{self.key(name)}: required key is missing")
        return self.take(name, kind, None)

    def sub(self, name: str) -> Section:
        return Section(self.key(name), self.left.pop(name, {}))

    def done(self) -> None:
        if self.left:
            names = ", ".join(self.key(k) for k in sorted(self.left))
            raise ConfigError(f"{names}: unknown key")


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join({bool: "a boolean", int: "an integer", float: "a number", str: "a string",
                        list: "a list", dict: "a table"}.get(k, k.__name__) for k in kinds)


def parse_duration(value: Any, where: str) -> float:
    """Seconds from a number (seconds) or a string like "500ms", "10s", "2h", "14d"."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration, got a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ConfigError(f"{where}: expected a duration like '10s', '500ms', '14d', got {value!r}")
    if seconds <= 0:
        raise ConfigError(f"{where}: duration must be positive, got {value!r}")
    return seconds


def port_number(value: int, where: str) -> int:
    if not 0 < value < 65536:
        raise ConfigError(f"{where}: port must be 1..65535, got {value}")
    return value


def choice(value: str, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise ConfigError(f"{where}: expected one of {list(choices)}, got {value!r}")
    return value


def positive(value: int, where: str, *, allow_zero: bool = False) -> int:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{where}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value
