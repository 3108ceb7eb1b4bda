from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StateRef(_message.Message):
    __slots__ = ("txid", "index")
    TXID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    txid: bytes
    index: int
    def __init__(self, txid: _Optional[bytes] = ..., index: _Optional[int] = ...) -> None: ...

class TransactionState(_message.Message):
    __slots__ = ("contract", "data", "participants", "notary", "has_encumbrance", "encumbrance")
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    NOTARY_FIELD_NUMBER: _ClassVar[int]
    HAS_ENCUMBRANCE_FIELD_NUMBER: _ClassVar[int]
    ENCUMBRANCE_FIELD_NUMBER: _ClassVar[int]
    contract: str
    data: bytes
    participants: _containers.RepeatedScalarFieldContainer[bytes]
    notary: bytes
    has_encumbrance: bool
    encumbrance: int
    def __init__(self, contract: _Optional[str] = ..., data: _Optional[bytes] = ..., participants: _Optional[_Iterable[bytes]] = ..., notary: _Optional[bytes] = ..., has_encumbrance: _Optional[bool] = ..., encumbrance: _Optional[int] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("contract", "name", "data", "signers")
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SIGNERS_FIELD_NUMBER: _ClassVar[int]
    contract: str
    name: str
    data: bytes
    signers: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, contract: _Optional[str] = ..., name: _Optional[str] = ..., data: _Optional[bytes] = ..., signers: _Optional[_Iterable[bytes]] = ...) -> None: ...

class TimeWindow(_message.Message):
    __slots__ = ("from_ns", "until_ns")
    FROM_NS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_NS_FIELD_NUMBER: _ClassVar[int]
    from_ns: int
    until_ns: int
    def __init__(self, from_ns: _Optional[int] = ..., until_ns: _Optional[int] = ...) -> None: ...

class Notary(_message.Message):
    __slots__ = ("notary",)
    NOTARY_FIELD_NUMBER: _ClassVar[int]
    notary: bytes
    def __init__(self, notary: _Optional[bytes] = ...) -> None: ...

class Cash(_message.Message):
    __slots__ = ("issuer", "owner", "amount", "brand")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    issuer: bytes
    owner: bytes
    amount: int
    brand: str
    def __init__(self, issuer: _Optional[bytes] = ..., owner: _Optional[bytes] = ..., amount: _Optional[int] = ..., brand: _Optional[str] = ...) -> None: ...

class CashRedeem(_message.Message):
    __slots__ = ("amount",)
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    amount: int
    def __init__(self, amount: _Optional[int] = ...) -> None: ...

class Admission(_message.Message):
    __slots__ = ("issuer", "holders", "brand")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    issuer: bytes
    holders: _containers.RepeatedScalarFieldContainer[bytes]
    brand: str
    def __init__(self, issuer: _Optional[bytes] = ..., holders: _Optional[_Iterable[bytes]] = ..., brand: _Optional[str] = ...) -> None: ...

class PartialNode(_message.Message):
    __slots__ = ("level", "index", "hash")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    level: int
    index: int
    hash: bytes
    def __init__(self, level: _Optional[int] = ..., index: _Optional[int] = ..., hash: _Optional[bytes] = ...) -> None: ...

class RevealedComponent(_message.Message):
    __slots__ = ("group", "index", "component", "nonce")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    group: int
    index: int
    component: bytes
    nonce: bytes
    def __init__(self, group: _Optional[int] = ..., index: _Optional[int] = ..., component: _Optional[bytes] = ..., nonce: _Optional[bytes] = ...) -> None: ...

class GroupProof(_message.Message):
    __slots__ = ("group", "leaf_count", "components", "siblings")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    LEAF_COUNT_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    SIBLINGS_FIELD_NUMBER: _ClassVar[int]
    group: int
    leaf_count: int
    components: _containers.RepeatedCompositeFieldContainer[RevealedComponent]
    siblings: _containers.RepeatedCompositeFieldContainer[PartialNode]
    def __init__(self, group: _Optional[int] = ..., leaf_count: _Optional[int] = ..., components: _Optional[_Iterable[_Union[RevealedComponent, _Mapping]]] = ..., siblings: _Optional[_Iterable[_Union[PartialNode, _Mapping]]] = ...) -> None: ...

