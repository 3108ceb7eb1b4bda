from kakehashi.ibc.v1 import client_pb2 as _client_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrustingPeriodContext(_message.Message):
    __slots__ = ("trusting_period", "clock_drift", "untrusted_header_timestamp", "trusted_state_timestamp")
    TRUSTING_PERIOD_FIELD_NUMBER: _ClassVar[int]
    CLOCK_DRIFT_FIELD_NUMBER: _ClassVar[int]
    UNTRUSTED_HEADER_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_STATE_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    trusting_period: int
    clock_drift: int
    untrusted_header_timestamp: int
    trusted_state_timestamp: int
    def __init__(self, trusting_period: _Optional[int] = ..., clock_drift: _Optional[int] = ..., untrusted_header_timestamp: _Optional[int] = ..., trusted_state_timestamp: _Optional[int] = ...) -> None: ...

class UpdateState(_message.Message):
    __slots__ = ("prev_height", "prev_state_id", "post_height", "post_state_id", "timestamp", "context")
    PREV_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREV_STATE_ID_FIELD_NUMBER: _ClassVar[int]
    POST_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    POST_STATE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    prev_height: _client_pb2.Height
    prev_state_id: bytes
    post_height: _client_pb2.Height
    post_state_id: bytes
    timestamp: int
    context: TrustingPeriodContext
    def __init__(self, prev_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., prev_state_id: _Optional[bytes] = ..., post_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., post_state_id: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., context: _Optional[_Union[TrustingPeriodContext, _Mapping]] = ...) -> None: ...

class VerifyMembership(_message.Message):
    __slots__ = ("prefix", "path", "value_hash", "height", "state_id")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VALUE_HASH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STATE_ID_FIELD_NUMBER: _ClassVar[int]
    prefix: bytes
    path: bytes
    value_hash: bytes
    height: _client_pb2.Height
    state_id: bytes
    def __init__(self, prefix: _Optional[bytes] = ..., path: _Optional[bytes] = ..., value_hash: _Optional[bytes] = ..., height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., state_id: _Optional[bytes] = ...) -> None: ...

class MembershipEntry(_message.Message):
    __slots__ = ("path", "value_hash")
    PATH_FIELD_NUMBER: _ClassVar[int]
    VALUE_HASH_FIELD_NUMBER: _ClassVar[int]
    path: bytes
    value_hash: bytes
    def __init__(self, path: _Optional[bytes] = ..., value_hash: _Optional[bytes] = ...) -> None: ...

class VerifyMembershipBatch(_message.Message):
    __slots__ = ("prefix", "height", "state_id", "entries")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STATE_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    prefix: bytes
    height: _client_pb2.Height
    state_id: bytes
    entries: _containers.RepeatedCompositeFieldContainer[MembershipEntry]
    def __init__(self, prefix: _Optional[bytes] = ..., height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., state_id: _Optional[bytes] = ..., entries: _Optional[_Iterable[_Union[MembershipEntry, _Mapping]]] = ...) -> None: ...

class ProxyMessage(_message.Message):
    __slots__ = ("update_state", "verify_membership", "verify_membership_batch")
    UPDATE_STATE_FIELD_NUMBER: _ClassVar[int]
    VERIFY_MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    VERIFY_MEMBERSHIP_BATCH_FIELD_NUMBER: _ClassVar[int]
    update_state: UpdateState
    verify_membership: VerifyMembership
    verify_membership_batch: VerifyMembershipBatch
    def __init__(self, update_state: _Optional[_Union[UpdateState, _Mapping]] = ..., verify_membership: _Optional[_Union[VerifyMembership, _Mapping]] = ..., verify_membership_batch: _Optional[_Union[VerifyMembershipBatch, _Mapping]] = ...) -> None: ...

class SignedMessage(_message.Message):
    __slots__ = ("message", "signatures")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    signatures: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, message: _Optional[bytes] = ..., signatures: _Optional[_Iterable[bytes]] = ...) -> None: ...

