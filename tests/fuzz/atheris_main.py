"""One fuzz target under atheris (libFuzzer), coverage-guided over the project's own code.

Run by tests/fuzz/run.py as ``python -m tests.fuzz.atheris_main TARGET [libFuzzer flags]
[corpus dirs]``; the target functions are the ones ``make test`` runs under hypothesis. An
input that makes a target raise anything but its own refusal is a crash: libFuzzer writes
it to a crash-* file and the process exits non-zero.
"""

from __future__ import annotations

import sys

import atheris

INSTRUMENTED = ["chains", "lightclients", "relayer", "kakehashi"]


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.fuzz.atheris_main TARGET [libFuzzer flags] [corpus dirs]")
    name = sys.argv[1]
    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz import targets
    if name not in targets.TARGETS:
        sys.exit(f"unknown target {name!r}; expected one of {sorted(targets.TARGETS)}")
    fn = targets.TARGETS[name]
    fn(b"")  # build the target's trusted state (real chains, a node runtime) before the clock starts
    atheris.Setup([sys.argv[0], *sys.argv[2:]], fn)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
