"""A client for OpenAI-compatible chat-completions endpoints (a local vLLM or SGLang server, or a
hosted API) and an on-disk answer cache, shared by the LLM segment labeller
(`visual_priors.data.labelling.llm_judge`) and the reasoning-trace judge
(`visual_priors.eval.judge`). Only the standard library is used for HTTP (`urllib.request`).

    client = ChatClient("http://localhost:8000/v1", "Qwen/Qwen3-32B", requests_per_second=20)
    verdict = client.ask(messages, parse=my_parser, failure="trace 1a2b not judged")

Reliability: connection errors, timeouts, HTTP 408/409/425/429/5xx, malformed responses and
answers that `parse` rejects (by raising `AnswerError`) are retried with exponential back-off and
equal jitter (a Retry-After header is honoured, up to the back-off cap); other HTTP errors
(400, 401, 404, ...) fail at once. After `max_retries` retries the error names the request and
the last response. A token bucket (`RateLimiter`) shared by worker threads caps requests per
second.

Cache: `ClaimCache` is SQLite in WAL mode, one row per answered request keyed by a hash, plus a
`claims` table: a key being worked on is claimed for a lease, so another process (or thread)
that needs the same answer waits for it instead of sending the request again
(`fetch_or_compute`). `JsonCache` stores each answer as JSON text; subclasses may store another
encoding in another table (the label cache keeps its packed-bits format).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, TypeVar

from visual_priors.errors import BadValue

T = TypeVar("T")

# HTTP statuses worth retrying (besides any 5xx).
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class ChatError(RuntimeError):
    """A request failed: retries exhausted, or an error not worth retrying."""


class AnswerError(ValueError):
    """The model's answer is not in the form asked for (raised by answer parsers; retried)."""


