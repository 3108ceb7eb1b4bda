"""A proxy's home directory: its config, its secrets and its sealed enclave keys.

Layout (``kakehashi proxy init`` writes it; files holding secrets are 0600)::

    proxy.toml        listen address (a fixed port, so the relayer's config outlives restarts) and,
                      optionally, [tls] cert_file / key_file / client_ca_file (mutual TLS when set)
    platform.secret   SIMULATED platform sealing root (a CPU's fused key plays this part in SGX)
    operator.key      the operator's secp256k1 key: co-signs each attestation report
    authority.key     SIMULATED attestation authority (a real one is Intel's service, never here)
    sealed/*.sealed   enclave keys, sealed to (platform, code hash)
    proxy.sqlite      the hosted clients' stores (SQLite, WAL)
    proxy.json        public facts for operators and relayer configs: code hash, authority, operator
    proxy.addr        the bound address while serving

Sealed keys are written atomically (temporary file, fsync, rename, fsync of the directory),
so a key the proxy answered with is on disk even if the process is killed right after.
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from chains.node.config import parse_toml
from chains.node.service import TlsFiles
from lightclients.crypto import eth_address, secp256k1_public_key

_LISTEN = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+):(?P<port>\d{1,5})$")


class ProxyHomeError(ValueError):
    """The proxy home is missing, incomplete or invalid; the message names the file."""


@dataclass(frozen=True)
class ProxyHome:
    path: Path
    listen: str
    platform_secret: bytes
    operator_secret: bytes
    authority_secret: bytes
    tls: TlsFiles | None = None

    @property
    def operator(self) -> bytes:
        return eth_address(secp256k1_public_key(self.operator_secret))

    @property
    def authority(self) -> bytes:
        return eth_address(secp256k1_public_key(self.authority_secret))

    @property
    def sealed_dir(self) -> Path:
        return self.path / "sealed"

    @property
    def db_path(self) -> Path:
        return self.path / "proxy.sqlite"


def _write_secret(path: Path, secret: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.hex() + "\n")


def _read_secret(path: Path) -> bytes:
    try:
        raw = bytes.fromhex(path.read_text().strip().removeprefix("0x"))
    except OSError as exc:
        raise ProxyHomeError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError:
        raise ProxyHomeError(f"{path}: expected a hex secret") from None
    if len(raw) != 32:
        raise ProxyHomeError(f"{path}: expected 32 bytes, got {len(raw)}")
    return raw


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def init_home(path: Path, listen: str = "127.0.0.1:0", authority_key: Path | None = None) -> ProxyHome:
    """Create a proxy home with fresh secrets; port 0 picks a free port now and keeps it.

    ``authority_key``: the SIMULATED attestation authority's key file to use instead of a new
    one, so that several operators' proxies are attested by the one authority a client pins
    (a real deployment has one authority for all: Intel's)."""
    authority = _read_secret(Path(authority_key)) if authority_key is not None else os.urandom(32)
    path = Path(path)
    if (path / "proxy.toml").exists():
        raise ProxyHomeError(f"{path} already holds a proxy (proxy.toml exists); pick another --home")
    m = _LISTEN.match(listen)
    if not m:
        raise ProxyHomeError(f"--listen: expected host:port, got {listen!r}")
    if m.group("port") == "0":
        listen = f"{m.group('host')}:{free_port(m.group('host'))}"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    (path / "sealed").mkdir(exist_ok=True, mode=0o700)
    for name in ("platform.secret", "operator.key"):
        _write_secret(path / name, os.urandom(32))
    _write_secret(path / "authority.key", authority)
    (path / "proxy.toml").write_text(
        "# kakehashi proxy: a SIMULATED enclave hosting the direct light clients (no real TEE).\n"
        f'listen = "{listen}"\n')
    return load_home(path)


def load_home(path: Path) -> ProxyHome:
    path = Path(path)
    cfg = path / "proxy.toml"
    try:
        text = cfg.read_text()
    except OSError as exc:
        raise ProxyHomeError(f"{cfg}: cannot read ({exc.strerror}); run `kakehashi proxy init --home {path}`") \
            from None
    doc = parse_toml(text, str(cfg), ProxyHomeError)
    unknown = set(doc) - {"listen", "tls"}
    if unknown:
        raise ProxyHomeError(f"{cfg}: unknown key(s) {sorted(unknown)}")
    listen = doc.get("listen")
    if not isinstance(listen, str) or not _LISTEN.match(listen):
        raise ProxyHomeError(f"{cfg}: listen: expected \"host:port\", got {listen!r}")
    return ProxyHome(path, listen, _read_secret(path / "platform.secret"), _read_secret(path / "operator.key"),
                     _read_secret(path / "authority.key"), _tls(cfg, doc.get("tls")))


def _tls(cfg: Path, table: object) -> TlsFiles | None:
    """The [tls] table: the server's pair, and the CA whose clients it accepts (mutual TLS)."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ProxyHomeError(f"{cfg}: tls: expected a table")
    unknown = set(table) - {"cert_file", "key_file", "client_ca_file"}
    if unknown:
        raise ProxyHomeError(f"{cfg}: tls: unknown key(s) {sorted(unknown)}")
    files: dict[str, Path] = {}
    for name in ("cert_file", "key_file", "client_ca_file"):
        raw = table.get(name)
        if raw is None:
            if name != "client_ca_file":
                raise ProxyHomeError(f"{cfg}: tls.{name}: required (cert_file and key_file are given together)")
            continue
        if not isinstance(raw, str) or not raw:
            raise ProxyHomeError(f"{cfg}: tls.{name}: expected a file path")
        path = cfg.parent / raw
        if not path.is_file() or not os.access(path, os.R_OK):
            raise ProxyHomeError(f"{cfg}: tls.{name}: cannot read {path}")
        files[name] = path
    return TlsFiles(files["cert_file"], files["key_file"], files.get("client_ca_file"))


def write_public(home: ProxyHome, code_hash: bytes) -> dict[str, object]:
    doc: dict[str, object] = {
        "simulated": True,
        "note": "SIMULATED enclave and attestation authority: no real TEE attests these keys",
        "listen": home.listen, "code_hash": code_hash.hex(), "authority": "0x" + home.authority.hex(),
        "operator": "0x" + home.operator.hex()}
    (home.path / "proxy.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return doc


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
