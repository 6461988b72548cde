"""Open an existing run: its directory, ledger and config snapshot (commands on RUN_DIR)."""

from __future__ import annotations

from pathlib import Path

import orjson

from benchsmith.config import RunConfig, parse_config
from benchsmith.errors import ConfigError
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir


def open_run_dir(run_dir: str | Path) -> tuple[RunDir, Ledger, RunConfig]:
    rd = RunDir(Path(run_dir))
    if not rd.ledger.is_file():
        raise ConfigError(str(rd.root), "", "not a run directory (no ledger.sqlite)")
    try:
        data = orjson.loads(rd.config_json.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise ConfigError(str(rd.config_json), "", f"cannot read the run's config: {e}") from None
    cfg_dir = data.pop("config_dir", str(rd.root))
    cfg = parse_config(data, file=str(rd.config_json), config_dir=cfg_dir)
    return rd, Ledger(rd.ledger), cfg
