from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Checkpoint(_message.Message):
    __slots__ = ("chain_id", "height", "timestamp", "prev_hash", "tx_root", "ibc_root", "notary_set_hash", "next_notary_set_hash")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    TX_ROOT_FIELD_NUMBER: _ClassVar[int]
    IBC_ROOT_FIELD_NUMBER: _ClassVar[int]
    NOTARY_SET_HASH_FIELD_NUMBER: _ClassVar[int]
    NEXT_NOTARY_SET_HASH_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    timestamp: int
    prev_hash: bytes
    tx_root: bytes
    ibc_root: bytes
    notary_set_hash: bytes
    next_notary_set_hash: bytes
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., timestamp: _Optional[int] = ..., prev_hash: _Optional[bytes] = ..., tx_root: _Optional[bytes] = ..., ibc_root: _Optional[bytes] = ..., notary_set_hash: _Optional[bytes] = ..., next_notary_set_hash: _Optional[bytes] = ...) -> None: ...

class NotarySignature(_message.Message):
    __slots__ = ("public_key", "signature")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    public_key: bytes
    signature: bytes
    def __init__(self, public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class NotarySet(_message.Message):
    __slots__ = ("public_keys",)
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    public_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, public_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ClientState(_message.Message):
    __slots__ = ("chain_id", "notary_keys", "threshold", "latest_height", "trusting_period", "max_clock_drift", "frozen_height", "revision_number")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    NOTARY_KEYS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LATEST_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TRUSTING_PERIOD_FIELD_NUMBER: _ClassVar[int]
    MAX_CLOCK_DRIFT_FIELD_NUMBER: _ClassVar[int]
    FROZEN_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    notary_keys: _containers.RepeatedScalarFieldContainer[bytes]
    threshold: int
    latest_height: int
    trusting_period: int
    max_clock_drift: int
    frozen_height: int
    revision_number: int
    def __init__(self, chain_id: _Optional[str] = ..., notary_keys: _Optional[_Iterable[bytes]] = ..., threshold: _Optional[int] = ..., latest_height: _Optional[int] = ..., trusting_period: _Optional[int] = ..., max_clock_drift: _Optional[int] = ..., frozen_height: _Optional[int] = ..., revision_number: _Optional[int] = ...) -> None: ...

class ConsensusState(_message.Message):
    __slots__ = ("timestamp", "ibc_root", "notary_set_hash", "next_notary_set_hash")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    IBC_ROOT_FIELD_NUMBER: _ClassVar[int]
    NOTARY_SET_HASH_FIELD_NUMBER: _ClassVar[int]
    NEXT_NOTARY_SET_HASH_FIELD_NUMBER: _ClassVar[int]
    timestamp: int
    ibc_root: bytes
    notary_set_hash: bytes
    next_notary_set_hash: bytes
    def __init__(self, timestamp: _Optional[int] = ..., ibc_root: _Optional[bytes] = ..., notary_set_hash: _Optional[bytes] = ..., next_notary_set_hash: _Optional[bytes] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("checkpoint", "signatures", "trusted_height", "notary_set")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NOTARY_SET_FIELD_NUMBER: _ClassVar[int]
    checkpoint: Checkpoint
    signatures: _containers.RepeatedCompositeFieldContainer[NotarySignature]
    trusted_height: int
    notary_set: NotarySet
    def __init__(self, checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., signatures: _Optional[_Iterable[_Union[NotarySignature, _Mapping]]] = ..., trusted_height: _Optional[int] = ..., notary_set: _Optional[_Union[NotarySet, _Mapping]] = ...) -> None: ...

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
