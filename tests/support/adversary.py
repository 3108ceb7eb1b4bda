"""The attacker's view of a live network: two real nodes over gRPC, no relayer daemon running.

Why no daemon: an attack is judged by what the chains do with one crafted tx, so nothing else
may move state between the "before" and "after" reads. The honest steps an attack needs first
(a client update, a delivered packet, a locked trade) are made here by hand from the same
chain-level encoders the relayer and the DvP client use, and every value and proof comes from
the nodes' own gRPC answers, never from in-process state.

Everything is synchronous (grpc's blocking stubs): the suite shares one network per session,
and blocking calls keep fixtures free of event-loop scope. Processes are started through
``tests/support/live.py`` and stopped by PID.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message

from chains.corda.cash import DVP_ESCROW_OWNER, brand_key
from chains.corda.dvp import exit_parts, lock_transaction
from chains.corda.ibc_host import account_of as corda_account
from chains.corda.ibc_host import ibc_command
from chains.corda.transaction import SignedTransaction, WireTransaction
from chains.evm import IBC_HANDLER_ADDRESS, make_tx
from chains.evm import Message as EvmCall
from chains.evm.dvp import DVP_ESCROW_ADDRESS
from chains.ibc.apps import dvp as dvp_app
from chains.ibc.context import to_proto
from chains.ibc.host import paths
from kakehashi.corda.v1 import ledger_pb2 as lpb
from kakehashi.corda.v1 import lightclient_pb2 as lc
from kakehashi.dvp.v1 import dvp_pb2
from kakehashi.ibc.v1 import channel_pb2 as chpb
from kakehashi.ibc.v1 import client_pb2, transfer_pb2
from kakehashi.node.v1 import node_pb2, node_pb2_grpc
from kakehashi.qbft.v1 import lightclient_pb2 as qpb
from lightclients.corda.client import header_message
from lightclients.crypto import ed25519_public_key, eth_address, secp256k1_public_key
from lightclients.interface import Height
from lightclients.mpt import verify_account_proof
from lightclients.qbft.client import encode_header_message
from lightclients.qbft.header import decode_header
from relayer.codecs.corda import fresh_salt
from tests.support import live

SEC = 1_000_000_000
EVM_ID, CORDA_ID = "evm-adv", "corda-adv"
RELAYER_EVM, RELAYER_CORDA = "carol", "holder-firm-c"


def pack(msg: Message) -> bytes:
    wrapped = any_pb2.Any()
    wrapped.Pack(msg, type_url_prefix="/")
    return wrapped.SerializeToString(deterministic=True)


class Node:
    """One node through its gRPC service, as any remote party reaches it."""

    def __init__(self, proc: live.NodeProc) -> None:
        self.proc = proc
        self.kind = proc.kind
        self.chain_id = proc.chain_id
        self.channel = grpc.insecure_channel(proc.addr)
        self.stub = node_pb2_grpc.NodeStub(self.channel)
        self._info: dict[str, Any] | None = None

    def close(self) -> None:
        self.channel.close()

    # --- reads ---------------------------------------------------------------------------

    def status(self) -> node_pb2.StatusResponse:
        return self.stub.Status(node_pb2.StatusRequest(), timeout=15)

    def height(self) -> int:
        return int(self.status().latest_height)

    def wait_height(self, height: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while self.height() < height:
            assert time.monotonic() < deadline, f"{self.chain_id} did not reach height {height}"
            time.sleep(0.05)

    def time_ns(self) -> int:
        return int(self.status().latest_time_ns)

    def header(self, height: int = 0) -> node_pb2.HeaderResponse:
        return self.stub.GetHeader(node_pb2.GetHeaderRequest(height=height), timeout=15)

    def ibc(self, path: bytes | str, height: int = 0, prove: bool = True) -> node_pb2.QueryIbcResponse:
        text = path.decode() if isinstance(path, bytes) else path
        return self.stub.QueryIbc(node_pb2.QueryIbcRequest(path=text, height=height, prove=prove), timeout=15)

    def value(self, path: bytes | str, height: int = 0) -> bytes | None:
        res = self.ibc(path, height, prove=False)
        return bytes(res.value) if res.found else None

    def app(self, query: str, height: int = 0, **args: Any) -> Any:
        res = self.stub.QueryApp(node_pb2.QueryAppRequest(query=query, args_json=json.dumps(args), height=height),
                                 timeout=15)
        return json.loads(res.result_json)

    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = dict(self.app("chain_info"))
        return self._info

    def ibc_root(self, height: int = 0) -> bytes:
        """The root this chain's IBC state commits to: what the counterparty's client proves
        against. Any write to IBC state (clients, channels, commitments, receipts, acks,
        bank balances and escrows) changes it; nothing else does."""
        got = self.header(height)
        if self.kind == "corda":
            return bytes(lc.Header.FromString(got.client_header).checkpoint.ibc_root)
        header = qpb.Header.FromString(got.client_header)
        account = verify_account_proof(decode_header(header.header_rlp).state_root, IBC_HANDLER_ADDRESS,
                                       list(header.account_proof))
        assert account is not None
        return bytes(account.storage_root)

    # --- writes --------------------------------------------------------------------------

    def submit(self, tx: bytes, wait_s: float = 30) -> node_pb2.TxResult:
        """SubmitTxAndWait; an admission refusal raises grpc.RpcError with its status."""
        return self.stub.SubmitTxAndWait(node_pb2.SubmitTxAndWaitRequest(tx=tx, timeout_ms=int(wait_s * 1000)),
                                         timeout=wait_s + 15)

    def refusal(self, tx: bytes) -> grpc.RpcError:
        """The admission refusal of ``tx`` (fails the test if the node admits it)."""
        try:
            self.stub.SubmitTx(node_pb2.SubmitTxRequest(tx=tx), timeout=15)
        except grpc.RpcError as exc:
            return exc
        raise AssertionError("the node admitted the transaction")


# --- signers ---------------------------------------------------------------------------------


@dataclass
class EvmAccount:
    node: Node
    key: bytes

    @property
    def address(self) -> bytes:
        return eth_address(secp256k1_public_key(self.key))

    @property
    def hex(self) -> str:
        return "0x" + self.address.hex()

    def nonce(self) -> int:
        return int(self.node.app("account", address=self.hex)["nonce"])

    def tx(self, calls: list[EvmCall], nonce: int | None = None, chain_id: int | None = None) -> bytes:
        cid = int(self.node.info()["evm_chain_id"]) if chain_id is None else chain_id
        return make_tx(self.key, cid, self.nonce() if nonce is None else nonce, calls).encode()

    def ibc_tx(self, msgs: list[Message]) -> bytes:
        return self.tx([EvmCall(IBC_HANDLER_ADDRESS, "ibc", tuple(pack(m) for m in msgs))])


@dataclass
class CordaParty:
    node: Node
    seed: bytes

    @property
    def key(self) -> bytes:
        return ed25519_public_key(self.seed)

    @property
    def account(self) -> str:
        return corda_account(self.key)

    @property
    def notary(self) -> bytes:
        return bytes.fromhex(self.node.info()["notary_identity"])

    def wtx(self, inputs: tuple[lpb.StateRef, ...] = (), outputs: tuple[lpb.TransactionState, ...] = (),
            commands: tuple[lpb.Command, ...] = (), references: tuple[lpb.StateRef, ...] = ()) -> WireTransaction:
        return WireTransaction(inputs, outputs, commands, self.notary, fresh_salt(), references=references)

    def sign(self, wtx: WireTransaction, *others: bytes) -> bytes:
        stx = SignedTransaction(wtx).sign(self.seed)
        for seed in others:
            stx.sign(seed)
        return stx.encode()

    def ibc_tx(self, msgs: list[Message], signers: list[bytes] | None = None) -> bytes:
        cmds = tuple(ibc_command(m, signers or [self.key]) for m in msgs)
        return self.sign(self.wtx(commands=cmds))


# --- the network -----------------------------------------------------------------------------


@dataclass
class Net:
    """EVM node + Corda node with a connection, a ``transfer`` and a ``dvp`` channel."""

    root: Path
    procs: live.Procs
    evm: Node
    corda: Node
    evm_client: str  # the EVM chain's client of Corda (11-corda)
    corda_client: str  # the Corda chain's client of the EVM chain (10-qbft)
    evm_transfer: str
    corda_transfer: str
    evm_dvp: str
    corda_dvp: str
    trades: list[str] = field(default_factory=list)
    _trade_n: int = 0

    # --- accounts ---

    def evm_account(self, name: str) -> EvmAccount:
        return EvmAccount(self.evm, self.evm.proc.key(name))

    def corda_party(self, name: str) -> CordaParty:
        return CordaParty(self.corda, self.corda.proc.key(name))

    @property
    def evm_relayer(self) -> EvmAccount:
        return self.evm_account(RELAYER_EVM)

    @property
    def corda_relayer(self) -> CordaParty:
        return self.corda_party(RELAYER_CORDA)

    def other(self, node: Node) -> Node:
        return self.corda if node is self.evm else self.evm

    def client_on(self, node: Node) -> str:
        return self.evm_client if node is self.evm else self.corda_client

    # --- honest relaying ---

    def client_height(self, dst: Node) -> int:
        """Latest height dst's client of the other chain trusts."""
        raw = dst.value(paths.client_state(self.client_on(dst)))
        assert raw is not None
        if dst is self.evm:
            return int(lc.ClientState.FromString(raw).latest_height)
        return int(qpb.ClientState.FromString(raw).latest_height.revision_height)

    def client_header(self, src: Node, height: int, trusted: int) -> Any:
        """src's light-client header at ``height`` (decoded, trusted height set), for editing."""
        raw = src.header(height).client_header
        if src is self.evm:
            header = qpb.Header.FromString(raw)
            header.trusted_height.CopyFrom(client_pb2.Height(revision_number=0, revision_height=trusted))
            return header
        cheader = lc.Header.FromString(raw)
        cheader.trusted_height = trusted
        return cheader

    def header_msg(self, src: Node, header: Any) -> bytes:
        return encode_header_message(header) if src is self.evm else header_message(header)

    def update(self, dst: Node, height: int | None = None) -> tuple[client_pb2.MsgUpdateClient, int]:
        """The UpdateClient taking dst's client to the other chain's ``height`` (latest)."""
        src = self.other(dst)
        trusted = self.client_height(dst)
        if height is None:
            src.wait_height(trusted + 1)  # an update must move the client forward
        target = height or src.height()
        header = self.client_header(src, target, trusted)
        return client_pb2.MsgUpdateClient(client_id=self.client_on(dst),
                                          client_message=self.header_msg(src, header)), target

    def relay(self, dst: Node, msgs: list[Message]) -> node_pb2.TxResult:
        """Plain IBC messages in one tx on dst, signed by the relayer's key there."""
        tx = self.evm_relayer.ibc_tx(msgs) if dst is self.evm else self.corda_relayer.ibc_tx(msgs)
        return dst.submit(tx)

    def relay_ok(self, dst: Node, msgs: list[Message]) -> node_pb2.TxResult:
        res = self.relay(dst, msgs)
        assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason
        return res

    def proof(self, src: Node, path: bytes, height: int) -> bytes:
        return bytes(src.ibc(path, height, prove=True).proof)

    def recv_msg(self, src: Node, packet: chpb.Packet, height: int) -> chpb.MsgRecvPacket:
        """MsgRecvPacket with src's real commitment proof at ``height``."""
        path = paths.packet_commitment(packet.source_port, packet.source_channel, packet.sequence)
        return chpb.MsgRecvPacket(packet=packet, proof_commitment=self.proof(src, path, height),
                                  proof_height=to_proto(Height(0, height)), signer="relayer")

    def ack_msg(self, dst: Node, packet: chpb.Packet, ack: bytes, height: int) -> chpb.MsgAcknowledgement:
        """MsgAcknowledgement with dst's (the packet's destination) real ack proof."""
        path = paths.packet_ack(packet.destination_port, packet.destination_channel, packet.sequence)
        return chpb.MsgAcknowledgement(packet=packet, acknowledgement=ack, proof_acked=self.proof(dst, path, height),
                                       proof_height=to_proto(Height(0, height)), signer="relayer")

    def timeout_msg(self, dst: Node, packet: chpb.Packet, height: int) -> chpb.MsgTimeout:
        """MsgTimeout with dst's (the packet's destination) proof of the receipt path."""
        path = paths.packet_receipt(packet.destination_port, packet.destination_channel, packet.sequence)
        return chpb.MsgTimeout(packet=packet, proof_unreceived=self.proof(dst, path, height),
                               proof_height=to_proto(Height(0, height)), signer="relayer")

    def deliver(self, src: Node, packet: chpb.Packet) -> tuple[node_pb2.TxResult, bytes]:
        """Update + recv on the packet's destination; returns the result and the written ack."""
        dst = self.other(src)
        update, height = self.update(dst)
        res = self.relay_ok(dst, [update, self.recv_msg(src, packet, height)])
        ack = event_attr(res, "write_acknowledgement", "ack")
        assert ack is not None, f"recv wrote no ack: {[e.type for e in res.events]}"
        return res, ack

    # --- sending ---

    def transfers(self, src: Node, timeouts_s: list[float]) -> list[chpb.Packet]:
        """One tx of ICS-20 transfers of src's bank denom from a demo account (alice on the EVM
        chain, firm-a on Corda), one per timeout (seconds on the other chain's clock)."""
        other = self.other(src)
        if src is self.evm:
            acct = self.evm_account("alice")
            spender, denom, chan, to = acct.hex, "stake", self.evm_transfer, self.corda_party("holder-firm-a").account
        else:
            party = self.corda_party("holder-firm-a")
            spender, denom, chan, to = party.account, "jpy", self.corda_transfer, self.evm_account("bob").hex
        now = other.time_ns()
        msgs: list[Message] = [
            transfer_pb2.MsgTransfer(source_port="transfer", source_channel=chan, denom=denom, amount=str(i + 1),
                                     sender=spender, receiver=to, timeout_timestamp=now + int(t * SEC))
            for i, t in enumerate(timeouts_s)]
        res = src.submit(acct.ibc_tx(msgs) if src is self.evm else party.ibc_tx(msgs))
        assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason
        return sent_packets(res)

    # --- DvP ---

    def trade_terms(self, *, qty: int = 5, amount: int = 500, deadline_s: float = 300,
                    seller: str = "alice", buyer: str = "bob", payee: str = "firm-a",
                    payer: str = "firm-b", trade_id: str | None = None) -> dvp_pb2.Terms:
        if trade_id is None:
            self._trade_n += 1
            trade_id = f"ADV-{int(time.time())}-{self._trade_n}"
        self.trades.append(trade_id)
        return dvp_pb2.Terms(
            trade_id=trade_id, security_token=bytes.fromhex(self.evm.info()["security_token"][2:]),
            st_quantity=qty, cash_issuer=bytes.fromhex(self.corda.info()["issuer"]), sc_amount=amount,
            sc_brand=self.corda.info()["brand"],
            seller_evm=self.evm_account(seller).address, buyer_evm=self.evm_account(buyer).address,
            seller_corda=self.corda_party(f"holder-{payee}").key, buyer_corda=self.corda_party(f"holder-{payer}").key,
            deadline_ns=self.evm.time_ns() + int(deadline_s * SEC))

    def lock_evm_tx(self, terms: dvp_pb2.Terms, signer: str = "alice") -> bytes:
        return self.evm_account(signer).tx([EvmCall(DVP_ESCROW_ADDRESS, "lock", (
            dvp_app.encode_terms(terms), self.evm_dvp.encode()))])

    def lock_evm(self, terms: dvp_pb2.Terms, signer: str = "alice") -> node_pb2.TxResult:
        res = self.evm.submit(self.lock_evm_tx(terms, signer))
        assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason
        return res

    def admission(self, brand: str | None = None) -> lpb.StateRef:
        """The Admission of ``brand`` (default: the chain's default brand) of its issuer."""
        info = self.corda.info()
        brand = info["brand"] if brand is None else brand
        adm = self.corda.app("holders")[brand_key(bytes.fromhex(info["brands"][brand]), brand)]["admission"]
        return lpb.StateRef(txid=bytes.fromhex(adm["txid"]), index=int(adm["index"]))

    def cash_of(self, party: CordaParty, at_least: int, brand: str | None = None) -> list[tuple[lpb.StateRef, lpb.Cash]]:
        """``party``'s Cash of ``brand`` (default: the chain's default brand) covering ``at_least``."""
        brand = self.corda.info()["brand"] if brand is None else brand
        rows = [r for r in self.corda.app("cash_states", owner=party.key.hex()) if r["brand"] == brand]
        picked, total = [], 0
        for r in rows:
            picked.append((lpb.StateRef(txid=bytes.fromhex(r["txid"]), index=int(r["index"])),
                           lpb.Cash(issuer=bytes.fromhex(r["issuer"]), owner=bytes.fromhex(r["owner"]),
                                    amount=int(r["amount"]), brand=r["brand"])))
            total += int(r["amount"])
            if total >= at_least:
                return picked
        raise AssertionError(f"{party.account} holds {total} < {at_least}")

    def lock_corda_tx(self, terms: dvp_pb2.Terms, timeout_ns: int | None = None, payer: str = "firm-b") -> bytes:
        party = self.corda_party(f"holder-{payer}")
        stx = lock_transaction(terms, self.corda_dvp, timeout_ns or int(terms.deadline_ns), party.seed,
                               self.cash_of(party, int(terms.sc_amount), terms.sc_brand),
                               self.admission(terms.sc_brand), party.notary, fresh_salt())
        return stx.encode()

    def lock_corda(self, terms: dvp_pb2.Terms, timeout_ns: int | None = None, payer: str = "firm-b") -> chpb.Packet:
        res = self.corda.submit(self.lock_corda_tx(terms, timeout_ns, payer))
        assert res.status == node_pb2.TX_STATUS_COMMITTED, res.reason
        return sent_packet(res)

    def lock(self, trade_id: str) -> dict[str, Any]:
        return dict(self.corda.app("dvp_lock", trade_id=trade_id))

    def escrow(self, trade_id: str) -> dict[str, Any]:
        return dict(self.evm.app("dvp_escrow", trade_id=trade_id))

    def exit_tx(self, kind: str, trade_id: str, msgs: list[Message], signer: CordaParty | None = None) -> bytes:
        """A DvP exit of ``trade_id``'s lock carrying ``msgs`` (ack / timeout, or none)."""
        got = self.lock(trade_id)
        lock_ref = lpb.StateRef(txid=bytes.fromhex(got["lock"]["txid"]), index=int(got["lock"]["index"]))
        cash_ref = lpb.StateRef(txid=bytes.fromhex(got["cash"]["txid"]), index=int(got["cash"]["index"]))
        lock = dvp_pb2.DvpLock.FromString(bytes.fromhex(got["lock_state"]))
        party = signer or self.corda_relayer
        ins, outs, cmds = exit_parts(kind, lock_ref, lock, cash_ref, 0, party.notary)
        cmds += [ibc_command(m, [party.key]) for m in msgs]
        wtx = party.wtx(tuple(ins), tuple(outs), tuple(cmds), (self.admission(lock.brand),))
        return party.sign(wtx)

    # --- what an attack must not change ---

    def snapshot(self) -> dict[str, Any]:
        """Balances, escrows, locks, Cash states, client states and both IBC roots, read over gRPC.

        Taken at each chain's latest height; with no relayer running only the attack's own tx
        can move any of it. The EVM signer's account nonce is deliberately left out: an EVM tx
        that fails is still included and uses its nonce, as on Ethereum.
        """
        evm, corda = self.evm, self.corda
        info = corda.info()
        out: dict[str, Any] = {
            "evm.ibc_root": evm.ibc_root().hex(),
            "corda.ibc_root": corda.ibc_root().hex(),
            "evm.client_state": (evm.value(paths.client_state(self.evm_client)) or b"").hex(),
            "corda.client_state": (corda.value(paths.client_state(self.corda_client)) or b"").hex(),
        }
        holders = ["alice", "bob", "carol"]
        for name in holders:
            st = evm.app("security_token", holder=self.evm_account(name).hex)
            out[f"evm.st.{name}"] = st["balance"]
        out["evm.st.escrow"] = evm.app("security_token", holder="0x" + DVP_ESCROW_ADDRESS.hex())["balance"]
        out["evm.st.supply"] = evm.app("security_token")["total_supply"]
        owners = {n: bytes.fromhex(k) for n, k in info["holders"].items()}
        owners.update({f"issuer.{brand}": bytes.fromhex(key) for brand, key in info["brands"].items()})
        owners["escrow"] = DVP_ESCROW_OWNER
        for name, key in owners.items():
            out[f"corda.sc.{name}"] = corda.app("balances", owner=key.hex())["by_brand"]
            out[f"corda.cash.{name}"] = sorted((r["txid"], r["index"])
                                               for r in corda.app("cash_states", owner=key.hex()))
        for tid in self.trades:
            out[f"evm.escrow.{tid}"] = self.escrow(tid)
            out[f"corda.lock.{tid}"] = self.lock(tid)
        return out