class Retryable(Exception):
    """One attempt failed in a way worth retrying; `response` is what came back (clipped)."""

    def __init__(self, message: str, response: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.response = response
        self.retry_after = retry_after


def extract_json_object(content: Any) -> dict:
    """The first JSON object in a model's answer, skipping a <think>...</think> preamble and any
    text (a code fence, a sentence) around the object. Raises AnswerError."""
    if not isinstance(content, str):
        raise AnswerError(f"answer is not text: {content!r}")
    if "</think>" in content:
        content = content.rsplit("</think>", 1)[1]
    start = content.find("{")
    if start < 0:
        raise AnswerError("no JSON object in the answer")
    try:
        obj, _ = json.JSONDecoder().raw_decode(content[start:])
    except json.JSONDecodeError as e:
        raise AnswerError(f"invalid JSON in the answer: {e}") from None
    if not isinstance(obj, dict):
        raise AnswerError("the answer's JSON is not an object")
    return obj


_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


def as_bool(value: Any, what: str) -> bool:
    """A JSON boolean, 0/1 or "true"/"yes"/"false"/"no" -> bool; anything else is an AnswerError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise AnswerError(f"{what} has a non-boolean value {value!r}")


# ----------------------------------------------------------------------- rate limiting

class RateLimiter:
    """Token bucket shared by threads: `rate` requests per second on average, bursts of at most
    `burst`. `acquire()` reserves the next slot under a lock and sleeps outside it, so waiting
    threads are served in order. `clock` and `sleep` are injectable for tests."""

    def __init__(self, rate: float, burst: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not rate > 0:
            raise BadValue(f"rate must be > 0 requests per second, got {rate}")
        if not burst >= 1:
            raise BadValue(f"burst must be >= 1, got {burst}")
        self.rate, self.burst = float(rate), float(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token; returns how long the caller must wait before using it (seconds)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Block until a request may be sent; returns the time waited."""
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
        return delay


# ----------------------------------------------------------------------- the client

class ChatClient:
    """POSTs chat messages to `{url}/chat/completions` with retries, back-off and a rate limit.

    `error_class` (a ChatError subclass) is what final failures raise. `requests_sent` counts
    every HTTP request made, retries included."""

    def __init__(self, url: str, model: str, *, api_key_env: str | None = "OPENAI_API_KEY",
                 max_retries: int = 5, requests_per_second: float | None = None,
                 timeout: float = 60.0, max_tokens: int = 256, temperature: float = 0.0,
                 extra_body: Mapping[str, Any] | None = None, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, seed: int | None = None,
                 error_class: type[ChatError] = ChatError,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not url or not model:
            raise BadValue("a chat client needs url= (e.g. http://localhost:8000/v1) and model=")
        if max_retries < 0 or timeout <= 0:
            raise BadValue(f"need max_retries >= 0, timeout > 0; got {max_retries}, {timeout}")
        self.url = url.rstrip("/")
        self.endpoint = self.url + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.max_retries, self.timeout = int(max_retries), float(timeout)
        self.max_tokens, self.temperature = int(max_tokens), float(temperature)
        self.extra_body = dict(extra_body or {})
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self.error_class = error_class
        self._sleep = sleep
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self.limiter = (RateLimiter(requests_per_second, clock=clock, sleep=sleep)
                        if requests_per_second else None)
        self.requests_sent = 0
        self._count_lock = threading.Lock()

    def settings(self) -> dict[str, Any]:
        """What shapes an answer (for fingerprints): model, endpoint, sampling, extra body."""
        return {"model": self.model, "endpoint": self.endpoint, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "extra_body": self.extra_body}

    def post(self, messages: Sequence[Mapping[str, str]]) -> str:
        """One request; the answer's text. Raises Retryable, or `error_class` for errors not
        worth retrying."""
        body = {"model": self.model, "messages": list(messages), "temperature": self.temperature,
                "max_tokens": self.max_tokens, **self.extra_body}
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.endpoint, data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
        with self._count_lock:
            self.requests_sent += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:1000] if e.fp else ""
            if e.code in RETRY_STATUS or e.code >= 500:
                retry_after = None
                try:
                    retry_after = float(e.headers.get("Retry-After", ""))
                except (TypeError, ValueError):
                    pass
                raise Retryable(f"HTTP {e.code}", detail, retry_after) from None
            raise self.error_class(f"{self.endpoint} answered HTTP {e.code} (not retried): "
                                   f"{detail}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise Retryable(f"connection error: {e}") from None
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
            raise Retryable(f"malformed response ({type(e).__name__}: {e})", raw[:1000]) from None
        return content

    def backoff(self, attempt: int, last: Retryable | None) -> float:
        """Seconds to wait before retry `attempt` (>= 1): min(backoff_max, backoff_base *
        2**(attempt-1)) with equal jitter, or a longer Retry-After (capped at backoff_max)."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        with self._random_lock:
            delay = delay / 2 + self._random.uniform(0, delay / 2)
        if last is not None and last.retry_after is not None:
            delay = min(self.backoff_max, max(delay, last.retry_after))
        return delay

    def ask(self, messages: Sequence[Mapping[str, str]], parse: Callable[[str], T], *,
            failure: str = "request failed") -> T:
        """Send `messages` until `parse(answer)` succeeds; `parse` raises AnswerError for an
        answer worth asking again. After max_retries retries raises `error_class` with
        "{failure} after N attempts at ...", the last error and the last response."""
        last: Retryable | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(self.backoff(attempt, last))
            if self.limiter is not None:
                self.limiter.acquire()
            try:
                content = self.post(messages)
                try:
                    return parse(content)
                except AnswerError as e:
                    raise Retryable(f"unparseable answer: {e}", str(content)[:1000]) from None
            except Retryable as e:
                last = e
        assert last is not None
        raise self.error_class(
            f"{failure} after {self.max_retries + 1} attempts at {self.endpoint} (model "
            f"{self.model}); last error: {last}; last response: {last.response!r}")


# ----------------------------------------------------------------------- the cache

def cache_key(*parts: str) -> str:
    """sha256 of the parts joined by NUL (hex)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def default_cache_dir(name: str) -> Path:
    """$XDG_CACHE_HOME/visual_priors/{name}, or ~/.cache/visual_priors/{name}."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "visual_priors" / name


def new_owner() -> str:
    """A claim owner id unique to this process and object: host:pid:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ClaimCache:
    """Answers on disk (SQLite, WAL), shared by threads and processes.

    {table}(key TEXT PRIMARY KEY, {value_column} {value_type} NOT NULL, model TEXT,
    prompt_version TEXT, created REAL): one row per answered request.
    claims(key, owner, since): a key someone is working on now, valid for a lease.

    Subclasses set `table`, `value_column`, `value_type` and override `encode` / `decode`."""

    table = "answers"
    value_column = "value"
    value_type = "TEXT"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY, "
                      f"{self.value_column} {self.value_type} NOT NULL,"
                      " model TEXT, prompt_version TEXT, created REAL)")
            c.execute("CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL,"
                      " since REAL NOT NULL)")

    def encode(self, value: Any) -> Any:
        return value

    def decode(self, stored: Any) -> Any:
        return stored

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        c = self._conn()
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = (f"SELECT key, {self.value_column} FROM {self.table} "
                 f"WHERE key IN ({','.join('?' * len(chunk))})")
            for k, v in c.execute(q, chunk):
                out[k] = self.decode(v)
        return out

    def get(self, key: str) -> Any | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, value: Any, model: str = "", prompt_version: str = "") -> None:
        """Store an answer and drop any claim on its key, in one transaction."""
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?, ?, ?)",
                      (key, self.encode(value), model, prompt_version, time.time()))
            c.execute("DELETE FROM claims WHERE key = ?", (key,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def claim(self, key: str, owner: str, lease_s: float, now: float | None = None) -> str:
        """'done' (already answered), 'claimed' (now ours) or 'busy' (someone else's live claim)."""
        now = time.time() if now is None else now
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            if c.execute(f"SELECT 1 FROM {self.table} WHERE key = ?", (key,)).fetchone():
                state = "done"
            else:
                row = c.execute("SELECT owner, since FROM claims WHERE key = ?", (key,)).fetchone()
                if row and row[0] != owner and row[1] + lease_s > now:
                    state = "busy"
                else:
                    c.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", (key, owner, now))
                    state = "claimed"
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return state

    def release(self, key: str, owner: str) -> None:
        self._conn().execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, owner))

    def __len__(self) -> int:
        return self._conn().execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0]


