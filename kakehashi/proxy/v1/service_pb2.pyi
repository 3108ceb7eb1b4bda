from kakehashi.ibc.v1 import client_pb2 as _client_pb2
from kakehashi.proxy.v1 import proxy_pb2 as _proxy_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EnclaveKey(_message.Message):
    __slots__ = ("address", "attested_at", "registration")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ATTESTED_AT_FIELD_NUMBER: _ClassVar[int]
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    attested_at: int
    registration: _proxy_pb2.EnclaveKeyRegistration
    def __init__(self, address: _Optional[bytes] = ..., attested_at: _Optional[int] = ..., registration: _Optional[_Union[_proxy_pb2.EnclaveKeyRegistration, _Mapping]] = ...) -> None: ...

class HostedClient(_message.Message):
    __slots__ = ("elc_client_id", "client_type", "latest_height", "status")
    ELC_CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LATEST_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    elc_client_id: str
    client_type: str
    latest_height: _client_pb2.Height
    status: str
    def __init__(self, elc_client_id: _Optional[str] = ..., client_type: _Optional[str] = ..., latest_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., status: _Optional[str] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("simulated", "code_hash", "authority", "operator", "keys", "clients")
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    CODE_HASH_FIELD_NUMBER: _ClassVar[int]
    AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    simulated: bool
    code_hash: bytes
    authority: bytes
    operator: bytes
    keys: _containers.RepeatedCompositeFieldContainer[EnclaveKey]
    clients: _containers.RepeatedCompositeFieldContainer[HostedClient]
    def __init__(self, simulated: _Optional[bool] = ..., code_hash: _Optional[bytes] = ..., authority: _Optional[bytes] = ..., operator: _Optional[bytes] = ..., keys: _Optional[_Iterable[_Union[EnclaveKey, _Mapping]]] = ..., clients: _Optional[_Iterable[_Union[HostedClient, _Mapping]]] = ...) -> None: ...

class NewEnclaveKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateClientRequest(_message.Message):
    __slots__ = ("elc_client_id", "client_type", "client_state", "consensus_state")
    ELC_CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_STATE_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_STATE_FIELD_NUMBER: _ClassVar[int]
    elc_client_id: str
    client_type: str
    client_state: bytes
    consensus_state: bytes
    def __init__(self, elc_client_id: _Optional[str] = ..., client_type: _Optional[str] = ..., client_state: _Optional[bytes] = ..., consensus_state: _Optional[bytes] = ...) -> None: ...

class CreateClientResponse(_message.Message):
    __slots__ = ("client_type", "height", "state_id", "timestamp", "trusting_period", "max_clock_drift", "reused")
    CLIENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STATE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TRUSTING_PERIOD_FIELD_NUMBER: _ClassVar[int]
    MAX_CLOCK_DRIFT_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    client_type: str
    height: _client_pb2.Height
    state_id: bytes
    timestamp: int
    trusting_period: int
    max_clock_drift: int
    reused: bool
    def __init__(self, client_type: _Optional[str] = ..., height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., state_id: _Optional[bytes] = ..., timestamp: _Optional[int] = ..., trusting_period: _Optional[int] = ..., max_clock_drift: _Optional[int] = ..., reused: _Optional[bool] = ...) -> None: ...

class QueryClientRequest(_message.Message):
    __slots__ = ("elc_client_id", "height")
    ELC_CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    elc_client_id: str
    height: _client_pb2.Height
    def __init__(self, elc_client_id: _Optional[str] = ..., height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ...) -> None: ...

class QueryClientResponse(_message.Message):
    __slots__ = ("latest_height", "has_height", "trusted_below")
    LATEST_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    HAS_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_BELOW_FIELD_NUMBER: _ClassVar[int]
    latest_height: _client_pb2.Height
    has_height: bool
    trusted_below: _client_pb2.Height
    def __init__(self, latest_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., has_height: _Optional[bool] = ..., trusted_below: _Optional[_Union[_client_pb2.Height, _Mapping]] = ...) -> None: ...

class UpdateClientRequest(_message.Message):
    __slots__ = ("elc_client_id", "client_message", "signers")
    ELC_CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SIGNERS_FIELD_NUMBER: _ClassVar[int]
    elc_client_id: str
    client_message: bytes
    signers: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, elc_client_id: _Optional[str] = ..., client_message: _Optional[bytes] = ..., signers: _Optional[_Iterable[bytes]] = ...) -> None: ...

