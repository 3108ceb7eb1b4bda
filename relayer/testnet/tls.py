"""`kakehashi testnet up --tls`: one CA for the testnet, a certificate per process, TLS on every hop.

Layout (``HOME/tls``, keys 0600)::

    ca.pem, ca.key            the testnet's CA (stands in for each organisation's CA)
    node-KIND.pem/.key        each node's server certificate (mutual TLS: it requires a client cert)
    proxy.pem/.key            the proxy service's server certificate (mutual TLS too)
    broker.pem/.key           mosquitto's server certificate (mutual TLS + username/password)
    relayer.pem/.key          the client certificate of the relayer and of `kakehashi dvp`
    backoffice.pem/.key       the client certificate of a back office reading events, sending trades

Why one client certificate for the relayer and the dvp client: on the testnet both read the
same ``relayer.toml`` (the dvp CLI takes its node addresses and TLS from it). docs/DEPLOYMENT.md
gives each host its own certificate. Certificates are re-issued by ``up`` when missing or
within a month of expiry, so a long-lived testnet rotates them on its next ``up``.

TLS is a property of the testnet, fixed by the ``up`` that first asked for it (the CA's
presence says so): a later ``up`` without ``--tls`` keeps it on, never silently drops it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from relayer.ops.certs import Authority, CertFiles

TLS_DIR = "tls"
CLIENT = "relayer"
BACKOFFICE = "backoffice"


@dataclass(frozen=True)
class NetPki:
    ca_file: Path
    nodes: dict[str, CertFiles]  # by node kind
    proxy: CertFiles
    broker: CertFiles
    client: CertFiles
    backoffice: CertFiles


def tls_dir(root: Path) -> Path:
    return Path(root).resolve() / TLS_DIR


def tls_enabled(root: Path, wanted: bool = False) -> bool:
    return wanted or (tls_dir(root) / "ca.pem").exists()


def ensure_pki(root: Path, node_kinds: list[str]) -> NetPki:
    """Issue (or keep) the CA and every certificate the testnet's processes use."""
    ca = Authority(tls_dir(root))
    ca.ensure_ca()
    nodes = {kind: ca.ensure(f"node-{kind}", server=True, client=False) for kind in node_kinds}
    return NetPki(
        ca.ca_file,
        nodes,
        proxy=ca.ensure("proxy", server=True, client=False),
        broker=ca.ensure("broker", server=True, client=False),
        client=ca.ensure(CLIENT, server=False, client=True),
        backoffice=ca.ensure(BACKOFFICE, server=False, client=True),
    )


def _q(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _has(toml_file: Path, *keys: str) -> bool:
    doc: object = tomllib.loads(toml_file.read_text())
    for k in keys:
        if not isinstance(doc, dict) or k not in doc:
            return False
        doc = doc[k]
    return True


def configure_node(home: Path, pki: NetPki, kind: str) -> None:
    """Add ``[grpc.tls]`` (mutual TLS against the testnet's CA) to a node's config, once."""
    cfg = home / "node.toml"
    if _has(cfg, "grpc", "tls"):
        return
    files = pki.nodes[kind]
    with cfg.open("a") as fh:
        fh.write(f"\n# Added by `kakehashi testnet up --tls`: clients need a certificate of the testnet's CA.\n"
                 f"[grpc.tls]\ncert_file = {_q(files.cert_file)}\nkey_file = {_q(files.key_file)}\n"
                 f"client_ca_file = {_q(pki.ca_file)}\n")


def configure_proxy(home: Path, pki: NetPki) -> None:
    """Add ``[tls]`` (mutual TLS) to the proxy's ``proxy.toml``, once."""
    cfg = home / "proxy.toml"
    if _has(cfg, "tls"):
        return
    with cfg.open("a") as fh:
        fh.write(f"\n[tls]\ncert_file = {_q(pki.proxy.cert_file)}\nkey_file = {_q(pki.proxy.key_file)}\n"
                 f"client_ca_file = {_q(pki.ca_file)}\n")


def _client_table(header: str, pki: NetPki, files: CertFiles) -> str:
    return (f"[{header}]\nca_file = {_q(pki.ca_file)}\ncert_file = {_q(files.cert_file)}\n"
            f"key_file = {_q(files.key_file)}\n")


def chain_tls(pki: NetPki, proxy: bool) -> str:
    """Relayer-config lines for one [[chains]] entry: TLS to its node (and to the proxy).
    Goes after any ``prover``/``[chains.proxy]`` lines: TOML tables come after plain keys."""
    return (_client_table("chains.proxy.tls", pki, pki.client) if proxy else "") + \
        _client_table("chains.tls", pki, pki.client)


def mqtt_tls(pki: NetPki, username: str, password_file: Path) -> str:
    """Relayer-config lines inside [mqtt]: credentials, then the [mqtt.tls] table."""
    return f"username = \"{username}\"\npassword_file = {_q(password_file)}\n" + \
        _client_table("mqtt.tls", pki, pki.client)
