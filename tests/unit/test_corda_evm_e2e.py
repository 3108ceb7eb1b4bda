"""A Corda chain and an EVM/QBFT chain back to back, each with a real client of the other:
the corda client on the EVM chain and the qbft client on the Corda chain. Handshakes, a
transfer each way with acks, and a timeout each way, the EVM-side one proven by receipt
absence in the Corda chain's SMT."""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.message import Message as PbMessage

from chains.corda.ibc_host import IBC_CONTRACT, IbcHostContract, account_of, ibc_command
from chains.corda.notary import NotaryCluster
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import IBC_HANDLER_ADDRESS, EvmChain, Message, make_tx
from chains.evm.ibc_contract import account_of as evm_account
from chains.ibc.apps import transfer
from chains.ibc.apps.bank import StoreBank
from chains.ibc.context import to_proto
from chains.ibc.events import Event, EventLog
from chains.ibc.handler import IbcHandler
from chains.ibc.host import paths
from chains.store.smt import SparseMerkleTree
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from kakehashi.ibc.v1 import connection_pb2 as cpb
from kakehashi.qbft.v1 import lightclient_pb2 as qpb
from lightclients.corda.checkpoint import quorum
from lightclients.corda.client import (
    CordaLightClient,
    consensus_state_from_checkpoint,
    encode,
    header_message,
)
from lightclients.crypto import ed25519_public_key, sha256
from lightclients.interface import Height
from lightclients.qbft import QbftClient
from lightclients.qbft.client import encode_header_message
from tests.unit.test_qbft_support import ADDRS, CHAIN_ID, ISSUER, ISSUER_KEY, KEYS, NS, T0

CORDA_TYPE = CordaLightClient.client_type
QBFT_TYPE = QbftClient.client_type
RELAYER = sha256(b"relayer")
PORT = "transfer"
ALICE = account_of(ed25519_public_key(RELAYER))  # Corda party who signs the txs
BOB = evm_account(ISSUER)  # EVM account that signs the txs


class Corda:
    def __init__(self) -> None:
        store = SparseMerkleTree()
        self.events = EventLog()
        self.handler = IbcHandler(store, {QBFT_TYPE: QbftClient()}, b"ibc", self.events)
        transfer.install(self.handler)
        seeds = [sha256(f"corda-notary-{i}".encode()) for i in range(4)]
        self.c = NotaryCluster("corda-1", sha256(b"corda-notary"), seeds, {IBC_CONTRACT: IbcHostContract()},
                               ibc_store=store, ibc=self.handler)
        StoreBank(store).mint(ALICE, "jpy", 1000)
        self.salt = 0

    @property
    def height(self) -> int:
        return self.c.height

    def tx(self, now: int, *msgs: PbMessage) -> list[object]:
        self.salt += 1
        w = WireTransaction(inputs=(), outputs=(), notary=self.c.identity, privacy_salt=sha256(self.salt.to_bytes(8, "big")),
                            commands=tuple(ibc_command(m, [ed25519_public_key(RELAYER)]) for m in msgs))
        stx = SignedTransaction(w).sign(RELAYER)
        results = self.c.notarise(stx, [now] * 4).ibc_results
        self.c.checkpoint(now)
        return results

    def prove(self, path: bytes, height: int) -> bytes:
        signed = self.c.signed_checkpoint(height)
        assert signed is not None
        return self.c.ibc_store.at(signed.checkpoint.ibc_root).prove_bytes(path)

    def get(self, path: bytes) -> bytes:
        return self.c.ibc_store.get(path) or b""


class Evm:
    def __init__(self) -> None:
        self.chain = EvmChain(CHAIN_ID, ADDRS[:4], T0, token_issuer=ISSUER, clients={CORDA_TYPE: CordaLightClient()})
        self.nonce = 0
        self.events: list[Event] = []

    @property
    def height(self) -> int:
        return self.chain.height

    def tx(self, now: int, *msgs: PbMessage) -> list[Event]:
        args = []
        for m in msgs:
            packed = any_pb2.Any()
            packed.Pack(m, type_url_prefix="/")
            args.append(packed.SerializeToString(deterministic=True))
        raw = make_tx(ISSUER_KEY, CHAIN_ID, self.nonce, [Message(IBC_HANDLER_ADDRESS, "ibc", tuple(args))]).encode()
        self.nonce += 1
        block = self.chain.produce_block([raw], now, KEYS[:4])
        receipt = block.receipts[0]
        assert receipt.success, receipt.reason
        got = [Event(log.name, tuple(log.attributes)) for log in receipt.logs]
        self.events.extend(got)
        return got

    def idle(self, now: int) -> None:
        self.chain.produce_block([], now, KEYS[:4])

    def prove(self, path: bytes, height: int) -> bytes:
        return self.chain.ibc_proof(path, height)

    def get(self, path: bytes) -> bytes:
        return self.chain.ibc.store.get(path) or b""


