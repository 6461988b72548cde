"""Gold-leak guard: texts (task fields, prompts) that carry a task's answer verbatim.

index: the gold of one task as normalised lines, and `find`; table: the leak table of a
dataset (no model called).
"""

from benchsmith.leaks.index import (  # noqa: F401 - the package's API
    NO_LEAK, GoldIndex, LeakFinding, LeakSettings, build_index, find,
)
