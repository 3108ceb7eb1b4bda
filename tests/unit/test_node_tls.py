"""Node gRPC over TLS: server certificate, and mutual TLS when a client CA is configured."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chains.node.client import ClientTls, NodeClient, NodeError, RetryPolicy
from chains.node.db import NodeDatabase
from chains.node.runtime import NodeRuntime
from chains.node.service import TlsFiles, build_server
from tests.unit.kvapp import KvApp


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _issue(tmp: Path, name: str, ca_key: ec.EllipticCurvePrivateKey | None, ca_name: x509.Name | None,
           server: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Name]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ca_key is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    elif server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(ca_key or key, hashes.SHA256())
    (tmp / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(tmp / f"{name}.key", key)
    return key, subject


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    ca_key, ca_name = _issue(tmp_path, "ca", None, None, server=False)
    _issue(tmp_path, "node", ca_key, ca_name, server=True)
    _issue(tmp_path, "relayer", ca_key, ca_name, server=False)
    return tmp_path


async def _serve(pki: Path, tmp_path: Path, mutual: bool) -> tuple[object, int, NodeDatabase]:
    db = NodeDatabase(tmp_path / "n.db")
    rt = NodeRuntime(KvApp(db), db)
    rt.produce_once()
    tls = TlsFiles(pki / "node.pem", pki / "node.key", pki / "ca.pem" if mutual else None)
    server, port = build_server(rt, "127.0.0.1:0", tls)
    await server.start()
    return server, port, db


async def test_server_tls(pki: Path, tmp_path: Path) -> None:
    server, port, db = await _serve(pki, tmp_path, mutual=False)
    try:
        async with NodeClient(f"127.0.0.1:{port}", tls=ClientTls(pki / "ca.pem")) as client:
            assert (await client.status()).chain_id == "kv-1"
        # a plaintext client cannot talk to a TLS node
        async with NodeClient(f"127.0.0.1:{port}", retry=RetryPolicy(attempts=1, timeout_s=2)) as plain:
            with pytest.raises(NodeError):
                await plain.status()
    finally:
        await server.stop(None)  # type: ignore[attr-defined]
        db.close()


async def test_mutual_tls_requires_a_client_certificate(pki: Path, tmp_path: Path) -> None:
    server, port, db = await _serve(pki, tmp_path, mutual=True)
    try:
        tls = ClientTls(pki / "ca.pem", pki / "relayer.pem", pki / "relayer.key")
        async with NodeClient(f"127.0.0.1:{port}", tls=tls) as client:
            assert (await client.status()).chain_id == "kv-1"
        anonymous = ClientTls(pki / "ca.pem")
        async with NodeClient(f"127.0.0.1:{port}", tls=anonymous, retry=RetryPolicy(attempts=1, timeout_s=2)) as c:
            with pytest.raises(NodeError):
                await c.status()
    finally:
        await server.stop(None)  # type: ignore[attr-defined]
        db.close()
