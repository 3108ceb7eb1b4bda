"""Trade files: valid ones resolve to the exact Terms both legs carry; bad ones name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chains.ibc.apps import dvp as dvp_app
from relayer.dvp.trade import SEC_NS, TradeError, load_trade, parse_trade, resolve

ST = bytes(range(20))
ISSUER = bytes(range(32, 64))
NOW = 1_800_000_000 * SEC_NS


def doc(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "trade_id": "T-1", "st_quantity": 10, "sc_amount": 2500,
        "seller": {"evm": "0x" + "11" * 20, "corda": "aa" * 32},
        "buyer": {"evm": "0x" + "22" * 20, "corda": "bb" * 32},
        "deadline_s": 600, "timeout_s": 300,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_relative_times_resolve_on_the_evm_clock_and_defaults_fill_in() -> None:
    rt = resolve(parse_trade(doc()), evm_now_ns=NOW, security_token=ST, cash_issuer=ISSUER, channel="channel-3")
    t = rt.terms
    assert (t.trade_id, t.st_quantity, t.sc_amount) == ("T-1", 10, 2500)
    assert (bytes(t.security_token), bytes(t.cash_issuer)) == (ST, ISSUER)
    assert bytes(t.seller_evm) == b"\x11" * 20 and bytes(t.buyer_corda) == b"\xbb" * 32
    assert t.deadline_ns == NOW + 600 * SEC_NS and rt.timeout_ns == NOW + 300 * SEC_NS
    assert rt.channel == "channel-3"
    dvp_app.validate_terms(t)
    assert dvp_app.decode_terms(dvp_app.encode_terms(t)) == t


def test_absolute_times_explicit_token_issuer_channel_and_no_timeout() -> None:
    trade = parse_trade(doc(deadline_s=None, timeout_s=None, deadline_ns=NOW + 5, security_token="0x" + "33" * 20,
                            cash_issuer="cc" * 32, channel="channel-0"))
    rt = resolve(trade, evm_now_ns=NOW, security_token=ST, cash_issuer=ISSUER, channel="channel-9")
    assert rt.terms.deadline_ns == NOW + 5 and rt.timeout_ns == NOW + 5  # times out at the deadline
    assert bytes(rt.terms.security_token) == b"\x33" * 20 and bytes(rt.terms.cash_issuer) == b"\xcc" * 32
    assert rt.channel == "channel-0"
    assert parse_trade(trade.to_json()) == trade


@pytest.mark.parametrize(("over", "field"), [
    ({"trade_id": "bad id"}, "trade_id"),
    ({"trade_id": "x" * 65}, "trade_id"),
    ({"st_quantity": 0}, "st_quantity"),
    ({"st_quantity": "10"}, "st_quantity"),
    ({"st_quantity": True}, "st_quantity"),
    ({"sc_amount": 2**64}, "sc_amount"),
    ({"sc_amount": -1}, "sc_amount"),
    ({"seller": {"evm": "0x" + "11" * 19, "corda": "aa" * 32}}, "seller.evm"),
    ({"seller": "alice"}, "seller"),
    ({"buyer": {"evm": "0x" + "22" * 20, "corda": "bb" * 31}}, "buyer.corda"),
    ({"buyer": {"evm": "0x" + "22" * 20, "corda": "bb" * 32, "name": "Bob"}}, "buyer.name"),
    ({"buyer": {"evm": "0x" + "11" * 20, "corda": "bb" * 32}}, "buyer.evm"),
    ({"buyer": {"evm": "0x" + "22" * 20, "corda": "aa" * 32}}, "buyer.corda"),
    ({"deadline_s": None}, "deadline_s"),
    ({"deadline_ns": 5}, "deadline_s"),
    ({"timeout_s": 601}, "timeout_s"),
    ({"deadline_s": None, "deadline_ns": 100, "timeout_s": None, "timeout_ns": 101}, "timeout_ns"),
    ({"security_token": "ST"}, "security_token"),
    ({"cash_issuer": "0x12"}, "cash_issuer"),
    ({"channel": "chan 1"}, "channel"),
    ({"buyer_name": "Bob"}, "buyer_name"),
])
def test_bad_fields_are_named(over: dict[str, Any], field: str) -> None:
    with pytest.raises(TradeError) as err:
        parse_trade(doc(**over))
    assert err.value.field == field
    assert str(err.value).startswith(field + ":")


def test_not_an_object_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TradeError, match=r"^trade: expected a JSON object"):
        parse_trade([1, 2])
    with pytest.raises(TradeError, match="cannot read"):
        load_trade(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TradeError, match="is not JSON"):
        load_trade(tmp_path / "bad.json")
    (tmp_path / "ok.json").write_text(json.dumps(doc()))
    assert load_trade(tmp_path / "ok.json").trade_id == "T-1"


def test_resolution_needs_a_channel_and_uint64_times() -> None:
    with pytest.raises(TradeError, match=r"^channel:"):
        resolve(parse_trade(doc()), evm_now_ns=NOW, security_token=ST, cash_issuer=ISSUER, channel=None)
    with pytest.raises(TradeError, match=r"^deadline:"):
        resolve(parse_trade(doc(deadline_s=2**63, timeout_s=1)), evm_now_ns=NOW, security_token=ST,
                cash_issuer=ISSUER, channel="channel-0")
    with pytest.raises(TradeError, match=r"^trade:"):
        resolve(parse_trade(doc()), evm_now_ns=NOW, security_token=ST[:19], cash_issuer=ISSUER, channel="channel-0")
