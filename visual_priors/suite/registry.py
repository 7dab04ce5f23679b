"""SQLite registry of steps: status, attempts, host, timings, error text, log tail and output paths.

One file under the runs root, safe for several worker processes on several hosts writing at
once (the file must then sit on a file system with working locks): WAL mode so readers
(`suite status`) never block a worker, every change in its own `BEGIN IMMEDIATE` transaction,
and steps handed out under leases. A worker claims a ready step (every input done) with a lease
it renews while it works; a worker that dies stops renewing, its lease expires and another
worker takes the step over (the step's partial directory lets training resume from its last
checkpoint). A failed step is retried after an exponential back-off until its attempts run out.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from visual_priors.errors import BadFile

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
CREATE TABLE IF NOT EXISTS deps (
    hash TEXT NOT NULL,
    input TEXT NOT NULL,
    PRIMARY KEY (hash, input)
);
"""
# Columns added after the first release; older registries gain them when opened.
LATER_COLUMNS = {"worker": "TEXT", "lease_until": "REAL", "not_before": "REAL", "log_tail": "TEXT",
                 "compile_s": "REAL"}
STATUSES = ("pending", "running", "done", "failed")
# Takeovers of a step whose worker died, beyond its attempts, before the step counts as failed:
# a preempted machine is not the step's fault, but a step that kills its worker every time is.
LOST_LEASE_GRACE = 2


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Registry:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=120, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        try:  # the first statement that reads the file: nothing has been written to it yet
            self.db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise BadFile(f"not an SQLite registry ({err}); it was left as it is: move it aside to start "
                          "a new one", self.path) from None
        self.db.executescript(SCHEMA)
        with self._tx():
            have = {r["name"] for r in self.db.execute("PRAGMA table_info(steps)")}
            for column, kind in LATER_COLUMNS.items():
                if column not in have:
                    self.db.execute(f"ALTER TABLE steps ADD COLUMN {column} {kind}")

    # ------------------------------------------------------------------ planning

    def register(self, study: str, step, run: str | None = None) -> None:
        self.register_many([(study, step, run)])

    def register_many(self, entries: Sequence[tuple[str, object, str | None]]) -> None:
        """(study, step, run) triples in one transaction: the steps, their inputs and owners."""
        with self._tx():
            for study, step, run in entries:
                self.db.execute("INSERT OR IGNORE INTO steps (hash, kind, name, spec) VALUES (?, ?, ?, ?)",
                                (step.hash, step.kind, step.name, json.dumps(step.spec(), sort_keys=True)))
                self.db.execute("INSERT OR IGNORE INTO study_steps (study, hash, run) VALUES (?, ?, ?)",
                                (study, step.hash, run or ""))
                self.db.executemany("INSERT OR IGNORE INTO deps (hash, input) VALUES (?, ?)",
                                    [(step.hash, d.hash) for d in getattr(step, "inputs", ())])

    # ------------------------------------------------------------------ leases

    def claim(self, candidates: Sequence[str], worker: str, *, lease_s: float, max_attempts: int,
              limit: int = 1, accept=None, spread: int = 1, now: float | None = None) -> list[str]:
        """Take up to `limit` ready steps among `candidates` (in their order) under a lease.

        Ready: every input done, and the step pending, failed with attempts left and its
        back-off over, or running under a lease that expired. `accept(hash, taken)` may refuse
        a step given those already taken in this claim (packing takes only steps alike).
        `spread` workers share the steps alike, ready or running: a claim takes at most its
        share of them (rounded up), so that six runs ready at once on two workers train three
        and three rather than six on one worker while the other waits. Steps whose inputs
        failed for good are marked failed here, so that no worker waits on them.
        """
        now = time.time() if now is None else now
        ready: list[str] = []
        with self._tx():
            status = self._rows(candidates)
            inputs = self._inputs(candidates)
            dep_status = self._rows(sorted({d for ds in inputs.values() for d in ds}))
            for h in candidates:
                row = status.get(h)
                if row is None:
                    continue
                if (row["status"] == "running" and (row["lease_until"] or 0) < now
                        and row["attempts"] >= max_attempts + LOST_LEASE_GRACE):
                    self.db.execute("UPDATE steps SET status='failed', attempts=?, ended=?, worker=NULL, "
                                    "lease_until=NULL, error=? WHERE hash=?",
                                    (max_attempts, now, "its worker stopped renewing the lease "
                                     f"{row['attempts']} times", h))
                    row["status"], row["attempts"] = "failed", max_attempts
                    continue
                if not self._claimable(row, now, max_attempts):
                    continue
                deps = [dep_status.get(d) for d in inputs.get(h, [])]
                dead = [d for d in deps if d is not None and d["status"] == "failed"
                        and d["attempts"] >= max_attempts]
                if dead:
                    self.db.execute("UPDATE steps SET status='failed', attempts=?, ended=?, worker=NULL, "
                                    "lease_until=NULL, error=? WHERE hash=?",
                                    (max_attempts, now, "not run: inputs failed ("
                                     + ", ".join(d["name"] for d in dead) + ")", h))
                    row["status"], row["attempts"] = "failed", max_attempts
                    continue
                if any(d is None or d["status"] != "done" for d in deps):
                    continue
                ready.append(h)
            taken: list[str] = []
            for h in ready:
                if accept is None or accept(h, taken):
                    taken.append(h)
            if taken and spread > 1:  # the share counts the steps alike that other workers run
                running = [h for h in candidates if status.get(h) and status[h]["status"] == "running"
                           and (status[h]["lease_until"] or 0) >= now]
                alike = len(taken) + sum(accept is None or accept(h, taken[:1]) for h in running)
                taken = taken[:-(-alike // spread)]
            taken = taken[:limit]
            for h in taken:
                self.db.execute("UPDATE steps SET status='running', attempts=attempts+1, host=?, worker=?, "
                                "started=?, ended=NULL, error=NULL, lease_until=? WHERE hash=?",
                                (socket.gethostname(), worker, now, now + lease_s, h))
        return taken

    @staticmethod
    def _claimable(row: dict, now: float, max_attempts: int) -> bool:
        if row["status"] == "pending":
            return True
        if row["status"] == "failed":
            return row["attempts"] < max_attempts and (row["not_before"] or 0) <= now
        if row["status"] == "running":  # its worker stopped renewing: take it over
            return (row["lease_until"] or 0) < now
        return False

    def renew(self, hashes: Sequence[str], worker: str, lease_s: float) -> bool:
        """Extend this worker's leases; False if any was lost to another worker."""
        now = time.time()
        with self._tx():
            n = sum(self.db.execute("UPDATE steps SET lease_until=? WHERE hash=? AND worker=? "
                                    "AND status='running'", (now + lease_s, h, worker)).rowcount
                    for h in hashes)
        return n == len(hashes)

    def finish(self, step, output: str | Path, worker: str | None = None,
               compile_s: float | None = None) -> bool:
        """Mark done; with `worker`, only if that worker still holds the lease. `compile_s`: the
        seconds the step spent tracing and compiling (None where not measured)."""
        with self._tx():
            cur = self.db.execute(
                "UPDATE steps SET status='done', ended=?, output=?, lease_until=NULL, error=NULL, "
                "compile_s=? WHERE hash=?" + (" AND worker=?" if worker else ""),
                (time.time(), str(output), compile_s, step.hash, *([worker] if worker else [])))
        return cur.rowcount == 1

    def fail(self, step, error: str, *, log_tail: str = "", backoff_s: float = 0.0,
             worker: str | None = None) -> None:
        """Record a failure; the step may be claimed again once `backoff_s` x 2^(attempts-1)
        seconds have passed (if it has attempts left)."""
        now = time.time()
        with self._tx():
            row = self.db.execute("SELECT attempts FROM steps WHERE hash=?", (step.hash,)).fetchone()
            attempts = max(1, row["attempts"] if row else 1)
            self.db.execute("UPDATE steps SET status='failed', ended=?, error=?, log_tail=?, lease_until=NULL, "
                            "not_before=? WHERE hash=?" + (" AND worker=?" if worker else ""),
                            (now, error, log_tail, now + backoff_s * 2 ** (attempts - 1), step.hash,
                             *([worker] if worker else [])))

    def release(self, step, worker: str, note: str) -> None:
        """Give a step back unfinished without spending an attempt (interrupted, not failed)."""
        with self._tx():
            self.db.execute("UPDATE steps SET status='pending', attempts=max(attempts-1, 0), worker=NULL, "
                            "lease_until=NULL, error=? WHERE hash=? AND worker=?", (note, step.hash, worker))

    # ------------------------------------------------------------------ maintenance

    def reset(self, hashes: Sequence[str]) -> int:
        """Failed steps back to pending with their attempts cleared (`suite retry`)."""
        with self._tx():
            return sum(self.db.execute("UPDATE steps SET status='pending', attempts=0, not_before=NULL, "
                                       "error=NULL, log_tail=NULL WHERE hash=? AND status='failed'",
                                       (h,)).rowcount for h in hashes)

    def forget(self, hashes: Sequence[str]) -> None:
        """Remove steps from the registry (`suite clean`)."""
        with self._tx():
            for h in hashes:
                for table in ("steps", "study_steps", "deps"):
                    self.db.execute(f"DELETE FROM {table} WHERE hash=?", (h,))

    # ------------------------------------------------------------------ reading

    def status(self, step_hash: str) -> str | None:
        row = self.db.execute("SELECT status FROM steps WHERE hash=?", (step_hash,)).fetchone()
        return row["status"] if row else None

    def statuses(self, hashes: Sequence[str]) -> dict[str, dict]:
        return self._rows(hashes)

    def rows(self, study: str | None = None, status: str | None = None) -> list[dict]:
        where, args = [], []
        if study is not None:
            where.append("s.hash IN (SELECT hash FROM study_steps WHERE study=?)")
            args.append(study)
        if status is not None:
            where.append("s.status=?")
            args.append(status)
        sql = ("SELECT s.*, (SELECT group_concat(DISTINCT run) FROM study_steps ss WHERE ss.hash=s.hash"
               + (" AND ss.study=?" if study is not None else "") + ") AS runs FROM steps s"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY s.started IS NULL, s.started")
        return [dict(r) for r in self.db.execute(sql, ([study] if study is not None else []) + args)]

    def studies(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT study FROM study_steps ORDER BY study")]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False

    def _rows(self, hashes: Sequence[str]) -> dict[str, dict]:
        out = {}
        for chunk in _chunks(list(hashes)):
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(f"SELECT * FROM steps WHERE hash IN ({marks})", chunk):
                out[r["hash"]] = dict(r)
        return out

    def _inputs(self, hashes: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for chunk in _chunks(list(hashes)):
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(f"SELECT hash, input FROM deps WHERE hash IN ({marks})", chunk):
                out.setdefault(r["hash"], []).append(r["input"])
        return out

    def _tx(self):
        return _Transaction(self.db)


def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
