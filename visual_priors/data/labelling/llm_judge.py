"""LLM-judge segment labeller over any OpenAI-compatible chat-completions endpoint (a local vLLM
or SGLang server, or a hosted API), with an on-disk cache so that no segment is sent twice.

    lab = LLMJudgeLabeller(url="http://localhost:8000/v1", model="Qwen/Qwen3-32B",
                           cache_dir="runs/llm_labels", requests_per_second=20, concurrency=8)
    bits = lab.label(texts)                  # bool [n, 6] over LABELS

One request per segment: a system message with the six label definitions (`LABEL_DEFINITIONS`,
the paper's categories) and the answer format, a user message with the segment, temperature 0.
The answer is a JSON object mapping each label to true/false.

Reliability: connection errors, timeouts, HTTP 429 and 5xx and unparseable answers are retried
with exponential back-off and jitter (a Retry-After header is honoured, up to the back-off cap);
other HTTP errors (400, 401, 404, ...) fail at once; after `max_retries` retries the error names
the segment's hash and the last response. A token bucket (`RateLimiter`) shared by the worker
threads caps requests per second.

Cache: SQLite in WAL mode, one row per segment keyed by sha256(model, prompt version, text);
the prompt version carries a hash of the prompt text, so editing the prompt starts a new key
space. Answers are stored as they arrive (an interrupted batch keeps what it got). A segment
being labelled is claimed in the cache for a lease, so another process (or thread) that needs
the same segment waits for that answer instead of sending it again.
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
from typing import Any

import numpy as np

from visual_priors.data.labelling import LABELS

# ----------------------------------------------------------------------- the prompt

LABEL_DEFINITIONS: dict[str, str] = {
    "code_reasoning": (
        "The segment contains program source code in any programming language, or reasons about "
        "code: writing, reading or explaining a program, an algorithm or a data structure, "
        "tracing what code computes, or debugging it."),
    "math_reasoning": (
        "The segment does mathematics: it states or manipulates equations or formulas, carries "
        "out calculations or arithmetic step by step, solves a word problem with numbers, or "
        "proves a mathematical statement. Numbers that are only mentioned (a date, a price, a "
        "count) do not count."),
    "science_reasoning": (
        "The segment explains the natural or physical world by cause and effect: why something "
        "happens or is so, a mechanism, a hypothesis or prediction tested against observation, "
        "an experiment, or an inference from evidence (in physics, chemistry, biology, earth "
        "science, medicine and the like). Stating a fact without a reason does not count."),
    "visual_concept": (
        "The segment names visible entities as things present to be seen: physical objects, "
        "animals, plants, people, places or whole scenes that a reader could picture, for example "
        "describing what a picture shows, what is in a room or landscape, or what a character "
        "sees."),
    "visual_attribute": (
        "The segment describes how something looks: its colour, shape, size, texture, material, "
        "pattern or visual style."),
    "visual_relationship": (
        "The segment describes how visible things are arranged or related in space: left or "
        "right of, above or below, in front of or behind, inside, on top of, next to, near or far, "
        "relative size or depth between objects, or how parts make up a whole."),
}

SYSTEM_PROMPT = (
    "You label segments of pre-training text for a study of what language models learn about "
    "the visual world. Decide, for each of the six labels below, whether the segment shows it. "
    "A segment may carry any number of labels, including none. A label applies when some "
    "passage of the segment clearly shows it, not when a single word merely hints at it.\n\n"
    + "\n".join(f"- {name}: {LABEL_DEFINITIONS[name]}" for name in LABELS)
    + "\n\nAnswer with one JSON object and nothing else, with exactly these six keys and a "
    "true or false value for each: "
    + json.dumps({name: False for name in LABELS})
)
USER_TEMPLATE = "Segment:\n<<<\n{text}\n>>>\n\nAnswer with the JSON object only."
PROMPT_NAME = "segment-labels-v1"
# Changes whenever the prompt text does, so cache keys and fingerprints follow any edit.
PROMPT_VERSION = PROMPT_NAME + "-" + hashlib.sha256(
    (SYSTEM_PROMPT + "\0" + USER_TEMPLATE).encode()).hexdigest()[:12]


def build_messages(text: str) -> list[dict[str, str]]:
    """The chat messages for one segment."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_TEMPLATE.format(text=text)}]


class AnswerError(ValueError):
    """The model's answer is not the JSON object asked for."""


