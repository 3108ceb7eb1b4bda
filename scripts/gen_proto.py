"""Regenerate the protobuf Python package from proto/.

Generated modules (messages, gRPC stubs and .pyi stubs) are committed so that a plain
`pip install` needs no protoc; tests/unit/test_proto_fresh.py runs this script into a temp
directory and fails when the committed code is stale.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PACKAGE = "kakehashi"


def generate(out: Path) -> list[Path]:
    import grpc_tools
    from grpc_tools import protoc  # dev dependency, pinned in pyproject

    sources = sorted(PROTO_DIR.rglob("*.proto"))
    if not sources:
        raise SystemExit("no .proto files under proto/")
    target = out / PACKAGE
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(s.relative_to(PROTO_DIR)) for s in sources],
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    # Every generated directory becomes a regular package so setuptools and mypy find it.
    for d in [target, *[p for p in target.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    (target / "py.typed").touch()
    return sorted(p for p in target.rglob("*") if p.is_file())


def sync(fresh: Path, target: Path) -> int:
    """Make ``target`` equal to ``fresh`` touching only files that changed, so that a
    process importing the package while it is regenerated never sees it missing."""
    changed = 0
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    for rel in sorted(fresh_files):
        dst = target / rel
        if not dst.exists() or not filecmp.cmp(fresh / rel, dst, shallow=False):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(fresh / rel, dst)
            changed += 1
    if target.exists():
        for p in sorted(target.rglob("*"), reverse=True):
            if "__pycache__" in p.parts:
                continue
            rel = p.relative_to(target)
            if p.is_file() and rel not in fresh_files:
                p.unlink()
                changed += 1
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT)
    ns = parser.parse_args()
    out = ns.out.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
        changed = sync(Path(tmp) / PACKAGE, out / PACKAGE)
    print(f"generated {len(files)} files, {changed} changed, under {out / PACKAGE}", file=sys.stderr)


if __name__ == "__main__":
    main()
