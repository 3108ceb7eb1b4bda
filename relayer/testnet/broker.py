"""The TLS testnet's MQTT broker: a real mosquitto in ``HOME/broker`` with TLS, passwords and ACLs.

``testnet up --tls`` starts it beside the nodes so events travel as they would between hosts:
mutual TLS against the testnet's CA, a username and password per client (mosquitto's
password file, PBKDF2-SHA512 as ``mosquitto_passwd`` writes it), and an ACL per topic:

    relayer     writes kakehashi/# (packet and settlement events), reads trades/# (dvp feed)
    backoffice  reads kakehashi/#, writes trades/# (matched trades for `dvp feed`)

The port is chosen once (``broker.port``) and kept, so configs written earlier stay valid
after a restart. Passwords live 0600 in ``HOME/relayer/mqtt.password`` and
``HOME/broker/backoffice.password``; the broker only ever sees their hashes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from relayer.testnet.procs import TestnetError, read_pid, spawn
from relayer.testnet.tls import BACKOFFICE, NetPki

BROKER_DIR = "broker"
RELAYER_USER = "relayer"
# mosquitto 2's own default for `mosquitto_passwd` ($7$: PBKDF2-SHA512).
PBKDF2_ROUNDS = 101
ACL = f"""# Written by `kakehashi testnet up --tls`. One block per user; anything not granted is denied.
user {RELAYER_USER}
topic write kakehashi/#
topic read trades/#

user {BACKOFFICE}
topic read kakehashi/#
topic write trades/#
"""


@dataclass(frozen=True)
class BrokerInfo:
    home: Path
    pid: int | None
    address: str
    relayer_user: str
    relayer_password_file: Path
    backoffice_user: str
    backoffice_password_file: Path
    log: Path


def broker_home(root: Path) -> Path:
    return Path(root).resolve() / BROKER_DIR


def _conf(home: Path) -> Path:
    return home / "mosquitto.conf"


def broker_pid_file(root: Path) -> Path:
    return broker_home(root) / "broker.pid"


def broker_pid(root: Path) -> int | None:
    return read_pid(broker_pid_file(root), _conf(broker_home(root)), verb=None)


def password_hash(password: str, salt: bytes | None = None) -> str:
    """A mosquitto password-file hash (``$7$ROUNDS$SALT$HASH``, base64)."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ROUNDS)
    return f"$7${PBKDF2_ROUNDS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _secret_file(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        raise TestnetError("testnet up --tls runs a local MQTT broker: install mosquitto "
                           "(Debian: apt-get install mosquitto)")
    return exe


def info(root: Path, relayer_password_file: Path) -> BrokerInfo:
    home = broker_home(root)
    port = int((home / "broker.port").read_text())
    return BrokerInfo(home, broker_pid(root), f"127.0.0.1:{port}", RELAYER_USER, relayer_password_file, BACKOFFICE,
                      home / "backoffice.password", home / "broker.log")


def configure(root: Path, pki: NetPki, relayer_password_file: Path) -> None:
    """Write (every time: certificates or passwords may have changed) mosquitto's config,
    password file and ACL; the port is chosen on the first call and kept."""
    home = broker_home(root)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    port_file = home / "broker.port"
    if not port_file.exists():
        port_file.write_text(f"{_free_port()}\n")
    port = int(port_file.read_text())
    users = {RELAYER_USER: _secret_file(relayer_password_file),
             BACKOFFICE: _secret_file(home / "backoffice.password")}
    passwd = home / "passwd"
    fd = os.open(passwd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{u}:{password_hash(p)}\n" for u, p in users.items())
    (home / "acl").write_text(ACL)
    _conf(home).write_text(f"""# Written by `kakehashi testnet up --tls` on every run; edits are lost.
per_listener_settings false
# started as root, mosquitto would drop to user "mosquitto", who cannot read these 0600 files
user {pwd.getpwuid(os.geteuid()).pw_name}
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
allow_anonymous false
password_file {passwd}
acl_file {home / 'acl'}

listener {port} 127.0.0.1
protocol mqtt
cafile {pki.ca_file}
certfile {pki.broker.cert_file}
keyfile {pki.broker.key_file}
require_certificate true
tls_version tlsv1.2
""")


def up_broker(root: Path, pki: NetPki, relayer_password_file: Path, wait_s: float) -> BrokerInfo:
    """Configure and (unless it runs) start the broker; returns once it accepts connections.
    A running broker is restarted so it reads the config just written."""
    from relayer.testnet.procs import terminate

    exe = mosquitto_exe()
    configure(root, pki, relayer_password_file)
    home = broker_home(root)
    pid = broker_pid(root)
    if pid is not None:
        terminate("broker", pid, 10.0)
    proc = spawn([exe, "-c", str(_conf(home))], home / "broker.log", broker_pid_file(root))
    got = info(root, relayer_password_file)
    host, _, port = got.address.rpartition(":")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
            return info(root, relayer_password_file)
        except OSError:
            if proc.poll() is not None:
                raise TestnetError(f"broker exited with status {proc.returncode}; see {home / 'broker.log'}") from None
            if time.monotonic() > deadline:
                raise TestnetError(f"broker not listening within {wait_s:.0f}s; see {home / 'broker.log'}") from None
            time.sleep(0.05)
