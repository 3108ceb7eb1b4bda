"""`prover = "proxy"` and the [chains.proxy] table: parsed strictly, errors name the key; and
a testnet keeps the verification mode it was created with."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from relayer.config.schema import parse_config
from relayer.config.tables import ConfigError
from relayer.testnet import network as testnet
from relayer.testnet import procs
from tests.conftest import ROOT

EXAMPLE = ROOT / "config" / "relayer.example.toml"
OP_A, OP_B = "0x" + "0b" * 20, "0x" + "0a" * 20
PROXY = {"addrs": ["127.0.0.1:7001", "127.0.0.1:7002"], "code_hash": "ab" * 32, "authority": "0x" + "01" * 20,
         "operators": [OP_A, OP_B], "threshold": 2, "key_expiration": "1h", "allow_simulated": True}


def _doc(**proxy: Any) -> dict[str, Any]:
    doc = tomllib.loads(EXAMPLE.read_text())
    doc["chains"][0]["prover"] = "proxy"
    table = {**copy.deepcopy(PROXY), **proxy}
    doc["chains"][0]["proxy"] = {k: v for k, v in table.items() if v is not None}
    return doc


def test_proxy_table_parses_with_sorted_operators_and_defaults() -> None:
    cfg = parse_config(_doc(), EXAMPLE.parent)
    evm, corda = cfg.chains
    assert evm.prover == "proxy" and corda.prover == "direct" and corda.proxy is None
    px = evm.proxy
    assert px is not None
    assert px.operators == (bytes.fromhex("0a" * 20), bytes.fromhex("0b" * 20))
    assert px.threshold == 2 and px.key_expiration_s == 3600 and px.key_renew_before_s == 1200
    assert px.allow_simulated and px.code_hash == bytes.fromhex("ab" * 32)
    single = parse_config(_doc(addrs=None, addr="127.0.0.1:7001", threshold=1), EXAMPLE.parent)
    assert single.chains[0].proxy is not None and single.chains[0].proxy.addrs == ("127.0.0.1:7001",)


@pytest.mark.parametrize(("change", "key"), [
    ({"code_hash": "ab"}, "chains[0].proxy.code_hash"),
    ({"authority": "0xzz"}, "chains[0].proxy.authority"),
    ({"operators": []}, "chains[0].proxy.operators"),
    ({"operators": [OP_A, OP_A]}, "chains[0].proxy.operators"),
    ({"threshold": 3}, "chains[0].proxy.threshold"),
    ({"addrs": ["127.0.0.1:7001"]}, "chains[0].proxy.addrs"),
    ({"addrs": ["nowhere"]}, "chains[0].proxy.addrs[0]"),
    ({"key_renew_before": "2h"}, "chains[0].proxy.key_renew_before"),
    ({"surprise": 1}, "chains[0].proxy.surprise"),
])
def test_bad_proxy_table_names_the_key(change: dict[str, Any], key: str) -> None:
    doc = _doc(**change)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_config(doc, EXAMPLE.parent)


def test_prover_and_table_must_agree() -> None:
    doc = _doc()
    del doc["chains"][0]["proxy"]
    with pytest.raises(ConfigError, match=r"chains\[0\]\.proxy: prover = \"proxy\" needs"):
        parse_config(doc, EXAMPLE.parent)
    doc = _doc()
    doc["chains"][0]["prover"] = "direct"
    with pytest.raises(ConfigError, match=r"only used with prover"):
        parse_config(doc, EXAMPLE.parent)
    doc = _doc()
    doc["chains"][0]["prover"] = "tee"
    with pytest.raises(ConfigError, match=r"chains\[0\]\.prover"):
        parse_config(doc, EXAMPLE.parent)


def test_testnet_keeps_its_verification_mode(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert testnet.testnet_prover(tmp_path / "a", None) == "direct"
    with pytest.raises(procs.TestnetError, match="created with --prover direct"):
        testnet.testnet_prover(tmp_path / "a", "proxy")
    (tmp_path / "b").mkdir()
    assert testnet.testnet_prover(tmp_path / "b", "proxy") == "proxy"
    assert testnet.testnet_prover(tmp_path / "b", None) == "proxy"
    with pytest.raises(procs.TestnetError, match="created with --prover proxy"):
        testnet.testnet_prover(tmp_path / "b", "direct")