def sent_packets(res: node_pb2.TxResult) -> list[chpb.Packet]:
    return [chpb.Packet.FromString(next(bytes(a.value) for a in e.attributes if a.key == "packet"))
            for e in res.events if e.type == "send_packet"]


def sent_packet(res: node_pb2.TxResult) -> chpb.Packet:
    got = sent_packets(res)
    assert got, f"no send_packet event in {[e.type for e in res.events]}"
    return got[0]


def event_attr(res: node_pb2.TxResult, event_type: str, key: str) -> bytes | None:
    for e in res.events:
        if e.type == event_type:
            for a in e.attributes:
                if a.key == key:
                    return bytes(a.value)
    return None


def start_net(root: Path) -> Net:
    """Nodes, keys, a relayer config for the CLI, then the path with both channels."""
    procs = live.Procs()
    try:
        evm = live.start_node(root, "evm", EVM_ID, "1s", procs)
        corda = live.start_node(root, "corda", CORDA_ID, "200ms", procs)
        rdir = root / "relayer"
        rdir.mkdir()
        live.add_keys(rdir / "keys", [(evm, RELAYER_EVM), (corda, RELAYER_CORDA)])
        cfg = live.write_config(rdir / "relayer.toml", [evm, corda], live.RelayerSetup(
            metrics_port=live.free_port(),
            keys={EVM_ID: f"{EVM_ID}-{RELAYER_EVM}", CORDA_ID: f"{CORDA_ID}-{RELAYER_CORDA}"}))
        path = live.create_path(cfg, evm, corda)
        chan = live.kj("create", "channel", "-c", str(cfg), "--a-chain", EVM_ID, "--a-connection", path.a_connection,
                       "--a-port", "dvp", "--b-port", "dvp", "--channel-version", dvp_app.VERSION)
        return Net(root, procs, Node(evm), Node(corda), path.a_client, path.b_client, path.a_channel,
                   path.b_channel, chan["a_channel"], chan["b_channel"])
    except BaseException:
        procs.stop_all()
        raise


def stop_net(net: Net) -> None:
    net.evm.close()
    net.corda.close()
    net.procs.stop_all()


__all__ = ["Net", "Node", "event_attr", "sent_packet", "sent_packets", "start_net", "stop_net"]
