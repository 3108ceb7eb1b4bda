from kakehashi.ibc.v1 import client_pb2 as _client_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClientState(_message.Message):
    __slots__ = ("chain_id", "ibc_store_address", "latest_height", "trusting_period", "max_clock_drift", "frozen_height")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    IBC_STORE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LATEST_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TRUSTING_PERIOD_FIELD_NUMBER: _ClassVar[int]
    MAX_CLOCK_DRIFT_FIELD_NUMBER: _ClassVar[int]
    FROZEN_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    ibc_store_address: bytes
    latest_height: _client_pb2.Height
    trusting_period: int
    max_clock_drift: int
    frozen_height: _client_pb2.Height
    def __init__(self, chain_id: _Optional[int] = ..., ibc_store_address: _Optional[bytes] = ..., latest_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., trusting_period: _Optional[int] = ..., max_clock_drift: _Optional[int] = ..., frozen_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ...) -> None: ...

class ConsensusState(_message.Message):
    __slots__ = ("timestamp", "storage_root", "validators")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STORAGE_ROOT_FIELD_NUMBER: _ClassVar[int]
    VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    storage_root: bytes
    validators: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, timestamp: _Optional[int] = ..., storage_root: _Optional[bytes] = ..., validators: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("header_rlp", "seals", "trusted_height", "account_proof")
    HEADER_RLP_FIELD_NUMBER: _ClassVar[int]
    SEALS_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_PROOF_FIELD_NUMBER: _ClassVar[int]
    header_rlp: bytes
    seals: _containers.RepeatedScalarFieldContainer[bytes]
    trusted_height: _client_pb2.Height
    account_proof: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, header_rlp: _Optional[bytes] = ..., seals: _Optional[_Iterable[bytes]] = ..., trusted_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., account_proof: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Misbehaviour(_message.Message):
    __slots__ = ("header_1", "header_2")
    HEADER_1_FIELD_NUMBER: _ClassVar[int]
    HEADER_2_FIELD_NUMBER: _ClassVar[int]
    header_1: Header
    header_2: Header
    def __init__(self, header_1: _Optional[_Union[Header, _Mapping]] = ..., header_2: _Optional[_Union[Header, _Mapping]] = ...) -> None: ...

class ClientMessage(_message.Message):
    __slots__ = ("header", "misbehaviour")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MISBEHAVIOUR_FIELD_NUMBER: _ClassVar[int]
    header: Header
    misbehaviour: Misbehaviour
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., misbehaviour: _Optional[_Union[Misbehaviour, _Mapping]] = ...) -> None: ...

class StorageProof(_message.Message):
    __slots__ = ("proof", "multiproof")
    PROOF_FIELD_NUMBER: _ClassVar[int]
    MULTIPROOF_FIELD_NUMBER: _ClassVar[int]
    proof: _containers.RepeatedScalarFieldContainer[bytes]
    multiproof: StorageMultiproof
    def __init__(self, proof: _Optional[_Iterable[bytes]] = ..., multiproof: _Optional[_Union[StorageMultiproof, _Mapping]] = ...) -> None: ...

class StorageMultiproof(_message.Message):
    __slots__ = ("slots", "nodes")
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedScalarFieldContainer[bytes]
    nodes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, slots: _Optional[_Iterable[bytes]] = ..., nodes: _Optional[_Iterable[bytes]] = ...) -> None: ...
