from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TxStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TX_STATUS_UNKNOWN: _ClassVar[TxStatus]
    TX_STATUS_PENDING: _ClassVar[TxStatus]
    TX_STATUS_COMMITTED: _ClassVar[TxStatus]
    TX_STATUS_FAILED: _ClassVar[TxStatus]

class ProofMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROOF_MODE_NONE: _ClassVar[ProofMode]
    PROOF_MODE_EACH: _ClassVar[ProofMode]
    PROOF_MODE_MULTI: _ClassVar[ProofMode]
TX_STATUS_UNKNOWN: TxStatus
TX_STATUS_PENDING: TxStatus
TX_STATUS_COMMITTED: TxStatus
TX_STATUS_FAILED: TxStatus
PROOF_MODE_NONE: ProofMode
PROOF_MODE_EACH: ProofMode
PROOF_MODE_MULTI: ProofMode

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("chain_id", "kind", "latest_height", "latest_time_ns", "latest_hash", "validators", "revision_number", "earliest_height", "mempool_size")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LATEST_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LATEST_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    LATEST_HASH_FIELD_NUMBER: _ClassVar[int]
    VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MEMPOOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    kind: str
    latest_height: int
    latest_time_ns: int
    latest_hash: bytes
    validators: _containers.RepeatedScalarFieldContainer[bytes]
    revision_number: int
    earliest_height: int
    mempool_size: int
    def __init__(self, chain_id: _Optional[str] = ..., kind: _Optional[str] = ..., latest_height: _Optional[int] = ..., latest_time_ns: _Optional[int] = ..., latest_hash: _Optional[bytes] = ..., validators: _Optional[_Iterable[bytes]] = ..., revision_number: _Optional[int] = ..., earliest_height: _Optional[int] = ..., mempool_size: _Optional[int] = ...) -> None: ...

class GetHeaderRequest(_message.Message):
    __slots__ = ("height",)
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    height: int
    def __init__(self, height: _Optional[int] = ...) -> None: ...

class HeaderResponse(_message.Message):
    __slots__ = ("height", "time_ns", "hash", "header", "client_header")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HEADER_FIELD_NUMBER: _ClassVar[int]
    height: int
    time_ns: int
    hash: bytes
    header: bytes
    client_header: bytes
    def __init__(self, height: _Optional[int] = ..., time_ns: _Optional[int] = ..., hash: _Optional[bytes] = ..., header: _Optional[bytes] = ..., client_header: _Optional[bytes] = ...) -> None: ...

class GetBlockRequest(_message.Message):
    __slots__ = ("height", "results_only")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    height: int
    results_only: bool
    def __init__(self, height: _Optional[int] = ..., results_only: _Optional[bool] = ...) -> None: ...

class Attribute(_message.Message):
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
    attributes: _containers.RepeatedCompositeFieldContainer[Attribute]
    def __init__(self, type: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[Attribute, _Mapping]]] = ...) -> None: ...

