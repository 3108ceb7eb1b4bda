"""The ``[chains.proxy]`` table of a relayer config: how a chain is proven in proxy mode.

    [[chains]]
    id = "evm-1"
    ...
    prover = "proxy"                  # default "direct"
    [chains.proxy]
    addrs = ["127.0.0.1:7000"]        # one proxy service per operator (or addr = "...")
    code_hash = "9be9...a5"           # the enclave code the counterparty's client pins
    authority = "0x0b89..."           # attestation authority (SIMULATED in this project)
    operators = ["0xeede..."]         # pinned operators, k of whom must sign
    threshold = 1                     # k (default: every operator)
    key_expiration = "1d"             # how long an attested enclave key counts
    key_renew_before = "8h"           # new key this long before the newest expires (default 1/3)
    allow_simulated = true            # accept SIMULATED attestation (must be said explicitly)
    [chains.proxy.tls]                # TLS (and mutual TLS) to the proxy services: as [chains.tls]
    ca_file = "tls/ca.pem"

``prover = "proxy"`` on chain X means: X's counterparty tracks X through a ``12-proxy``
client, and the relayer proves X's headers and state through the proxy services named here.
Every error names the key, as the rest of the config's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relayer.config.tables import HOSTPORT, ConfigError, Section, parse_duration
from relayer.config.tlsfiles import Tls, parse_tls

PROVERS = ("direct", "proxy")


@dataclass(frozen=True)
class ProxyConfig:
    addrs: tuple[str, ...]
    code_hash: bytes
    authority: bytes
    operators: tuple[bytes, ...]
    threshold: int
    key_expiration_s: float
    key_renew_before_s: float
    allow_simulated: bool
    rpc_timeout_s: float = 10.0
    tls: Tls | None = None


def _hex(value: Any, where: str, length: int) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a hex string, got {type(value).__name__}")
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise ConfigError(f"{where}: expected hex, got {value!r}") from None
    if len(raw) != length:
        raise ConfigError(f"{where}: expected {length} bytes, got {len(raw)}")
    return raw


def parse_proxy(sec: Section, base_dir: Path = Path(".")) -> ProxyConfig:
    addrs_raw = sec.take("addrs", list, None)
    addr = sec.take("addr", str, None)
    if (addrs_raw is None) == (addr is None):
        raise ConfigError(f"{sec.key('addrs')}: give either addr = \"host:port\" or addrs = [...] (one per operator)")
    addrs = tuple(addrs_raw) if addrs_raw is not None else (addr,)
    for i, a in enumerate(addrs):
        if not isinstance(a, str) or not HOSTPORT.match(a):
            raise ConfigError(f"{sec.key('addrs')}[{i}]: expected host:port, got {a!r}")
    code_hash = _hex(sec.required("code_hash", str), sec.key("code_hash"), 32)
    authority = _hex(sec.required("authority", str), sec.key("authority"), 20)
    ops_raw = sec.required("operators", list)
    if not ops_raw:
        raise ConfigError(f"{sec.key('operators')}: at least one operator")
    operators = tuple(sorted(_hex(o, f"{sec.key('operators')}[{i}]", 20) for i, o in enumerate(ops_raw)))
    if len(set(operators)) != len(operators):
        raise ConfigError(f"{sec.key('operators')}: duplicate operator")
    threshold = sec.take("threshold", int, len(operators))
    if not 1 <= threshold <= len(operators):
        raise ConfigError(f"{sec.key('threshold')}: must be 1..{len(operators)}, got {threshold}")
    if len(addrs) < threshold:
        raise ConfigError(f"{sec.key('addrs')}: {len(addrs)} proxies cannot give {threshold} operators' signatures")
    expiration = parse_duration(sec.take("key_expiration", (int, float, str), "1d"), sec.key("key_expiration"))
    renew = sec.take("key_renew_before", (int, float, str), None)
    renew_s = expiration / 3 if renew is None else parse_duration(renew, sec.key("key_renew_before"))
    if renew_s >= expiration:
        raise ConfigError(f"{sec.key('key_renew_before')}: must be shorter than key_expiration")
    allow = sec.take("allow_simulated", bool, False)
    timeout = parse_duration(sec.take("rpc_timeout", (int, float, str), 10), sec.key("rpc_timeout"))
    tls = parse_tls(sec.sub("tls"), base_dir) if "tls" in sec.left else None
    sec.done()
    return ProxyConfig(addrs, code_hash, authority, operators, threshold, expiration, renew_s, allow, timeout, tls)


def parse_prover(sec: Section, base_dir: Path = Path(".")) -> tuple[str, ProxyConfig | None]:
    """(prover, proxy config) of one [[chains]] table; consumes ``prover`` and ``proxy``."""
    prover = sec.take("prover", str, "direct")
    if prover not in PROVERS:
        raise ConfigError(f"{sec.key('prover')}: expected one of {list(PROVERS)}, got {prover!r}")
    has_table = "proxy" in sec.left
    if prover == "proxy" and not has_table:
        raise ConfigError(f"{sec.key('proxy')}: prover = \"proxy\" needs a [chains.proxy] table")
    if prover == "direct" and has_table:
        raise ConfigError(f"{sec.key('proxy')}: only used with prover = \"proxy\"")
    return prover, parse_proxy(sec.sub("proxy"), base_dir) if has_table else None
