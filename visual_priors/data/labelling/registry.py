"""The labeller interface and the registry of backends.

    lab = get_labeller("lexical")
    lab = get_labeller("llm", url="http://localhost:8000/v1", model="Qwen/Qwen3-32B",
                       cache_dir="runs/llm_labels")
    lab = get_labeller("distilled", path="runs/labeller-distilled")
    bits = lab.label(texts)          # bool [n, 6] over LABELS
    lab.fingerprint                  # 16 hex; changes whenever the outputs could

Backends are imported only when asked for, so importing the package needs neither
scikit-learn nor a network.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from visual_priors.errors import BadValue


@runtime_checkable
class Labeller(Protocol):
    """What every backend provides."""

    name: str
    # 16 hex digits; changes whenever outputs could change (rule version, prompt text + model +
    # endpoint, classifier weights), so labels cached under it are never stale.
    fingerprint: str

    def label(self, texts: Sequence[str]) -> np.ndarray:
        """bool [len(texts), 6] over `LABELS`."""
        ...


def _lexical(**options: Any):
    from visual_priors.data.labelling.lexical import LexicalLabeller
    return LexicalLabeller, options


def _llm(**options: Any):
    from visual_priors.data.labelling.llm_judge import LLMJudgeLabeller
    return LLMJudgeLabeller, options


def _distilled(**options: Any):
    from visual_priors.data.labelling.distilled import load
    return load, options


BACKENDS = {"lexical": _lexical, "llm": _llm, "distilled": _distilled}


def get_labeller(spec: str, **options: Any) -> Labeller:
    """A labeller by backend name: "lexical" | "llm" | "distilled" (options as in each backend:
    `LexicalLabeller`, `LLMJudgeLabeller`, `distilled.load(path=...)`)."""
    if spec not in BACKENDS:
        raise BadValue(f"unknown labeller {spec!r}; valid labellers: {', '.join(BACKENDS)}")
    factory, options = BACKENDS[spec](**options)
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    valid = [n for n, p in params.items()
             if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(options) - set(valid))
    if unknown and not takes_any:
        raise BadValue(f"unknown option(s) {', '.join(unknown)} for the {spec!r} labeller; "
                       f"valid options: {', '.join(valid)}")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty
               and p.kind is not inspect.Parameter.VAR_KEYWORD and n not in options]
    if missing:
        raise BadValue(f"the {spec!r} labeller needs option(s) {', '.join(missing)}")
    return factory(**options)
