"""Split a big job into section runs, and merge approved section runs into one run.

- `prepare`: prepare-sections, one config -> section configs, task-id lists and a manifest.
- `merge`: merge-sections, approved section runs -> one new run with regenerated outputs.
- `copier`: the ledger side of a merge (section ledgers read-only, rows copied, ids renumbered).
- `names`: section-name and run-id rules both commands check.
"""

from benchsmith.sections.merge import (
    ATTEMPT_MAP,
    MERGE_MANIFEST,
    MergeReport,
    merge_sections,
    parse_section_arg,
)
from benchsmith.sections.prepare import (
    MANIFEST_NAME,
    SECTION_CONFIG_NAME,
    SECTIONED_SOURCES,
    SectionsPlan,
    id_file_name,
    prepare_sections,
    section_name,
)

__all__ = [
    "ATTEMPT_MAP",
    "MANIFEST_NAME",
    "MERGE_MANIFEST",
    "SECTIONED_SOURCES",
    "SECTION_CONFIG_NAME",
    "MergeReport",
    "SectionsPlan",
    "id_file_name",
    "merge_sections",
    "parse_section_arg",
    "prepare_sections",
    "section_name",
]
