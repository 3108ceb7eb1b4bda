"""Relayer configuration: TOML in, validated frozen dataclasses out.

Operators edit this file by hand, so every error names the exact key (``chains[1].grpc_addr``)
and what was expected; unknown keys are errors too, because a misspelt option that is
silently ignored is how a relayer ends up clearing nothing in production. The shape follows
Hermes (global / mode / telemetry / chains) so an operator who knows Hermes finds the same
knobs in the same places.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from chains.node.config import parse_toml
from relayer.config.proxy import ProxyConfig, parse_prover
from relayer.config.tables import (
    HOSTPORT,
    ConfigError,
    Section,
    choice,
    parse_duration,
    port_number,
    positive,
)
from relayer.config.tlsfiles import Tls, parse_tls

CHAIN_KINDS = ("evm", "corda")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")

_CHAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# --- typed configuration ---------------------------------------------------------------


@dataclass(frozen=True)
class ClientsMode:
    enabled: bool = True
    refresh: bool = True
    misbehaviour: bool = True
    refresh_rate: float = 1 / 3  # refresh when this fraction of the trusting period has passed


@dataclass(frozen=True)
class PacketsMode:
    enabled: bool = True
    clear_on_start: bool = True
    clear_interval: int = 100  # blocks between full clears; 0 disables periodic clearing
    clear_limit: int = 50  # packets cleared per channel per pass
    tx_confirmation: bool = True


@dataclass(frozen=True)
class Modes:
    clients: ClientsMode = field(default_factory=ClientsMode)
    connections: bool = True
    channels: bool = True
    packets: PacketsMode = field(default_factory=PacketsMode)


@dataclass(frozen=True)
class Telemetry:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 3001


@dataclass(frozen=True)
class Mqtt:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "kakehashi"
    client_id: str = "kakehashi-relayer"
    qos: int = 1
    username: str | None = None
    password_file: Path | None = None  # the password, alone in a 0600 file (never in this config)
    tls: Tls | None = None


@dataclass(frozen=True)
class PacketFilter:
    """Hermes-style allow/deny list of (port, channel) wildcard patterns."""

    policy: str = "allow_all"  # allow_all | allow | deny
    rules: tuple[tuple[str, str], ...] = ()

    def permits(self, port: str, channel: str) -> bool:
        hit = any(
            fnmatch.fnmatchcase(port, p) and fnmatch.fnmatchcase(channel, c) for p, c in self.rules
        )
        if self.policy == "allow":
            return hit
        if self.policy == "deny":
            return not hit
        return True


@dataclass(frozen=True)
class ChainConfig:
    id: str
    kind: str
    grpc_addr: str
    key_name: str
    tls: Tls | None = None
    max_msg_num: int = 30
    rpc_timeout_s: float = 10.0
    trusting_period_s: float = 14 * 86400.0
    max_clock_drift_s: float = 5.0
    trust_threshold: Fraction = Fraction(1, 3)
    packet_filter: PacketFilter = field(default_factory=PacketFilter)
    prover: str = "direct"  # or "proxy": the counterparty tracks this chain through a 12-proxy client
    proxy: ProxyConfig | None = None


_PATH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:~-]{0,127}$")


@dataclass(frozen=True)
class PathConfig:
    """One path the daemon relays: two chains, and which of their channels (Hermes-style
    ``[[paths]]``). The packet filter is matched against the channel end on ``a_chain``; a
    channel it refuses gets no worker of this daemon, so several daemons can split one hub's
    paths, or one path's channels, between them."""

    name: str
    a_chain: str
    b_chain: str
    packet_filter: PacketFilter = field(default_factory=PacketFilter)

    def permits(self, chain_id: str, port: str, channel: str, other_port: str, other_channel: str) -> bool:
        """Whether the channel whose end on ``chain_id`` is (port, channel) is this path's to relay."""
        if chain_id == self.a_chain:
            return self.packet_filter.permits(port, channel)
        return self.packet_filter.permits(other_port, other_channel)


def path_name(a_chain: str, b_chain: str) -> str:
    return f"{a_chain}:{b_chain}"


@dataclass(frozen=True)
class Config:
    log_level: str = "info"
    log_format: str = "json"
    keystore: Path | None = None
    mode: Modes = field(default_factory=Modes)
    telemetry: Telemetry = field(default_factory=Telemetry)
    mqtt: Mqtt = field(default_factory=Mqtt)
    chains: tuple[ChainConfig, ...] = ()
    paths: tuple[PathConfig, ...] = ()

    def path(self, name: str) -> PathConfig:
        for p in self.paths:
            if p.name == name:
                return p
        raise ConfigError(f"paths: no path named {name!r} (known: {[p.name for p in self.paths]})")

    def only_paths(self, names: list[str]) -> Config:
        """This config relaying only the named paths (``kakehashi start --path``)."""
        from dataclasses import replace

        return replace(self, paths=tuple(self.path(n) for n in dict.fromkeys(names)))

    def chain(self, chain_id: str) -> ChainConfig:
        for c in self.chains:
            if c.id == chain_id:
                return c
        raise ConfigError(f"chains: no chain with id {chain_id!r} (known: {[c.id for c in self.chains]})")