class AggregateUpdatesRequest(_message.Message):
    __slots__ = ("updates", "signers")
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    SIGNERS_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[_proxy_pb2.SignedMessage]
    signers: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, updates: _Optional[_Iterable[_Union[_proxy_pb2.SignedMessage, _Mapping]]] = ..., signers: _Optional[_Iterable[bytes]] = ...) -> None: ...

class VerifyMembershipRequest(_message.Message):
    __slots__ = ("elc_client_id", "height", "prefix", "path", "value", "proof", "signers")
    ELC_CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    SIGNERS_FIELD_NUMBER: _ClassVar[int]
    elc_client_id: str
    height: _client_pb2.Height
    prefix: bytes
    path: bytes
    value: bytes
    proof: bytes
    signers: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, elc_client_id: _Optional[str] = ..., height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., prefix: _Optional[bytes] = ..., path: _Optional[bytes] = ..., value: _Optional[bytes] = ..., proof: _Optional[bytes] = ..., signers: _Optional[_Iterable[bytes]] = ...) -> None: ...

class VerifyNonMembershipRequest(_message.Message):
    __slots__ = ("elc_client_id", "height", "prefix", "path", "proof", "signers")
    ELC_CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    SIGNERS_FIELD_NUMBER: _ClassVar[int]
    elc_client_id: str
    height: _client_pb2.Height
    prefix: bytes
    path: bytes
    proof: bytes
    signers: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, elc_client_id: _Optional[str] = ..., height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., prefix: _Optional[bytes] = ..., path: _Optional[bytes] = ..., proof: _Optional[bytes] = ..., signers: _Optional[_Iterable[bytes]] = ...) -> None: ...

class BatchItem(_message.Message):
    __slots__ = ("path", "present", "value")
    PATH_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    path: bytes
    present: bool
    value: bytes
    def __init__(self, path: _Optional[bytes] = ..., present: _Optional[bool] = ..., value: _Optional[bytes] = ...) -> None: ...

class VerifyMembershipBatchRequest(_message.Message):
    __slots__ = ("elc_client_id", "height", "prefix", "items", "multiproof", "signers")
    ELC_CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MULTIPROOF_FIELD_NUMBER: _ClassVar[int]
    SIGNERS_FIELD_NUMBER: _ClassVar[int]
    elc_client_id: str
    height: _client_pb2.Height
    prefix: bytes
    items: _containers.RepeatedCompositeFieldContainer[BatchItem]
    multiproof: bytes
    signers: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, elc_client_id: _Optional[str] = ..., height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., prefix: _Optional[bytes] = ..., items: _Optional[_Iterable[_Union[BatchItem, _Mapping]]] = ..., multiproof: _Optional[bytes] = ..., signers: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SignedResponse(_message.Message):
    __slots__ = ("signed", "registrations")
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    REGISTRATIONS_FIELD_NUMBER: _ClassVar[int]
    signed: _proxy_pb2.SignedMessage
    registrations: _containers.RepeatedCompositeFieldContainer[_proxy_pb2.EnclaveKeyRegistration]
    def __init__(self, signed: _Optional[_Union[_proxy_pb2.SignedMessage, _Mapping]] = ..., registrations: _Optional[_Iterable[_Union[_proxy_pb2.EnclaveKeyRegistration, _Mapping]]] = ...) -> None: ...
