"""Node configuration: ``node.toml`` in the node's home directory, validated naming the key.

A home directory holds everything a node needs and nothing else, so an operator can back
it up, move it, or run several nodes side by side:

    HOME/node.toml      this file (written by ``kakehashi node init``, edited by hand)
    HOME/genesis.json   chain id, validators / notaries, initial balances and holders
    HOME/keys/          validator / notary keys (the reference setup holds all of them)
    HOME/data/node.db   SQLite database (blocks, state nodes, tx results)
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chains.node.limits import DEFAULT_MEMPOOL_BYTES, MAX_TX_BYTES

KINDS = ("evm", "corda")
_HOSTPORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")
_CHAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_toml(text: str, where: str, error: type[ValueError]) -> dict[str, Any]:
    """The document in ``text``; bad text raises ``error("<where>: not valid TOML: ...")``.

    Why one reader for node.toml, relayer.toml and proxy.toml: all are edited by hand and must
    refuse bad text naming the file, never with a traceback. ``tomllib`` fails two ways, a
    syntax error and a ``RecursionError`` on arrays or tables nested thousands deep (it
    recurses per level); a reader that forgets the second crashes on such a file. Each caller
    keeps its own error type, so it passes it in.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib recurses per nesting level
        raise error(f"{where}: not valid TOML: arrays or tables nest too deeply") from None


class NodeConfigError(ValueError):
    """Invalid node configuration; the message starts with the offending key."""



# The raw txs of one block, in bytes: a block (with its results) must fit in one gRPC message
# of a block stream or GetBlock, whatever the txs' sizes (a tx is at most 1 MiB).
DEFAULT_MAX_BLOCK_BYTES = 2 * 1024 * 1024
MAX_BLOCK_BYTES_LIMIT = 8 * 1024 * 1024

@dataclass(frozen=True)
class NodeTls:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


@dataclass(frozen=True)
class NodeConfig:
    home: Path
    chain_id: str
    kind: str
    grpc_address: str = "127.0.0.1:0"
    tls: NodeTls | None = None
    block_period_s: float = 1.0
    max_block_txs: int = 500
    max_block_bytes: int = 2 * 1024 * 1024
    max_mempool: int = 10_000
    max_mempool_bytes: int = DEFAULT_MEMPOOL_BYTES
    # Heights back from the latest whose state, proofs and blocks are kept (0 = all); older
    # ones are pruned from disk (chains/node/prune.py).
    retain_heights: int = 0
    log_level: str = "info"
    log_format: str = "console"

    @property
    def db_path(self) -> Path:
        return self.home / "data" / "node.db"

    @property
    def genesis_path(self) -> Path:
        return self.home / "genesis.json"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"


