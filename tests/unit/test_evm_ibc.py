"""Two EVM chains, each with a QBFT client of the other, run IBC end to end: connection and
channel handshakes and an ICS-20 transfer with its ack, every proof an MPT storage proof
verified by the QBFT light client inside the receiving chain's IBC handler contract."""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.message import Message as ProtoMessage

from chains.evm import IBC_HANDLER_ADDRESS, Block, EvmChain, Message, make_tx
from chains.evm.ibc_contract import account_of
from chains.ibc.apps.bank import StoreBank
from chains.ibc.apps.transfer import PORT_ID, VERSION, escrow_account
from chains.ibc.events import Event
from chains.ibc.host import paths
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from lightclients.qbft import QbftClient, encode_header_message
from tests.unit.test_qbft_support import ADDRS, ISSUER, ISSUER_KEY, KEYS, NS, T0

CLIENT_TYPE = QbftClient.client_type
CLIENT_ID = f"{CLIENT_TYPE}-0"


class Side:
    """One chain plus its signer's nonce; both sides share one simulated clock."""

    def __init__(self, chain_id: int, clock: list[int]) -> None:
        self.clock = clock
        self.chain = EvmChain(chain_id, ADDRS[:4], T0, token_issuer=ISSUER,
                              clients={CLIENT_TYPE: QbftClient()})
        self.nonce = 0
        self.trusted = 0  # latest height of this chain's client of the other side

    def tick(self) -> int:
        self.clock[0] += 1
        return T0 + self.clock[0] * NS

    def tx(self, *msgs: ProtoMessage) -> Block:
        block = self.submit(*msgs)
        receipt = block.receipts[0]
        assert receipt.success, receipt.reason
        return block

    def submit(self, *msgs: ProtoMessage) -> Block:
        args = []
        for msg in msgs:
            packed = any_pb2.Any()
            packed.Pack(msg, type_url_prefix="/")
            args.append(packed.SerializeToString(deterministic=True))
        tx = make_tx(ISSUER_KEY, self.chain.chain_id, self.nonce, [Message(IBC_HANDLER_ADDRESS, "ibc", tuple(args))])
        self.nonce += 1
        return self.chain.produce_block([tx.encode()], self.tick(), KEYS[:4])

    def idle(self) -> None:
        self.chain.produce_block([], self.tick(), KEYS[:4])


def _h(height: int) -> client_pb2.Height:
    return client_pb2.Height(revision_number=0, revision_height=height)


def _update(dst: Side, src: Side) -> int:
    """Update dst's client of src to src's latest height; return it."""
    height = src.chain.height
    header = src.chain.light_client_header(height, dst.trusted)
    dst.tx(client_pb2.MsgUpdateClient(client_id=CLIENT_ID, client_message=encode_header_message(header)))
    dst.trusted = height
    return height


def _events(block: Block, name: str) -> list[Event]:
    return [Event(log.name, log.attributes) for r in block.receipts for log in r.logs if log.name == name]


