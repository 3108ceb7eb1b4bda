"""The ``tls`` tables of a relayer config (``[chains.tls]``, ``[chains.proxy.tls]``, ``[mqtt.tls]``).

    [chains.tls]
    ca_file = "tls/ca.pem"            # CA that signed the server's certificate (default: system roots)
    cert_file = "tls/relayer.pem"     # client certificate, for servers that require mutual TLS
    key_file = "tls/relayer.key"      # its private key (given together with cert_file)
    server_name = "node-1.example"    # name to check the server's certificate against (default: the host dialled)

Why the files are read at load time: a TLS file that is missing, unreadable or not PEM would
otherwise surface as a handshake failure on the first call, minutes later and far from the
key that named it. Here the error names the key and the path, and the config is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chains.node.client import ClientTls
from relayer.config.tables import ConfigError, Section

_MARKERS = {"ca_file": b"-----BEGIN CERTIFICATE-----", "cert_file": b"-----BEGIN CERTIFICATE-----",
            "key_file": b"PRIVATE KEY-----"}


@dataclass(frozen=True)
class Tls:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None


def _check(where: str, name: str, path: Path) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}.{name}: cannot read {path}: {exc.strerror}") from None
    if _MARKERS[name] not in data:
        what = "private key" if name == "key_file" else "certificate"
        raise ConfigError(f"{where}.{name}: {path} holds no PEM {what}")


def parse_tls(sec: Section, base_dir: Path, *, server_name: bool = True) -> Tls:
    """One ``tls`` table; relative paths resolve against ``base_dir`` (the config's folder).
    ``server_name`` is for gRPC only: MQTT clients check the host they dial."""

    def _path(name: str) -> Path | None:
        raw = sec.take(name, str, None)
        if raw is not None and not raw:
            raise ConfigError(f"{sec.key(name)}: must not be empty")
        return None if raw is None else base_dir / raw

    name = sec.take("server_name", str, None) if server_name else None
    tls = Tls(_path("ca_file"), _path("cert_file"), _path("key_file"), name)
    sec.done()
    if tls.cert_file is None and tls.key_file is not None:
        raise ConfigError(f"{sec.key('key_file')}: given without cert_file; cert_file and key_file must be given together")
    if tls.cert_file is not None and tls.key_file is None:
        raise ConfigError(f"{sec.key('cert_file')}: given without key_file; cert_file and key_file must be given together")
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, name)
        if path is not None:
            _check(sec.where, name, path)
    return tls


def client_tls(tls: Tls | None) -> ClientTls | None:
    """The gRPC client side of a ``tls`` table (None: plaintext). A table without ``ca_file``
    still means TLS, against the system's roots — never a silent fallback to plaintext."""
    if tls is None:
        return None
    return ClientTls(tls.ca_file, tls.cert_file, tls.key_file, tls.server_name)
