"""Both unordered apps' channel handshakes refuse with their own words through the one shared class."""

from __future__ import annotations

from typing import Any, cast

import pytest

from chains.ibc.apps import dvp as dvp_app
from chains.ibc.apps.handshake import UnorderedAppHandshake
from chains.ibc.apps.transfer import TransferApp
from chains.ibc.context import Context
from chains.ibc.errors import AppError
from kakehashi.ibc.v1 import channel_pb2 as chpb

CTX = cast(Context, None)  # the handshake rules read only the messages' fields


def _refusal(call: Any, *args: Any) -> str:
    with pytest.raises(AppError) as err:
        call(CTX, *args)
    return str(err.value)


@pytest.mark.parametrize(("app", "port", "version", "close_why"), [
    (TransferApp(), "transfer", "ics20-1", "escrowed funds would strand"),
    (dvp_app.ChannelHandshake(), "dvp", dvp_app.VERSION, "it would fail every trade in flight"),
])
def test_an_app_handshake_accepts_its_channel_and_refuses_others_in_its_words(
    app: UnorderedAppHandshake, port: str, version: str, close_why: str,
) -> None:
    name = port
    peer = chpb.ChannelCounterparty(port_id=port, channel_id="channel-0")
    unordered = chpb.ORDER_UNORDERED
    assert app.on_chan_open_init(CTX, unordered, ["connection-0"], port, "channel-0", peer, "") == version
    assert app.on_chan_open_init(CTX, unordered, ["connection-0"], port, "channel-0", peer, version) == version
    assert app.on_chan_open_try(CTX, unordered, ["connection-0"], port, "channel-0", peer, version) == version
    app.on_chan_open_ack(CTX, port, "channel-0", "channel-1", version)
    app.on_chan_open_confirm(CTX, port, "channel-0")
    app.on_chan_close_confirm(CTX, port, "channel-0")

    assert _refusal(app.on_chan_open_init, chpb.ORDER_ORDERED, [], port, "channel-0", peer, version) == \
        f"{name} channels must be unordered"
    assert _refusal(app.on_chan_open_try, chpb.ORDER_ORDERED, [], port, "channel-0", peer, version) == \
        f"{name} channels must be unordered"
    assert _refusal(app.on_chan_open_init, unordered, [], port, "channel-0", peer, "v9") == \
        f"{name} version must be {version!r}, got 'v9'"
    assert _refusal(app.on_chan_open_try, unordered, [], port, "channel-0", peer, "") == \
        f"counterparty {name} version must be {version!r}, got ''"
    assert _refusal(app.on_chan_open_ack, port, "channel-0", "channel-1", "v9") == \
        f"counterparty {name} version must be {version!r}, got 'v9'"
    assert _refusal(app.on_chan_close_init, port, "channel-0") == \
        f"{name} channels cannot be closed by a user: {close_why}"


def test_only_dvp_ties_its_channels_to_its_port() -> None:
    other = chpb.ChannelCounterparty(port_id="transfer", channel_id="channel-0")
    assert TransferApp().on_chan_open_init(CTX, chpb.ORDER_UNORDERED, [], "any-port", "channel-0", other, "") \
        == "ics20-1"
    assert _refusal(dvp_app.ChannelHandshake().on_chan_open_try, chpb.ORDER_UNORDERED, [], "dvp", "channel-0",
                    other, dvp_app.VERSION) == "dvp channels join port 'dvp' on both ends"