# --- parsing ---------------------------------------------------------------------------


def _fraction(value: Any, where: str) -> Fraction:
    try:
        if isinstance(value, str):
            num, sep, den = value.partition("/")
            if not sep:
                raise ValueError
            frac = Fraction(int(num), int(den))
        elif isinstance(value, Mapping) and set(value) == {"numerator", "denominator"}:
            frac = Fraction(int(value["numerator"]), int(value["denominator"]))
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError, TypeError):
        raise ConfigError(
            f"{where}: expected a fraction like '1/3' or {{numerator = 1, denominator = 3}}, got {value!r}"
        ) from None
    if not Fraction(1, 3) <= frac <= 1:
        raise ConfigError(f"{where}: trust threshold must be in [1/3, 1], got {frac}")
    return frac


def _packet_filter(f: Section) -> PacketFilter:
    policy = choice(f.take("policy", str, "allow"), ("allow", "deny", "allow_all"), f.key("policy"))
    rules = []
    for i, rule in enumerate(f.take("list", list, [])):
        if not (isinstance(rule, list) and len(rule) == 2 and all(isinstance(x, str) and x for x in rule)):
            raise ConfigError(f"{f.key('list')}[{i}]: expected [\"port\", \"channel\"], got {rule!r}")
        rules.append((rule[0], rule[1]))
    f.done()
    return PacketFilter(policy, tuple(rules))


def _paths(root: Section, chains: tuple[ChainConfig, ...]) -> tuple[PathConfig, ...]:
    """``[[paths]]`` as written, or the default: the two chains of a two-chain config, else
    every pair of an evm chain and a corda chain (the hub and its spokes)."""
    raw = root.take("paths", list, None)
    known = {c.id: c for c in chains}
    if raw is None:
        if len(chains) == 2:
            pairs = [(chains[0].id, chains[1].id)]
        else:
            pairs = [(a.id, b.id) for a in chains if a.kind == "evm" for b in chains if b.kind == "corda"]
        return tuple(PathConfig(path_name(a, b), a, b) for a, b in pairs)
    if not raw:
        raise ConfigError("paths: give at least one [[paths]] entry, or none to relay every evm/corda pair")
    out: list[PathConfig] = []
    for i, doc in enumerate(raw):
        sec = Section(f"paths[{i}]", doc)
        a, b = sec.required("a_chain", str), sec.required("b_chain", str)
        for key, cid in (("a_chain", a), ("b_chain", b)):
            if cid not in known:
                raise ConfigError(f"{sec.key(key)}: no [[chains]] entry with id {cid!r} (known: {sorted(known)})")
        if a == b:
            raise ConfigError(f"{sec.key('b_chain')}: a path joins two different chains, got {a!r} twice")
        name = sec.take("name", str, path_name(a, b))
        if not _PATH_NAME.match(name):
            raise ConfigError(f"{sec.key('name')}: expected 1-128 characters of [A-Za-z0-9._:~-], got {name!r}")
        pf = _packet_filter(sec.sub("packet_filter")) if "packet_filter" in sec.left else PacketFilter()
        sec.done()
        if any(p.name == name for p in out):
            raise ConfigError(f"{sec.key('name')}: duplicate path name {name!r}")
        out.append(PathConfig(name, a, b, pf))
    return tuple(out)


def _chain(sec: Section, base_dir: Path) -> ChainConfig:
    cid = sec.required("id", str)
    if not _CHAIN_ID.match(cid):
        raise ConfigError(f"{sec.key('id')}: invalid chain id {cid!r}")
    kind = choice(sec.required("kind", str), CHAIN_KINDS, sec.key("kind"))
    addr = sec.required("grpc_addr", str)
    m = HOSTPORT.match(addr)
    if not m:
        raise ConfigError(f"{sec.key('grpc_addr')}: expected host:port, got {addr!r}")
    port_number(int(m.group("port")), sec.key("grpc_addr"))
    key_name = sec.required("key_name", str)
    if not key_name:
        raise ConfigError(f"{sec.key('key_name')}: must not be empty")
    tls = parse_tls(sec.sub("tls"), base_dir) if "tls" in sec.left else None
    max_msg = positive(sec.take("max_msg_num", int, 30), sec.key("max_msg_num"))
    rpc_timeout = parse_duration(sec.take("rpc_timeout", (int, float, str), 10), sec.key("rpc_timeout"))
    trusting = parse_duration(
        sec.take("trusting_period", (int, float, str), "14d"), sec.key("trusting_period")
    )
    drift = parse_duration(sec.take("max_clock_drift", (int, float, str), "5s"), sec.key("max_clock_drift"))
    threshold = _fraction(sec.take("trust_threshold", (str, dict), "1/3"), sec.key("trust_threshold"))
    if drift >= trusting:
        raise ConfigError(f"{sec.key('max_clock_drift')}: must be shorter than trusting_period ({trusting:.0f}s)")
    pf = _packet_filter(sec.sub("packet_filter")) if "packet_filter" in sec.left else PacketFilter()

    prover, proxy = parse_prover(sec, base_dir)
    sec.done()
    return ChainConfig(
        id=cid,
        kind=kind,
        grpc_addr=addr,
        key_name=key_name,
        tls=tls,
        max_msg_num=max_msg,
        rpc_timeout_s=rpc_timeout,
        trusting_period_s=trusting,
        max_clock_drift_s=drift,
        trust_threshold=threshold,
        packet_filter=pf,
        prover=prover,
        proxy=proxy,
    )


