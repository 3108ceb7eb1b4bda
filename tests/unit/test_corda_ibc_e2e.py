"""Two Corda chains, each running the IBC core inside notarised transactions and each holding the
corda light client of the other: handshakes, a transfer with its ack, and a packet timeout
proven by receipt absence on the Corda receiver. Every proof is a real SMT proof checked by
lightclients/corda against a notary-signed checkpoint."""

from __future__ import annotations

from google.protobuf.message import Message

from chains.corda.cash import ADMISSION, CASH, AdmissionContract, CashContract
from chains.corda.contracts import Contract
from chains.corda.ibc_host import IBC_CONTRACT, IbcHostContract, account_of, ibc_command
from chains.corda.notary import NotaryCluster
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.ibc.apps import transfer
from chains.ibc.apps.bank import StoreBank
from chains.ibc.context import to_proto
from chains.ibc.events import EventLog
from chains.ibc.handler import IbcHandler
from chains.ibc.host import paths
from chains.store.smt import SparseMerkleTree
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from lightclients.corda.checkpoint import quorum
from lightclients.corda.client import (
    CordaLightClient,
    consensus_state_from_checkpoint,
    encode,
    header_message,
)
from lightclients.crypto import ed25519_public_key, sha256
from lightclients.interface import Height

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
HOST_TYPE = CordaLightClient.client_type
RELAYER = sha256(b"relayer")
ALICE = account_of(ed25519_public_key(RELAYER))
CONTRACTS: dict[str, Contract] = {CASH: CashContract(), ADMISSION: AdmissionContract(), IBC_CONTRACT: IbcHostContract()}


class Clock:
    """One wall clock both chains read, as real chains share real time."""

    def __init__(self) -> None:
        self.ns = T0


class CordaChain:
    def __init__(self, name: str, clock: Clock) -> None:
        self.clock = clock
        store = SparseMerkleTree()
        self.events = EventLog()
        self.handler = IbcHandler(store, {HOST_TYPE: CordaLightClient()}, b"ibc", self.events)
        transfer.install(self.handler)
        seeds = [sha256(f"{name}-notary-{i}".encode()) for i in range(4)]
        self.c = NotaryCluster(name, sha256(name.encode()), seeds, CONTRACTS, ibc_store=store, ibc=self.handler)
        StoreBank(store).mint(ALICE, "jpy", 1000)
        clock.ns += SEC
        self.c.checkpoint(clock.ns)
        self.salt = 0

    @property
    def now(self) -> int:
        return self.clock.ns

    @property
    def height(self) -> int:
        return self.c.height

    def tx(self, *msgs: Message) -> list[object]:
        """One notarised tx per checkpoint, as a block per tx."""
        self.clock.ns += 5 * SEC
        self.salt += 1
        w = WireTransaction(inputs=(), outputs=(), notary=self.c.identity,
                            commands=tuple(ibc_command(m, [ed25519_public_key(RELAYER)]) for m in msgs),
                            privacy_salt=sha256(self.c.chain_id.encode() + self.salt.to_bytes(8, "big")))
        stx = SignedTransaction(w).sign(RELAYER)
        results = self.c.notarise(stx, [self.now] * 4).ibc_results
        self.c.checkpoint(self.now)
        return results

    def idle(self, seconds: int) -> None:
        self.clock.ns += seconds * SEC
        self.c.checkpoint(self.now)

    def prove(self, path: bytes, height: int) -> bytes:
        signed = self.c.signed_checkpoint(height)
        assert signed is not None
        root = signed.checkpoint.ibc_root
        return self.c.ibc_store.at(root).prove_bytes(path)

    def get(self, path: bytes) -> bytes:
        return self.c.ibc_store.get(path) or b""

    def create_client_msg(self) -> client_pb2.MsgCreateClient:
        g = self.c.latest
        assert g is not None
        cs = lc.ClientState(chain_id=self.c.chain_id, notary_keys=g.notary_set, threshold=quorum(4),
                            latest_height=g.checkpoint.height, trusting_period=3600 * SEC, max_clock_drift=10 * SEC)
        return client_pb2.MsgCreateClient(client_type=HOST_TYPE, client_state=encode(cs),
                                          consensus_state=encode(consensus_state_from_checkpoint(g.checkpoint)))


