"""ICS-24 identifier rules and the identifier generators.

Generated identifiers come from counters kept in the store (``nextClientSequence`` ...), so
an identifier is never handed out twice, even after its object is closed or frozen.
"""

from __future__ import annotations

import re

from chains.ibc.errors import InvalidIdentifier

_ALLOWED = re.compile(r"[a-zA-Z0-9._+\-#\[\]<>]+")
_CLIENT_TYPE = re.compile(r"[a-z0-9][a-z0-9-]*")

CLIENT_ID_LEN = (9, 64)
CONNECTION_ID_LEN = (10, 64)
CHANNEL_ID_LEN = (8, 64)
PORT_ID_LEN = (2, 128)


def _check(kind: str, value: object, bounds: tuple[int, int]) -> str:
    if not isinstance(value, str):
        raise InvalidIdentifier(f"{kind} identifier must be a string, got {type(value).__name__}")
    low, high = bounds
    if not low <= len(value) <= high:
        raise InvalidIdentifier(
            f"{kind} identifier {value!r} must be {low}..{high} characters, got {len(value)}"
        )
    if not _ALLOWED.fullmatch(value):
        raise InvalidIdentifier(f"{kind} identifier {value!r} has characters outside [a-zA-Z0-9._+-#[]<>]")
    if "/" in value:
        raise InvalidIdentifier(f"{kind} identifier {value!r} must not contain '/'")
    return value


def validate_client_id(value: object) -> str:
    return _check("client", value, CLIENT_ID_LEN)


def validate_connection_id(value: object) -> str:
    return _check("connection", value, CONNECTION_ID_LEN)


def validate_channel_id(value: object) -> str:
    return _check("channel", value, CHANNEL_ID_LEN)


def validate_port_id(value: object) -> str:
    return _check("port", value, PORT_ID_LEN)


def validate_client_type(value: object) -> str:
    """Client types become the stem of client ids, so they must leave room for ``-{n}``."""
    if not isinstance(value, str) or not _CLIENT_TYPE.fullmatch(value) or len(value) > 40:
        raise InvalidIdentifier(
            f"client type {value!r} must be 1..40 characters of [a-z0-9-] starting alphanumeric"
        )
    return value


def client_id(client_type: str, n: int) -> str:
    return f"{client_type}-{n}"


def connection_id(n: int) -> str:
    return f"connection-{n}"


def channel_id(n: int) -> str:
    return f"channel-{n}"
