"""Encrypted keystore for the relayer's signing keys: one JSON file per key.

Why this shape: an operator backs up, rotates and deletes keys one file at a time, and a
file that leaks without its passphrase is useless to an attacker. Each secret is sealed with
AES-256-GCM under a key derived by scrypt from the passphrase (both from ``cryptography``);
the key's name, kind and public identity are the GCM associated data, so a file whose
metadata was edited to pose as another key fails to open.

Kinds follow the chains: ``secp256k1`` (EVM accounts; identity = 20-byte address) and
``ed25519`` (Corda parties; identity = 32-byte public key).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from lightclients.crypto import CryptoError, ed25519_public_key, eth_address, secp256k1_public_key

PASSPHRASE_ENV = "KAKEHASHI_KEYSTORE_PASSPHRASE"
KINDS = ("secp256k1", "ed25519")
KIND_FOR_CHAIN = {"evm": "secp256k1", "corda": "ed25519"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FORMAT_VERSION = 1
# scrypt cost: 2**15 takes ~0.1 s here, which is paid once per relayer start per key.
DEFAULT_SCRYPT_N = 2**15
MIN_PASSPHRASE = 8


class KeystoreError(Exception):
    """A key could not be stored, found or opened; the message says which and why."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    kind: str
    identity: bytes  # address (secp256k1) or public key (ed25519)

    @property
    def identity_hex(self) -> str:
        return "0x" + self.identity.hex()


def identity_of(kind: str, secret: bytes) -> bytes:
    try:
        if kind == "secp256k1":
            return eth_address(secp256k1_public_key(secret))
        if kind == "ed25519":
            return ed25519_public_key(secret)
    except CryptoError as exc:
        raise KeystoreError(f"invalid {kind} private key: {exc}") from exc
    raise KeystoreError(f"unknown key kind {kind!r}; expected one of {list(KINDS)}")


class Keystore:
    def __init__(self, directory: Path, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        self.directory = Path(directory)
        self.scrypt_n = scrypt_n

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise KeystoreError(f"invalid key name {name!r}: use letters, digits, '.', '_' or '-'")
        return self.directory / f"{name}.json"

    @staticmethod
    def _kdf(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())

    def add(self, name: str, kind: str, passphrase: str, secret: bytes | None = None) -> KeyInfo:
        """Store a new key (generated when ``secret`` is None); refuses to overwrite."""
        if kind not in KINDS:
            raise KeystoreError(f"unknown key kind {kind!r}; expected one of {list(KINDS)}")
        if len(passphrase) < MIN_PASSPHRASE:
            raise KeystoreError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
        path = self._path(name)
        if path.exists():
            raise KeystoreError(f"key {name!r} already exists in {self.directory}")
        existing = self.list()
        if existing:
            # One keystore, one passphrase: a key sealed under a different one would only
            # surface as a failure when the relayer starts.
            self.secret(existing[0].name, passphrase)
        if secret is None:
            secret = secrets.token_bytes(32)
        if len(secret) != 32:
            raise KeystoreError(f"a {kind} private key is 32 bytes, got {len(secret)}")
        info = KeyInfo(name, kind, identity_of(kind, secret))
        for other in existing:
            if other.identity == info.identity:
                raise KeystoreError(f"this key is already stored as {other.name!r}")
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        n, r, p = self.scrypt_n, 8, 1
        sealed = AESGCM(self._kdf(passphrase, salt, n, r, p)).encrypt(nonce, secret, _aad(info))
        doc = {
            "version": FORMAT_VERSION,
            "name": name,
            "kind": kind,
            "identity": info.identity.hex(),
            "crypto": {
                "kdf": "scrypt",
                "n": n,
                "r": r,
                "p": p,
                "salt": salt.hex(),
                "cipher": "aes-256-gcm",
                "nonce": nonce.hex(),
                "ciphertext": sealed.hex(),
            },
        }
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return info

    def _load(self, name: str) -> dict[str, object]:
        path = self._path(name)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise KeystoreError(f"no key named {name!r} in {self.directory}") from None
        except (OSError, ValueError) as exc:
            raise KeystoreError(f"key file {path} is unreadable: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
            raise KeystoreError(f"key file {path} has an unknown format")
        return doc

    def info(self, name: str) -> KeyInfo:
        doc = self._load(name)
        try:
            return KeyInfo(str(doc["name"]), str(doc["kind"]), bytes.fromhex(str(doc["identity"])))
        except (KeyError, ValueError) as exc:
            raise KeystoreError(f"key file for {name!r} is malformed: {exc}") from exc

    def list(self) -> list[KeyInfo]:
        if not self.directory.is_dir():
            return []  # a keystore that does not exist yet holds no keys
        return [self.info(p.stem) for p in sorted(self.directory.glob("*.json"))]

    def delete(self, name: str) -> None:
        path = self._path(name)
        if not path.exists():
            raise KeystoreError(f"no key named {name!r} in {self.directory}")
        path.unlink()

    def secret(self, name: str, passphrase: str) -> bytes:
        """Decrypt a key; a wrong passphrase or a tampered file is an error, not garbage."""
        doc = self._load(name)
        info = self.info(name)
        crypto = doc.get("crypto")
        if not isinstance(crypto, dict) or crypto.get("kdf") != "scrypt" or crypto.get("cipher") != "aes-256-gcm":
            raise KeystoreError(f"key {name!r} uses an unsupported kdf or cipher")
        try:
            key = self._kdf(
                passphrase, bytes.fromhex(crypto["salt"]), int(crypto["n"]), int(crypto["r"]), int(crypto["p"])
            )
            secret = AESGCM(key).decrypt(
                bytes.fromhex(crypto["nonce"]), bytes.fromhex(crypto["ciphertext"]), _aad(info)
            )
        except InvalidTag:
            raise KeystoreError(f"wrong passphrase for key {name!r} (or the key file was altered)") from None
        except (KeyError, ValueError, TypeError) as exc:
            raise KeystoreError(f"key file for {name!r} is malformed: {exc}") from exc
        if identity_of(info.kind, secret) != info.identity:
            raise KeystoreError(f"key {name!r} does not match its recorded identity")
        return secret


def _aad(info: KeyInfo) -> bytes:
    return f"kakehashi-key:v{FORMAT_VERSION}:{info.name}:{info.kind}:{info.identity.hex()}".encode()


def passphrase_from_env_or_prompt(prompt: str = "keystore passphrase: ") -> str:
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    import getpass
    import sys

    if not sys.stdin.isatty():
        raise KeystoreError(f"no passphrase: set {PASSPHRASE_ENV} or run from a terminal")

    try:
        return getpass.getpass(prompt)
    except (EOFError, OSError) as exc:
        raise KeystoreError(f"no passphrase: set {PASSPHRASE_ENV} or run from a terminal") from exc
