from kakehashi.ibc.v1 import client_pb2 as _client_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Terms(_message.Message):
    __slots__ = ("trade_id", "security_token", "st_quantity", "cash_issuer", "sc_amount", "seller_evm", "buyer_evm", "seller_corda", "buyer_corda", "deadline_ns", "sc_brand")
    TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    SECURITY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ST_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    CASH_ISSUER_FIELD_NUMBER: _ClassVar[int]
    SC_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SELLER_EVM_FIELD_NUMBER: _ClassVar[int]
    BUYER_EVM_FIELD_NUMBER: _ClassVar[int]
    SELLER_CORDA_FIELD_NUMBER: _ClassVar[int]
    BUYER_CORDA_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_NS_FIELD_NUMBER: _ClassVar[int]
    SC_BRAND_FIELD_NUMBER: _ClassVar[int]
    trade_id: str
    security_token: bytes
    st_quantity: int
    cash_issuer: bytes
    sc_amount: int
    seller_evm: bytes
    buyer_evm: bytes
    seller_corda: bytes
    buyer_corda: bytes
    deadline_ns: int
    sc_brand: str
    def __init__(self, trade_id: _Optional[str] = ..., security_token: _Optional[bytes] = ..., st_quantity: _Optional[int] = ..., cash_issuer: _Optional[bytes] = ..., sc_amount: _Optional[int] = ..., seller_evm: _Optional[bytes] = ..., buyer_evm: _Optional[bytes] = ..., seller_corda: _Optional[bytes] = ..., buyer_corda: _Optional[bytes] = ..., deadline_ns: _Optional[int] = ..., sc_brand: _Optional[str] = ...) -> None: ...

class DvpPacketData(_message.Message):
    __slots__ = ("terms",)
    TERMS_FIELD_NUMBER: _ClassVar[int]
    terms: Terms
    def __init__(self, terms: _Optional[_Union[Terms, _Mapping]] = ...) -> None: ...

class MsgDvpSend(_message.Message):
    __slots__ = ("source_channel", "terms", "timeout_height", "timeout_timestamp", "sender")
    SOURCE_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    source_channel: str
    terms: Terms
    timeout_height: _client_pb2.Height
    timeout_timestamp: int
    sender: str
    def __init__(self, source_channel: _Optional[str] = ..., terms: _Optional[_Union[Terms, _Mapping]] = ..., timeout_height: _Optional[_Union[_client_pb2.Height, _Mapping]] = ..., timeout_timestamp: _Optional[int] = ..., sender: _Optional[str] = ...) -> None: ...

class DvpLock(_message.Message):
    __slots__ = ("trade_id", "payer", "payee", "cash_issuer", "amount", "port_id", "channel_id", "timeout_timestamp", "terms_hash", "brand")
    TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    PAYER_FIELD_NUMBER: _ClassVar[int]
    PAYEE_FIELD_NUMBER: _ClassVar[int]
    CASH_ISSUER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TERMS_HASH_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    trade_id: str
    payer: bytes
    payee: bytes
    cash_issuer: bytes
    amount: int
    port_id: str
    channel_id: str
    timeout_timestamp: int
    terms_hash: bytes
    brand: str
    def __init__(self, trade_id: _Optional[str] = ..., payer: _Optional[bytes] = ..., payee: _Optional[bytes] = ..., cash_issuer: _Optional[bytes] = ..., amount: _Optional[int] = ..., port_id: _Optional[str] = ..., channel_id: _Optional[str] = ..., timeout_timestamp: _Optional[int] = ..., terms_hash: _Optional[bytes] = ..., brand: _Optional[str] = ...) -> None: ...

class DvpCommand(_message.Message):
    __slots__ = ("trade_id", "output_index")
    TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    trade_id: str
    output_index: int
    def __init__(self, trade_id: _Optional[str] = ..., output_index: _Optional[int] = ...) -> None: ...
