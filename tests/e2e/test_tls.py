"""TLS on every hop, end to end: ``kakehashi testnet up --tls`` and a DvP trade through it.

One TLS testnet for the module: two real nodes requiring client certificates of the testnet's
CA, the real relayer daemon, a real mosquitto with TLS, client certificates, passwords and
per-topic ACLs. A back office (its own certificate and password) sends a matched trade on the
broker; ``kakehashi dvp feed`` (the DvP client: TLS to the broker and to both nodes) settles it
while the relayer (TLS to both nodes and to the broker) carries the packets; every event
arrives over TLS. Clients holding a certificate of another CA are refused by a node and by
the broker — with the very same common name, so it is the signature that is checked.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from chains.node.client import ClientTls, NodeClient, NodeError, RetryPolicy
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from relayer.ops.certs import Authority
from relayer.ops.mqtt import BrokerAccess

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent / "kakehashi"


def kh(*args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"kakehashi {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("tlsnet")
    try:
        up = json.loads(kh("testnet", "up", "--tls", "--home", str(home), "--json").stdout)
        yield {"home": home, **up}
    finally:
        kh("testnet", "down", "--home", str(home), check=False)


def _key(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip())


def _trade(home: Path, trade_id: str) -> dict[str, Any]:
    def evm(name: str) -> str:
        return "0x" + eth_address(secp256k1_public_key(_key(home / "evm" / "keys" / f"{name}.key"))).hex()

    def party(name: str) -> str:
        return ed25519_public_key(_key(home / "corda" / "keys" / f"holder-{name}.key")).hex()

    return {"trade_id": trade_id, "st_quantity": 5, "sc_amount": 500,
            "seller": {"evm": evm("alice"), "corda": party("firm-a")},
            "buyer": {"evm": evm("bob"), "corda": party("firm-b")}, "deadline_s": 120}


def _access(home: Path, user: str, cert: str, password: str | None = None) -> BrokerAccess:
    tls = home / "tls"
    pw_file = home / "relayer" / "mqtt.password" if user == "relayer" else home / "broker" / f"{user}.password"
    return BrokerAccess(True, tls / "ca.pem", tls / f"{cert}.pem", tls / f"{cert}.key", user,
                        password if password is not None else pw_file.read_text().strip())


def _broker(net: dict[str, Any]) -> tuple[str, int]:
    host, _, port = net["broker"]["address"].rpartition(":")
    return host, int(port)


def test_every_process_is_configured_for_mutual_tls(net: dict[str, Any]) -> None:
    home = net["home"]
    assert net["tls"] is True
    for kind in ("evm", "corda"):
        grpc_tls = tomllib.loads((home / kind / "node.toml").read_text())["grpc"]["tls"]
        assert grpc_tls["client_ca_file"] == str(home / "tls" / "ca.pem")
    cfg = tomllib.loads((home / "relayer" / "relayer.toml").read_text())
    assert all(c["tls"]["cert_file"] == str(home / "tls" / "relayer.pem") for c in cfg["chains"])
    assert cfg["mqtt"]["enabled"] and cfg["mqtt"]["username"] == "relayer" and "tls" in cfg["mqtt"]
    for key in (home / "tls").glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    assert (home / "broker" / "passwd").stat().st_mode & 0o777 == 0o600


async def test_dvp_flow_over_tls_on_every_hop(net: dict[str, Any], tmp_path: Path) -> None:
    home = net["home"]
    dvp = next(ch for ch in net["channels"] if ch["a_port"] == "dvp")
    cfg = str(home / "relayer" / "relayer.toml")
    host, port = _broker(net)
    events: list[tuple[str, dict[str, Any]]] = []
    back_office = _access(home, "backoffice", "backoffice")
    async with aiomqtt.Client(host, port, identifier="back-office", **back_office.client_kwargs()) as mq:
        await mq.subscribe("kakehashi/#", qos=1)
        feed = subprocess.Popen(
            [str(BIN), "dvp", "feed", "--mqtt", "trades/tls", "--count", "1", "--json", "-c", cfg,
             "--channel", dvp["b_channel"], "--db", str(tmp_path / "feed.sqlite"),
             "--key", str(home / "evm" / "keys"), "--key", str(home / "corda" / "keys")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert feed.stderr is not None
            ready = await asyncio.wait_for(asyncio.to_thread(feed.stderr.readline), 90)
            assert b"subscribed to trades/tls" in ready, ready + feed.stderr.read()
            await mq.publish("trades/tls", json.dumps(_trade(home, "T-tls")).encode(), qos=1)

            async def collect() -> None:
                async for msg in mq.messages:
                    assert isinstance(msg.payload, bytes)
                    events.append((str(msg.topic), json.loads(msg.payload)))
                    if str(msg.topic) == "kakehashi/dvp/T-tls/settled":
                        return

            await asyncio.wait_for(collect(), 150)
            out, err = await asyncio.to_thread(feed.communicate, timeout=120)
        finally:
            if feed.poll() is None:
                feed.kill()
                feed.wait(10)
    assert feed.returncode == 0, err.decode()[-3000:]
    assert json.loads(out)["outcomes"] == {"settled": 1}
    topics = [t for t, _ in events]
    # the dvp client's settlement events, and the relayer's packet events, both came over TLS
    assert [t for t in topics if t.startswith("kakehashi/dvp/")] == \
        [f"kakehashi/dvp/T-tls/{e}" for e in ("locked", "delivered", "settled")]
    assert any(t.split("/")[1] in ("evm-1", "corda-1") for t in topics), topics
    status = json.loads(kh("dvp", "status", "T-tls", "-c", cfg, "--channel", dvp["b_channel"], "--db",
                           str(tmp_path / "feed.sqlite"), "--json").stdout)
    assert status["state"] == "settled" and status["evm"]["status"] == "delivered", status


@pytest.fixture(scope="module")
def intruder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A client pair from another CA, under the very name the testnet's client has."""
    ca = Authority(tmp_path_factory.mktemp("other-ca"))
    ca.ensure_ca("some other CA")
    files = ca.ensure("relayer", server=False, client=True)
    return files.cert_file.parent


