"""Judging visual reasoning traces (the paper's App. A.2): Logical Soundness and Reasoning Depth.

The MLLM answers Knowledge and Vision-Centric questions with a detailed explanation
(`explain_prompt`) instead of a bare letter. Each output is a `Trace`; a judge returns one
`Verdict` per trace, and `summarize` gives

- Logical Soundness: the % of traces judged coherent and reasonable;
- Reasoning Depth: the mean length of the trace in words (`trace_words`: the explanation
  without its final "Answer: X" line).

Two judges:

- `LLMReasoningJudge`: a judge LLM (the paper uses a Qwen3 model) behind an OpenAI-compatible
  chat-completions endpoint, with the written rubric `RUBRIC`; it sees the question, the options,
  the reference answer and the model's output and answers {"coherent": ..., "reason": ...}.
  Requests, retries, rate limit and the on-disk cache are `visual_priors.data.chat`'s.
- `RuleJudge`: for the procedural world, where the image's content and every kind's facts are
  known, a deterministic check of the same rubric (see its docstring). `world_vocabulary` and
  `world_trace` build its inputs from a `World` and a `Question`.

    traces = [world_trace(world, q, output) for q, output in zip(questions, outputs)]
    verdicts = RuleJudge(world_vocabulary(world)).judge(traces)
    summarize(traces, verdicts)   # {"soundness": ..., "depth": ..., "n": ..., "by_category": ...}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from visual_priors.data.chat import (AnswerError, ChatClient, ChatError, JsonCache, as_bool,
                                     cache_key, default_cache_dir, extract_json_object,
                                     fetch_or_compute, new_owner, run_batch)
from visual_priors.data.multimodal import LETTERS
from visual_priors.eval.vqa import parse_answer

__all__ = [
    "EXPLAIN_INSTRUCTION", "RUBRIC", "SYSTEM_PROMPT", "USER_TEMPLATE", "PROMPT_NAME",
    "PROMPT_VERSION", "Trace", "Verdict", "explain_prompt", "split_answer", "trace_of",
    "trace_words", "build_messages", "parse_verdict", "JudgeError", "LLMReasoningJudge",
    "RuleJudge", "world_vocabulary", "world_evidence", "world_trace", "summarize",
]

# ----------------------------------------------------------------------- traces


@dataclass(frozen=True)
class Trace:
    """One model output to judge. answer: the correct option's index. text: the model's whole
    output (explanation and final answer line). evidence: what the rule judge checks claims
    against (see `RuleJudge`); the LLM judge does not use it."""

    question: str
    options: tuple[str, ...]
    answer: int
    text: str
    benchmark: str = ""
    category: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(self.options))
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer {self.answer} is not an index into {len(self.options)} options")


class Verdict(NamedTuple):
    coherent: bool
    reason: str
    words: int


# ----------------------------------------------------------------------- prompts

EXPLAIN_INSTRUCTION = (
    "Explain your reasoning step by step: say what you see in the image that matters for the "
    "question and what you know about it, and how that leads to one of the options. Then end "
    "with a last line of the form \"Answer: <letter>\".")


def _lettered(options: Sequence[str]) -> list[str]:
    if len(options) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} options can be lettered, got {len(options)}")
    return [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(options)]


def explain_prompt(question: str, options: Sequence[str]) -> str:
    """The question, its lettered options ("A. ...") and the instruction to explain step by step
    and end with "Answer: <letter>"."""
    return "\n".join([question, *_lettered(options), "", EXPLAIN_INSTRUCTION])


_LETTER = f"[{re.escape(LETTERS)}]"   # an option letter, upper case
# A last line that gives the answer: "Answer: B", "**Final answer:** (B)", "The answer is B.",
# "Answer: the red koop".
_ANSWER_LINE = re.compile(
    r"^[\W_]*(?i:(?:the\s+)?(?:final\s+)?answer)(?:\*\*)?\s*"
    r"(?:[:：]|(?i:is)\b[\W_]*\(?" + _LETTER + r"\)?(?![A-Za-z0-9]))")
# An answer at the end of the last line of prose: "... so it is the koop. Answer: B".
_ANSWER_TAIL = re.compile(
    r"(?:\b(?i:so|thus|therefore|hence),?\s+)?"
    r"(?:\*\*)?\b(?i:(?:the\s+)?(?:final\s+)?answer)(?:\*\*)?\s*(?:(?i:is)\s+|[:：]\s*)"
    r"(?:\*\*)?\s*\(?" + _LETTER + r"\)?[\W_]*$")
_SHORT_LINE = 8   # words: a lone line longer than this that starts "The answer is B ..." is prose


def split_answer(text: str) -> tuple[str, str]:
    """(explanation, final answer) of a model output. The final answer is the last line when it
    gives the answer ("Answer: B", "The answer is (B).") -- unless it is the only line and
    longer than a short answer -- or else an "Answer: B" ending the last line; "" when neither."""
    body = text.rstrip()
    nl = body.rfind("\n")
    last = body[nl + 1:]
    if _ANSWER_LINE.match(last) and (nl >= 0 or len(last.split()) <= _SHORT_LINE):
        return body[:nl + 1].strip(), last.strip()
    m = _ANSWER_TAIL.search(last)
    if m:
        cut = nl + 1 + m.start()
        return body[:cut].strip(), body[cut:].strip()
    return body.strip(), ""


def trace_of(text: str) -> str:
    """The explanation without the final answer line."""
    return split_answer(text)[0]


def trace_words(text: str) -> int:
    """Reasoning depth of one output: the words of its trace (whitespace-separated tokens with at
    least one letter or digit, so a lone "-" or "*" is not a word)."""
    return sum(1 for tok in trace_of(text).split() if any(ch.isalnum() for ch in tok))


# ----------------------------------------------------------------------- the LLM judge

RUBRIC = """\
A reasoning trace is coherent and reasonable when all of these hold:
1. Every step follows from the previous steps or from what the question, its options or the \
image states. You cannot see the image: accept what the trace says it sees unless it contradicts \
the question, the options, the reference answer or another step.
2. No step contradicts another step, the question or the reference answer.
3. The conclusion follows from the steps, and the option the model chooses is the one its \
conclusion supports.
4. The chosen option is the reference answer. A trace that ends on another option has a wrong \
step somewhere and is not coherent.
5. The trace gives at least one piece of evidence that bears on the question: something it sees \
in the image, or a fact it knows. A bare answer, or the question restated, is not reasoning.
Length and style do not matter: a short trace can be coherent, and a long one that wanders, \
guesses or contradicts itself is not."""

SYSTEM_PROMPT = (
    "You judge the reasoning of a vision-language model. The model was shown an image and a "
    "multiple-choice question and asked to explain its reasoning step by step, then to give its "
    "answer. You are given the question, the options, the reference (correct) answer and the "
    "model's output; you are not given the image.\n\n"
    + RUBRIC
    + "\n\nAnswer with one JSON object and nothing else: "
    + '{"coherent": true or false, "reason": "one sentence naming the step that fails, or why '
      'the trace holds"}')
USER_TEMPLATE = ("Question:\n{question}\n\nOptions:\n{options}\n\nReference answer: {reference}\n\n"
                 "Model output:\n<<<\n{output}\n>>>\n\nAnswer with the JSON object only.")
PROMPT_NAME = "reasoning-judge-v1"
# Changes whenever the prompt text does, so cache keys and fingerprints follow any edit.
PROMPT_VERSION = PROMPT_NAME + "-" + hashlib.sha256(
    (SYSTEM_PROMPT + "\0" + USER_TEMPLATE).encode()).hexdigest()[:12]


def build_messages(trace: Trace) -> list[dict[str, str]]:
    """The chat messages that ask the judge about one trace."""
    options = "\n".join(_lettered(trace.options))
    reference = f"{LETTERS[trace.answer]}. {trace.options[trace.answer]}"
    user = USER_TEMPLATE.format(question=trace.question, options=options, reference=reference,
                                output=trace.text)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_verdict(content: str) -> dict[str, Any]:
    """The judge's answer -> {"coherent": bool, "reason": str}. A <think> preamble and text
    around the JSON object are skipped; "coherent" must be a boolean (or yes/no, 0/1)."""
    obj = extract_json_object(content)
    if "coherent" not in obj:
        raise AnswerError("'coherent' missing from the answer")
    reason = obj.get("reason", "")
    return {"coherent": as_bool(obj["coherent"], "'coherent'"),
            "reason": reason if isinstance(reason, str) else json.dumps(reason)}


class JudgeError(ChatError):
    """A trace could not be judged (retries exhausted, or an error not worth retrying)."""


class LLMReasoningJudge:
    """Judges traces by asking an LLM with `RUBRIC`; one request per distinct trace, temperature 0.

    Cache: `{cache_dir}/judgements.sqlite` (default ~/.cache/visual_priors/reasoning_judge), keyed
    by sha256(model, PROMPT_VERSION, the lettered question, the reference letter, the output), so
    a trace is never sent twice, across runs and processes (claims with a lease, as the label
    cache). Retries (HTTP 408/409/425/429/5xx, connection errors, malformed responses and answers
    that are not the JSON asked for) back off exponentially with jitter; after `max_retries` the
    `JudgeError` names the trace's key and the last response. For a Qwen3 judge on vLLM pass
    `extra_body={"chat_template_kwargs": {"enable_thinking": False}}` (a <think> preamble is
    skipped in any case)."""

    def __init__(self, url: str, model: str, *, api_key_env: str | None = "OPENAI_API_KEY",
                 cache_dir: str | os.PathLike | None = None, max_retries: int = 5,
                 requests_per_second: float | None = None, concurrency: int = 8,
                 timeout: float = 60.0, max_tokens: int = 512,
                 extra_body: Mapping[str, Any] | None = None, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, lease_s: float | None = None,
                 progress: bool | None = None, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if concurrency < 1:
            raise ValueError(f"need concurrency >= 1, got {concurrency}")
        self.client = ChatClient(url, model, api_key_env=api_key_env, max_retries=max_retries,
                                 requests_per_second=requests_per_second, timeout=timeout,
                                 max_tokens=max_tokens, temperature=0.0, extra_body=extra_body,
                                 backoff_base=backoff_base, backoff_max=backoff_max, seed=seed,
                                 error_class=JudgeError, clock=clock, sleep=sleep)
        self.model, self.concurrency, self.progress = model, int(concurrency), progress
        self.lease_s = float(lease_s) if lease_s is not None else \
            (self.client.timeout + self.client.backoff_max) * (self.client.max_retries + 1)
        self._sleep = sleep
        self.cache = JsonCache(Path(cache_dir or default_cache_dir("reasoning_judge"))
                               / "judgements.sqlite")
        self.owner = new_owner()
        blob = json.dumps({"prompt_version": PROMPT_VERSION, "system": SYSTEM_PROMPT,
                           "user": USER_TEMPLATE, **self.client.settings()}, sort_keys=True)
        self.fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def requests_sent(self) -> int:
        return self.client.requests_sent

    def __repr__(self) -> str:
        return (f"LLMReasoningJudge(model={self.model!r}, url={self.client.url!r}, "
                f"fingerprint={self.fingerprint})")

    def key(self, trace: Trace) -> str:
        question = "\n".join([trace.question, *_lettered(trace.options)])
        return cache_key(self.model, PROMPT_VERSION, question, LETTERS[trace.answer], trace.text)

    def _judge_one(self, key: str, trace: Trace) -> dict[str, Any]:
        def ask():
            return self.client.ask(build_messages(trace), parse_verdict,
                                   failure=f"trace {key[:16]} not judged")
        return fetch_or_compute(self.cache, key, self.owner, self.lease_s, ask, model=self.model,
                                prompt_version=PROMPT_VERSION, sleep=self._sleep)

    def judge(self, traces: Sequence[Trace]) -> list[Verdict]:
        """One Verdict per trace, in order; cached traces are not sent again."""
        keys = [self.key(t) for t in traces]
        found = self.cache.get_many(sorted(set(keys)))
        todo: dict[str, Trace] = {}
        for k, t in zip(keys, traces):
            if k not in found and k not in todo:
                todo[k] = t
        found.update(run_batch(todo, self._judge_one, concurrency=self.concurrency,
                               progress=self.progress, desc=f"judging ({self.model})",
                               unit="trace"))
        return [Verdict(bool(found[k]["coherent"]), str(found[k]["reason"]), trace_words(t.text))
                for k, t in zip(keys, traces)]


# ----------------------------------------------------------------------- the rule judge

_NUMBERS = {"no": 0, "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
_NEGATIONS = frozenset({"no", "not", "never", "without", "neither", "nor", "none", "isn't",
                        "aren't", "wasn't", "weren't", "doesn't", "don't", "lacks"})
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?|[^\sA-Za-z0-9'’-]")
_MATERIAL_WORDS = {"wood": ("wood", "wooden"), "metal": ("metal", "metallic"),
                   "stone": ("stone", "stones"), "cloth": ("cloth",), "glass": ("glass",)}


class _Tok(NamedTuple):
    text: str          # lower case
    start: int
    end: int
    word: bool         # False for punctuation


def _tokens(text: str) -> list[_Tok]:
    return [_Tok(m.group().lower(), m.start(), m.end(), m.group()[0].isalnum())
            for m in _TOKEN.finditer(text)]


def _number(tok: str) -> int | None:
    if tok.isdigit():
        return int(tok)
    return _NUMBERS.get(tok)


class RuleJudge:
    """A deterministic judge for the procedural world, where the truth is known.

    vocabulary: {"kinds": every kind name (singular), "colours": every colour name}. A kind is
    recognised in its singular, its plural (name + "s" or "es") and possessive forms, in any
    case. Each trace's `evidence` holds
    "present": [{"name", "colour"}] for the objects in the image, "facts": {kind name: {"use",
    "habitat", "legs", "material", "category"}} for the kinds the question relies on, and
    "answer_text".

    A trace is coherent when all of these hold:
    1. Its answer, read with `visual_priors.eval.vqa.parse_answer` from the final answer line
       (the whole output if there is none), is the correct option.
    2. Every kind it names is in the image, named in the question or options, or among the facts
       (no hallucinated object).
    3. Every colour it gives a kind ("a red koop", "red koops", "the koop is red") matches an
       object of that kind and colour in the image.
    4. Every number of legs it gives a kind ("the koop has four legs", "koops have 4 legs",
       "a four-legged koop", "the koop is legless") matches that kind's facts. The number must
       follow the kind within the same clause (at most four words between, no other number), or
       "N-legged" must precede it.
    5. It gives at least one piece of evidence: it names an object in the image, or it states a
       true fact, i.e. a sentence names a kind from the facts together with that kind's use,
       habitat, material or category, or gives its true number of legs.

    Claims in rules 3 and 4 are statements, not mentions: a claim preceded in its clause by a
    negation ("there is no red koop") is not checked, nor one inside a longer verbatim quote of
    the question or of an option (a trace may cite a wrong option to reject it). Only the
    explanation (`trace_of`) is checked for claims and evidence. Leg counts of kinds outside the
    facts cannot be checked and are ignored; other false facts (a wrong habitat or use) are not
    detected, only the missing evidence is.
    """

    def __init__(self, vocabulary: Mapping[str, Sequence[str]]):
        missing = {"kinds", "colours"} - set(vocabulary)
        if missing:
            raise ValueError(f"vocabulary needs {sorted(missing)}; got keys {sorted(vocabulary)}")
        self.kinds = tuple(vocabulary["kinds"])
        self.colours = frozenset(c.lower() for c in vocabulary["colours"])
        self._surface: dict[str, str] = {}
        for name in self.kinds:
            low = name.lower()
            for form in (low, low + "s", low + "es"):
                self._surface.setdefault(form, name)
        for name in self.kinds:              # a singular always wins over another's plural
            self._surface[name.lower()] = name

    # -- recognising words
    def _kind(self, tok: _Tok) -> str | None:
        if not tok.word:
            return None
        text = tok.text
        for suffix in ("'s", "’s", "'", "’"):
            if text.endswith(suffix) and text[:-len(suffix)] in self._surface:
                text = text[:-len(suffix)]
                break
        return self._surface.get(text)

    def _colour(self, tok: _Tok) -> str | None:
        return tok.text if tok.word and tok.text in self.colours else None

    @staticmethod
    def _negated(toks: list[_Tok], i: int) -> bool:
        """A negation among the three words before token i, within its clause."""
        seen = 0
        for j in range(i - 1, -1, -1):
            if not toks[j].word:
                return False
            if toks[j].text in _NEGATIONS or toks[j].text.endswith("n't"):
                return True
            seen += 1
            if seen == 3:
                return False
        return False

    # -- claims
    def colour_claims(self, text: str) -> list[tuple[str, str, int, int]]:
        """(colour, kind, start, end) for every colour the text gives a kind, negations left out."""
        toks = _tokens(text)
        out = []
        for i, tok in enumerate(toks):
            colour = self._colour(tok)
            if colour and i + 1 < len(toks):
                kind = self._kind(toks[i + 1])
                if kind and not self._negated(toks, i):
                    out.append((colour, kind, tok.start, toks[i + 1].end))
            kind = self._kind(tok)
            if kind and i + 2 < len(toks) and toks[i + 1].text in ("is", "are"):
                j = i + 2
                if toks[j].text in ("coloured", "colored", "painted", "all") and j + 1 < len(toks):
                    j += 1
                colour = self._colour(toks[j])
                if colour and not self._negated(toks, i):
                    out.append((colour, kind, tok.start, toks[j].end))
        return out

    def leg_claims(self, text: str) -> list[tuple[str, int, int, int]]:
        """(kind, legs, start, end) for every number of legs the text gives a kind."""
        toks = _tokens(text)
        out = []
        for i, tok in enumerate(toks):
            if tok.text == "legless":
                kind, at = self._kind_near(toks, i, 2, 1) or self._kind_near(toks, i, 4, -1) or (None, i)
                if kind:
                    out.append((kind, 0, min(tok.start, toks[at].start), max(tok.end, toks[at].end)))
                continue
            n = _number(tok.text)
            if n is None or i + 1 >= len(toks) or tok.text == "no" and self._negated(toks, i):
                continue
            nxt = toks[i + 1].text
            if nxt == "legged":
                found = self._kind_near(toks, i + 1, 2, 1)
            elif nxt in ("legs", "leg"):
                found = self._kind_near(toks, i, 5, -1)
            else:
                continue
            if found:
                kind, at = found
                out.append((kind, n, min(tok.start, toks[at].start),
                            max(toks[i + 1].end, toks[at].end)))
        return out

    def _kind_near(self, toks: list[_Tok], i: int, window: int, step: int) -> tuple[str, int] | None:
        """The first kind named within `window` tokens of toks[i], scanning forwards (step 1) or
        backwards (step -1); None once a non-word or a number comes first."""
        end = min(len(toks), i + 1 + window) if step > 0 else max(-1, i - 1 - window)
        for j in range(i + step, end, step):
            if not toks[j].word or _number(toks[j].text) is not None:
                return None
            kind = self._kind(toks[j])
            if kind:
                return kind, j
        return None

    def kinds_named(self, text: str) -> list[str]:
        """The kinds a text names, in order of first mention."""
        seen: dict[str, None] = {}
        for tok in _tokens(text):
            kind = self._kind(tok)
            if kind:
                seen.setdefault(kind)
        return list(seen)

    # -- facts
    def _true_fact(self, sentence: str, kind: str, facts: Mapping[str, Any]) -> str | None:
        low = sentence.lower()
        words = {t.text for t in _tokens(sentence)}
        use = str(facts.get("use", "")).lower()
        if use and use in low:
            return f"the {kind} is used for {use}"
        habitat = str(facts.get("habitat", "")).lower()
        if habitat and (habitat in words or habitat.rstrip("s") in words):
            return f"the {kind} lives in the {habitat}"
        material = str(facts.get("material", "")).lower()
        if material and words & set(_MATERIAL_WORDS.get(material, (material,))):
            return f"the {kind} is made of {material}"
        category = str(facts.get("category", "")).lower()
        if category and ({category, category + "s"} & words):
            return f"the {kind} is a {category}"
        return None

    # -- judging
    def judge_one(self, trace: Trace) -> Verdict:
        evidence = trace.evidence or {}
        present = [(str(o["name"]), str(o["colour"]).lower()) for o in evidence.get("present", ())]
        facts: Mapping[str, Mapping[str, Any]] = evidence.get("facts", {}) or {}
        present_kinds = {name for name, _ in present}
        body, answer_line = split_answer(trace.text)
        problems: list[str] = []

        # 1. the chosen option
        picked = parse_answer(answer_line or trace.text, trace.options)
        correct = f"{LETTERS[trace.answer]} ({trace.options[trace.answer]})"
        if picked is None:
            problems.append(f"picks no option (the answer is {correct})")
        elif picked != trace.answer:
            problems.append(f"picks {LETTERS[picked]} ({trace.options[picked]}), "
                            f"not {correct}")

        # 2. no hallucinated kinds
        allowed = present_kinds | set(facts) | set(
            self.kinds_named("\n".join([trace.question, *trace.options])))
        for kind in self.kinds_named(body):
            if kind not in allowed:
                problems.append(f"names a {kind}, which is not in the image, the question, "
                                f"the options or the facts")

        # quotes of the question or an option: claims inside them are citations
        quoted: list[tuple[int, int]] = []
        low_body = body.lower()
        for cited in (trace.question, *trace.options):
            c = cited.strip().lower()
            if not c:
                continue
            start = low_body.find(c)
            while start >= 0:
                quoted.append((start, start + len(c)))
                start = low_body.find(c, start + 1)

        def cited(s: int, e: int) -> bool:
            return any(cs <= s and e <= ce and ce - cs > e - s for cs, ce in quoted)

        # 3. colours
        for colour, kind, s, e in self.colour_claims(body):
            if cited(s, e) or (kind, colour) in present:
                continue
            shown = sorted(c for n, c in present if n == kind)
            problems.append(f"states a {colour} {kind}, but the image has "
                            + (f"the {kind} in {' and '.join(shown)}" if shown else f"no {kind}"))

        # 4. legs
        for kind, legs, s, e in self.leg_claims(body):
            if cited(s, e) or kind not in facts or "legs" not in facts[kind]:
                continue
            true = int(facts[kind]["legs"])
            if legs != true:
                problems.append(f"states the {kind} has {legs} legs, but it has {true}")

        # 5. evidence
        support: list[str] = [f"names the {k} in the image" for k in self.kinds_named(body)
                              if k in present_kinds]
        for sentence in re.split(r"(?<=[.!?;])\s+|\n+", body):
            for kind in self.kinds_named(sentence):
                if kind in facts:
                    fact = self._true_fact(sentence, kind, facts[kind])
                    if fact:
                        support.append(f"states that {fact}")
        for kind, legs, s, e in self.leg_claims(body):
            if kind in facts and "legs" in facts[kind] and int(facts[kind]["legs"]) == legs:
                support.append(f"states that the {kind} has {legs} legs")
        if not support:
            problems.append("gives no evidence: names no object in the image and states no fact")

        words = trace_words(trace.text)
        if problems:
            return Verdict(False, "; ".join(problems), words)
        return Verdict(True, f"picks {correct}; " + "; ".join(dict.fromkeys(support)), words)

    def judge(self, traces: Sequence[Trace]) -> list[Verdict]:
        return [self.judge_one(t) for t in traces]


# ----------------------------------------------------------------------- the world's inputs

def world_vocabulary(world) -> dict[str, list[str]]:
    """RuleJudge's vocabulary for a `visual_priors.world.World`."""
    from visual_priors.world import COLOURS
    return {"kinds": [k.name for k in world.kinds], "colours": list(COLOURS)}


