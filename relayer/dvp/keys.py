"""Key material for settlement: who signs is decided by the trade, not by a flag.

A settle needs the seller's EVM key (secp256k1: it signs the ST lock) and the buyer's Corda
key (Ed25519 seed: it signs the SC lock). Rather than make the operator pair keys with
trades by hand (error-prone in a feed of many trades), a :class:`KeyRing` holds any number
of keys and finds the one whose identity the trade names: an EVM address or a Corda public
key. Every 32-byte secret is indexed under both identities it could have, since the same
hex format serves both curves.

Sources: hex key files as the node homes write them (``keys/alice.key``: 64 hex chars), a
directory of them (every ``*.key``), or a keystore entry ``keystore:NAME`` (the relayer's
encrypted keystore; passphrase from ``$KAKEHASHI_KEYSTORE_PASSPHRASE``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from lightclients.crypto import CryptoError, ed25519_public_key, eth_address, secp256k1_public_key
from relayer.ops.keystore import Keystore, KeystoreError


class KeyMaterialError(LookupError):
    """A key is missing or unreadable; the message names the account or the file."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "key error"


def read_hex_key(path: Path) -> bytes:
    try:
        raw = Path(path).read_text().strip().removeprefix("0x")
        secret = bytes.fromhex(raw)
    except OSError as exc:
        raise KeyMaterialError(f"key file {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise KeyMaterialError(f"key file {path}: expected hex") from None
    if len(secret) != 32:
        raise KeyMaterialError(f"key file {path}: expected a 32-byte hex secret, got {len(secret)} bytes")
    return secret


class KeyRing:
    def __init__(self) -> None:
        self._evm: dict[bytes, bytes] = {}
        self._corda: dict[bytes, bytes] = {}

    def add(self, secret: bytes) -> None:
        """Index ``secret`` under its EVM address and its Ed25519 public key."""
        if len(secret) != 32:
            raise KeyMaterialError("a key is a 32-byte secret")
        # Not a valid secp256k1 scalar (zero or >= the order): usable as an Ed25519 seed only.
        with contextlib.suppress(CryptoError):
            self._evm[eth_address(secp256k1_public_key(secret))] = secret
        self._corda[ed25519_public_key(secret)] = secret

    def add_file(self, path: Path) -> None:
        self.add(read_hex_key(path))

    def add_dir(self, directory: Path) -> int:
        files = sorted(Path(directory).glob("*.key"))
        if not Path(directory).is_dir():
            raise KeyMaterialError(f"key directory {directory} does not exist")
        for f in files:
            self.add_file(f)
        return len(files)

    def add_keystore(self, keystore: Keystore, name: str, passphrase: str) -> None:
        try:
            self.add(keystore.secret(name, passphrase))
        except KeystoreError as exc:
            raise KeyMaterialError(str(exc)) from None

    def add_spec(self, spec: str, keystore: Keystore | None = None, passphrase: str | None = None) -> None:
        """``keystore:NAME``, a directory of ``*.key`` files, or one hex key file."""
        if spec.startswith("keystore:"):
            if keystore is None or passphrase is None:
                raise KeyMaterialError(f"{spec}: no keystore configured (global.keystore) or no passphrase")
            self.add_keystore(keystore, spec.removeprefix("keystore:"), passphrase)
        elif Path(spec).is_dir():
            self.add_dir(Path(spec))
        else:
            self.add_file(Path(spec))

    def any_evm(self) -> bytes:
        """Some EVM key (reclaim may be signed by anyone)."""
        for key in self._evm.values():
            return key
        raise KeyMaterialError("no EVM key given (--key): reclaim needs one to sign, anyone's will do")

    def evm(self, address: bytes) -> bytes:
        try:
            return self._evm[address]
        except KeyError:
            raise KeyMaterialError(f"no key for EVM account 0x{address.hex()}") from None

    def corda(self, public_key: bytes) -> bytes:
        try:
            return self._corda[public_key]
        except KeyError:
            raise KeyMaterialError(f"no key for Corda party {public_key.hex()}") from None
