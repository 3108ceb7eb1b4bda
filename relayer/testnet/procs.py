"""The testnet's child processes: how they are started, found again and stopped.

Why PID files are checked three ways: the testnet outlives the command that started it, so
``status`` and ``down`` find its processes from files alone; a PID left from an earlier boot
or run may now belong to any process, so a PID counts only while that process is alive,
started when the file says (from /proc), and is a ``kakehashi ... start`` naming the home.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class TestnetError(RuntimeError):
    """The testnet could not be brought up or down; the message says which process and why."""


def kakehashi_argv() -> list[str]:
    exe = Path(sys.executable).with_name("kakehashi")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "relayer.cli.parser"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.write_text(f"{pid} {start_time(pid) or ''}\n")


def read_pid(pid_file: Path, marker: Path) -> int | None:
    """The PID in ``pid_file`` if that process is alive, started when the file says, and is
    a ``kakehashi ... start`` naming ``marker`` (its home or config) — else None."""
    try:
        parts = pid_file.read_text().split()
        pid = int(parts[0])
    except (OSError, ValueError, IndexError):
        return None
    if not alive(pid):
        return None
    if len(parts) > 1 and parts[1] != start_time(pid):
        return None  # the PID was recycled
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if b"start" in cmdline and str(marker).encode() in cmdline else None


def spawn(argv: list[str], log_path: Path, pid_file: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                env=env)
    finally:
        log.close()
    write_pid(pid_file, proc.pid)
    return proc


def terminate(pid: int, wait_s: float) -> None:
    """SIGTERM, then SIGKILL after ``wait_s``; reaps the process if it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