def world_evidence(world, question) -> dict[str, Any]:
    """A world Question's evidence: the objects of its scene (every view of a multi-view
    question), and the facts of the kinds it relies on (`fact_kinds`) and of every kind it shows
    or names, so that any leg count a trace gives can be checked."""
    scenes = [s for s in (question.scene, *getattr(question, "views", ())) if s is not None]
    objects = [o for s in scenes for o in s.objects]
    present = [{"name": o.kind.name, "colour": o.colour} for o in objects]
    kinds = {world.kinds[i].name: world.kinds[i] for i in question.fact_kinds}
    kinds.update((o.kind.name, o.kind) for o in objects)
    vocab = RuleJudge(world_vocabulary(world))
    by_name = {k.name: k for k in world.kinds}
    for name in vocab.kinds_named("\n".join([question.question, *question.options])):
        kinds.setdefault(name, by_name[name])
    facts = {name: {"use": k.use, "habitat": k.habitat, "legs": k.legs, "material": k.material,
                    "category": k.category} for name, k in kinds.items()}
    return {"present": present, "facts": facts, "answer_text": question.options[question.answer]}


def world_trace(world, question, text: str) -> Trace:
    """A Trace of a model's output for a world Question, with its evidence."""
    return Trace(question.question, tuple(question.options), question.answer, text,
                 question.benchmark, question.category, world_evidence(world, question))