class JsonCache(ClaimCache):
    """A ClaimCache whose answers are JSON values, stored as text in the `answers` table."""

    table = "answers"
    value_column = "value"
    value_type = "TEXT"

    def encode(self, value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    def decode(self, stored: str) -> Any:
        return json.loads(stored)


def fetch_or_compute(cache: ClaimCache, key: str, owner: str, lease_s: float,
                     compute: Callable[[], T], *, model: str = "", prompt_version: str = "",
                     sleep: Callable[[float], None] = time.sleep) -> T:
    """The cached answer for `key`, or `compute()` stored under it, unless someone else holds a
    live claim on the key: then wait (polling with doubling intervals up to 2 s) for their
    answer or for their claim to lapse. A failed compute releases our claim."""
    poll = 0.05
    while True:
        state = cache.claim(key, owner, lease_s)
        if state == "done":
            value = cache.get(key)
            if value is not None:
                return value
        elif state == "claimed":
            break
        sleep(poll)
        poll = min(2.0, poll * 2)
    try:
        value = compute()
    except BaseException:
        cache.release(key, owner)
        raise
    cache.put(key, value, model, prompt_version)
    return value


def run_batch(todo: Mapping[str, Any], fn: Callable[[str, Any], T], *, concurrency: int,
              progress: bool | None = None, desc: str = "requests", unit: str = "req") -> dict[str, T]:
    """{key: fn(key, item)} over a thread pool of `concurrency` workers. The first failure
    propagates and queued items are dropped (answers already stored stay stored). A tqdm bar
    shows when `progress` is True, or when it is None and 50 or more items are to be done."""
    if not todo:
        return {}
    show = progress if progress is not None else len(todo) >= 50
    bar = None
    if show:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(todo), desc=desc, unit=unit)
    results: dict[str, T] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(todo))))
    try:
        futures = {pool.submit(fn, k, item): k for k, item in todo.items()}
        for f in as_completed(futures):
            results[futures[f]] = f.result()   # the first failure propagates
            if bar is not None:
                bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return results
