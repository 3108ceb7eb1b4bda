"""A real proxy process (SIMULATED enclave) for the end-to-end tests and benches, and the
relayer-config lines that put chains in proxy mode (see tests/support/live.py for the rest)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.live import Proc, Procs, kj


@dataclass(frozen=True)
class ProxyProc:
    home: Path
    addr: str
    code_hash: str
    authority: str
    operator: str
    proc: Proc


def start_proxy(root: Path, procs: Procs, name: str = "proxy", authority_of: ProxyProc | None = None) -> ProxyProc:
    """A proxy process; ``authority_of``: share that proxy's (simulated) attestation authority."""
    home = root / name
    shared = ["--authority-key", str(authority_of.home / "authority.key")] if authority_of is not None else []
    init = kj("proxy", "init", "--home", str(home), *shared)
    proc = procs.spawn(name, ["proxy", "start", "--home", str(home), "--log-format", "json"], root / f"{name}.log")
    deadline = time.monotonic() + 30
    while not (home / "proxy.addr").exists():
        assert proc.alive() and time.monotonic() < deadline, proc.tail()
        time.sleep(0.05)
    public = json.loads((home / "proxy.json").read_text())
    return ProxyProc(home, init["listen"], public["code_hash"], init["authority"], init["operator"], proc)


def proxy_section(proxy: ProxyProc | list[ProxyProc], key_expiration: str = "1d", key_renew_before: str | None = None,
                  threshold: int | None = None) -> str:
    """``[chains.proxy]`` for one proxy, or for several operators' proxies (k = ``threshold``)."""
    proxies = proxy if isinstance(proxy, list) else [proxy]
    renew = f'key_renew_before = "{key_renew_before}"\n' if key_renew_before else ""
    addrs = ", ".join(f'"{p.addr}"' for p in proxies)
    operators = ", ".join(f'"{p.operator}"' for p in proxies)
    return f"""prover = "proxy"
[chains.proxy]
addrs = [{addrs}]
code_hash = "{proxies[0].code_hash}"
authority = "{proxies[0].authority}"
operators = [{operators}]
threshold = {threshold or len(proxies)}
key_expiration = "{key_expiration}"
{renew}allow_simulated = true
"""


def use_proxy(cfg: Path, section: str) -> Path:
    """Put every [[chains]] entry of a config written by live.write_config in proxy mode: each
    entry is a tail of the file, so its [chains.proxy] table goes at the entry's end."""
    blocks = cfg.read_text().split("[[chains]]")
    cfg.write_text(blocks[0] + "".join("[[chains]]" + b + section for b in blocks[1:]))
    return cfg
