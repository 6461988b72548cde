"""Naming rules that prepare-sections and merge-sections share: section names and run ids."""

from __future__ import annotations

import re

from benchsmith.store.names import check_run_id  # noqa: F401 - the one run-id rule

# A section name (`section_01`, `s1`): also a folder name, so no dots. `\Z`, not `$`: a
# trailing newline is not part of a name.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*\Z")
