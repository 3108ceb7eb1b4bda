"""The proxy service at its I/O edge: a real gRPC server on 127.0.0.1 over a real proxy home
(sealed key files, SQLite), driven through the relayer's own client."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from chains.ibc.host import paths
from kakehashi.proxy.v1 import service_pb2 as spb
from lightclients.interface import Height
from lightclients.proxy.messages import parse_membership, parse_update
from relayer.proxy.client import ProxyError, ProxyServiceClient
from relayer.proxy.home import ProxyHomeError, init_home, load_home
from relayer.proxy.measure import code_hash
from relayer.proxy.service import ProxyCore, build_server
from tests.support.evmhost import EvmHost
from tests.support.host import SECOND, START_NS

TP = 3600 * SECOND


class Clock:
    """The chain's simulated time, as the proxy's clock (the enclave's untrusted 'now')."""

    def __init__(self, chain: EvmHost) -> None:
        self.chain = chain

    def __call__(self) -> int:
        return self.chain.now_ns


async def _serving(core: ProxyCore) -> AsyncIterator[ProxyServiceClient]:
    server, port = build_server(core, "127.0.0.1:0")
    await server.start()
    client = ProxyServiceClient(f"127.0.0.1:{port}", attempts=1)
    try:
        yield client
    finally:
        await client.close()
        await server.stop(0)


def test_code_hash_covers_the_light_client_bundle(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "lightclients" / "qbft").mkdir(parents=True)
    (root / "kakehashi" / "proxy" / "v1").mkdir(parents=True)
    (root / "lightclients" / "qbft" / "client.py").write_text("x = 1\n")
    (root / "kakehashi" / "proxy" / "v1" / "proxy_pb2.py").write_text("y = 1\n")
    (root / "lightclients" / "notes.txt").write_text("not code\n")
    before = code_hash(root)
    (root / "lightclients" / "notes.txt").write_text("still not code\n")
    assert code_hash(root) == before
    (root / "lightclients" / "qbft" / "client.py").write_text("x = 2\n")
    assert code_hash(root) != before
    assert len(code_hash()) == 32


def test_home_files_are_private_and_init_refuses_an_existing_home(tmp_path: Path) -> None:
    home = init_home(tmp_path / "p")
    for name in ("platform.secret", "operator.key", "authority.key"):
        assert (home.path / name).stat().st_mode & 0o077 == 0
    assert home.listen.startswith("127.0.0.1:") and not home.listen.endswith(":0")
    assert load_home(home.path) == home
    with pytest.raises(ValueError, match="already holds a proxy"):
        init_home(tmp_path / "p")
    (home.path / "proxy.toml").write_text('listen = "127.0.0.1:1"\nextra = 1\n')
    with pytest.raises(ValueError, match="unknown key"):
        load_home(home.path)


def test_bad_proxy_toml_is_a_home_error_not_a_traceback(tmp_path: Path) -> None:
    home = init_home(tmp_path / "p")
    cfg = home.path / "proxy.toml"
    for text, why in (("listen = ", "not valid TOML"), ("x = " + "[" * 5000 + "]" * 5000, "nest too deeply")):
        cfg.write_text(text)
        with pytest.raises(ProxyHomeError, match=why):  # tomllib's RecursionError escaped before
            load_home(home.path)


def test_service_end_to_end_over_grpc_and_restart_from_sealed_keys(tmp_path: Path) -> None:
    chain = EvmHost("chain-b", 1002, START_NS, 5 * SECOND)
    home = init_home(tmp_path / "proxy")
    path = paths.packet_commitment("transfer", "channel-0", 1)

    async def first_run() -> tuple[bytes, int]:
        core = ProxyCore(home, code_hash=b"\x42" * 32, clock=Clock(chain))
        async for px in _serving(core):
            info = await px.info()
            assert info.simulated and info.keys == [] and bytes(info.operator) == home.operator
            key = await px.new_enclave_key()
            assert (home.sealed_dir / f"{bytes(key.address).hex()}.sealed").exists()
            made = await px.create_client("chain-b", "10-qbft", chain.client_state(TP, 30 * SECOND),
                                          chain.consensus_state())
            start = Height(made.height.revision_number, made.height.revision_height)
            chain.store.set(path, b"\x11" * 32)
            chain.idle()
            # a proof at a height the hosted client does not hold yet is refused, nothing stored
            with pytest.raises(ProxyError) as info_err:
                await px.verify_membership("chain-b", chain.height, chain.prefix, path, b"\x11" * 32,
                                           chain.prove(path, chain.height), [bytes(key.address)])
            assert info_err.value.code == grpc.StatusCode.FAILED_PRECONDITION
            q = await px.query_client("chain-b", chain.height)
            assert not q.has_height and (q.trusted_below.revision_height == start.revision_height)
            up = await px.update_client("chain-b", chain.header(chain.height, start), [bytes(key.address)])
            assert parse_update(up.signed.message).post_height.revision_height == chain.height.revision_height
            assert len(up.registrations) == 1
            vm = await px.verify_membership("chain-b", chain.height, chain.prefix, path, b"\x11" * 32,
                                            chain.prove(path, chain.height), [bytes(key.address)])
            assert parse_membership(vm.signed.message).path == path
            # two consecutive signed updates collapse into one from the first's trusted state
            mid = chain.height
            chain.idle()
            up2 = await px.update_client("chain-b", chain.header(chain.height, mid), [bytes(key.address)])
            merged = await px.aggregate([up.signed, up2.signed], [bytes(key.address)])
            got = parse_update(merged.signed.message)
            assert (got.prev_height.revision_height, got.post_height.revision_height) == \
                (start.revision_height, chain.height.revision_height)
            with pytest.raises(ProxyError, match="does not continue"):
                await px.aggregate([up2.signed, up.signed], [bytes(key.address)])
            # malformed input: INVALID_ARGUMENT; unknown hosted client: NOT_FOUND
            with pytest.raises(ProxyError) as bad:
                await px.create_client("../etc", "10-qbft", b"", b"")
            assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(ProxyError) as missing:
                await px.query_client("no-such-chain", chain.height)
            assert missing.value.code == grpc.StatusCode.NOT_FOUND
            garbled = px._channel.unary_unary("/kakehashi.proxy.v1.Proxy/UpdateClient")
            with pytest.raises(grpc.aio.AioRpcError) as bad_bytes:
                await garbled(b"\xff\xff\xff")
            assert bad_bytes.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        core.close()
        return bytes(key.address), chain.height.revision_height

    asyncio.run(first_run())

    async def second_run(address: bytes) -> None:
        # a new process on the same home: the key comes back from its sealed file, the hosted
        # client from SQLite, and it keeps signing where it stopped
        core = ProxyCore(home, code_hash=b"\x42" * 32, clock=Clock(chain))
        async for px in _serving(core):
            info = await px.info()
            assert [bytes(k.address) for k in info.keys] == [address]
            assert [c.elc_client_id for c in info.clients] == ["chain-b"]
            start = info.clients[0].latest_height
            chain.idle()
            await px.update_client("chain-b", chain.header(chain.height, Height(start.revision_number,
                                                                                start.revision_height)), [address])
        core.close()
        # other enclave code cannot unseal it
        other = ProxyCore(home, code_hash=b"\x43" * 32, clock=Clock(chain))
        assert other.enclave.attested_keys() == [] and len(other.unusable) == 1
        other.close()

    keys = sorted(home.sealed_dir.glob("*.sealed"))
    assert len(keys) == 1
    asyncio.run(second_run(bytes.fromhex(keys[0].stem)))


def test_refused_header_changes_no_hosted_client(tmp_path: Path) -> None:
    chain = EvmHost("chain-b", 1002, START_NS, 5 * SECOND)
    home = init_home(tmp_path / "proxy")
    core = ProxyCore(home, code_hash=b"\x42" * 32, clock=Clock(chain))
    core.create_client(spb.CreateClientRequest(elc_client_id="chain-b", client_type="10-qbft",
                                               client_state=chain.client_state(TP, 30 * SECOND),
                                               consensus_state=chain.consensus_state()))
    before = list(core.store.db.execute("SELECT client, key, value FROM kv ORDER BY key"))
    impostor = EvmHost("chain-b", 1002, START_NS, 5 * SECOND, key_label="impostor")
    impostor.idle(2)
    from relayer.proxy.service import Refused

    with pytest.raises(Refused, match="rejected the header"):
        core.update_client(spb.UpdateClientRequest(elc_client_id="chain-b",
                                                   client_message=impostor.header(impostor.height, Height(1, 1))))
    assert list(core.store.db.execute("SELECT client, key, value FROM kv ORDER BY key")) == before
    # reusing an active hosted client with the same parameters; other parameters replace it
    again = core.create_client(spb.CreateClientRequest(elc_client_id="chain-b", client_type="10-qbft",
                                                       client_state=chain.client_state(TP, 30 * SECOND),
                                                       consensus_state=chain.consensus_state()))
    assert again.reused
    other = core.create_client(spb.CreateClientRequest(elc_client_id="chain-b", client_type="10-qbft",
                                                       client_state=chain.client_state(2 * TP, 30 * SECOND),
                                                       consensus_state=chain.consensus_state()))
    assert not other.reused and other.trusting_period == 2 * TP
    core.close()
    assert os.path.exists(home.db_path)
