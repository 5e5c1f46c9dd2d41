"""The class board's schema, version by version (explorer/board/store.py applies them in order, in one transaction, when
it opens a database; a database stores its version in table schema_version). A new version appends a step; a step,
once released, never changes: databases in use were made by it. The steps are written in SQLite's spelling; on
PostgreSQL the same steps run, their types and the few functions it names otherwise respelled word for word
(explorer/board/backends.py: postgres_sql), so both backends go through the same versions.

Version 1: classes and submissions with their figures. Version 2: the verifier (every submission replayed before it
counts): a status per submission, the verdict's detail, the claim (by which verifier, when, how many tries), when it
was judged. Version 3: the instructor key's wrong tries, one row each with its time, counted for the whole server (every
process reads the same table: explorer.board.rules.key_wait_s). Version 4 (issue 29): who a submission is attributed to
(`participant`, the hash of whatever id the app passes: the browser's signed participant id, ui/participant.py; `owner`
keeps the session's token for withdrawing), the key of its config (SHA-256 of the canonical JSON: one replay for
identical setups), when its participant was last served (round robin), every verifier that claimed it (a verdict of an
earlier claimer is kept), its split (seed, data size and noise, test and validation shares: the challenge ranks one
split only), the replays' outcomes by config key, and a class's seat count. Existing rows are filled from their stored
config and owner.
"""
from __future__ import annotations

SCHEMA_VERSION = 4

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("CREATE TABLE classes (code TEXT PRIMARY KEY, created REAL NOT NULL, open INTEGER NOT NULL DEFAULT 1, "
        "challenge TEXT NOT NULL)",
        "CREATE TABLE submissions (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "class_code TEXT NOT NULL REFERENCES classes (code) ON DELETE CASCADE, nickname TEXT NOT NULL, "
        "owner TEXT NOT NULL, created REAL NOT NULL, config TEXT NOT NULL, method TEXT NOT NULL, data TEXT NOT NULL, "
        "arch TEXT NOT NULL, baseline_accuracy REAL NOT NULL, pruned_accuracy REAL NOT NULL, finetuned_accuracy REAL, "
        "weight_sparsity REAL NOT NULL, activation_sparsity REAL NOT NULL, macs INTEGER NOT NULL, "
        "macs_dense INTEGER NOT NULL, bytes INTEGER NOT NULL, bytes_dense INTEGER NOT NULL)",
        "CREATE INDEX submissions_by_class ON submissions (class_code, id)",
        "CREATE INDEX submissions_by_owner ON submissions (owner, created)"),
    2: ("ALTER TABLE submissions ADD COLUMN status TEXT NOT NULL DEFAULT 'queued'",
        "ALTER TABLE submissions ADD COLUMN detail TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE submissions ADD COLUMN claimed_by TEXT",
        "ALTER TABLE submissions ADD COLUMN claimed_at REAL",
        "ALTER TABLE submissions ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE submissions ADD COLUMN verified_at REAL",
        "CREATE INDEX submissions_by_status ON submissions (status, id)"),
    3: ("CREATE TABLE key_failures (at REAL NOT NULL)",
        "CREATE INDEX key_failures_by_time ON key_failures (at)"),
    4: ("ALTER TABLE submissions ADD COLUMN participant TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE submissions ADD COLUMN config_key TEXT",
        "ALTER TABLE submissions ADD COLUMN served_at REAL",
        "ALTER TABLE submissions ADD COLUMN claimers TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE submissions ADD COLUMN seed INTEGER",
        "ALTER TABLE submissions ADD COLUMN n_samples INTEGER",
        "ALTER TABLE submissions ADD COLUMN noise REAL",
        "ALTER TABLE submissions ADD COLUMN test_fraction REAL",
        "ALTER TABLE submissions ADD COLUMN val_fraction REAL",
        # Rows of earlier versions: attributed to their session, their split read from their stored config (SQLite's
        # built-in JSON functions); no config key (each is replayed on its own, as before).
        "UPDATE submissions SET participant = owner, served_at = claimed_at, "
        "claimers = CASE WHEN claimed_by IS NULL THEN '' ELSE char(10) || claimed_by || char(10) END, "
        "seed = json_extract(config, '$.seed'), n_samples = json_extract(config, '$.data.n_samples'), "
        "noise = json_extract(config, '$.data.noise'), test_fraction = json_extract(config, '$.data.test_fraction'), "
        "val_fraction = json_extract(config, '$.data.val_fraction')",
        "CREATE INDEX submissions_by_participant ON submissions (participant, created)",
        "CREATE INDEX submissions_by_key ON submissions (config_key, status)",
        "CREATE TABLE replays (config_key TEXT PRIMARY KEY, entry INTEGER NOT NULL, figures TEXT, "
        "refusal TEXT NOT NULL DEFAULT '', at REAL NOT NULL)",
        "CREATE INDEX replays_by_time ON replays (at)",
        "ALTER TABLE classes ADD COLUMN seats INTEGER"),
}
