from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Height(_message.Message):
    __slots__ = ("revision_number", "revision_height")
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REVISION_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    revision_number: int
    revision_height: int
    def __init__(self, revision_number: _Optional[int] = ..., revision_height: _Optional[int] = ...) -> None: ...

class MsgCreateClient(_message.Message):
    __slots__ = ("client_type", "client_state", "consensus_state")
    CLIENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_STATE_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_STATE_FIELD_NUMBER: _ClassVar[int]
    client_type: str
    client_state: bytes
    consensus_state: bytes
    def __init__(self, client_type: _Optional[str] = ..., client_state: _Optional[bytes] = ..., consensus_state: _Optional[bytes] = ...) -> None: ...

class MsgUpdateClient(_message.Message):
    __slots__ = ("client_id", "client_message")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    client_message: bytes
    def __init__(self, client_id: _Optional[str] = ..., client_message: _Optional[bytes] = ...) -> None: ...

class MsgSubmitMisbehaviour(_message.Message):
    __slots__ = ("client_id", "misbehaviour")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MISBEHAVIOUR_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    misbehaviour: bytes
    def __init__(self, client_id: _Optional[str] = ..., misbehaviour: _Optional[bytes] = ...) -> None: ...

class NextSequence(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class EventAttribute(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("type", "attributes")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    type: str
    attributes: _containers.RepeatedCompositeFieldContainer[EventAttribute]
    def __init__(self, type: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[EventAttribute, _Mapping]]] = ...) -> None: ...
