"""Files derived from the ledger: datasets, failures, manifests, logs. Always rewritten whole."""
