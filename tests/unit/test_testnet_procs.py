"""The testnet's PID files and process stopping, on real child processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from relayer.testnet import network, procs

# A stand-in for a `kakehashi ... start` process: its command line names "start" and a home.
SLEEPER = "import time\nwhile True: time.sleep(0.05)\n"

# On SIGTERM the main thread ends (as a Python process's does at exit) while another thread
# still runs for a while: the process is a zombie leader with a live thread until then.
LINGERING = """
import ctypes, os, signal, sys, threading, time
go = threading.Event()
def teardown():
    go.wait()
    time.sleep(float(sys.argv[1]))
    os._exit(0)
threading.Thread(target=teardown).start()
def on_term(*_):
    go.set()
    ctypes.CDLL(None).pthread_exit(None)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def test_the_pid_file_holds_only_the_pid_so_kill_cat_works(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    pid_file = home / "relayer.pid"
    proc = procs.spawn([sys.executable, "-c", SLEEPER, "start", str(home)], home / "log", pid_file)
    try:
        assert pid_file.read_text() == f"{proc.pid}\n"
        assert procs.start_file(pid_file).read_text().strip() == procs.start_time(proc.pid)
        assert procs.read_pid(pid_file, home) == proc.pid
        assert procs.read_pid(pid_file, tmp_path / "elsewhere") is None  # not a process of this home
        killed = subprocess.run(["sh", "-c", f"kill $(cat {pid_file})"], capture_output=True, text=True)
        assert killed.returncode == 0, killed.stderr
        proc.wait(timeout=10)
        assert procs.read_pid(pid_file, home) is None
    finally:
        proc.kill()
        proc.wait()


def test_a_recorded_start_time_still_refuses_a_recycled_pid_and_old_files_are_read(tmp_path: Path) -> None:
    pid_file = tmp_path / "node.pid"
    proc = procs.spawn([sys.executable, "-c", SLEEPER, "start", str(tmp_path)], tmp_path / "log", pid_file)
    try:
        started = procs.start_time(proc.pid)
        procs.start_file(pid_file).write_text("1\n")  # another process had this PID
        assert procs.read_pid(pid_file, tmp_path) is None
        procs.start_file(pid_file).unlink()
        pid_file.write_text(f"{proc.pid} {started}\n")  # the one-line "PID START" of older testnets
        assert procs.read_pid(pid_file, tmp_path) == proc.pid
        pid_file.write_text(f"{proc.pid} 1\n")
        assert procs.read_pid(pid_file, tmp_path) is None
        procs.write_pid(pid_file, proc.pid)
        procs.remove_pid(pid_file)
        assert not pid_file.exists() and not procs.start_file(pid_file).exists()
    finally:
        proc.kill()
        proc.wait()


def test_stop_waits_until_a_process_whose_threads_outlive_its_main_thread_is_gone(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", LINGERING, "1.0"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        assert procs.stop({"node": proc.pid}, wait_s=20.0) == {}
        assert _gone(proc.pid)  # not merely a zombie leader with a thread still running
    finally:
        proc.kill()
        proc.wait()


def test_stop_kills_what_ignores_sigterm_and_waits_for_it(tmp_path: Path) -> None:
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n" + SLEEPER
    procs_ = [subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for p in procs_:
            assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        assert procs.stop({f"n{i}": p.pid for i, p in enumerate(procs_)}, wait_s=0.2) == {}
        assert all(_gone(p.pid) for p in procs_)
    finally:
        for p in procs_:
            p.kill()
            p.wait()


def test_a_testnet_names_its_first_paths_chains_as_found_on_them(tmp_path: Path) -> None:
    """`make run` printed "(evm) <-> (corda)" whatever the chains were called."""
    relayer = network.RelayerInfo(tmp_path, tmp_path / "relayer.toml", None, None, None, None, tmp_path / "relayer.log")
    tn = network.Testnet([], relayer, connection={"a_chain": "evm-7", "b_chain": "corda-3"})
    assert tn.chain_ids == ("evm-7", "corda-3")
    assert network.Testnet([], relayer).chain_ids == ("evm-1", "corda-1")  # before any connection: the first path's