class TxResult(_message.Message):
    __slots__ = ("tx_hash", "status", "height", "reason", "events", "cost", "index")
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    tx_hash: bytes
    status: TxStatus
    height: int
    reason: str
    events: _containers.RepeatedCompositeFieldContainer[Event]
    cost: int
    index: int
    def __init__(self, tx_hash: _Optional[bytes] = ..., status: _Optional[_Union[TxStatus, str]] = ..., height: _Optional[int] = ..., reason: _Optional[str] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., cost: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("height", "time_ns", "hash", "header", "txs", "results")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIME_NS_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    TXS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    height: int
    time_ns: int
    hash: bytes
    header: bytes
    txs: _containers.RepeatedScalarFieldContainer[bytes]
    results: _containers.RepeatedCompositeFieldContainer[TxResult]
    def __init__(self, height: _Optional[int] = ..., time_ns: _Optional[int] = ..., hash: _Optional[bytes] = ..., header: _Optional[bytes] = ..., txs: _Optional[_Iterable[bytes]] = ..., results: _Optional[_Iterable[_Union[TxResult, _Mapping]]] = ...) -> None: ...

class StreamBlocksRequest(_message.Message):
    __slots__ = ("from_height", "results_only")
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    from_height: int
    results_only: bool
    def __init__(self, from_height: _Optional[int] = ..., results_only: _Optional[bool] = ...) -> None: ...

class SubmitTxRequest(_message.Message):
    __slots__ = ("tx",)
    TX_FIELD_NUMBER: _ClassVar[int]
    tx: bytes
    def __init__(self, tx: _Optional[bytes] = ...) -> None: ...

class SubmitTxResponse(_message.Message):
    __slots__ = ("tx_hash",)
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    tx_hash: bytes
    def __init__(self, tx_hash: _Optional[bytes] = ...) -> None: ...

class GetTxResultRequest(_message.Message):
    __slots__ = ("tx_hash",)
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    tx_hash: bytes
    def __init__(self, tx_hash: _Optional[bytes] = ...) -> None: ...

class SubmitTxAndWaitRequest(_message.Message):
    __slots__ = ("tx", "timeout_ms")
    TX_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    tx: bytes
    timeout_ms: int
    def __init__(self, tx: _Optional[bytes] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class QueryIbcRequest(_message.Message):
    __slots__ = ("path", "height", "prove")
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PROVE_FIELD_NUMBER: _ClassVar[int]
    path: str
    height: int
    prove: bool
    def __init__(self, path: _Optional[str] = ..., height: _Optional[int] = ..., prove: _Optional[bool] = ...) -> None: ...

class QueryIbcResponse(_message.Message):
    __slots__ = ("value", "found", "proof", "proof_height", "revision_number")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    PROOF_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    found: bool
    proof: bytes
    proof_height: int
    revision_number: int
    def __init__(self, value: _Optional[bytes] = ..., found: _Optional[bool] = ..., proof: _Optional[bytes] = ..., proof_height: _Optional[int] = ..., revision_number: _Optional[int] = ...) -> None: ...

class QueryPacketCommitmentsRequest(_message.Message):
    __slots__ = ("port_id", "channel_id", "height")
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    port_id: str
    channel_id: str
    height: int
    def __init__(self, port_id: _Optional[str] = ..., channel_id: _Optional[str] = ..., height: _Optional[int] = ...) -> None: ...

class QuerySequencesRequest(_message.Message):
    __slots__ = ("port_id", "channel_id", "sequences", "height")
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    port_id: str
    channel_id: str
    sequences: _containers.RepeatedScalarFieldContainer[int]
    height: int
    def __init__(self, port_id: _Optional[str] = ..., channel_id: _Optional[str] = ..., sequences: _Optional[_Iterable[int]] = ..., height: _Optional[int] = ...) -> None: ...

class SequencesResponse(_message.Message):
    __slots__ = ("sequences", "height")
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedScalarFieldContainer[int]
    height: int
    def __init__(self, sequences: _Optional[_Iterable[int]] = ..., height: _Optional[int] = ...) -> None: ...

class QueryAppRequest(_message.Message):
    __slots__ = ("query", "args_json", "height")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    query: str
    args_json: str
    height: int
    def __init__(self, query: _Optional[str] = ..., args_json: _Optional[str] = ..., height: _Optional[int] = ...) -> None: ...

class QueryAppResponse(_message.Message):
    __slots__ = ("result_json", "height")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    height: int
    def __init__(self, result_json: _Optional[str] = ..., height: _Optional[int] = ...) -> None: ...

class SubmitTxsRequest(_message.Message):
    __slots__ = ("txs",)
    TXS_FIELD_NUMBER: _ClassVar[int]
    txs: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, txs: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SubmitOutcome(_message.Message):
    __slots__ = ("tx_hash", "code", "reason")
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tx_hash: bytes
    code: int
    reason: str
    def __init__(self, tx_hash: _Optional[bytes] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class SubmitTxsResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[SubmitOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[SubmitOutcome, _Mapping]]] = ...) -> None: ...

class QueryIbcBatchRequest(_message.Message):
    __slots__ = ("paths", "height", "proof_mode")
    PATHS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PROOF_MODE_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedScalarFieldContainer[str]
    height: int
    proof_mode: ProofMode
    def __init__(self, paths: _Optional[_Iterable[str]] = ..., height: _Optional[int] = ..., proof_mode: _Optional[_Union[ProofMode, str]] = ...) -> None: ...

class IbcBatchEntry(_message.Message):
    __slots__ = ("path", "found", "value", "proof")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    path: str
    found: bool
    value: bytes
    proof: bytes
    def __init__(self, path: _Optional[str] = ..., found: _Optional[bool] = ..., value: _Optional[bytes] = ..., proof: _Optional[bytes] = ...) -> None: ...

class QueryIbcBatchResponse(_message.Message):
    __slots__ = ("entries", "proof_height", "revision_number", "multiproof")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    PROOF_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    MULTIPROOF_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[IbcBatchEntry]
    proof_height: int
    revision_number: int
    multiproof: bytes
    def __init__(self, entries: _Optional[_Iterable[_Union[IbcBatchEntry, _Mapping]]] = ..., proof_height: _Optional[int] = ..., revision_number: _Optional[int] = ..., multiproof: _Optional[bytes] = ...) -> None: ...

class AppQuery(_message.Message):
    __slots__ = ("query", "args_json")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    query: str
    args_json: str
    def __init__(self, query: _Optional[str] = ..., args_json: _Optional[str] = ...) -> None: ...

class AppAnswer(_message.Message):
    __slots__ = ("result_json", "code", "reason")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    code: int
    reason: str
    def __init__(self, result_json: _Optional[str] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class QueryAppBatchRequest(_message.Message):
    __slots__ = ("queries", "height")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[AppQuery]
    height: int
    def __init__(self, queries: _Optional[_Iterable[_Union[AppQuery, _Mapping]]] = ..., height: _Optional[int] = ...) -> None: ...

class QueryAppBatchResponse(_message.Message):
    __slots__ = ("answers", "height")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[AppAnswer]
    height: int
    def __init__(self, answers: _Optional[_Iterable[_Union[AppAnswer, _Mapping]]] = ..., height: _Optional[int] = ...) -> None: ...
