"""Open an existing run with its config snapshot (commands on RUN_DIR that need the config:
batch status/cancel/export/ingest). Without the config: `store.rundir.open_existing_run`."""

from __future__ import annotations

from pathlib import Path

import orjson

from benchsmith.config import RunConfig, parse_config
from benchsmith.errors import ConfigError
from benchsmith.store.ledger import Ledger
from benchsmith.store.rundir import RunDir, existing_run_dir


def open_run_dir(
    run_dir: str | Path, *, readonly: bool = False
) -> tuple[RunDir, Ledger, RunConfig]:
    """The run, its ledger (migrated for writing, or `readonly`) and its config."""
    rd = existing_run_dir(run_dir)
    try:
        data = orjson.loads(rd.config_json.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise ConfigError(str(rd.config_json), "", f"cannot read the run's config: {e}") from None
    cfg_dir = data.pop("config_dir", str(rd.root))
    cfg = parse_config(data, file=str(rd.config_json), config_dir=cfg_dir)
    return rd, Ledger.open_readonly(rd.ledger) if readonly else Ledger(rd.ledger), cfg
