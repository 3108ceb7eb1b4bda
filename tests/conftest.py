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
        if os.environ.get("KAKEHASHI_REQUIRE_VECTORS"):
            raise FileNotFoundError(f"test vectors folder {VECTORS} is absent and KAKEHASHI_REQUIRE_VECTORS is set")
        # allow_module_level: vector files are also read at collection time for parametrize.
        pytest.skip(
            f"test vectors folder {VECTORS} is absent (set KAKEHASHI_TESTVECTORS)", allow_module_level=True
        )
    path = VECTORS.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"expected test vector file {path} is missing")
    return path


def load_vector(*parts: str) -> Any:
    return json.loads(vector_path(*parts).read_text())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mosquitto(tmp_path: Path) -> Any:
    """A real mosquitto broker on 127.0.0.1 for this test only; stopped by PID afterwards."""
    import shutil
    import signal
    import socket
    import subprocess
    import time

    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        raise RuntimeError("mosquitto is not installed: `make test` installs it (apt-get install mosquitto)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")

    def launch() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    err = proc.stderr.read() if proc.stderr else b""
                    raise RuntimeError(f"mosquitto did not start: {err!r}") from None
                time.sleep(0.05)

    class Broker:
        host = "127.0.0.1"

        def __init__(self) -> None:
            self.port = port
            self.proc = launch()

        def restart(self) -> None:
            self.stop()
            self.proc = launch()

        def stop(self) -> None:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=10)

    broker = Broker()
    try:
        yield broker
    finally:
        broker.stop()
