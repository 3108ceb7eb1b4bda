"""The testnet's child processes: how they are started, found again and stopped.

Why PID files are checked three ways: the testnet outlives the command that started it, so
``status`` and ``down`` find its processes from files alone; a PID left from an earlier boot
or run may now belong to any process, so a PID counts only while that process is alive,
started when recorded (from /proc), and is a ``kakehashi ... start`` naming the home.

Why the start time sits in a file of its own (``NAME.pid.start``): a PID file that holds only
the PID is what every tool expects (``kill $(cat relayer.pid)``). A PID file written before
the split ("PID START" on one line) is still read.

Why ``stop`` waits until a process is really gone: when a multi-threaded process exits, its
main thread shows as a zombie while the other threads are still being torn down (and still
hold the node's database and ports), so a zombie counts as gone only once it is a lone task.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path


class TestnetError(RuntimeError):
    """The testnet could not be brought up or down; the message says which process and why."""


def kakehashi_argv() -> list[str]:
    exe = Path(sys.executable).with_name("kakehashi")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "relayer.cli.parser"]


# How long a SIGKILLed process may take to disappear before `stop` gives up on it.
KILL_WAIT_S = 5.0


def alive(pid: int) -> bool:
    """Whether the process still exists; an exited one awaiting its parent's wait() does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    if state != "Z":
        return True
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1  # threads still being torn down
    except OSError:
        return False


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def start_file(pid_file: Path) -> Path:
    return pid_file.with_name(pid_file.name + ".start")


def write_pid(pid_file: Path, pid: int) -> None:
    start_file(pid_file).write_text(f"{start_time(pid) or ''}\n")
    pid_file.write_text(f"{pid}\n")


def remove_pid(pid_file: Path) -> None:
    pid_file.unlink(missing_ok=True)
    start_file(pid_file).unlink(missing_ok=True)


def _recorded_start(pid_file: Path, parts: list[str]) -> str | None:
    try:
        return start_file(pid_file).read_text().strip() or None
    except OSError:
        return parts[1] if len(parts) > 1 else None  # "PID START" in one file (older testnets)


def read_pid(pid_file: Path, marker: Path, verb: bytes | None = b"start") -> int | None:
    """The PID in ``pid_file`` if that process is alive, started when recorded, and is a
    ``kakehashi ... start`` naming ``marker`` (its home or config) — else None. ``verb=None``
    for a process that is not ours (the testnet's mosquitto: only the marker is checked)."""
    try:
        parts = pid_file.read_text().split()
        pid = int(parts[0])
    except (OSError, ValueError, IndexError):
        return None
    if not alive(pid):
        return None
    started = _recorded_start(pid_file, parts)
    if started is not None and started != start_time(pid):
        return None  # the PID was recycled
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if (verb is None or verb in cmdline) and str(marker).encode() in cmdline else None


def spawn(argv: list[str], log_path: Path, pid_file: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                env=env)
    finally:
        log.close()
    write_pid(pid_file, proc.pid)
    return proc


def _reap(pids: Mapping[str, int]) -> None:
    for pid in pids.values():
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _wait_gone(pids: Mapping[str, int], until: float) -> dict[str, int]:
    left = dict(pids)
    while True:
        _reap(left)  # a child of ours is gone only once reaped
        left = {name: pid for name, pid in left.items() if alive(pid)}
        if not left or time.monotonic() >= until:
            return left
        time.sleep(0.05)


def stop(pids: Mapping[str, int], wait_s: float, kill_wait_s: float = KILL_WAIT_S) -> dict[str, int]:
    """SIGTERM every process, SIGKILL those still there after ``wait_s``, then wait up to
    ``kill_wait_s`` for them to disappear; returns the ones that did not (name -> pid)."""
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    left = _wait_gone(pids, time.monotonic() + wait_s)
    for pid in left.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return _wait_gone(left, time.monotonic() + kill_wait_s)


def terminate(name: str, pid: int, wait_s: float) -> None:
    """:func:`stop` for one process; raises TestnetError if it did not exit."""
    if stop({name: pid}, wait_s):
        raise TestnetError(f"{name} (pid {pid}) did not exit within {wait_s + KILL_WAIT_S:.0f}s")
