"""The deployment CA (relayer/ops/certs.py): what it issues, where, and when it issues again."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from relayer.ops import certs
from relayer.ops.certs import Authority, CertError, load_cert, verify_signed_by


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    a = Authority(tmp_path / "tls")
    a.ensure_ca("test CA")
    return a


def _usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_server_certificates_name_loopback_and_are_signed_by_the_ca(ca: Authority) -> None:
    files = ca.ensure("node-evm", server=True, client=False)
    cert = load_cert(files.cert_file)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert _usages(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert verify_signed_by(files.cert_file, ca.ca_file)
    ca_cert = load_cert(ca.ca_file)
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc <= ca_cert.not_valid_after_utc


def test_client_certificates_are_for_clients_only(ca: Authority) -> None:
    cert = load_cert(ca.ensure("relayer", server=False, client=True).cert_file)
    assert _usages(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    with pytest.raises(CertError):
        ca.ensure("nobody", server=False, client=False)


def test_every_private_key_is_0600(ca: Authority) -> None:
    ca.ensure("node-evm", server=True, client=False, hosts=["127.0.0.1", "localhost", "node-1.example"])
    ca.ensure("relayer", server=False, client=True)
    keys = sorted(p.name for p in ca.dir.glob("*.key"))
    assert keys == ["ca.key", "node-evm.key", "relayer.key"]
    assert all((ca.dir / k).stat().st_mode & 0o777 == 0o600 for k in keys)
    assert not list(ca.dir.glob("*.tmp"))


def test_ensure_keeps_what_is_valid_and_reissues_what_is_not(ca: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ca.ensure("relayer", server=False, client=True)
    pem = first.cert_file.read_bytes()
    ca.ensure_ca()
    assert ca.ensure("relayer", server=False, client=True).cert_file.read_bytes() == pem  # kept
    # within RENEW_BEFORE of its end: issued again on the next ensure
    monkeypatch.setattr(certs, "_now", lambda: datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=340))
    assert ca.ensure("relayer", server=False, client=True).cert_file.read_bytes() != pem


def test_a_new_ca_reissues_the_leaves_under_it(tmp_path: Path) -> None:
    a = Authority(tmp_path / "a")
    a.ensure_ca()
    leaf = a.ensure("relayer", server=False, client=True)
    other = Authority(tmp_path / "b")
    other.ensure_ca()
    assert not verify_signed_by(leaf.cert_file, other.ca_file)
    # the CA was replaced (rotation): a leaf it did not sign is issued again
    for name in ("ca.pem", "ca.key"):
        (a.dir / name).write_bytes((other.dir / name).read_bytes())
    again = a.ensure("relayer", server=False, client=True)
    assert verify_signed_by(again.cert_file, a.ca_file)


def test_unreadable_material_is_a_cert_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(CertError, match=r"junk\.pem"):
        load_cert(tmp_path / "junk.pem")
    with pytest.raises(CertError, match=r"missing\.key"):
        certs.load_key(tmp_path / "missing.key")
    with pytest.raises(CertError, match="not a host name"):
        certs._san(["bad host"])
