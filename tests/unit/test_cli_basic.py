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