_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def parse_answer(content: str) -> np.ndarray:
    """The model's answer -> bool [6] over LABELS. Skips a <think>...</think> preamble and any
    text around the first JSON object; every label must be present with a boolean value."""
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
    out = np.zeros(len(LABELS), bool)
    for j, name in enumerate(LABELS):
        if name not in obj:
            raise AnswerError(f"label {name!r} missing from the answer")
        v = obj[name]
        if isinstance(v, bool):
            out[j] = v
        elif isinstance(v, int) and v in (0, 1):
            out[j] = bool(v)
        elif isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
            out[j] = v.strip().lower() in _TRUE
        else:
            raise AnswerError(f"label {name!r} has a non-boolean value {v!r}")
    return out


# ----------------------------------------------------------------------- rate limiting

class RateLimiter:
    """Token bucket shared by threads: `rate` requests per second on average, bursts of at most
    `burst`. `acquire()` reserves the next slot under a lock and sleeps outside it, so waiting
    threads are served in order. `clock` and `sleep` are injectable for tests."""

    def __init__(self, rate: float, burst: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate}")
        if not burst >= 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
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


# ----------------------------------------------------------------------- the cache

def cache_key(model: str, prompt_version: str, text: str) -> str:
    return hashlib.sha256("\0".join((model, prompt_version, text)).encode()).hexdigest()


def _pack(bits: np.ndarray) -> int:
    return int(sum(1 << j for j, b in enumerate(bits) if b))


def _unpack(value: int) -> np.ndarray:
    return np.array([(value >> j) & 1 for j in range(len(LABELS))], bool)


