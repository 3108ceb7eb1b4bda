"""The hub's small parts: [[paths]] in the relayer config, the trade's st_chain, the record's
st_chain column, the path label on metrics and the router's refusal of an unknown ST chain."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from relayer.config.schema import parse_config
from relayer.config.tables import ConfigError
from relayer.dvp.record import TradeRecord
from relayer.dvp.router import DvpRouter, Route
from relayer.dvp.trade import TradeError, parse_trade
from relayer.ops.mqtt import MqttPublisher
from relayer.ops.telemetry import Telemetry


def _chain(cid: str, kind: str) -> dict[str, Any]:
    return {"id": cid, "kind": kind, "grpc_addr": "127.0.0.1:4000", "key_name": "k"}


HUB = [_chain("evm-1", "evm"), _chain("corda-1", "corda"), _chain("evm-2", "evm")]


def test_paths_default_to_every_evm_corda_pair_and_to_the_pair_of_a_two_chain_config() -> None:
    cfg = parse_config({"chains": HUB})
    assert [(p.name, p.a_chain, p.b_chain) for p in cfg.paths] == [
        ("evm-1:corda-1", "evm-1", "corda-1"), ("evm-2:corda-1", "evm-2", "corda-1")]
    two = parse_config({"chains": HUB[:2]})
    assert [(p.a_chain, p.b_chain) for p in two.paths] == [("evm-1", "corda-1")]


def test_explicit_paths_with_a_filter_and_start_path_selection() -> None:
    cfg = parse_config({"chains": HUB, "paths": [
        {"name": "one", "a_chain": "evm-1", "b_chain": "corda-1",
         "packet_filter": {"policy": "allow", "list": [["dvp", "channel-1"]]}},
        {"a_chain": "evm-2", "b_chain": "corda-1"}]})
    one, two = cfg.paths
    assert (one.name, two.name) == ("one", "evm-2:corda-1")
    # matched on the a_chain end whichever end asks
    assert one.permits("evm-1", "dvp", "channel-1", "dvp", "channel-7")
    assert one.permits("corda-1", "dvp", "channel-7", "dvp", "channel-1")
    assert not one.permits("evm-1", "transfer", "channel-0", "transfer", "channel-0")
    assert two.permits("evm-2", "transfer", "channel-0", "transfer", "channel-2")
    assert [p.name for p in cfg.only_paths(["evm-2:corda-1"]).paths] == ["evm-2:corda-1"]
    with pytest.raises(ConfigError, match="no path named 'nope'"):
        cfg.only_paths(["nope"])


@pytest.mark.parametrize(("paths", "error"), [
    ([{"a_chain": "evm-9", "b_chain": "corda-1"}], r"paths\[0\].a_chain: no \[\[chains\]\] entry with id 'evm-9'"),
    ([{"a_chain": "evm-1", "b_chain": "evm-1"}], r"paths\[0\].b_chain: a path joins two different chains"),
    ([{"a_chain": "evm-1", "b_chain": "corda-1"}, {"a_chain": "evm-1", "b_chain": "corda-1"}],
     r"paths\[1\].name: duplicate path name"),
    ([{"a_chain": "evm-1", "b_chain": "corda-1", "name": "a/b"}], r"paths\[0\].name: expected"),
    ([{"a_chain": "evm-1", "b_chain": "corda-1", "typo": 1}], r"paths\[0\]"),
    ([], r"paths: give at least one"),
])
def test_bad_paths_are_errors_naming_the_key(paths: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        parse_config({"chains": HUB, "paths": paths})


def _trade(**extra: Any) -> dict[str, Any]:
    return {"trade_id": "T-1", "st_quantity": 1, "sc_amount": 10, "deadline_s": 60,
            "seller": {"evm": "0x" + "11" * 20, "corda": "aa" * 32},
            "buyer": {"evm": "0x" + "22" * 20, "corda": "bb" * 32}, **extra}


def test_a_trade_names_its_st_chain_or_none() -> None:
    assert parse_trade(_trade()).st_chain is None
    t = parse_trade(_trade(st_chain="evm-2"))
    assert t.st_chain == "evm-2" and t.to_json()["st_chain"] == "evm-2"
    for bad in ("", "evm/2", 2):
        with pytest.raises(TradeError, match=r"^st_chain: "):
            parse_trade(_trade(st_chain=bad))


def test_the_router_refuses_an_unknown_or_missing_st_chain_before_anything_else() -> None:
    routes = [Route("evm-1", "evm-1:corda-1", "a:1"), Route("evm-2", "evm-2:corda-1", "a:2")]
    router = DvpRouter({"evm-1": object(), "evm-2": object()}, routes, None)  # type: ignore[dict-item]
    assert router.route_reasons(parse_trade(_trade(st_chain="evm-2"))) == []
    assert router.route_reasons(parse_trade(_trade(st_chain="evm-9"))) == [
        "st_chain: 'evm-9' is not an ST chain of this client (known: evm-1, evm-2)"]
    assert router.route_reasons(parse_trade(_trade()))[0].startswith("st_chain: missing")
    single = DvpRouter({"evm-1": object()}, routes[:1], None)  # type: ignore[dict-item]
    assert single.route_reasons(parse_trade(_trade())) == []  # old trade files: the only ST chain


def test_a_record_written_before_st_chain_gains_the_column_and_scoped_views_fill_it(tmp_path: Path) -> None:
    path = tmp_path / "dvp.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE trades (trade_id TEXT PRIMARY KEY, terms BLOB, timeout_ns INTEGER, channel TEXT, "
               "state TEXT NOT NULL, evm_status TEXT NOT NULL DEFAULT 'none', corda_status TEXT NOT NULL DEFAULT "
               "'none', sequence INTEGER, evm_lock_tx TEXT, corda_lock_tx TEXT, corda_exit_tx TEXT, error TEXT, "
               "published TEXT NOT NULL DEFAULT '[]', created_s REAL NOT NULL, locked_s REAL, final_s REAL, "
               "updated_s REAL NOT NULL)")
    db.execute("INSERT INTO trades (trade_id, state, created_s, updated_s) VALUES ('old', 'settled', 1, 1)")
    db.commit()
    db.close()
    rec = TradeRecord(path)
    try:
        assert rec.get("old") is not None and rec.get("old").st_chain is None  # type: ignore[union-attr]
        rec.scoped(st_chain="evm-2").create("new", "locking")
        assert rec.get("new").st_chain == "evm-2"  # type: ignore[union-attr]
        assert rec.get("new").to_json()["st_chain"] == "evm-2"  # type: ignore[union-attr]
    finally:
        rec.close()


def test_path_labelled_metrics_share_one_registry() -> None:
    tel = Telemetry(path_label=True)
    tel.for_path("p1").packets_confirmed.labels(src_chain="a", dst_chain="b", kind="recv").inc()
    tel.for_path("p2").settlement_latency.observe(1.5)
    r = tel.registry
    assert r.get_sample_value("kakehashi_packets_confirmed_total",
                              {"path": "p1", "src_chain": "a", "dst_chain": "b", "kind": "recv"}) == 1
    assert r.get_sample_value("kakehashi_settlement_latency_seconds_count", {"path": "p2"}) == 1
    plain = Telemetry()
    assert plain.for_path("p1") is plain  # without the label, one view


def test_a_path_publisher_puts_the_path_in_the_topic_and_the_payload() -> None:
    pub = MqttPublisher("127.0.0.1", 1, prefix="kk")
    pub.on_path("evm-2:corda-1").publish("corda-1", "dvp", "channel-3", "send", {"sequence": 1})
    pub.publish("evm-1", "transfer", "channel-0", "send", {})
    (topic, body), (plain, _) = list(pub._queue)
    assert topic == "kk/evm-2:corda-1/corda-1/dvp/channel-3/send" and b'"path": "evm-2:corda-1"' in body
    assert plain == "kk/evm-1/transfer/channel-0/send"
    with pytest.raises(ValueError):
        pub.publish("c", "p", "ch", "e", {}, path="a/b")
