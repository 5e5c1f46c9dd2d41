"""The class board's schema, version by version (explorer/board/store.py applies them in order, in one transaction, when
it opens a file; a file stores its version in table schema_version). A new version appends a step; a step, once
released, never changes: files in use were made by it.

Version 1: classes and submissions with their figures. Version 2: the verifier (every submission replayed before it
counts): a status per submission, the verdict's detail, the claim (by which verifier, when, how many tries), when it
was judged.
"""
from __future__ import annotations

SCHEMA_VERSION = 2

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
}