def parse_config(doc: Mapping[str, Any], base_dir: Path = Path(".")) -> Config:
    root = Section("", doc)
    g = root.sub("global")
    log_level = choice(g.take("log_level", str, "info"), LOG_LEVELS, g.key("log_level"))
    log_format = choice(g.take("log_format", str, "json"), LOG_FORMATS, g.key("log_format"))
    keystore_raw = g.take("keystore", str, None)
    g.done()

    mode = root.sub("mode")
    mc = mode.sub("clients")
    refresh_rate = mc.take("refresh_rate", (int, float), 1 / 3)
    if not 0 < refresh_rate < 1:
        raise ConfigError(f"{mc.key('refresh_rate')}: must be in (0, 1), got {refresh_rate}")
    clients = ClientsMode(
        enabled=mc.take("enabled", bool, True),
        refresh=mc.take("refresh", bool, True),
        misbehaviour=mc.take("misbehaviour", bool, True),
        refresh_rate=float(refresh_rate),
    )
    mc.done()
    mconn = mode.sub("connections")
    connections = mconn.take("enabled", bool, True)
    mconn.done()
    mchan = mode.sub("channels")
    channels = mchan.take("enabled", bool, True)
    mchan.done()
    mp = mode.sub("packets")
    packets = PacketsMode(
        enabled=mp.take("enabled", bool, True),
        clear_on_start=mp.take("clear_on_start", bool, True),
        clear_interval=positive(mp.take("clear_interval", int, 100), mp.key("clear_interval"), allow_zero=True),
        clear_limit=positive(mp.take("clear_limit", int, 50), mp.key("clear_limit")),
        tx_confirmation=mp.take("tx_confirmation", bool, True),
    )
    mp.done()
    mode.done()

    t = root.sub("telemetry")
    telemetry = Telemetry(
        enabled=t.take("enabled", bool, True),
        host=t.take("host", str, "127.0.0.1"),
        port=port_number(t.take("port", int, 3001), t.key("port")),
    )
    t.done()

    q = root.sub("mqtt")
    qos = q.take("qos", int, 1)
    if qos not in (0, 1, 2):
        raise ConfigError(f"{q.key('qos')}: expected 0, 1 or 2, got {qos}")
    mqtt = Mqtt(
        enabled=q.take("enabled", bool, False),
        host=q.take("host", str, "127.0.0.1"),
        port=port_number(q.take("port", int, 1883), q.key("port")),
        topic_prefix=q.take("topic_prefix", str, "kakehashi"),
        client_id=q.take("client_id", str, "kakehashi-relayer"),
        qos=qos,
        username=q.take("username", str, None),
        password_file=None if (pw := q.take("password_file", str, None)) is None else base_dir / pw,
        tls=parse_tls(q.sub("tls"), base_dir, server_name=False) if "tls" in q.left else None,
    )
    if (mqtt.username is None) != (mqtt.password_file is None):
        raise ConfigError(f"{q.key('username')}: username and password_file must be given together")
    if mqtt.password_file is not None:
        try:
            if not mqtt.password_file.read_text().strip():
                raise ConfigError(f"{q.key('password_file')}: {mqtt.password_file} is empty")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{q.key('password_file')}: cannot read {mqtt.password_file}: {reason}") from None
    q.done()

    raw_chains = root.take("chains", list, [])
    chains = tuple(_chain(Section(f"chains[{i}]", c), base_dir) for i, c in enumerate(raw_chains))
    if len(chains) < 2:
        raise ConfigError(f"chains: a relayer needs at least two [[chains]] entries, found {len(chains)}")
    seen: set[str] = set()
    for i, c in enumerate(chains):
        if c.id in seen:
            raise ConfigError(f"chains[{i}].id: duplicate chain id {c.id!r}")
        seen.add(c.id)
    paths = _paths(root, chains)
    root.done()
    return Config(
        log_level=log_level,
        log_format=log_format,
        keystore=None if keystore_raw is None else base_dir / keystore_raw,
        mode=Modes(clients=clients, connections=connections, channels=channels, packets=packets),
        telemetry=telemetry,
        mqtt=mqtt,
        chains=chains,
        paths=paths,
    )


def config_from_toml(text: str, base_dir: Path, where: str = "config") -> Config:
    """Parse and validate relayer.toml text; relative paths in it resolve against ``base_dir``."""
    return parse_config(parse_toml(text, where, ConfigError), base_dir)


def load_config(path: Path) -> Config:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
        raise ConfigError(f"cannot read config file {path}: {reason}") from exc
    return config_from_toml(text, Path(path).resolve().parent, str(path))
