"""TOML text to a document, with its faults turned into the caller's config error.

Why one reader: node.toml and relayer.toml are both edited by hand and both must refuse bad
text with an error naming the file, never with a traceback. ``tomllib`` fails in two ways —
a syntax error, and a ``RecursionError`` on arrays or tables nested thousands deep (it
recurses per level) — and a reader that forgets the second one crashes on such a file.
Each config keeps its own error type (``NodeConfigError``, the relayer's ``ConfigError``),
so the caller passes it in; this module imports nothing of either, and the relayer may use
it because it already builds on ``chains``.
"""

from __future__ import annotations

import tomllib
from typing import Any


def parse_toml(text: str, where: str, error: type[ValueError]) -> dict[str, Any]:
    """The document in ``text``; bad text raises ``error("<where>: not valid TOML: ...")``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib recurses per nesting level
        raise error(f"{where}: not valid TOML: arrays or tables nest too deeply") from None
