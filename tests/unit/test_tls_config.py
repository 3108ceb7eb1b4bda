"""TLS settings: the relayer config's tls tables are checked at load (errors name the key), and
the proxy service serves mutual TLS, refusing a client certificate of another CA."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chains.node.client import ClientTls
from relayer.config.schema import parse_config
from relayer.config.tables import ConfigError
from relayer.config.tlsfiles import client_tls
from relayer.ops.certs import Authority
from relayer.ops.mqtt import broker_access
from relayer.proxy.client import ProxyError, ProxyServiceClient
from relayer.proxy.home import ProxyHomeError, init_home, load_home
from relayer.proxy.service import ProxyCore, build_server
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ca = Authority(d / "ours")
    ca.ensure_ca()
    for name, server in (("proxy", True), ("relayer", False)):
        ca.ensure(name, server=server, client=not server)
    other = Authority(d / "theirs")
    other.ensure_ca("another CA")
    other.ensure("relayer", server=False, client=True)
    return d


def _doc(tls: dict[str, Any], where: str = "chain") -> dict[str, Any]:
    doc = tomllib.loads((ROOT / "config" / "relayer.example.toml").read_text())
    if where == "chain":
        doc["chains"][0]["tls"] = tls
    else:
        doc["mqtt"] = {"enabled": True, "tls": tls}
    return doc


def test_a_complete_tls_table_loads_with_paths_beside_the_config(pki: Path) -> None:
    cfg = parse_config(_doc({"ca_file": "ours/ca.pem", "cert_file": "ours/relayer.pem", "key_file": "ours/relayer.key",
                             "server_name": "node-1.example"}), pki)
    tls = cfg.chains[0].tls
    assert tls is not None and tls.ca_file == pki / "ours" / "ca.pem" and tls.server_name == "node-1.example"
    assert client_tls(tls) == ClientTls(pki / "ours" / "ca.pem", pki / "ours" / "relayer.pem",
                                        pki / "ours" / "relayer.key", "node-1.example")
    # a table without ca_file is still TLS (system roots), never plaintext
    cfg = parse_config(_doc({"server_name": "node-1.example"}), pki)
    assert client_tls(cfg.chains[0].tls) == ClientTls(server_name="node-1.example")
    assert client_tls(cfg.chains[1].tls) is None


@pytest.mark.parametrize(("tls", "named", "says"), [
    ({"ca_file": "ours/missing.pem"}, "chains[0].tls.ca_file", "cannot read"),
    ({"ca_file": "ours/ca.pem", "key_file": "ours/relayer.key"}, "chains[0].tls.key_file", "without cert_file"),
    ({"cert_file": "ours/relayer.pem"}, "chains[0].tls.cert_file", "without key_file"),
    ({"cert_file": "ours/relayer.key", "key_file": "ours/relayer.key"}, "chains[0].tls.cert_file", "no PEM certificate"),
    ({"cert_file": "ours/relayer.pem", "key_file": "ours/relayer.pem"}, "chains[0].tls.key_file", "no PEM private key"),
    ({"ca_file": ""}, "chains[0].tls.ca_file", "must not be empty"),
    ({"ca_file": "ours/ca.pem", "verify": False}, "chains[0].tls.verify", "unknown key"),
])
def test_a_bad_tls_table_is_refused_naming_the_key(pki: Path, tls: dict[str, Any], named: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_doc(tls), pki)
    assert str(err.value).startswith(named) and says in str(err.value), err.value


def test_mqtt_tls_and_credentials(pki: Path) -> None:
    (pki / "mqtt.password").write_text("s3cret\n")
    doc = _doc({"ca_file": "ours/ca.pem", "cert_file": "ours/relayer.pem", "key_file": "ours/relayer.key"}, "mqtt")
    doc["mqtt"].update(username="relayer", password_file="mqtt.password")
    access = broker_access(parse_config(doc, pki).mqtt)
    kw = access.client_kwargs()
    assert kw["username"] == "relayer" and kw["password"] == "s3cret"
    assert kw["tls_params"].ca_certs == str(pki / "ours" / "ca.pem")
    assert kw["tls_params"].certfile == str(pki / "ours" / "relayer.pem")
    for change, named in (({"password_file": "nope"}, "mqtt.password_file"), ({"username": None}, "mqtt.username")):
        bad = {**doc, "mqtt": {k: v for k, v in {**doc["mqtt"], **change}.items() if v is not None}}
        with pytest.raises(ConfigError, match=rf"^{named}"):
            parse_config(bad, pki)
    doc["mqtt"]["tls"]["server_name"] = "x"  # MQTT checks the host it dials; only gRPC takes a name
    with pytest.raises(ConfigError, match=r"^mqtt\.tls\.server_name: unknown key"):
        parse_config(doc, pki)


def test_a_proxy_table_takes_tls_too(pki: Path) -> None:
    doc = _doc({})
    del doc["chains"][0]["tls"]
    doc["chains"][0]["prover"] = "proxy"
    doc["chains"][0]["proxy"] = {"addr": "127.0.0.1:7000", "code_hash": "00" * 32, "authority": "0x" + "11" * 20,
                                 "operators": ["0x" + "22" * 20], "allow_simulated": True,
                                 "tls": {"ca_file": "ours/ca.pem", "key_file": "ours/relayer.key"}}
    with pytest.raises(ConfigError, match=r"^chains\[0\]\.proxy\.tls\.key_file: given without cert_file"):
        parse_config(doc, pki)
    doc["chains"][0]["proxy"]["tls"]["cert_file"] = "ours/relayer.pem"
    proxy = parse_config(doc, pki).chains[0].proxy
    assert proxy is not None and proxy.tls is not None and proxy.tls.cert_file == pki / "ours" / "relayer.pem"


def _tls_home(tmp_path: Path, pki: Path, table: str) -> Path:
    home = tmp_path / "proxy"
    init_home(home)
    with (home / "proxy.toml").open("a") as fh:
        fh.write(table)
    return home


def test_a_proxy_home_with_a_bad_tls_table_is_refused(tmp_path: Path, pki: Path) -> None:
    home = _tls_home(tmp_path, pki, f'[tls]\ncert_file = "{pki}/ours/proxy.pem"\n')
    with pytest.raises(ProxyHomeError, match=r"tls\.key_file: required"):
        load_home(home)
    (home / "proxy.toml").write_text((home / "proxy.toml").read_text() + f'key_file = "{pki}/ours/gone.key"\n')
    with pytest.raises(ProxyHomeError, match=r"tls\.key_file: cannot read .*gone\.key"):
        load_home(home)


@pytest.fixture
async def tls_proxy(tmp_path: Path, pki: Path) -> Iterator[str]:
    o = pki / "ours"
    home = _tls_home(tmp_path, pki, f'[tls]\ncert_file = "{o}/proxy.pem"\nkey_file = "{o}/proxy.key"\n'
                                    f'client_ca_file = "{o}/ca.pem"\n')
    core = ProxyCore(load_home(home))
    server, port = build_server(core, "127.0.0.1:0", core.home.tls)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        core.close()


async def test_the_proxy_serves_mutual_tls_and_refuses_another_cas_client(tls_proxy: str, pki: Path) -> None:
    ours, theirs = pki / "ours", pki / "theirs"
    good = ProxyServiceClient(tls_proxy, attempts=1, timeout_s=5,
                              tls=ClientTls(ours / "ca.pem", ours / "relayer.pem", ours / "relayer.key"))
    try:
        assert (await good.info()).code_hash
    finally:
        await good.close()
    for tls in (ClientTls(ours / "ca.pem", theirs / "relayer.pem", theirs / "relayer.key"), ClientTls(ours / "ca.pem"),
                None):
        bad = ProxyServiceClient(tls_proxy, attempts=1, timeout_s=5, tls=tls)
        try:
            with pytest.raises(ProxyError, match="UNAVAILABLE"):
                await bad.info()
        finally:
            await bad.close()
