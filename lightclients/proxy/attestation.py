"""Enclave-key attestation: the SIMULATED authority that signs reports, and the check a proxy
client runs before it trusts a key.

Why simulated: this project has no SGX hardware. A real deployment gets the report from a
DCAP/IAS quote verification and trusts Intel's root certificate; here a secp256k1 key plays
the authority and the report says ``simulated = true``, which a proxy client refuses unless
its client state explicitly allows it. The interface is the one a real attestation fills:
(code measurement, enclave key, operator, attestation time) under the authority's signature.

Who signs what: the authority vouches that a key lives in an enclave running ``code_hash``;
the operator co-signs the same report so that a key is bound to exactly one operator of the
client's k-of-n set (a key cannot be claimed by an operator that does not run it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kakehashi.proxy.v1 import proxy_pb2 as pb
from lightclients.crypto import eth_address, secp256k1_public_key, secp256k1_sign
from lightclients.interface import InvalidClientMessage
from lightclients.proxy.messages import (
    ADDRESS_LEN,
    HASH_LEN,
    EncodingError,
    attestation_digest,
    decode,
    encode,
    hex_address,
    operator_digest,
    signer_of,
)

REPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What a client trusts about one enclave key."""

    operator: bytes
    expires_at: int

    def to_pb(self) -> pb.EnclaveKeyRecord:
        return pb.EnclaveKeyRecord(operator=self.operator, expires_at=self.expires_at)


class SimulatedAuthority:
    """Stands in for the attestation service (SIMULATED: a local key, not Intel's).

    Pure: the attestation time is an argument, so tests run it in simulated time.
    """

    simulated = True

    def __init__(self, secret: bytes) -> None:
        self._secret = bytes(secret)
        self.address = eth_address(secp256k1_public_key(self._secret))

    def attest(self, code_hash: bytes, enclave_key: bytes, operator: bytes, attested_at: int) -> tuple[bytes, bytes]:
        """(report bytes, authority signature) for a key in an enclave running ``code_hash``."""
        if len(code_hash) != HASH_LEN or len(enclave_key) != ADDRESS_LEN or len(operator) != ADDRESS_LEN:
            raise ValueError("code hash must be 32 bytes, enclave key and operator 20-byte addresses")
        report = encode(pb.AttestationReport(version=REPORT_VERSION, simulated=True, code_hash=code_hash,
                                             enclave_key=enclave_key, operator=operator, attested_at=attested_at))
        return report, secp256k1_sign(self._secret, attestation_digest(report))


def operator_sign(operator_secret: bytes, report: bytes) -> bytes:
    return secp256k1_sign(operator_secret, operator_digest(report))


def registration(report: bytes, authority_signature: bytes, operator_signature: bytes) -> pb.EnclaveKeyRegistration:
    return pb.EnclaveKeyRegistration(report=report, authority_signature=authority_signature,
                                     operator_signature=operator_signature)


def parse_report(reg: pb.EnclaveKeyRegistration) -> pb.AttestationReport:
    try:
        report = decode(pb.AttestationReport, reg.report, "attestation report")
    except EncodingError as exc:
        raise InvalidClientMessage(str(exc)) from None
    if report.version != REPORT_VERSION:
        raise InvalidClientMessage(f"attestation report version {report.version} is not {REPORT_VERSION}")
    if len(report.enclave_key) != ADDRESS_LEN or len(report.operator) != ADDRESS_LEN:
        raise InvalidClientMessage("attestation report: enclave key and operator must be 20-byte addresses")
    return report


def record_of(cs: pb.ClientState, report: pb.AttestationReport) -> KeyRecord:
    return KeyRecord(bytes(report.operator), int(report.attested_at) + int(cs.key_expiration))


def verify_registration(cs: pb.ClientState, reg: pb.EnclaveKeyRegistration,
                        stored: Callable[[bytes], KeyRecord | None]) -> tuple[bytes, KeyRecord]:
    """(enclave key address, record) once ``reg`` passes every rule of ``cs``; raises
    InvalidClientMessage naming the rule otherwise. Expiry is judged where signatures are
    counted, against the host's time.

    ``stored`` looks up the record a client already holds for a key: a registration that
    would store exactly that record again proves nothing new, so its signatures are not
    re-checked (a key registered once costs one comparison per update afterwards).
    """
    report = parse_report(reg)
    key, operator = bytes(report.enclave_key), bytes(report.operator)
    record = record_of(cs, report)
    known = stored(key)
    # An expired key is not an error here: during a rotation the enclave still signs with its
    # old key beside the new one, and the old key's signature simply stops counting (the
    # signature check reports it as expired).
    if known is not None and known == record:
        return key, record
    if report.simulated and not cs.allow_simulated:
        raise InvalidClientMessage(
            f"enclave key {hex_address(key)}: the attestation is SIMULATED and this client does not allow simulated "
            "attestation")
    if signer_of(attestation_digest(reg.report), reg.authority_signature) != bytes(cs.authority):
        raise InvalidClientMessage(
            f"enclave key {hex_address(key)}: the attestation report is not signed by the pinned authority "
            f"{hex_address(cs.authority)}")
    if bytes(report.code_hash) != bytes(cs.code_hash):
        raise InvalidClientMessage(
            f"enclave key {hex_address(key)} runs code {bytes(report.code_hash).hex()}, not the pinned "
            f"{bytes(cs.code_hash).hex()}")
    if signer_of(operator_digest(reg.report), reg.operator_signature) != operator:
        raise InvalidClientMessage(
            f"enclave key {hex_address(key)}: the report is not signed by its operator {hex_address(operator)}")
    if operator not in {bytes(o) for o in cs.operators}:
        raise InvalidClientMessage(
            f"enclave key {hex_address(key)}: operator {hex_address(operator)} is not one of this client's operators")
    if known is not None and known.operator != operator:
        raise InvalidClientMessage(
            f"enclave key {hex_address(key)} is already registered to operator {hex_address(known.operator)}")
    return key, record
