"""The ledger's schema, as named, ordered migrations (PRAGMA user_version = how many ran).

Append only: never edit a migration that has shipped; add the next one.
"""

MIGRATIONS = [
    # m001: meta, invocations, tasks, units, attempts.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE invocations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at REAL NOT NULL, ended_at REAL, status TEXT NOT NULL,
        mode TEXT NOT NULL, budget_usd REAL, message TEXT
    );
    CREATE TABLE tasks (
        dataset TEXT NOT NULL, task_id TEXT NOT NULL, task_json BLOB NOT NULL,
        PRIMARY KEY (dataset, task_id)
    );
    CREATE TABLE units (
        unit_id TEXT PRIMARY KEY,
        dataset TEXT NOT NULL, task_id TEXT NOT NULL, stage TEXT NOT NULL,
        sample_index INTEGER NOT NULL, parent_id TEXT, model TEXT NOT NULL,
        spec_json BLOB NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending', reason TEXT,
        result_json BLOB, created_at REAL NOT NULL, updated_at REAL NOT NULL
    );
    CREATE INDEX units_state ON units(state);
    CREATE INDEX units_task ON units(dataset, task_id);
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        unit_id TEXT NOT NULL REFERENCES units(unit_id),
        invocation INTEGER NOT NULL,
        n INTEGER NOT NULL,
        model TEXT NOT NULL,
        started_at REAL NOT NULL, ended_at REAL,
        status TEXT NOT NULL,
        http_status INTEGER, latency_s REAL,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        cached_input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens INTEGER NOT NULL DEFAULT 0,
        reserved_usd REAL NOT NULL DEFAULT 0,
        cost_usd REAL,
        key_hint TEXT,
        raw_output TEXT, error TEXT, issues_json BLOB
    );
    CREATE INDEX attempts_unit ON attempts(unit_id);
    """,
    # m002: batch jobs (one per input file) and the attempts each carries; offline ingest.
    """
    CREATE TABLE batches (
        local_id TEXT PRIMARY KEY,
        batch_id TEXT UNIQUE,
        invocation INTEGER NOT NULL,
        model TEXT NOT NULL, endpoint TEXT NOT NULL,
        input_file_id TEXT, output_file_id TEXT, error_file_id TEXT,
        status TEXT NOT NULL,
        request_counts TEXT, errors TEXT, usage TEXT,
        n_requests INTEGER NOT NULL, bytes INTEGER NOT NULL, reserved_usd REAL NOT NULL,
        created_at REAL NOT NULL, updated_at REAL NOT NULL, reconciled_at REAL
    );
    CREATE TABLE batch_items (
        local_id TEXT NOT NULL REFERENCES batches(local_id),
        unit_id TEXT NOT NULL,
        attempt_id INTEGER NOT NULL,
        PRIMARY KEY (local_id, unit_id)
    );
    CREATE INDEX batch_items_attempt ON batch_items(attempt_id);
    CREATE TABLE ingested_lines (line_hash TEXT PRIMARY KEY, source TEXT, ingested_at REAL);
    """,
    # m003: units re-opened by `run --resume --retry-failed/--retry-invalid` (and chain calls
    # set aside meanwhile): the state they left, and the last attempt before the change, so
    # retry counters restart while every attempt stays.
    """
    CREATE TABLE unit_resets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        unit_id TEXT NOT NULL REFERENCES units(unit_id),
        at REAL NOT NULL,
        prev_state TEXT NOT NULL, prev_reason TEXT,
        new_state TEXT NOT NULL,
        after_attempt INTEGER NOT NULL
    );
    CREATE INDEX unit_resets_unit ON unit_resets(unit_id);
    CREATE INDEX units_parent ON units(parent_id);
    """,
    # m004: pinned plans. Each plan is the fingerprint of the settings that shape a run's
    # requests; a unit and a task belong to the plan that asked for them (NULL until the first
    # plan is recorded: runs made before plans were pinned, or merged from sections).
    """
    CREATE TABLE plans (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL,
        fields_json BLOB NOT NULL,
        config_json BLOB NOT NULL,
        created_at REAL NOT NULL,
        settled_at REAL
    );
    ALTER TABLE units ADD COLUMN plan INTEGER;
    ALTER TABLE tasks ADD COLUMN plan INTEGER;
    """,
    # m005: gold leaks. A planned unit whose request text carries its task's gold (or had
    # lines of a context field redacted for it) has a row: the fields and how many gold
    # lines each carries, a short sample, the lines removed, and the policy it was planned
    # under. A unit without a row was checked and carries none (or predates the guard).
    """
    CREATE TABLE IF NOT EXISTS gold_leaks (
        unit_id TEXT PRIMARY KEY REFERENCES units(unit_id),
        dataset TEXT NOT NULL, task_id TEXT NOT NULL,
        policy TEXT NOT NULL,
        matched INTEGER NOT NULL,
        fields_json BLOB NOT NULL,
        gold_fields_json BLOB NOT NULL,
        sample TEXT NOT NULL,
        removed_json BLOB
    );
    CREATE INDEX IF NOT EXISTS gold_leaks_task ON gold_leaks(dataset, task_id);
    """,
]