# ----------------------------------------------------------------------- scores

def _scores(verdicts: Sequence[Verdict]) -> dict[str, float | int]:
    n = len(verdicts)
    if not n:
        return {"soundness": math.nan, "depth": math.nan, "n": 0}
    return {"soundness": 100.0 * sum(bool(v.coherent) for v in verdicts) / n,
            "depth": sum(v.words for v in verdicts) / n, "n": n}


def summarize(traces: Sequence[Trace], verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Logical Soundness (% coherent, 0-100) and Reasoning Depth (mean words) over all traces,
    by category and by benchmark: {"soundness", "depth", "n", "by_category": {category:
    {"soundness", "depth", "n"}}, "by_benchmark": {...}}. Empty groups score nan."""
    if len(traces) != len(verdicts):
        raise ValueError(f"{len(traces)} traces but {len(verdicts)} verdicts")
    by_cat: dict[str, list[Verdict]] = defaultdict(list)
    by_bench: dict[str, list[Verdict]] = defaultdict(list)
    for t, v in zip(traces, verdicts):
        by_cat[t.category].append(v)
        by_bench[t.benchmark].append(v)
    return {**_scores(list(verdicts)),
            "by_category": {c: _scores(vs) for c, vs in sorted(by_cat.items())},
            "by_benchmark": {b: _scores(vs) for b, vs in sorted(by_bench.items())}}
