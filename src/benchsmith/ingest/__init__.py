"""Offline ingest of batch result lines (`benchsmith batch ingest`):

  orchestrate  the command: blocks of lines applied to the ledger, then the run's files
  judge        parsing and validating result lines against their units, in blocks
  helper       the second process that judges blocks of big inputs, and its protocol
"""

from benchsmith.ingest.orchestrate import IngestReport, batch_ingest

__all__ = ["IngestReport", "batch_ingest"]