def test_handshakes_and_ics20_transfer_between_two_qbft_chains() -> None:
    clock = [0]
    a, b = Side(1001, clock), Side(1002, clock)
    a.idle()
    b.idle()
    for dst, src in ((a, b), (b, a)):
        dst.tx(client_pb2.MsgCreateClient(
            client_type=CLIENT_TYPE,
            client_state=src.chain.qbft_client_state(1, 3600 * NS, 10 * NS),
            consensus_state=src.chain.qbft_consensus_state(1),
        ))
        dst.trusted = 1
    prefix = cpb.MerklePrefix(key_prefix=IBC_HANDLER_ADDRESS)
    conn = "connection-0"
    a.tx(cpb.MsgConnectionOpenInit(client_id=CLIENT_ID,
                                   counterparty=cpb.Counterparty(client_id=CLIENT_ID, prefix=prefix)))
    h = _update(b, a)
    end = cpb.ConnectionEnd.FromString(a.chain.ibc.store.get(paths.connection(conn)) or b"")
    b.tx(cpb.MsgConnectionOpenTry(
        client_id=CLIENT_ID,
        counterparty=cpb.Counterparty(client_id=CLIENT_ID, connection_id=conn, prefix=prefix),
        counterparty_versions=list(end.versions),
        proof_init=a.chain.ibc_proof(paths.connection(conn), h), proof_height=_h(h)))
    h = _update(a, b)
    a.tx(cpb.MsgConnectionOpenAck(connection_id=conn, counterparty_connection_id=conn, version=end.versions[0],
                                  proof_try=b.chain.ibc_proof(paths.connection(conn), h), proof_height=_h(h)))
    h = _update(b, a)
    b.tx(cpb.MsgConnectionOpenConfirm(connection_id=conn, proof_ack=a.chain.ibc_proof(paths.connection(conn), h),
                                      proof_height=_h(h)))

    chan = "channel-0"
    a.tx(chpb.MsgChannelOpenInit(port_id=PORT_ID, channel=chpb.Channel(
        state=chpb.STATE_INIT, ordering=chpb.ORDER_UNORDERED,
        counterparty=chpb.ChannelCounterparty(port_id=PORT_ID), connection_hops=[conn], version=VERSION)))
    h = _update(b, a)
    b.tx(chpb.MsgChannelOpenTry(
        port_id=PORT_ID,
        channel=chpb.Channel(state=chpb.STATE_TRYOPEN, ordering=chpb.ORDER_UNORDERED,
                             counterparty=chpb.ChannelCounterparty(port_id=PORT_ID, channel_id=chan),
                             connection_hops=[conn], version=""),
        counterparty_version=VERSION,
        proof_init=a.chain.ibc_proof(paths.channel(PORT_ID, chan), h), proof_height=_h(h)))
    h = _update(a, b)
    a.tx(chpb.MsgChannelOpenAck(port_id=PORT_ID, channel_id=chan, counterparty_channel_id=chan,
                                counterparty_version=VERSION,
                                proof_try=b.chain.ibc_proof(paths.channel(PORT_ID, chan), h), proof_height=_h(h)))
    h = _update(b, a)
    b.tx(chpb.MsgChannelOpenConfirm(port_id=PORT_ID, channel_id=chan,
                                    proof_ack=a.chain.ibc_proof(paths.channel(PORT_ID, chan), h),
                                    proof_height=_h(h)))

    # genesis-style allocation of a native denom on A, then an ICS-20 transfer A -> B
    sender = account_of(ISSUER)
    StoreBank(a.chain.ibc.store).mint(sender, "ujpy", 1000)
    block = a.tx(transfer_pb2.MsgTransfer(
        source_port=PORT_ID, source_channel=chan, denom="ujpy", amount="250", sender=sender,
        receiver=account_of(ADDRS[5]), timeout_timestamp=T0 + 3600 * NS))
    (sent,) = _events(block, "send_packet")
    packet = sent.packet()
    assert packet is not None
    h = _update(b, a)
    path = paths.packet_commitment(PORT_ID, chan, packet.sequence)
    forged = b.submit(chpb.MsgRecvPacket(packet=packet, proof_commitment=a.chain.ibc_proof(path, h - 1),
                                         proof_height=_h(h), signer="relayer"))
    assert not forged.receipts[0].success  # proof from the state before the packet was sent
    assert b.chain.ibc.store.get(paths.packet_receipt(PORT_ID, chan, packet.sequence)) is None
    block = b.tx(chpb.MsgRecvPacket(packet=packet, proof_commitment=a.chain.ibc_proof(path, h),
                                    proof_height=_h(h), signer="relayer"))
    (written,) = _events(block, "write_acknowledgement")
    ack = written.get("ack")
    assert ack is not None
    voucher = f"{PORT_ID}/{chan}/ujpy"
    assert StoreBank(b.chain.ibc.store).balance(account_of(ADDRS[5]), voucher) == 250
    assert StoreBank(a.chain.ibc.store).balance(escrow_account(PORT_ID, chan), "ujpy") == 250
    h = _update(a, b)
    ack_path = paths.packet_ack(PORT_ID, chan, packet.sequence)
    a.tx(chpb.MsgAcknowledgement(packet=packet, acknowledgement=ack,
                                 proof_acked=b.chain.ibc_proof(ack_path, h), proof_height=_h(h), signer="relayer"))
    assert a.chain.ibc.store.get(path) is None  # commitment deleted once acknowledged
    assert StoreBank(a.chain.ibc.store).balance(sender, "ujpy") == 750
