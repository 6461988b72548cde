"""Names that become path components of a run: run ids and dataset names.

A run id is the folder name under `run_dir` and a dataset name is part of file and folder
names inside the run, so both are plain names, never paths: no separator, no `.`/`..`, no
control character, bounded length. Every place a run id or dataset name enters (command
line, config files, the Python API) checks it here.
"""

from __future__ import annotations

import re
from typing import Any

from benchsmith.errors import ConfigError

RUN_ID_MAX = 128
RUN_ID_RULE = (
    f"a run id is a name, not a path: letters, digits, '.', '-' or '_', not starting with '.', "
    f"at most {RUN_ID_MAX} characters"
)
_RUN_ID = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{RUN_ID_MAX - 1}}}")

DATASET_MAX = 128
DATASET_RULE = f"must be letters, digits, - or _ (at most {DATASET_MAX} characters)"
_DATASET = re.compile(rf"[A-Za-z0-9_-]{{1,{DATASET_MAX}}}")


def _shown(value: Any) -> str:
    """The offending value for an error line, cut short (a pasted blob stays one line)."""
    r = repr(value)
    return r if len(r) <= 80 else r[:77] + "..."


def is_run_id(value: Any) -> bool:
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


def check_run_id(value: Any, field: str = "--run-id", file: str = "command line") -> str:
    """`value` if it can be a run id, else a one-line ConfigError naming `field` and the rule."""
    if not is_run_id(value):
        raise ConfigError(file, field, f"{_shown(value)}: {RUN_ID_RULE}")
    return value


def is_dataset_name(value: Any) -> bool:
    return isinstance(value, str) and _DATASET.fullmatch(value) is not None


def check_dataset_name(value: Any, field: str = "datasets", file: str = "config") -> str:
    """`value` if it can name a dataset (and its files), else a one-line ConfigError."""
    if not is_dataset_name(value):
        raise ConfigError(file, field, f"dataset name {_shown(value)} {DATASET_RULE}")
    return value
