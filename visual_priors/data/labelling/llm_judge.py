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

The HTTP client, retries, rate limiter, claim-and-lease cache and thread pool are shared with
the reasoning-trace judge and live in `visual_priors.data.chat`; this module keeps the prompt,
the answer parser, the label cache's format and the labeller.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visual_priors.errors import BadValue
from visual_priors.data import chat as _chat
from visual_priors.data.chat import (RETRY_STATUS, AnswerError, ChatClient, ChatError, ClaimCache,
                                     RateLimiter, Retryable, as_bool, extract_json_object,
                                     fetch_or_compute, new_owner, run_batch)
from visual_priors.data.labelling import LABELS

__all__ = [
    "LABEL_DEFINITIONS", "SYSTEM_PROMPT", "USER_TEMPLATE", "PROMPT_NAME", "PROMPT_VERSION",
    "build_messages", "AnswerError", "parse_answer", "RateLimiter", "RETRY_STATUS", "cache_key",
    "LabelCache", "default_cache_dir", "LLMJudgeError", "LLMJudgeLabeller",
]

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


def parse_answer(content: str) -> np.ndarray:
    """The model's answer -> bool [6] over LABELS. Skips a <think>...</think> preamble and any
    text around the first JSON object; every label must be present with a boolean value."""
    obj = extract_json_object(content)
    out = np.zeros(len(LABELS), bool)
    for j, name in enumerate(LABELS):
        if name not in obj:
            raise AnswerError(f"label {name!r} missing from the answer")
        out[j] = as_bool(obj[name], f"label {name!r}")
    return out


# ----------------------------------------------------------------------- the cache

def cache_key(model: str, prompt_version: str, text: str) -> str:
    return _chat.cache_key(model, prompt_version, text)


def _pack(bits: np.ndarray) -> int:
    return int(sum(1 << j for j, b in enumerate(bits) if b))


def _unpack(value: int) -> np.ndarray:
    return np.array([(value >> j) & 1 for j in range(len(LABELS))], bool)


class LabelCache(ClaimCache):
    """Segment labels on disk (SQLite, WAL), shared by threads and processes.

    labels(key, bits, model, prompt_version, created): one row per answered segment, the six
    labels packed into an integer (bit j = LABELS[j]).
    claims(key, owner, since): a segment someone is labelling now, valid for a lease."""

    table = "labels"
    value_column = "bits"
    value_type = "INTEGER"

    def encode(self, value: np.ndarray) -> int:
        return _pack(value)

    def decode(self, stored: int) -> np.ndarray:
        return _unpack(stored)

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return super().get_many(keys)

    def get(self, key: str) -> np.ndarray | None:
        return super().get(key)

    def put(self, key: str, bits: np.ndarray, model: str = "", prompt_version: str = "") -> None:
        super().put(key, bits, model, prompt_version)


def default_cache_dir() -> Path:
    return _chat.default_cache_dir("llm_judge")


# ----------------------------------------------------------------------- the labeller

class LLMJudgeError(ChatError):
    """A segment could not be labelled (retries exhausted, or an error not worth retrying)."""


_Retryable = Retryable


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
            raise BadValue("the llm labeller needs url= (e.g. http://localhost:8000/v1) and model=")
        if max_retries < 0 or concurrency < 1 or timeout <= 0:
            raise BadValue(f"need max_retries >= 0, concurrency >= 1, timeout > 0; got "
                             f"{max_retries}, {concurrency}, {timeout}")
        self.client = ChatClient(url, model, api_key_env=api_key_env, max_retries=max_retries,
                                 requests_per_second=requests_per_second, timeout=timeout,
                                 max_tokens=max_tokens, temperature=0.0, extra_body=extra_body,
                                 backoff_base=backoff_base, backoff_max=backoff_max, seed=seed,
                                 error_class=LLMJudgeError, clock=clock, sleep=sleep)
        self.url, self.endpoint, self.model = self.client.url, self.client.endpoint, model
        self.api_key_env = api_key_env
        self.max_retries, self.concurrency, self.timeout = int(max_retries), int(concurrency), float(timeout)
        self.max_tokens, self.max_chars = int(max_tokens), max_chars
        self.extra_body = self.client.extra_body
        self.backoff_base, self.backoff_max = float(backoff_base), float(backoff_max)
        self.lease_s = float(lease_s) if lease_s is not None else \
            (self.timeout + self.backoff_max) * (self.max_retries + 1)
        self.progress = progress
        self._sleep = sleep
        self.limiter = self.client.limiter
        self.cache = LabelCache(Path(cache_dir or default_cache_dir()) / "labels.sqlite")
        self.owner = new_owner()
        blob = json.dumps({"prompt_version": PROMPT_VERSION, "system": SYSTEM_PROMPT,
                           "user": USER_TEMPLATE, "model": model, "endpoint": self.endpoint,
                           "max_tokens": self.max_tokens, "max_chars": max_chars,
                           "extra_body": self.extra_body, "temperature": 0}, sort_keys=True)
        self.fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def requests_sent(self) -> int:
        """HTTP requests made by this labeller, retries included."""
        return self.client.requests_sent

    def __repr__(self) -> str:
        return f"LLMJudgeLabeller(model={self.model!r}, url={self.url!r}, fingerprint={self.fingerprint})"

    def key(self, text: str) -> str:
        return cache_key(self.model, PROMPT_VERSION, self._clip(text))

    def _clip(self, text: str) -> str:
        return text if self.max_chars is None else text[:self.max_chars]

    def _ask(self, text: str, key: str) -> np.ndarray:
        return self.client.ask(build_messages(text), parse_answer,
                               failure=f"segment {key[:16]} not labelled")

    def _label_one(self, key: str, text: str) -> np.ndarray:
        """Label one segment that was not in the cache, unless someone else is labelling it:
        then wait for their answer (or for their claim to lapse)."""
        return fetch_or_compute(self.cache, key, self.owner, self.lease_s,
                                lambda: self._ask(text, key), model=self.model,
                                prompt_version=PROMPT_VERSION, sleep=self._sleep)

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
            # Queued segments are dropped on a failure; answers already received are cached.
            found.update(run_batch(todo, self._label_one, concurrency=self.concurrency,
                                   progress=self.progress, desc=f"llm labels ({self.model})",
                                   unit="seg"))
        out = np.zeros((len(texts), len(LABELS)), bool)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out
