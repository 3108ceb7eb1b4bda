"""A small certificate authority for one deployment: a CA, and server/client certificates it signs.

Why our own CA rather than a public one: every hop here (relayer -> node, dvp client -> node,
relayer -> proxy, anyone -> MQTT broker) is between parties that know each other, and mutual
TLS means the server must decide which *clients* to accept. A private CA per deployment (or
per organisation) is what says "this client is one of ours"; a certificate signed by any
other CA is refused at the handshake.

Files are PEM; private keys are written 0600 and never overwritten in place (a new key is
written beside and renamed over), so a crash mid-issue leaves the old pair usable. Keys are
ECDSA P-256: every TLS stack in the path (gRPC's BoringSSL, mosquitto's OpenSSL, Python's
ssl) accepts them and they are cheap to generate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
CA_DAYS = 3650
LEAF_DAYS = 365
# A certificate this close to its end is issued again by `ensure_*` (rotation on the next `up`).
RENEW_BEFORE = datetime.timedelta(days=30)


class CertError(ValueError):
    """A certificate or key that cannot be read, or a request that cannot be issued."""


@dataclass(frozen=True)
class CertFiles:
    cert_file: Path
    key_file: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            if not h or any(c.isspace() for c in h):
                raise CertError(f"not a host name or IP address: {h!r}") from None
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write beside and rename over, so readers never see half a file and a crash keeps the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_pair(files: CertFiles, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    _write(files.key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), 0o600)
    _write(files.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except OSError as exc:
        raise CertError(f"cannot read certificate {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CertError(f"{path}: not a PEM certificate ({exc})") from None


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise CertError(f"cannot read private key {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise CertError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertError(f"{path}: expected an EC private key, got {type(key).__name__}")
    return key


def new_ca(common_name: str, days: int = CA_DAYS) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, common_name: str, *,
          server: bool, client: bool, hosts: Iterable[str] = DEFAULT_HOSTS,
          days: int = LEAF_DAYS) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate signed by the CA. ``server`` certificates carry the hosts as SANs
    (what a client checks the address it dialled against); ``client`` ones are what a server
    with mutual TLS accepts. One certificate may be both (a proxy that also dials out)."""
    if not (server or client):
        raise CertError("a certificate must be for a server, a client or both")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(_san(hosts), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _fresh(path: Path) -> bool:
    """The certificate exists, parses and is not within RENEW_BEFORE of its end."""
    try:
        cert = load_cert(path)
    except CertError:
        return False
    return cert.not_valid_after_utc - _now() > RENEW_BEFORE


class Authority:
    """A CA kept in a directory (``ca.pem``, ``ca.key``) and the leaf pairs it issued there
    (``NAME.pem``, ``NAME.key``). ``ensure_*`` is idempotent: what exists and is not about to
    expire is kept, so running it on every start rotates only what needs rotating."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.dir / "ca.key"

    def files(self, name: str) -> CertFiles:
        return CertFiles(self.dir / f"{name}.pem", self.dir / f"{name}.key")

    def ensure_ca(self, common_name: str = "kakehashi testnet CA") -> None:
        if self.ca_key_file.exists() and _fresh(self.ca_file):
            load_key(self.ca_key_file)  # fails loudly on a damaged key rather than at the first issue
            return
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert, key = new_ca(common_name)
        _write_pair(CertFiles(self.ca_file, self.ca_key_file), cert, key)

    def ensure(self, name: str, *, server: bool, client: bool, hosts: Iterable[str] = DEFAULT_HOSTS) -> CertFiles:
        """The pair for ``name``, issued now if missing, expiring, or not signed by this CA
        (a CA that was itself rotated re-issues everything under it)."""
        files = self.files(name)
        ca_cert = load_cert(self.ca_file)
        if files.key_file.exists() and _fresh(files.cert_file) and \
                load_cert(files.cert_file).issuer == ca_cert.subject and verify_signed_by(files.cert_file, self.ca_file):
            return files
        cert, key = issue(ca_cert, load_key(self.ca_key_file), name, server=server, client=client, hosts=hosts)
        _write_pair(files, cert, key)
        return files


def verify_signed_by(cert_file: Path, ca_file: Path) -> bool:
    """Whether ``cert_file`` carries a valid signature of the CA in ``ca_file``."""
    cert, ca = load_cert(cert_file), load_cert(ca_file)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