async def test_a_node_refuses_a_client_certificate_of_another_ca(net: dict[str, Any], intruder: Path) -> None:
    home = net["home"]
    tls = home / "tls"
    addr = next(n["address"] for n in net["nodes"] if n["kind"] == "evm")
    once = RetryPolicy(attempts=1, timeout_s=5)
    async with NodeClient(addr, tls=ClientTls(tls / "ca.pem", tls / "relayer.pem", tls / "relayer.key"),
                          retry=once) as ours:
        assert (await ours.status()).chain_id == "evm-1"  # the same call, our certificate: served
    for client_tls in (ClientTls(tls / "ca.pem", intruder / "relayer.pem", intruder / "relayer.key"),
                       ClientTls(tls / "ca.pem")):  # another CA's certificate; no certificate at all
        async with NodeClient(addr, tls=client_tls, retry=once) as theirs:
            with pytest.raises(NodeError) as refused:
                await theirs.status()
            assert refused.value.code.name == "UNAVAILABLE"
    async with NodeClient(addr, retry=once) as plaintext:
        with pytest.raises(NodeError):
            await plaintext.status()


async def test_the_broker_refuses_another_cas_certificate_and_a_wrong_password(net: dict[str, Any],
                                                                                  intruder: Path) -> None:
    home = net["home"]
    host, port = _broker(net)
    good = _access(home, "relayer", "relayer")
    async with aiomqtt.Client(host, port, identifier="good", timeout=10, **good.client_kwargs()):
        pass
    other_ca = BrokerAccess(True, home / "tls" / "ca.pem", intruder / "relayer.pem", intruder / "relayer.key",
                            good.username, good.password)
    wrong_password = _access(home, "relayer", "relayer", password="not-the-password")
    for bad in (other_ca, wrong_password):
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(host, port, identifier="intruder", timeout=10, **bad.client_kwargs()):
                pass
    # and `dvp feed` says which broker refused it, in one line, without a traceback
    bad_cfg = home / "relayer" / "bad-mqtt.toml"
    text = (home / "relayer" / "relayer.toml").read_text()
    bad_cfg.write_text(text.replace(str(home / "relayer" / "mqtt.password"), str(home / "wrong.password")))
    (home / "wrong.password").write_text("not-the-password\n")
    try:
        out = kh("dvp", "feed", "--mqtt", "trades/x", "--count", "1", "-c", str(bad_cfg), "--channel", "channel-1",
                 "--db", str(home / "x.sqlite"), check=False, timeout=60)
        assert out.returncode == 1 and f"MQTT broker {host}:{port}: cannot connect" in out.stderr, out
        assert "Traceback" not in out.stderr
    finally:
        os.unlink(bad_cfg)