class Link:
    """A relayer over a shared clock (whole seconds, as QBFT headers carry seconds)."""

    def __init__(self) -> None:
        self.now = T0
        self.corda, self.evm = Corda(), Evm()
        self.corda.c.checkpoint(self.tick())
        self.evm.idle(self.tick())
        self.trusted = {"corda": 0, "evm": 0}
        self.client = {"corda": "", "evm": ""}

    def tick(self, seconds: int = 1) -> int:
        self.now += seconds * NS
        return self.now

    def on_corda(self, *msgs: PbMessage) -> list[object]:
        return self.corda.tx(self.tick(), *msgs)

    def on_evm(self, *msgs: PbMessage) -> list[Event]:
        return self.evm.tx(self.tick(), *msgs)

    def create_clients(self) -> None:
        e = self.evm.chain
        h = e.height
        proof = e.prove(IBC_HANDLER_ADDRESS, [], h)
        qcs = qpb.ClientState(chain_id=CHAIN_ID, ibc_store_address=IBC_HANDLER_ADDRESS,
                              latest_height=client_pb2.Height(revision_number=0, revision_height=h),
                              trusting_period=3600 * NS, max_clock_drift=10 * NS)
        qcons = qpb.ConsensusState(timestamp=e.header(h).timestamp * NS, storage_root=proof.storage_root,
                                   validators=list(e.header(h).extra.validators))
        (cid,) = self.on_corda(client_pb2.MsgCreateClient(client_type=QBFT_TYPE, client_state=qcs.SerializeToString(deterministic=True),
                                                          consensus_state=qcons.SerializeToString(deterministic=True)))
        self.client["corda"], self.trusted["corda"] = str(cid), h
        g = self.corda.c.latest
        assert g is not None
        ccs = lc.ClientState(chain_id="corda-1", notary_keys=g.notary_set, threshold=quorum(4),
                             latest_height=g.checkpoint.height, trusting_period=3600 * NS, max_clock_drift=10 * NS)
        events = self.on_evm(client_pb2.MsgCreateClient(client_type=CORDA_TYPE, client_state=encode(ccs),
                                                        consensus_state=encode(consensus_state_from_checkpoint(g.checkpoint))))
        self.client["evm"], self.trusted["evm"] = events[0].text("client_id"), g.checkpoint.height

    def update_corda(self) -> Height:
        """Bring the Corda chain's qbft client to the EVM chain's latest block."""
        h = self.evm.height
        if h != self.trusted["corda"]:
            hdr = self.evm.chain.light_client_header(h, self.trusted["corda"])
            self.on_corda(client_pb2.MsgUpdateClient(client_id=self.client["corda"], client_message=encode_header_message(hdr)))
            self.trusted["corda"] = h
        return Height(0, h)

    def update_evm(self) -> Height:
        h = self.corda.height
        if h != self.trusted["evm"]:
            latest = self.corda.c.latest
            assert latest is not None
            hdr = latest.header(self.trusted["evm"])
            self.on_evm(client_pb2.MsgUpdateClient(client_id=self.client["evm"], client_message=header_message(hdr)))
            self.trusted["evm"] = h
        return Height(0, h)

    def open(self) -> tuple[str, str]:
        self.create_clients()
        corda_prefix = cpb.MerklePrefix(key_prefix=b"ibc")
        evm_prefix = cpb.MerklePrefix(key_prefix=IBC_HANDLER_ADDRESS)
        (cc,) = self.on_corda(cpb.MsgConnectionOpenInit(client_id=self.client["corda"], counterparty=cpb.Counterparty(
            client_id=self.client["evm"], prefix=evm_prefix)))
        h = self.update_evm()
        end = cpb.ConnectionEnd.FromString(self.corda.get(paths.connection(str(cc))))
        ev = self.on_evm(cpb.MsgConnectionOpenTry(
            client_id=self.client["evm"], counterparty=cpb.Counterparty(client_id=self.client["corda"], connection_id=str(cc),
                                                                       prefix=corda_prefix),
            counterparty_versions=list(end.versions), proof_init=self.corda.prove(paths.connection(str(cc)), h.revision_height),
            proof_height=to_proto(h)))
        ce = next(e.text("connection_id") for e in ev if e.type == "connection_open_try")
        h = self.update_corda()
        end = cpb.ConnectionEnd.FromString(self.evm.get(paths.connection(ce)))
        self.on_corda(cpb.MsgConnectionOpenAck(connection_id=str(cc), counterparty_connection_id=ce, version=end.versions[0],
                                               proof_try=self.evm.prove(paths.connection(ce), h.revision_height),
                                               proof_height=to_proto(h)))
        h = self.update_evm()
        self.on_evm(cpb.MsgConnectionOpenConfirm(connection_id=ce, proof_height=to_proto(h),
                                                 proof_ack=self.corda.prove(paths.connection(str(cc)), h.revision_height)))
        (chc,) = self.on_corda(chpb.MsgChannelOpenInit(port_id=PORT, channel=chpb.Channel(
            state=chpb.STATE_INIT, ordering=chpb.ORDER_UNORDERED, counterparty=chpb.ChannelCounterparty(port_id=PORT),
            connection_hops=[str(cc)], version=transfer.VERSION)))
        h = self.update_evm()
        ev = self.on_evm(chpb.MsgChannelOpenTry(port_id=PORT, channel=chpb.Channel(
            state=chpb.STATE_TRYOPEN, ordering=chpb.ORDER_UNORDERED,
            counterparty=chpb.ChannelCounterparty(port_id=PORT, channel_id=str(chc)), connection_hops=[ce], version=""),
            counterparty_version=transfer.VERSION, proof_height=to_proto(h),
            proof_init=self.corda.prove(paths.channel(PORT, str(chc)), h.revision_height)))
        che = next(e.text("channel_id") for e in ev if e.type == "channel_open_try")
        h = self.update_corda()
        self.on_corda(chpb.MsgChannelOpenAck(port_id=PORT, channel_id=str(chc), counterparty_channel_id=che,
                                             counterparty_version=transfer.VERSION, proof_height=to_proto(h),
                                             proof_try=self.evm.prove(paths.channel(PORT, che), h.revision_height)))
        h = self.update_evm()
        self.on_evm(chpb.MsgChannelOpenConfirm(port_id=PORT, channel_id=che, proof_height=to_proto(h),
                                               proof_ack=self.corda.prove(paths.channel(PORT, str(chc)), h.revision_height)))
        return str(chc), che


