"""Requirements only real hosts and clients can meet, so this group has no test-only twin:
headers must be signed by the tracked chain's own validators/notaries, and app messages are
authenticated by the host (EVM: the tx's signing address; Corda: a signer of the IBC
command) -- the test-only client trusts any root and the test-only host has no signers."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from chains.ibc.errors import ClientFailure, InvalidMessage, TxFailed
from chains.ibc.host import paths
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from tests.conformance.test_ics20_transfer import SUPPLY, _setup, _users
from tests.support.basehost import ChainHost
from tests.support.cordahost import CordaHost
from tests.support.evmhost import EvmHost
from tests.support.host import SECOND, START_NS
from tests.support.pair import HostPair
from tests.support.proxyhost import ProxiedHost


def test_transfer_may_only_spend_the_signers_account(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    """ICS-20 leaves sender authentication to the host: a tx may not spend another's funds."""
    ca, _ = _setup(pair)
    alice, bob = _users(pair)
    pair.a.bank().mint("mallory-victim", "stake", 10)
    pair.a.idle()
    msg = transfer_pb2.MsgTransfer(source_port="transfer", source_channel=ca, denom="stake", amount="10",
                                   sender="mallory-victim", receiver=bob, timeout_timestamp=pair.b.now_ns + SECOND * 600)
    rejected(pair.a, msg, InvalidMessage, "sender")
    assert pair.a.bank().balance("mallory-victim", "stake") == 10
    msg.sender = alice
    pair.a.tx(msg)
    assert pair.a.bank().balance(alice, "stake") == SUPPLY - 10



def _impostor(host: ChainHost) -> ChainHost:
    """The same chain id and kind as ``host``, run by validators/notaries it never had."""
    if isinstance(host, ProxiedHost):
        fake = ProxiedHost(_impostor(host.inner))
        fake.client_state(3600 * SECOND, 3600 * SECOND)
        return cast(ChainHost, fake)
    if isinstance(host, EvmHost):
        return EvmHost(host.chain_id, host.chain.chain_id, START_NS, host.block_ns, key_label="impostor")
    assert isinstance(host, CordaHost)
    return CordaHost(host.chain_id, START_NS, host.block_ns, key_label="impostor")


def test_update_needs_a_header_signed_by_the_tracked_chain(pair: HostPair, rejected: Callable[..., TxFailed]) -> None:
    pair.create_clients()
    a, b = pair.a, pair.b
    cid = pair.client["chain-a"]
    fake = _impostor(b)
    fake.idle(b.height.revision_height - fake.height.revision_height + 1)
    b.idle()
    assert fake.height == b.height
    trusted = pair.trusted_for(a, b.height)
    rejected(a, client_pb2.MsgUpdateClient(client_id=cid, client_message=fake.header(fake.height, trusted)),
             ClientFailure)
    assert a.store.get(paths.consensus_state(cid, b.height)) is None
    pair.update(a)  # the genuine header of that height is accepted
    assert a.store.get(paths.consensus_state(cid, b.height)) is not None
