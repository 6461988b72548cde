"""Naming rules that prepare-sections and merge-sections share: section names and run ids."""

from __future__ import annotations

import re

from benchsmith.errors import ConfigError

# A section name (`section_01`, `s1`): also a folder name, so no dots.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_run_id(value: str, option: str) -> None:
    """Raise unless `value` (given with command-line `option`) can be a run id."""
    if not RUN_ID_RE.match(value):
        raise ConfigError(
            "command line", option, f"{value!r}: use letters, digits, '.', '-' or '_'"
        )
