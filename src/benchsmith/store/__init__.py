"""Run directory, SQLite ledger (resume, usage, cost) and the files derived from it."""
