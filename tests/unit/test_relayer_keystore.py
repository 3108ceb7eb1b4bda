"""Encrypted keystore: round trip, wrong passphrase, tampering, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from relayer.ops.keystore import Keystore, KeystoreError

FAST = 2**10  # scrypt cost lowered for tests only
PW = "correct horse"


def test_add_list_show_secret_delete(tmp_path: Path) -> None:
    ks = Keystore(tmp_path / "keys", scrypt_n=FAST)
    secret = bytes(range(1, 33))
    evm = ks.add("relayer-evm", "secp256k1", PW, secret)
    assert evm.identity == eth_address(secp256k1_public_key(secret))
    corda = ks.add("relayer-corda", "ed25519", PW)
    assert [k.name for k in ks.list()] == ["relayer-corda", "relayer-evm"]
    assert ks.secret("relayer-evm", PW) == secret
    assert ed25519_public_key(ks.secret("relayer-corda", PW)) == corda.identity
    ks.delete("relayer-evm")
    assert [k.name for k in ks.list()] == ["relayer-corda"]
    with pytest.raises(KeystoreError, match="no key named"):
        ks.secret("relayer-evm", PW)
    mode = (tmp_path / "keys" / "relayer-corda.json").stat().st_mode & 0o777
    assert mode == 0o600


def test_wrong_passphrase(tmp_path: Path) -> None:
    ks = Keystore(tmp_path, scrypt_n=FAST)
    ks.add("k", "secp256k1", PW)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        ks.secret("k", "wrong-passphrase")


def test_metadata_tampering_is_detected(tmp_path: Path) -> None:
    ks = Keystore(tmp_path, scrypt_n=FAST)
    ks.add("a", "secp256k1", PW)
    other = ks.add("b", "secp256k1", PW)
    path = tmp_path / "a.json"
    doc = json.loads(path.read_text())
    doc["identity"] = other.identity.hex()  # pose as key b
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError, match=r"wrong passphrase|altered"):
        ks.secret("a", PW)


def test_bad_input(tmp_path: Path) -> None:
    ks = Keystore(tmp_path, scrypt_n=FAST)
    with pytest.raises(KeystoreError, match="unknown key kind"):
        ks.add("k", "rsa", PW)
    with pytest.raises(KeystoreError, match="32 bytes"):
        ks.add("k", "ed25519", PW, b"short")
    with pytest.raises(KeystoreError, match="invalid key name"):
        ks.add("../escape", "ed25519", PW)
    with pytest.raises(KeystoreError, match="at least 8 characters"):
        ks.add("k", "ed25519", "short")
    with pytest.raises(KeystoreError, match="invalid secp256k1"):
        ks.add("k", "secp256k1", PW, b"\x00" * 32)
    ks.add("k", "ed25519", PW)
    with pytest.raises(KeystoreError, match="already exists"):
        ks.add("k", "ed25519", PW)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(KeystoreError, match="unreadable"):
        ks.info("junk")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.json", "k.json"]


def test_one_passphrase_per_keystore_and_no_duplicate_keys(tmp_path: Path) -> None:
    ks = Keystore(tmp_path, scrypt_n=FAST)
    secret = bytes(range(1, 33))
    ks.add("a", "secp256k1", PW, secret)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        ks.add("b", "ed25519", "another passphrase")
    with pytest.raises(KeystoreError, match="already stored as 'a'"):
        ks.add("c", "secp256k1", PW, secret)
    assert [k.name for k in ks.list()] == ["a"]