def _take(table: dict[str, Any], where: str, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    if name not in table:
        return default
    value = table.pop(name)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise NodeConfigError(f"{where}{name}: expected {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
    return value


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.pop(name, {})
    if not isinstance(value, Mapping):
        raise NodeConfigError(f"{name}: expected a table")
    return dict(value)


def _done(table: dict[str, Any], where: str) -> None:
    if table:
        raise NodeConfigError(", ".join(f"{where}{k}" for k in sorted(table)) + ": unknown key")


def _duration(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * {None: 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0}[m.group(2)]
    else:
        raise NodeConfigError(f"{where}: expected a duration like '1s' or '200ms', got {value!r}")
    if not 0.01 <= seconds <= 3600:
        raise NodeConfigError(f"{where}: must be between 10ms and 1h, got {value!r}")
    return seconds


def parse_node_config(doc: Mapping[str, Any], home: Path) -> NodeConfig:
    d = dict(doc)
    chain_id = _take(d, "", "chain_id", str, None)
    if chain_id is None:
        raise NodeConfigError("chain_id: required key is missing")
    if not _CHAIN_ID.match(chain_id):
        raise NodeConfigError(f"chain_id: invalid chain id {chain_id!r}")
    kind = _take(d, "", "kind", str, None)
    if kind not in KINDS:
        raise NodeConfigError(f"kind: expected one of {list(KINDS)}, got {kind!r}")

    g = _table(d, "grpc")
    address = _take(g, "grpc.", "address", str, "127.0.0.1:0")
    m = _HOSTPORT.match(address)
    if not m or int(m.group("port")) > 65535:
        raise NodeConfigError(f"grpc.address: expected host:port, got {address!r}")
    tls = None
    if "tls" in g:
        t = _table(g, "tls")
        cert = _take(t, "grpc.tls.", "cert_file", str, None)
        key = _take(t, "grpc.tls.", "key_file", str, None)
        ca = _take(t, "grpc.tls.", "client_ca_file", str, None)
        _done(t, "grpc.tls.")
        for name, value in (("cert_file", cert), ("key_file", key)):
            if value is None:
                raise NodeConfigError(f"grpc.tls.{name}: required (a TLS node needs cert_file and key_file)")
        assert cert is not None and key is not None
        tls = NodeTls(home / cert, home / key, None if ca is None else home / ca)
        for name, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file), ("client_ca_file", tls.client_ca_file)):
            if path is not None:
                try:
                    path.open("rb").close()  # readable now, not at the first TLS handshake
                except OSError as exc:
                    raise NodeConfigError(f"grpc.tls.{name}: cannot read {path}: {exc.strerror}") from None
    _done(g, "grpc.")

    b = _table(d, "block")
    period = _duration(_take(b, "block.", "period", (int, float, str), "1s"), "block.period")
    max_txs = _take(b, "block.", "max_txs", int, 500)
    if not 1 <= max_txs <= 100_000:
        raise NodeConfigError(f"block.max_txs: must be 1..100000, got {max_txs}")
    max_bytes = _take(b, "block.", "max_bytes", int, DEFAULT_MAX_BLOCK_BYTES)
    if not 1024 <= max_bytes <= MAX_BLOCK_BYTES_LIMIT:
        raise NodeConfigError(f"block.max_bytes: must be 1024..{MAX_BLOCK_BYTES_LIMIT}, got {max_bytes}")
    _done(b, "block.")

    mp = _table(d, "mempool")
    max_mempool = _take(mp, "mempool.", "max_size", int, 10_000)
    if max_mempool < max_txs:
        raise NodeConfigError(f"mempool.max_size: must be >= block.max_txs ({max_txs}), got {max_mempool}")
    max_bytes = _take(mp, "mempool.", "max_bytes", int, DEFAULT_MEMPOOL_BYTES)
    if not MAX_TX_BYTES <= max_bytes <= 1 << 40:
        raise NodeConfigError(f"mempool.max_bytes: must be at least one transaction's limit ({MAX_TX_BYTES}) "
                              f"and at most 2**40, got {max_bytes}")
    _done(mp, "mempool.")

    s = _table(d, "storage")
    retain = _take(s, "storage.", "retain_heights", int, 0)
    if retain < 0:
        raise NodeConfigError(f"storage.retain_heights: must be >= 0 (0 keeps all), got {retain}")
    _done(s, "storage.")

    lg = _table(d, "log")
    level = _take(lg, "log.", "level", str, "info")
    if level not in ("debug", "info", "warning", "error"):
        raise NodeConfigError(f"log.level: expected debug/info/warning/error, got {level!r}")
    fmt = _take(lg, "log.", "format", str, "console")
    if fmt not in ("json", "console"):
        raise NodeConfigError(f"log.format: expected json or console, got {fmt!r}")
    _done(lg, "log.")
    _done(d, "")
    return NodeConfig(
        home=home,
        chain_id=chain_id,
        kind=kind,
        grpc_address=address,
        tls=tls,
        block_period_s=period,
        max_block_txs=max_txs,
        max_block_bytes=max_bytes,
        max_mempool=max_mempool,
        max_mempool_bytes=max_bytes,
        retain_heights=retain,
        log_level=level,
        log_format=fmt,
    )


def node_config_from_toml(text: str, home: Path, where: str = "node.toml") -> NodeConfig:
    """Parse and validate node.toml text for the node home ``home``."""
    return parse_node_config(parse_toml(text, where, NodeConfigError), home)


def load_node_config(home: Path) -> NodeConfig:
    path = Path(home) / "node.toml"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NodeConfigError(f"{path} not found: run `kakehashi node init --chain evm|corda --home {home}` first") from None
    except UnicodeDecodeError as exc:
        raise NodeConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return node_config_from_toml(text, Path(home).resolve(), str(path))


def render_node_config(chain_id: str, kind: str, grpc_address: str, block_period_s: float) -> str:
    return (
        f'# Kakehashi {kind} node. Paths are relative to this directory.\n'
        f'chain_id = "{chain_id}"\n'
        f'kind = "{kind}"\n\n'
        f"[grpc]\n"
        f'address = "{grpc_address}"\n'
        f"# [grpc.tls]\n# cert_file = \"tls/node.pem\"\n# key_file = \"tls/node.key\"\n"
        f"# client_ca_file = \"tls/ca.pem\"   # require client certificates\n\n"
        f"[block]\n"
        f'period = "{int(block_period_s * 1000)}ms"\n'
        f"max_txs = 500\n\n"
        f"[mempool]\nmax_size = 10000\nmax_bytes = {DEFAULT_MEMPOOL_BYTES}   # raw bytes of the waiting txs\n\n"
        f"[storage]\nretain_heights = 0   # 0 = keep every height; N = keep the last N, prune the rest\n\n"
        f'[log]\nlevel = "info"\nformat = "console"\n'
    )
