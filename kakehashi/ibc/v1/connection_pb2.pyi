from kakehashi.ibc.v1 import client_pb2 as _client_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConnectionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONNECTION_STATE_UNINITIALIZED_UNSPECIFIED: _ClassVar[ConnectionState]
    CONNECTION_STATE_INIT: _ClassVar[ConnectionState]
    CONNECTION_STATE_TRYOPEN: _ClassVar[ConnectionState]
    CONNECTION_STATE_OPEN: _ClassVar[ConnectionState]
CONNECTION_STATE_UNINITIALIZED_UNSPECIFIED: ConnectionState
CONNECTION_STATE_INIT: ConnectionState
CONNECTION_STATE_TRYOPEN: ConnectionState
CONNECTION_STATE_OPEN: ConnectionState

class Version(_message.Message):
    __slots__ = ("identifier", "features")
    IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    identifier: str
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, identifier: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class MerklePrefix(_message.Message):
    __slots__ = ("key_prefix",)
    KEY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    key_prefix: bytes
    def __init__(self, key_prefix: _Optional[bytes] = ...) -> None: ...

class Counterparty(_message.Message):
    __slots__ = ("client_id", "connection_id", "prefix")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    connection_id: str
    prefix: MerklePrefix
    def __init__(self, client_id: _Optional[str] = ..., connection_id: _Optional[str] = ..., prefix: _Optional[_Union[MerklePrefix, _Mapping]] = ...) -> None: ...

class ConnectionEnd(_message.Message):
    __slots__ = ("client_id", "versions", "state", "counterparty", "delay_period")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNTERPARTY_FIELD_NUMBER: _ClassVar[int]
    DELAY_PERIOD_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    versions: _containers.RepeatedCompositeFieldContainer[Version]
    state: ConnectionState
    counterparty: Counterparty
    delay_period: int
    def __init__(self, client_id: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[Version, _Mapping]]] = ..., state: _Optional[_Union[ConnectionState, str]] = ..., counterparty: _Optional[_Union[Counterparty, _Mapping]] = ..., delay_period: _Optional[int] = ...) -> None: ...

class MsgConnectionOpenInit(_message.Message):
    __slots__ = ("client_id", "counterparty", "version", "delay_period")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTERPARTY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DELAY_PERIOD_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    counterparty: Counterparty
    version: Version
    delay_period: int
    def __init__(self, client_id: _Optional[str] = ..., counterparty: _Optional[_Union[Counterparty, _Mapping]] = ..., version: _Optional[_Union[Version, _Mapping]] = ..., delay_period: _Optional[int] = ...) -> None: ...

class MsgConnectionOpenTry(_message.Message):
    __slots__ = ("client_id", "counterparty", "delay_period", "counterparty_versions", "proof_init", "proof_height")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTERPARTY_FIELD_NUMBER: _ClassVar[int]
    DELAY_PERIOD_FIELD_NUMBER: _ClassVar[int]
    COUNTERPARTY_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PROOF_INIT_FIELD_NUMBER: _ClassVar[int]
    PROOF_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    counterparty: Counterparty
    delay_period: int
    counterparty_versions: _containers.RepeatedCompositeFieldContainer[Version]
    proof_init: bytes
    proof_height: _client_pb2.Height
    def __init__(self, client_id: _Optional[str] = ..., counterparty: _Optional[_Union[Counterparty, _Mapping]] = ..., delay_period: _Optional[int] = ..., counterparty_versions: _Optional[_Iterable[_Union[Version, _Mapping]]] = ..., proof_init: _Optional[bytes] = ..., proof_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ...) -> None: ...

class MsgConnectionOpenAck(_message.Message):
    __slots__ = ("connection_id", "counterparty_connection_id", "version", "proof_try", "proof_height")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTERPARTY_CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROOF_TRY_FIELD_NUMBER: _ClassVar[int]
    PROOF_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    counterparty_connection_id: str
    version: Version
    proof_try: bytes
    proof_height: _client_pb2.Height
    def __init__(self, connection_id: _Optional[str] = ..., counterparty_connection_id: _Optional[str] = ..., version: _Optional[_Union[Version, _Mapping]] = ..., proof_try: _Optional[bytes] = ..., proof_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ...) -> None: ...

class MsgConnectionOpenConfirm(_message.Message):
    __slots__ = ("connection_id", "proof_ack", "proof_height")
    CONNECTION_ID_FIELD_NUMBER: _ClassVar[int]
    PROOF_ACK_FIELD_NUMBER: _ClassVar[int]
    PROOF_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    connection_id: str
    proof_ack: bytes
    proof_height: _client_pb2.Height
    def __init__(self, connection_id: _Optional[str] = ..., proof_ack: _Optional[bytes] = ..., proof_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ...) -> None: ...
