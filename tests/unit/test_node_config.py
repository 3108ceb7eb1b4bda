"""node.toml validation names the bad key; the rendered default parses back."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from chains.node.config import (
    NodeConfigError,
    load_node_config,
    parse_node_config,
    render_node_config,
)


def _doc() -> dict[str, Any]:
    return tomllib.loads(render_node_config("evm-1", "evm", "127.0.0.1:9000", 0.5))


def test_rendered_default_round_trips(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text(render_node_config("corda-1", "corda", "127.0.0.1:9001", 1.0))
    cfg = load_node_config(tmp_path)
    assert (cfg.chain_id, cfg.kind, cfg.grpc_address, cfg.block_period_s) == ("corda-1", "corda", "127.0.0.1:9001", 1.0)
    assert cfg.db_path == tmp_path.resolve() / "data" / "node.db"


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda d: d.pop("chain_id"), "chain_id"),
        (lambda d: d.update(kind="cosmos"), "kind"),
        (lambda d: d["grpc"].update(address="nope"), "grpc.address"),
        (lambda d: d["grpc"].update(tls={"cert_file": "x"}), "grpc.tls.key_file: required"),
        (lambda d: d["grpc"].update(tls={"key_file": "x"}), "grpc.tls.cert_file: required"),
        (lambda d: d["grpc"].update(tls={"cert_file": "absent.pem", "key_file": "absent.key"}),
         "grpc.tls.cert_file: cannot read /tmp/absent.pem"),
        (lambda d: d["block"].update(period="0ms"), "block.period"),
        (lambda d: d["block"].update(max_txs=0), "block.max_txs"),
        (lambda d: d["mempool"].update(max_size=1), "mempool.max_size"),
        (lambda d: d["storage"].update(retain_heights=-1), "storage.retain_heights"),
        (lambda d: d["log"].update(level="loud"), "log.level"),
        (lambda d: d["block"].update(perod="1s"), "block.perod"),
        (lambda d: d.update(extra=1), "extra"),
    ],
)
def test_bad_values_name_the_key(mutate: Any, named: str) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(NodeConfigError) as err:
        parse_node_config(doc, Path("/tmp"))
    assert str(err.value).startswith(named), str(err.value)


def test_missing_home(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigError, match="node init"):
        load_node_config(tmp_path / "absent")
