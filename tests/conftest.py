"""Shared fixtures: where the public test vectors live."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = Path(os.environ.get("KAKEHASHI_TESTVECTORS", ROOT.parent / "shared" / "testvectors"))


def vector_path(*parts: str) -> Path:
    """Path of a file in the shared test vectors; skips the test when the folder is absent."""
    if not VECTORS.is_dir():
        pytest.skip(f"test vectors folder {VECTORS} is absent (set KAKEHASHI_TESTVECTORS)")
    path = VECTORS.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"expected test vector file {path} is missing")
    return path


def load_vector(*parts: str) -> Any:
    return json.loads(vector_path(*parts).read_text())