class FilteredTransaction(_message.Message):
    __slots__ = ("txid", "group_roots", "groups")
    TXID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ROOTS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    txid: bytes
    group_roots: _containers.RepeatedScalarFieldContainer[bytes]
    groups: _containers.RepeatedCompositeFieldContainer[GroupProof]
    def __init__(self, txid: _Optional[bytes] = ..., group_roots: _Optional[_Iterable[bytes]] = ..., groups: _Optional[_Iterable[_Union[GroupProof, _Mapping]]] = ...) -> None: ...

class WireTransaction(_message.Message):
    __slots__ = ("inputs", "outputs", "commands", "notary", "privacy_salt", "references", "attachments", "time_window")
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    NOTARY_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_SALT_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    TIME_WINDOW_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedCompositeFieldContainer[StateRef]
    outputs: _containers.RepeatedCompositeFieldContainer[TransactionState]
    commands: _containers.RepeatedCompositeFieldContainer[Command]
    notary: bytes
    privacy_salt: bytes
    references: _containers.RepeatedCompositeFieldContainer[StateRef]
    attachments: _containers.RepeatedScalarFieldContainer[bytes]
    time_window: TimeWindow
    def __init__(self, inputs: _Optional[_Iterable[_Union[StateRef, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TransactionState, _Mapping]]] = ..., commands: _Optional[_Iterable[_Union[Command, _Mapping]]] = ..., notary: _Optional[bytes] = ..., privacy_salt: _Optional[bytes] = ..., references: _Optional[_Iterable[_Union[StateRef, _Mapping]]] = ..., attachments: _Optional[_Iterable[bytes]] = ..., time_window: _Optional[_Union[TimeWindow, _Mapping]] = ...) -> None: ...

class PartySignature(_message.Message):
    __slots__ = ("public_key", "signature")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    public_key: bytes
    signature: bytes
    def __init__(self, public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SignedTransaction(_message.Message):
    __slots__ = ("tx", "signatures")
    TX_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    tx: WireTransaction
    signatures: _containers.RepeatedCompositeFieldContainer[PartySignature]
    def __init__(self, tx: _Optional[_Union[WireTransaction, _Mapping]] = ..., signatures: _Optional[_Iterable[_Union[PartySignature, _Mapping]]] = ...) -> None: ...

class MemberBatchSignature(_message.Message):
    __slots__ = ("public_key", "signature", "indices")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    public_key: bytes
    signature: bytes
    indices: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., indices: _Optional[_Iterable[int]] = ...) -> None: ...

class NotaryBatch(_message.Message):
    __slots__ = ("txids", "signatures")
    TXIDS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    txids: _containers.RepeatedScalarFieldContainer[bytes]
    signatures: _containers.RepeatedCompositeFieldContainer[MemberBatchSignature]
    def __init__(self, txids: _Optional[_Iterable[bytes]] = ..., signatures: _Optional[_Iterable[_Union[MemberBatchSignature, _Mapping]]] = ...) -> None: ...

class TxNotarySignature(_message.Message):
    __slots__ = ("public_key", "signature", "leaf_count", "index", "siblings")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    LEAF_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SIBLINGS_FIELD_NUMBER: _ClassVar[int]
    public_key: bytes
    signature: bytes
    leaf_count: int
    index: int
    siblings: _containers.RepeatedCompositeFieldContainer[PartialNode]
    def __init__(self, public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., leaf_count: _Optional[int] = ..., index: _Optional[int] = ..., siblings: _Optional[_Iterable[_Union[PartialNode, _Mapping]]] = ...) -> None: ...
