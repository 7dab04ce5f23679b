"""SQLite registry of steps: status, attempts, host, timings, error text and output paths.

One file under the runs root, in WAL mode so that readers (`suite status`) never block a worker,
and every change in its own transaction.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    host TEXT,
    started REAL,
    ended REAL,
    error TEXT,
    output TEXT,
    spec TEXT
);
CREATE TABLE IF NOT EXISTS study_steps (
    study TEXT NOT NULL,
    hash TEXT NOT NULL,
    run TEXT,
    PRIMARY KEY (study, hash, run)
);
"""
STATUSES = ("pending", "running", "done", "failed")


class Registry:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def register(self, study: str, step, run: str | None = None) -> None:
        with self._tx():
            self.db.execute("INSERT OR IGNORE INTO steps (hash, kind, name, spec) VALUES (?, ?, ?, ?)",
                            (step.hash, step.kind, step.name, json.dumps(step.spec(), sort_keys=True)))
            self.db.execute("INSERT OR IGNORE INTO study_steps (study, hash, run) VALUES (?, ?, ?)",
                            (study, step.hash, run or ""))

    def start(self, step) -> None:
        with self._tx():
            self.db.execute("UPDATE steps SET status='running', attempts=attempts+1, host=?, started=?, "
                            "ended=NULL, error=NULL WHERE hash=?",
                            (socket.gethostname(), time.time(), step.hash))

    def finish(self, step, output: str | Path) -> None:
        with self._tx():
            self.db.execute("UPDATE steps SET status='done', ended=?, output=? WHERE hash=?",
                            (time.time(), str(output), step.hash))

    def fail(self, step, error: str) -> None:
        with self._tx():
            self.db.execute("UPDATE steps SET status='failed', ended=?, error=? WHERE hash=?",
                            (time.time(), error, step.hash))

    def status(self, step_hash: str) -> str | None:
        row = self.db.execute("SELECT status FROM steps WHERE hash=?", (step_hash,)).fetchone()
        return row["status"] if row else None

    def rows(self, study: str | None = None) -> list[dict]:
        if study is None:
            cur = self.db.execute("SELECT * FROM steps ORDER BY started IS NULL, started")
        else:
            cur = self.db.execute(
                "SELECT s.*, group_concat(DISTINCT ss.run) AS runs FROM steps s "
                "JOIN study_steps ss ON s.hash = ss.hash WHERE ss.study=? "
                "GROUP BY s.hash ORDER BY s.started IS NULL, s.started", (study,))
        return [dict(r) for r in cur.fetchall()]

    def studies(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT study FROM study_steps ORDER BY study")]

    def close(self) -> None:
        self.db.close()

    def _tx(self):
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
