"""Relayer config validation: every error names the offending key."""

from __future__ import annotations

import copy
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from relayer.config.schema import load_config, parse_config
from relayer.config.tables import ConfigError, parse_duration
from tests.conftest import ROOT

EXAMPLE = ROOT / "config" / "relayer.example.toml"


def _doc() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert [c.id for c in cfg.chains] == ["evm-1", "corda-1"]
    evm = cfg.chain("evm-1")
    assert evm.kind == "evm" and evm.max_msg_num == 30
    assert evm.trusting_period_s == 14 * 86400
    assert evm.trust_threshold == Fraction(1, 3)
    assert evm.packet_filter.permits("transfer", "channel-7")
    assert not evm.packet_filter.permits("other", "channel-7")
    assert cfg.chain("corda-1").packet_filter.permits("anything", "channel-0")
    assert cfg.keystore == EXAMPLE.parent / "keys"


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node: Any = doc
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
    if value is _DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("dotted", "value", "named"),
    [
        ("global.log_level", "loud", "global.log_level"),
        ("global.colour", True, "global.colour"),
        ("mode.clients.refresh_rate", 1.5, "mode.clients.refresh_rate"),
        ("mode.packets.clear_limit", 0, "mode.packets.clear_limit"),
        ("mode.packets.clear_on_start", "yes", "mode.packets.clear_on_start"),
        ("telemetry.port", 70000, "telemetry.port"),
        ("mqtt.qos", 3, "mqtt.qos"),
        ("chains.0.kind", "cosmos", "chains[0].kind"),
        ("chains.1.grpc_addr", "localhost", "chains[1].grpc_addr"),
        ("chains.1.grpc_addr", _DELETE, "chains[1].grpc_addr"),
        ("chains.0.max_msg_num", 0, "chains[0].max_msg_num"),
        ("chains.0.trusting_period", "forever", "chains[0].trusting_period"),
        ("chains.0.trust_threshold", "1/4", "chains[0].trust_threshold"),
        ("chains.0.packet_filter.list", [["transfer"]], "chains[0].packet_filter.list[0]"),
        ("chains.0.packet_filter.policy", "maybe", "chains[0].packet_filter.policy"),
        ("chains.1.id", "evm-1", "chains[1].id"),
        ("chains.0.rpc_timout", "1s", "chains[0].rpc_timout"),
        ("chains.0.max_clock_drift", "20d", "chains[0].max_clock_drift"),
        ("chains", [], "chains"),
    ],
)
def test_bad_config_names_the_key(dotted: str, value: Any, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_set(_doc(), dotted, value))
    assert str(err.value).startswith(named), str(err.value)


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[global\nlog_level = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_tls_requires_cert_and_key_together() -> None:
    doc = _set(_doc(), "chains.0.tls", {"ca_file": "ca.pem", "cert_file": "c.pem"})
    with pytest.raises(ConfigError, match=r"^chains\[0\]\.tls"):
        parse_config(doc)


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("10s", 10), ("2h", 7200), ("14d", 1209600), (3, 3.0)]
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text, "x") == pytest.approx(seconds)


def test_deny_policy() -> None:
    doc = _set(_doc(), "chains.0.packet_filter", {"policy": "deny", "list": [["dvp", "*"]]})
    pf = parse_config(doc).chain("evm-1").packet_filter
    assert not pf.permits("dvp", "channel-0")
    assert pf.permits("transfer", "channel-0")
