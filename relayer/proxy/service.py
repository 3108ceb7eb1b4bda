"""`kakehashi proxy start`: the proxy service, a SIMULATED enclave behind gRPC.

It hosts the direct light clients (qbft, corda) off-chain through the sans-I/O enclave logic
of ``lightclients/proxy/enclave.py`` and answers the relayer with messages signed by enclave
keys. Everything that touches the outside world is here: the clock (the enclave's untrusted
"now", which only gates the hosted clients' own checks), randomness for keys and sealing
nonces, the sealed key files, the SQLite store of hosted clients, and gRPC.

Nothing here is a real TEE: the "enclave" is this process, the attestation authority is a
key in the proxy's home, and every report says ``simulated``. The interfaces are the ones a
real SGX/DCAP deployment fills. Requests that fail verification get FAILED_PRECONDITION with
the enclave's reason and change nothing; malformed requests get INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import structlog
from google.protobuf import message_factory
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from chains.node.service import TlsFiles
from kakehashi.proxy.v1 import proxy_pb2 as pb
from kakehashi.proxy.v1 import service_pb2 as spb
from lightclients.consensus_heights import stored_heights
from lightclients.interface import ClientError, Height, Status, consensus_state_key
from lightclients.proxy.attestation import SimulatedAuthority, operator_sign, registration
from lightclients.proxy.enclave import Enclave, EnclaveError, MisbehaviourDetected, Signed
from lightclients.proxy.messages import height_pb, hex_address
from lightclients.proxy.sealing import SealingError
from relayer.proxy.home import ProxyHome, write_atomic, write_public
from relayer.proxy.measure import code_hash as measure
from relayer.proxy.store import HostedStore, ProxyStore

log = structlog.get_logger("kakehashi.proxy")

SERVICE_NAME = spb.DESCRIPTOR.services_by_name["Proxy"].full_name
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_SIGNERS = 8
_ELC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Refused(Exception):
    """A request the proxy turns down: (gRPC status, reason)."""

    def __init__(self, code: grpc.StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _height(msg: Any) -> Height:
    return Height(int(msg.revision_number), int(msg.revision_height))


def _signed(out: Signed) -> spb.SignedResponse:
    return spb.SignedResponse(signed=out.message, registrations=list(out.registrations))


class ProxyCore:
    """The proxy's state and operations, without gRPC (the service and tests share it)."""

    def __init__(self, home: ProxyHome, code_hash: bytes | None = None, clock: Callable[[], int] = time.time_ns,
                 randomness: Callable[[int], bytes] = os.urandom) -> None:
        self.home = home
        self.code_hash = code_hash or measure()
        self.clock = clock
        self.enclave = Enclave(self.code_hash, randomness)
        self.authority = SimulatedAuthority(home.authority_secret)
        home.sealed_dir.mkdir(exist_ok=True, mode=0o700)
        self.store = ProxyStore(home.db_path)
        self.unusable: list[str] = []
        for f in sorted(home.sealed_dir.glob("*.sealed")):
            try:
                address = self.enclave.unseal_key(f.read_bytes(), home.platform_secret)
                log.info("enclave key unsealed", key=hex_address(address), file=f.name)
            except (SealingError, EnclaveError, OSError) as exc:
                self.unusable.append(f.name)
                log.warning("sealed enclave key not usable by this enclave", file=f.name, reason=str(exc))
        write_public(home, self.code_hash)

    def close(self) -> None:
        self.store.close()

    # --- keys ---------------------------------------------------------------------------

    def key_pb(self, address: bytes, attested_at: int, reg: pb.EnclaveKeyRegistration) -> spb.EnclaveKey:
        return spb.EnclaveKey(address=address, attested_at=attested_at, registration=reg)

    def new_key(self) -> spb.EnclaveKey:
        """Generate, attest (SIMULATED authority), co-sign as the operator, seal to disk."""
        address = self.enclave.new_key()
        now = self.clock()
        report, auth_sig = self.authority.attest(self.code_hash, address, self.home.operator, now)
        reg = registration(report, auth_sig, operator_sign(self.home.operator_secret, report))
        self.enclave.attach(address, reg)
        write_atomic(self.home.sealed_dir / f"{address.hex()}.sealed",
                     self.enclave.seal_key(address, self.home.platform_secret))
        log.info("enclave key generated and sealed (SIMULATED attestation)", key=hex_address(address),
                 operator=hex_address(self.home.operator))
        return self.key_pb(address, now, reg)

    def info(self) -> spb.InfoResponse:
        keys = [self.key_pb(a, t, r) for a, t, r in self.enclave.attested_keys()]
        clients = []
        now = self.clock()
        for cid in self.store.clients():
            view = self.store.view(cid)
            if not view.exists():
                continue
            try:
                clients.append(spb.HostedClient(
                    elc_client_id=cid, client_type=self.enclave.client_type(view),
                    latest_height=height_pb(self.enclave.latest_height(view)),
                    status=self.enclave.status(view, now).value))
            except (EnclaveError, ClientError) as exc:
                clients.append(spb.HostedClient(elc_client_id=cid, status=f"unreadable: {exc}"))
        return spb.InfoResponse(simulated=True, code_hash=self.code_hash, authority=self.authority.address,
                                operator=self.home.operator, keys=keys, clients=clients)

    # --- hosted clients -------------------------------------------------------------------

    def _client(self, elc_id: str) -> HostedStore:
        if not _ELC_ID.match(elc_id):
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"invalid hosted client id {elc_id!r}")
        view = self.store.view(elc_id)
        if not view.exists():
            raise Refused(grpc.StatusCode.NOT_FOUND, f"the proxy hosts no client {elc_id!r}")
        return view

    def create_client(self, req: spb.CreateClientRequest) -> spb.CreateClientResponse:
        if not _ELC_ID.match(req.elc_client_id):
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"invalid hosted client id {req.elc_client_id!r}")
        now = self.clock()
        existing = self.store.view(req.elc_client_id)
        reused = False
        if existing.exists():
            same = self.enclave.same_parameters(existing, req.client_type, bytes(req.client_state))
            active = same and self.enclave.status(existing, now) is Status.ACTIVE
            if active:
                info, reused = self.enclave.state(existing), True
            else:
                log.warning("replacing hosted client", client=req.elc_client_id,
                            reason="other parameters" if not same else "not active")
        if not reused:
            view = self.store.view(req.elc_client_id, fresh=True)
            try:
                info = self.enclave.create_client(view, req.client_type, bytes(req.client_state),
                                                  bytes(req.consensus_state), now)
            except EnclaveError as exc:
                raise Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
            view.commit()
            log.info("hosted client created", client=req.elc_client_id, type=info.client_type, height=str(info.height))
        return spb.CreateClientResponse(client_type=info.client_type, height=height_pb(info.height),
                                        state_id=info.state_id, timestamp=info.timestamp,
                                        trusting_period=info.trusting_period, max_clock_drift=info.max_clock_drift,
                                        reused=reused)

    def query_client(self, req: spb.QueryClientRequest) -> spb.QueryClientResponse:
        view = self._client(req.elc_client_id)
        at = _height(req.height)
        below = [h for h in stored_heights(view) if h < at]
        return spb.QueryClientResponse(latest_height=height_pb(self.enclave.latest_height(view)),
                                       has_height=view.get(consensus_state_key(at)) is not None,
                                       trusted_below=height_pb(max(below) if below else Height.zero()))

    @staticmethod
    def _signers(raw: Any) -> list[bytes]:
        signers = [bytes(s) for s in raw]
        if len(signers) > MAX_SIGNERS:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_SIGNERS} signers")
        return signers

    def update_client(self, req: spb.UpdateClientRequest) -> spb.SignedResponse:
        view = self._client(req.elc_client_id)
        try:
            out = self.enclave.update_client(view, bytes(req.client_message), self.clock(), self._signers(req.signers))
        except MisbehaviourDetected as exc:
            view.commit()  # the freeze is the one failure that must stick
            log.warning("counterparty equivocation detected; hosted client frozen", client=req.elc_client_id)
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        except EnclaveError as exc:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        view.commit()
        return _signed(out)

    def aggregate(self, req: spb.AggregateUpdatesRequest) -> spb.SignedResponse:
        try:
            return _signed(self.enclave.aggregate(list(req.updates), self._signers(req.signers)))
        except EnclaveError as exc:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None

    def verify_membership(self, req: spb.VerifyMembershipRequest) -> spb.SignedResponse:
        view = self._client(req.elc_client_id)
        try:
            return _signed(self.enclave.verify_membership(view, _height(req.height), bytes(req.prefix), bytes(req.path),
                                                          bytes(req.value), bytes(req.proof), self.clock(),
                                                          self._signers(req.signers)))
        except EnclaveError as exc:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None

    def verify_non_membership(self, req: spb.VerifyNonMembershipRequest) -> spb.SignedResponse:
        view = self._client(req.elc_client_id)
        try:
            return _signed(self.enclave.verify_non_membership(view, _height(req.height), bytes(req.prefix),
                                                              bytes(req.path), bytes(req.proof), self.clock(),
                                                              self._signers(req.signers)))
        except EnclaveError as exc:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None


    def verify_batch(self, req: spb.VerifyMembershipBatchRequest) -> spb.SignedResponse:
        view = self._client(req.elc_client_id)
        items = [(bytes(i.path), bytes(i.value) if i.present else None) for i in req.items]
        try:
            return _signed(self.enclave.verify_batch(view, _height(req.height), bytes(req.prefix), items,
                                                     bytes(req.multiproof), self.clock(), self._signers(req.signers)))
        except EnclaveError as exc:
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None