class AttestationReport(_message.Message):
    __slots__ = ("version", "simulated", "code_hash", "enclave_key", "operator", "attested_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    CODE_HASH_FIELD_NUMBER: _ClassVar[int]
    ENCLAVE_KEY_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ATTESTED_AT_FIELD_NUMBER: _ClassVar[int]
    version: int
    simulated: bool
    code_hash: bytes
    enclave_key: bytes
    operator: bytes
    attested_at: int
    def __init__(self, version: _Optional[int] = ..., simulated: _Optional[bool] = ..., code_hash: _Optional[bytes] = ..., enclave_key: _Optional[bytes] = ..., operator: _Optional[bytes] = ..., attested_at: _Optional[int] = ...) -> None: ...

class EnclaveKeyRegistration(_message.Message):
    __slots__ = ("report", "authority_signature", "operator_signature")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    AUTHORITY_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    report: bytes
    authority_signature: bytes
    operator_signature: bytes
    def __init__(self, report: _Optional[bytes] = ..., authority_signature: _Optional[bytes] = ..., operator_signature: _Optional[bytes] = ...) -> None: ...

class ClientMessage(_message.Message):
    __slots__ = ("update", "registrations")
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    REGISTRATIONS_FIELD_NUMBER: _ClassVar[int]
    update: SignedMessage
    registrations: _containers.RepeatedCompositeFieldContainer[EnclaveKeyRegistration]
    def __init__(self, update: _Optional[_Union[SignedMessage, _Mapping]] = ..., registrations: _Optional[_Iterable[_Union[EnclaveKeyRegistration, _Mapping]]] = ...) -> None: ...

class ClientState(_message.Message):
    __slots__ = ("code_hash", "authority", "allow_simulated", "key_expiration", "operators", "operators_threshold", "trusting_period", "latest_height", "frozen", "proxied_client_type")
    CODE_HASH_FIELD_NUMBER: _ClassVar[int]
    AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    ALLOW_SIMULATED_FIELD_NUMBER: _ClassVar[int]
    KEY_EXPIRATION_FIELD_NUMBER: _ClassVar[int]
    OPERATORS_FIELD_NUMBER: _ClassVar[int]
    OPERATORS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TRUSTING_PERIOD_FIELD_NUMBER: _ClassVar[int]
    LATEST_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FROZEN_FIELD_NUMBER: _ClassVar[int]
    PROXIED_CLIENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    code_hash: bytes
    authority: bytes
    allow_simulated: bool
    key_expiration: int
    operators: _containers.RepeatedScalarFieldContainer[bytes]
    operators_threshold: int
    trusting_period: int
    latest_height: _client_pb2.Height
    frozen: bool
    proxied_client_type: str
    def __init__(self, code_hash: _Optional[bytes] = ..., authority: _Optional[bytes] = ..., allow_simulated: _Optional[bool] = ..., key_expiration: _Optional[int] = ..., operators: _Optional[_Iterable[bytes]] = ..., operators_threshold: _Optional[int] = ..., trusting_period: _Optional[int] = ..., latest_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., frozen: _Optional[bool] = ..., proxied_client_type: _Optional[str] = ...) -> None: ...

class ConsensusState(_message.Message):
    __slots__ = ("state_id", "timestamp")
    STATE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    state_id: bytes
    timestamp: int
    def __init__(self, state_id: _Optional[bytes] = ..., timestamp: _Optional[int] = ...) -> None: ...

class EnclaveKeyRecord(_message.Message):
    __slots__ = ("operator", "expires_at")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    operator: bytes
    expires_at: int
    def __init__(self, operator: _Optional[bytes] = ..., expires_at: _Optional[int] = ...) -> None: ...

class SealedEnclaveKey(_message.Message):
    __slots__ = ("secret", "registration")
    SECRET_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    secret: bytes
    registration: EnclaveKeyRegistration
    def __init__(self, secret: _Optional[bytes] = ..., registration: _Optional[_Union[EnclaveKeyRegistration, _Mapping]] = ...) -> None: ...
