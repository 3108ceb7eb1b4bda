"""The installed ``kakehashi`` console script: keys and config validate, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

EXE = shutil.which("kakehashi", path=str(ROOT / ".venv" / "bin")) or shutil.which("kakehashi")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert EXE, "the kakehashi console script is not installed"
    return subprocess.run([EXE, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=60)


def test_config_validate_ok_and_bad(tmp_path: Path) -> None:
    ok = run("config", "validate", "-c", str(ROOT / "config" / "relayer.example.toml"), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["chains"] == ["evm-1", "corda-1"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[chains]]\nid = "x"\nkind = "evm"\ngrpc_addr = "nowhere"\nkey_name = "k"\n' * 2)
    res = run("config", "validate", "-c", str(bad))
    assert res.returncode == 1
    assert "chains[0].grpc_addr" in res.stderr
    as_json = run("config", "validate", "-c", str(bad), "--json")
    assert as_json.returncode == 1 and "chains[0].grpc_addr" in json.loads(as_json.stdout)["error"]


@pytest.mark.parametrize("kind", ["evm", "corda"])
def test_keys_roundtrip(tmp_path: Path, kind: str) -> None:
    env = {"KAKEHASHI_KEYSTORE_PASSPHRASE": "test-pass"}
    ks = str(tmp_path / "keys")
    added = run("keys", "add", "relayer", "--kind", kind, "--keystore", ks, "--json", env=env)
    assert added.returncode == 0, added.stderr
    identity = json.loads(added.stdout)["identity"]
    listed = run("keys", "list", "--keystore", ks, "--json")
    assert [k["identity"] for k in json.loads(listed.stdout)] == [identity]
    again = run("keys", "add", "relayer", "--kind", kind, "--keystore", ks, env=env)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert run("keys", "delete", "relayer", "--keystore", ks).returncode == 0
    assert json.loads(run("keys", "list", "--keystore", ks, "--json").stdout) == []


def _in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert EXE, "the kakehashi console script is not installed"
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_without_c_the_testnets_config_is_used_and_said(tmp_path: Path) -> None:
    """README's commands without -c work in a checkout where `make run` left .testnet."""
    example = (ROOT / "config" / "relayer.example.toml").read_text()
    missing = _in(tmp_path, "config", "validate", "--json")
    assert missing.returncode == 1 and "config/relayer.toml" in json.loads(missing.stdout)["error"]
    testnet_cfg = tmp_path / ".testnet" / "relayer" / "relayer.toml"
    testnet_cfg.parent.mkdir(parents=True)
    testnet_cfg.write_text(example)
    found = _in(tmp_path, "config", "validate", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["chains"] == ["evm-1", "corda-1"]
    assert found.stderr.strip() == ("no -c given and no config/relayer.toml: using the testnet's config "
                                    ".testnet/relayer/relayer.toml")
    # the documented default still comes first, and -c always wins, both silently
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "relayer.toml").write_text(example.replace('id = "evm-1"', 'id = "evm-7"'))
    default = _in(tmp_path, "config", "validate", "--json")
    assert json.loads(default.stdout)["chains"] == ["evm-7", "corda-1"] and default.stderr == ""
    given = _in(tmp_path, "config", "validate", "-c", str(testnet_cfg), "--json")
    assert json.loads(given.stdout)["chains"] == ["evm-1", "corda-1"] and given.stderr == ""


def test_testnet_status_says_not_running_for_every_stopped_process(tmp_path: Path) -> None:
    from rich.console import Console

    from relayer.cli.parser import _testnet_tables
    from relayer.testnet.network import NodeInfo, RelayerInfo, Testnet
    from relayer.testnet.proxy import ProxyProcInfo

    nodes = [NodeInfo("evm", "evm-1", tmp_path / "evm", None, None, None),
             NodeInfo("corda", "corda-1", tmp_path / "corda", 4242, "127.0.0.1:1", 7)]
    relayer = RelayerInfo(tmp_path / "relayer", tmp_path / "relayer" / "relayer.toml", None, None, None, None,
                          tmp_path / "relayer" / "relayer.log")
    proxy = ProxyProcInfo(tmp_path / "proxy", None, None, None, None, None, tmp_path / "proxy" / "proxy.log")
    console = Console(width=300, record=True)
    console.print(_testnet_tables(Testnet(nodes, relayer, prover="proxy", proxy=proxy)))
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in console.export_text().splitlines() if "│" in line]
    pid = {(row[0], row[1]): row[4] for row in cells}
    for component in (("evm node", "evm-1"), ("relayer", "metrics"), ("proxy (SIMULATED enclave)", "code -…")):
        assert pid[component] == "not running", cells
    assert pid[("corda node", "corda-1")] == "4242"