class Relayer:
    def __init__(self, a: CordaChain, b: CordaChain) -> None:
        self.a, self.b = a, b
        self.client: dict[int, str] = {}
        self.trusted: dict[int, int] = {}
        self.conn: dict[int, str] = {}

    def other(self, x: CordaChain) -> CordaChain:
        return self.b if x is self.a else self.a

    def create_clients(self) -> None:
        for dst in (self.a, self.b):
            src = self.other(dst)
            msg = src.create_client_msg()
            (cid,) = dst.tx(msg)
            self.client[id(dst)] = str(cid)
            self.trusted[id(dst)] = src.height

    def update(self, dst: CordaChain) -> Height:
        src = self.other(dst)
        if src.height != self.trusted[id(dst)]:
            latest = src.c.latest
            assert latest is not None
            header = latest.header(self.trusted[id(dst)])
            dst.tx(client_pb2.MsgUpdateClient(client_id=self.client[id(dst)], client_message=header_message(header)))
            self.trusted[id(dst)] = src.height
        return Height(0, src.height)

    def open(self) -> tuple[str, str]:
        self.create_clients()
        a, b = self.a, self.b
        (ca,) = a.tx(cpb.MsgConnectionOpenInit(client_id=self.client[id(a)], counterparty=cpb.Counterparty(
            client_id=self.client[id(b)], prefix=cpb.MerklePrefix(key_prefix=b"ibc"))))
        h = self.update(b)
        end = cpb.ConnectionEnd.FromString(a.get(paths.connection(str(ca))))
        (cb,) = b.tx(cpb.MsgConnectionOpenTry(
            client_id=self.client[id(b)],
            counterparty=cpb.Counterparty(client_id=self.client[id(a)], connection_id=str(ca),
                                          prefix=cpb.MerklePrefix(key_prefix=b"ibc")),
            counterparty_versions=list(end.versions), proof_init=a.prove(paths.connection(str(ca)), h.revision_height),
            proof_height=to_proto(h)))
        h = self.update(a)
        end = cpb.ConnectionEnd.FromString(b.get(paths.connection(str(cb))))
        a.tx(cpb.MsgConnectionOpenAck(connection_id=str(ca), counterparty_connection_id=str(cb), version=end.versions[0],
                                      proof_try=b.prove(paths.connection(str(cb)), h.revision_height),
                                      proof_height=to_proto(h)))
        h = self.update(b)
        b.tx(cpb.MsgConnectionOpenConfirm(connection_id=str(cb),
                                          proof_ack=a.prove(paths.connection(str(ca)), h.revision_height),
                                          proof_height=to_proto(h)))
        port = "transfer"
        (cha,) = a.tx(chpb.MsgChannelOpenInit(port_id=port, channel=chpb.Channel(
            state=chpb.STATE_INIT, ordering=chpb.ORDER_UNORDERED, counterparty=chpb.ChannelCounterparty(port_id=port),
            connection_hops=[str(ca)], version=transfer.VERSION)))
        h = self.update(b)
        (chb,) = b.tx(chpb.MsgChannelOpenTry(port_id=port, channel=chpb.Channel(
            state=chpb.STATE_TRYOPEN, ordering=chpb.ORDER_UNORDERED,
            counterparty=chpb.ChannelCounterparty(port_id=port, channel_id=str(cha)),
            connection_hops=[str(cb)], version=""), counterparty_version=transfer.VERSION,
            proof_init=a.prove(paths.channel(port, str(cha)), h.revision_height), proof_height=to_proto(h)))
        h = self.update(a)
        a.tx(chpb.MsgChannelOpenAck(port_id=port, channel_id=str(cha), counterparty_channel_id=str(chb),
                                    counterparty_version=transfer.VERSION,
                                    proof_try=b.prove(paths.channel(port, str(chb)), h.revision_height),
                                    proof_height=to_proto(h)))
        h = self.update(b)
        b.tx(chpb.MsgChannelOpenConfirm(port_id=port, channel_id=str(chb),
                                        proof_ack=a.prove(paths.channel(port, str(cha)), h.revision_height),
                                        proof_height=to_proto(h)))
        return str(cha), str(chb)


def _sent(chain: CordaChain) -> chpb.Packet:
    packet = chain.events.of_type("send_packet")[-1].packet()
    assert packet is not None
    return packet


def test_transfer_ack_and_receive_timeout_between_two_corda_chains() -> None:
    clock = Clock()
    a, b = CordaChain("corda-a", clock), CordaChain("corda-b", clock)
    r = Relayer(a, b)
    cha, chb = r.open()
    channel = chpb.Channel.FromString(b.get(paths.channel("transfer", chb)))
    assert channel.state == chpb.STATE_OPEN

    # A -> B transfer, received with a membership proof, acked back with one.
    a.tx(transfer_pb2.MsgTransfer(source_port="transfer", source_channel=cha, denom="jpy", amount="100",
                                  sender=ALICE, receiver="bob", timeout_timestamp=b.now + 3600 * SEC))
    packet = _sent(a)
    h = r.update(b)
    path = paths.packet_commitment("transfer", cha, packet.sequence)
    b.tx(chpb.MsgRecvPacket(packet=packet, proof_commitment=a.prove(path, h.revision_height),
                            proof_height=to_proto(h), signer="relayer"))
    voucher = f"transfer/{chb}/jpy"
    assert StoreBank(b.c.ibc_store).balance("bob", voucher) == 100
    ack = b.events.of_type("write_acknowledgement")[-1].get("ack")
    assert ack is not None
    h = r.update(a)
    a.tx(chpb.MsgAcknowledgement(packet=packet, acknowledgement=ack, proof_height=to_proto(h), signer="relayer",
                                 proof_acked=b.prove(paths.packet_ack("transfer", chb, packet.sequence), h.revision_height)))
    assert a.get(path) == b""

    # A -> B transfer that B never receives: after B's checkpoints pass the timeout, A refunds
    # on a receipt-absence proof from B's SMT.
    a.tx(transfer_pb2.MsgTransfer(source_port="transfer", source_channel=cha, denom="jpy", amount="30",
                                  sender=ALICE, receiver="bob", timeout_timestamp=b.now + 20 * SEC))
    late = _sent(a)
    b.idle(30)
    h = r.update(a)
    receipt = paths.packet_receipt("transfer", chb, late.sequence)
    a.tx(chpb.MsgTimeout(packet=late, next_sequence_recv=0, proof_unreceived=b.prove(receipt, h.revision_height),
                         proof_height=to_proto(h), signer="relayer"))
    assert StoreBank(a.c.ibc_store).balance(ALICE, "jpy") == 900
    assert a.events.of_type("timeout_packet")
