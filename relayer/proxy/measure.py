"""The code hash of the light-client bundle: what the SIMULATED enclave reports as its measurement.

A real SGX enclave's MRENCLAVE is a hash of the code loaded into it; clients pin it so that
only that code's keys count. The simulated stand-in hashes the source the proxy actually
runs for verification: every module under ``lightclients/`` and the generated protobuf
modules of the encodings it verifies. Preimage, per file in sorted path order:
``be32(len path) || path || be64(len content) || content``, all hashed with sha256 under the
tag ``kakehashi/proxy/v1/code\\x00``. Changing any of it is a different enclave: its reports
name another hash, and keys it sealed before cannot be unsealed (see sealing.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TAG = b"kakehashi/proxy/v1/code\x00"
GENERATED = ("ibc", "ics23", "qbft", "corda", "proxy")


def bundle_files(root: Path = ROOT) -> list[Path]:
    files = sorted((root / "lightclients").rglob("*.py"))
    for area in GENERATED:
        files += sorted((root / "kakehashi" / area).rglob("*_pb2.py"))
    return sorted(f for f in files if "__pycache__" not in f.parts)


def code_hash(root: Path = ROOT) -> bytes:
    h = hashlib.sha256(TAG)
    for f in bundle_files(root):
        rel = f.relative_to(root).as_posix().encode()
        content = f.read_bytes()
        h.update(len(rel).to_bytes(4, "big") + rel + len(content).to_bytes(8, "big") + content)
    return h.digest()