def _packet(events: list[Event]) -> chpb.Packet:
    packet = [e for e in events if e.type == "send_packet"][-1].packet()
    assert packet is not None
    return packet


def test_corda_and_evm_transfer_ack_and_timeouts_both_ways() -> None:
    link = Link()
    chc, che = link.open()
    corda, evm = link.corda, link.evm

    # Corda -> EVM: received on the EVM chain with an SMT proof checked by the corda client.
    link.on_corda(transfer_pb2.MsgTransfer(source_port=PORT, source_channel=chc, denom="jpy", amount="100",
                                           sender=ALICE, receiver=BOB, timeout_timestamp=link.now + 600 * NS))
    packet = _packet(corda.events.of_type("send_packet"))
    h = link.update_evm()
    commit = paths.packet_commitment(PORT, chc, packet.sequence)
    ev = link.on_evm(chpb.MsgRecvPacket(packet=packet, proof_commitment=corda.prove(commit, h.revision_height),
                                        proof_height=to_proto(h), signer="relayer"))
    ack = next(e.get("ack") for e in ev if e.type == "write_acknowledgement")
    assert ack is not None
    voucher = f"{PORT}/{che}/jpy"
    assert StoreBank(evm.chain.ibc.store).balance(BOB, voucher) == 100
    # ... and the ack proven back to Corda with an MPT proof checked by the qbft client.
    h = link.update_corda()
    link.on_corda(chpb.MsgAcknowledgement(packet=packet, acknowledgement=ack, proof_height=to_proto(h), signer="relayer",
                                          proof_acked=evm.prove(paths.packet_ack(PORT, che, packet.sequence), h.revision_height)))
    assert corda.get(commit) == b""

    # EVM -> Corda that Corda never receives: the EVM chain refunds on receipt absence in the
    # Corda chain's SMT at a checkpoint past the timeout (Corda as receiver, timeouts work).
    ev = link.on_evm(transfer_pb2.MsgTransfer(source_port=PORT, source_channel=che, denom=voucher, amount="40",
                                              sender=BOB, receiver=ALICE, timeout_timestamp=link.now + 5 * NS))
    late = _packet(ev)
    corda.c.checkpoint(link.tick(10))
    h = link.update_evm()
    receipt = paths.packet_receipt(PORT, chc, late.sequence)
    ev = link.on_evm(chpb.MsgTimeout(packet=late, next_sequence_recv=0, proof_height=to_proto(h), signer="relayer",
                                     proof_unreceived=corda.prove(receipt, h.revision_height)))
    assert any(e.type == "timeout_packet" for e in ev)
    assert StoreBank(evm.chain.ibc.store).balance(BOB, voucher) == 100

    # Corda -> EVM that the EVM chain never receives: Corda refunds on the EVM's absence proof.
    link.on_corda(transfer_pb2.MsgTransfer(source_port=PORT, source_channel=chc, denom="jpy", amount="30",
                                           sender=ALICE, receiver=BOB, timeout_timestamp=link.now + 5 * NS))
    lost = _packet(corda.events.of_type("send_packet"))
    evm.idle(link.tick(10))
    h = link.update_corda()
    link.on_corda(chpb.MsgTimeout(packet=lost, next_sequence_recv=0, proof_height=to_proto(h), signer="relayer",
                                  proof_unreceived=evm.prove(paths.packet_receipt(PORT, che, lost.sequence), h.revision_height)))
    assert StoreBank(corda.c.ibc_store).balance(ALICE, "jpy") == 900
