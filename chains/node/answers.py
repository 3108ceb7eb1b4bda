"""The JSON text of application query answers (``QueryApp`` / ``QueryAppBatch``).

Why a module of its own: encoding answers was a visible share of a busy node's time (every
balance, escrow and Cash list a settlement client asks for), and orjson encodes them about ten
times faster than the standard library. orjson refuses integers beyond 64 bits, which token
amounts may reach; those answers fall back to ``json`` with the same output (sorted keys,
compact separators as orjson writes them). Decoding stays with ``json`` on the client side:
orjson would read such integers back as floats.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def encode_answer(answer: Any) -> str:
    try:
        return orjson.dumps(answer, option=_OPTIONS).decode()
    except TypeError:  # an integer beyond 64 bits (or a type orjson does not know)
        return json.dumps(answer, sort_keys=True, separators=(",", ":"))