class LabelCache:
    """Segment labels on disk (SQLite, WAL), shared by threads and processes.

    labels(key, bits, model, prompt_version, created): one row per answered segment.
    claims(key, owner, since): a segment someone is labelling now, valid for a lease."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("CREATE TABLE IF NOT EXISTS labels (key TEXT PRIMARY KEY, bits INTEGER NOT NULL,"
                      " model TEXT, prompt_version TEXT, created REAL)")
            c.execute("CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL,"
                      " since REAL NOT NULL)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        c = self._conn()
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, bits FROM labels WHERE key IN ({','.join('?' * len(chunk))})"
            for k, v in c.execute(q, chunk):
                out[k] = _unpack(v)
        return out

    def get(self, key: str) -> np.ndarray | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, bits: np.ndarray, model: str = "", prompt_version: str = "") -> None:
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?)",
                      (key, _pack(bits), model, prompt_version, time.time()))
            c.execute("DELETE FROM claims WHERE key = ?", (key,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def claim(self, key: str, owner: str, lease_s: float, now: float | None = None) -> str:
        """'done' (already labelled), 'claimed' (now ours) or 'busy' (someone else's live claim)."""
        now = time.time() if now is None else now
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            if c.execute("SELECT 1 FROM labels WHERE key = ?", (key,)).fetchone():
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
        return self._conn().execute("SELECT COUNT(*) FROM labels").fetchone()[0]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "visual_priors" / "llm_judge"


# ----------------------------------------------------------------------- the labeller

class LLMJudgeError(RuntimeError):
    """A segment could not be labelled (retries exhausted, or an error not worth retrying)."""


class _Retryable(Exception):
    def __init__(self, message: str, response: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.response = response
        self.retry_after = retry_after


RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class LLMJudgeLabeller:
    """Labels segments by asking an LLM; see the module docstring."""

    name = "llm"

    def __init__(self, url: str, model: str, *, api_key_env: str | None = "OPENAI_API_KEY",
                 cache_dir: str | os.PathLike | None = None, max_retries: int = 5,
                 requests_per_second: float | None = None, concurrency: int = 8,
                 timeout: float = 60.0, max_tokens: int = 256, max_chars: int | None = None,
                 extra_body: Mapping[str, Any] | None = None, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, lease_s: float | None = None,
                 progress: bool | None = None, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if not url or not model:
            raise ValueError("the llm labeller needs url= (e.g. http://localhost:8000/v1) and model=")
        if max_retries < 0 or concurrency < 1 or timeout <= 0:
            raise ValueError(f"need max_retries >= 0, concurrency >= 1, timeout > 0; got "
                             f"{max_retries}, {concurrency}, {timeout}")
        self.url = url.rstrip("/")
        self.endpoint = self.url + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.max_retries, self.concurrency, self.timeout = int(max_retries), int(concurrency), float(timeout)
        self.max_tokens, self.max_chars = int(max_tokens), max_chars
        self.extra_body = dict(extra_body or {})
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self.lease_s = float(lease_s) if lease_s is not None else \
            (self.timeout + self.backoff_max) * (self.max_retries + 1)
        self.progress = progress
        self._sleep = sleep
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self.limiter = (RateLimiter(requests_per_second, clock=clock, sleep=sleep)
                        if requests_per_second else None)
        self.cache = LabelCache(Path(cache_dir or default_cache_dir()) / "labels.sqlite")
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.requests_sent = 0
        self._count_lock = threading.Lock()
        blob = json.dumps({"prompt_version": PROMPT_VERSION, "system": SYSTEM_PROMPT,
                           "user": USER_TEMPLATE, "model": model, "endpoint": self.endpoint,
                           "max_tokens": self.max_tokens, "max_chars": max_chars,
                           "extra_body": self.extra_body, "temperature": 0}, sort_keys=True)
        self.fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"LLMJudgeLabeller(model={self.model!r}, url={self.url!r}, fingerprint={self.fingerprint})"

    def key(self, text: str) -> str:
        return cache_key(self.model, PROMPT_VERSION, self._clip(text))

    def _clip(self, text: str) -> str:
        return text if self.max_chars is None else text[:self.max_chars]

    # -- one request
    def _post(self, text: str) -> str:
        body = {"model": self.model, "messages": build_messages(text), "temperature": 0,
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
                raise _Retryable(f"HTTP {e.code}", detail, retry_after) from None
            raise LLMJudgeError(f"{self.endpoint} answered HTTP {e.code} (not retried): "
                                f"{detail}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise _Retryable(f"connection error: {e}") from None
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as e:
            raise _Retryable(f"malformed response ({type(e).__name__}: {e})", raw[:1000]) from None
        return content

    def _ask(self, text: str, key: str) -> np.ndarray:
        last: _Retryable | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                with self._random_lock:
                    delay = delay / 2 + self._random.uniform(0, delay / 2)
                if last is not None and last.retry_after is not None:
                    delay = min(self.backoff_max, max(delay, last.retry_after))
                self._sleep(delay)
            if self.limiter is not None:
                self.limiter.acquire()
            try:
                content = self._post(text)
                try:
                    return parse_answer(content)
                except AnswerError as e:
                    raise _Retryable(f"unparseable answer: {e}", str(content)[:1000]) from None
            except _Retryable as e:
                last = e
        assert last is not None
        raise LLMJudgeError(
            f"segment {key[:16]} not labelled after {self.max_retries + 1} attempts at "
            f"{self.endpoint} (model {self.model}); last error: {last}; last response: "
            f"{last.response!r}")

    def _label_one(self, text: str, key: str) -> np.ndarray:
        """Label one segment that was not in the cache, unless someone else is labelling it:
        then wait for their answer (or for their claim to lapse)."""
        poll = 0.05
        while True:
            state = self.cache.claim(key, self.owner, self.lease_s)
            if state == "done":
                bits = self.cache.get(key)
                if bits is not None:
                    return bits
            elif state == "claimed":
                break
            self._sleep(poll)
            poll = min(2.0, poll * 2)
        try:
            bits = self._ask(text, key)
        except BaseException:
            self.cache.release(key, self.owner)
            raise
        self.cache.put(key, bits, self.model, PROMPT_VERSION)
        return bits

    # -- a batch
    def label(self, texts: Sequence[str]) -> np.ndarray:
        """bool [n, 6] over LABELS; cached segments are not sent again."""
        if isinstance(texts, str):
            raise TypeError("expected a sequence of texts, got one string")
        clipped = [self._clip(t) for t in texts]
        keys = [cache_key(self.model, PROMPT_VERSION, t) for t in clipped]
        found = self.cache.get_many(sorted(set(keys)))
        todo: dict[str, str] = {}
        for k, t in zip(keys, clipped):
            if k not in found and k not in todo:
                todo[k] = t
        if todo:
            found.update(self._run(todo))
        out = np.zeros((len(texts), len(LABELS)), bool)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out

    def _run(self, todo: dict[str, str]) -> dict[str, np.ndarray]:
        show = self.progress if self.progress is not None else len(todo) >= 50
        bar = None
        if show:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(todo), desc=f"llm labels ({self.model})", unit="seg")
        results: dict[str, np.ndarray] = {}
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(todo)))
        try:
            futures = {pool.submit(self._label_one, t, k): k for k, t in todo.items()}
            for f in as_completed(futures):
                results[futures[f]] = f.result()   # the first failure propagates
                if bar is not None:
                    bar.update(1)
        finally:
            # Queued segments are dropped; answers already received are in the cache.
            pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()
        return results