class ProxyService:
    """gRPC methods over a ProxyCore. Each runs without awaiting inside, so requests apply one
    at a time on the event loop and a hosted client never sees two writers."""

    def __init__(self, core: ProxyCore) -> None:
        self.core = core
        self.methods: dict[str, Callable[[Any], Any]] = {
            "Info": lambda req: core.info(),
            "NewEnclaveKey": lambda req: core.new_key(),
            "CreateClient": core.create_client,
            "QueryClient": core.query_client,
            "UpdateClient": core.update_client,
            "AggregateUpdates": core.aggregate,
            "VerifyMembership": core.verify_membership,
            "VerifyNonMembership": core.verify_non_membership,
            "VerifyMembershipBatch": core.verify_batch,
        }

    def handler(self) -> grpc.GenericRpcHandler:
        """Method handlers that parse requests themselves, so a malformed one is
        INVALID_ARGUMENT with a reason (grpcio's generated registration says UNKNOWN)."""
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for method in spb.DESCRIPTOR.services_by_name["Proxy"].methods:
            req_cls = message_factory.GetMessageClass(method.input_type)
            resp_cls = message_factory.GetMessageClass(method.output_type)
            impl = self.methods[method.name]

            async def unary(raw: bytes, context: grpc.aio.ServicerContext, impl: Any = impl, req_cls: Any = req_cls,
                            name: str = method.name) -> Any:
                try:
                    request = req_cls.FromString(raw)
                except DecodeError as exc:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {req_cls.DESCRIPTOR.name}: {exc}")
                try:
                    return impl(request)
                except Refused as exc:
                    await context.abort(exc.code, str(exc))
                except Exception as exc:  # one bad request never takes the server down
                    log.exception("proxy request failed", method=name)
                    await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                unary, response_serializer=resp_cls.SerializeToString)
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def build_server(core: ProxyCore, address: str, tls: TlsFiles | None = None) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    server.add_generic_rpc_handlers((ProxyService(core).handler(),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address) if tls is None else server.add_secure_port(address, tls.credentials())
    if port == 0:
        raise OSError(f"cannot bind gRPC address {address}")
    server.health_servicer = health_servicer
    return server, port


async def serve(home: ProxyHome, stop: asyncio.Event | None = None) -> None:
    core = ProxyCore(home)
    server, port = build_server(core, home.listen, home.tls)
    await server.start()
    await server.health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    host = home.listen.rsplit(":", 1)[0]
    addr_file = home.path / "proxy.addr"
    addr_file.write_text(f"{host}:{port}\n")
    log.warning("proxy serving: SIMULATED enclave and attestation authority, no real TEE",
                grpc=f"{host}:{port}", code_hash=core.code_hash.hex(), operator=hex_address(home.operator),
                keys=len(core.enclave.attested_keys()), unusable_sealed_keys=len(core.unusable))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("proxy stopping")
        await server.stop(2)
        addr_file.unlink(missing_ok=True)
        core.close()


def start(home_path: Path) -> None:
    from relayer.proxy.home import load_home

    asyncio.run(serve(load_home(home_path)))
