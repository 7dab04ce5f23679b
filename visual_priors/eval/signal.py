"""The signal chain: what each hop from pixels and pre-training text to an answer carries.

H1 encoder     linear probes of the frozen features (eval.probe.scene_probes)
H2 connector   after stage 1, the MLLM names the kind in held-out single-object images
H3 knowledge   the pre-trained LLM answers fact questions in text, held-out kinds apart
H4 reasoning   the final MLLM answers each question from the scene's true description
H5 vision      the final MLLM answers each question from the image, and blind

Every hop is scored against its chance level with a 95% interval; ``verdict`` names the first
hop whose score its interval cannot tell from chance (or, for H5, from blind), in words. Beside
accuracy each question gets a continuous score, the log-probability margin of the correct
option over the best wrong one (DataDecide: at small scale such scores rank recipes where
accuracy cannot).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from visual_priors.data.multimodal import encode_example
from visual_priors.eval import stats
from visual_priors.model.scoring import masked_logprobs, target_capacity

HOPS = ("H1", "H2", "H3", "H4", "H5")
HOP_NAMES = {"H1": "encoder", "H2": "connector", "H3": "text knowledge", "H4": "perfect perception",
             "H5": "vision"}


def margins(scores: np.ndarray, answers: Sequence[int]) -> np.ndarray:
    """Per question: log-probability of the correct option minus the best wrong one's (summed
    over the option's tokens; options a question lacks are -inf)."""
    s = np.asarray(scores, np.float64)
    idx = np.arange(len(s))
    answers = np.asarray(answers)
    right = s[idx, answers]
    wrong = s.copy()
    wrong[idx, answers] = -np.inf
    return right - wrong.max(axis=1)


def condition_scores(scores: np.ndarray, answers: Sequence[int], groups: Sequence[str],
                     group_category: Mapping[str, str]) -> dict:
    """Accuracy and margin of one condition (image, blind or described) per family, category
    and overall, each with its 95% interval: {"accuracy": grouped, "margin": grouped}."""
    m = margins(scores, answers)
    correct = (m > 0).astype(np.float64)
    return {"accuracy": stats.grouped_mean(correct, groups, group_category),
            "margin": stats.grouped_mean(m, groups, group_category)}


def paired_difference(scores_a: np.ndarray, scores_b: np.ndarray, answers: Sequence[int],
                      groups: Sequence[str], group_category: Mapping[str, str]) -> dict:
    """Condition a minus condition b, paired by question: accuracy and margin differences per
    family, category and overall with their 95% intervals and z."""
    ma, mb = margins(scores_a, answers), margins(scores_b, answers)
    return {"accuracy": stats.grouped_mean((ma > 0).astype(float) - (mb > 0).astype(float), groups,
                                           group_category),
            "margin": stats.grouped_mean(ma - mb, groups, group_category)}


# ----------------------------------------------------------------------------- H2 naming


@functools.partial(nnx.jit, static_argnames="max_targets")
def _caption_logprob(model, tokens, mask, feats, max_targets: int):
    return masked_logprobs(model, tokens, mask, feats, max_targets=max_targets)[0]


def naming_hop(model, tokenizer, world, feats: np.ndarray, records: Sequence[Mapping], *, prompt: str,
               text_len: int, batch_size: int = 64) -> dict:
    """H2: for held-out single-object images, the likelihood of the image's own caption against
    the same caption with the kind's name swapped for each other kind's: the MLLM names the
    kind when its own caption wins. records: {"caption", "kind"} per image, row-aligned with
    ``feats``. Reported overall and for fact-held-out and other kinds (looks are never held
    out, so the two should agree)."""
    names = [k.name for k in world.kinds]
    rows, masks, feat_rows = [], [], []
    for i, rec in enumerate(records):
        true = names[rec["kind"]]
        for name in names:
            t, m = encode_example(tokenizer, prompt, rec["caption"].replace(true, name, 1), text_len)
            rows.append(t)
            masks.append(m)
            feat_rows.append(i)
    tokens, masks, feat_rows = np.stack(rows), np.stack(masks), np.asarray(feat_rows)
    # One compiled shape: every row cut after the longest caption, every batch the same size.
    width = int(np.max(np.nonzero(masks.any(axis=0))[0])) + 1
    tokens, masks = tokens[:, :width], masks[:, :width]
    starts = range(0, len(tokens), batch_size)
    batches = [np.minimum(np.arange(a, a + batch_size), len(tokens) - 1) for a in starts]  # last row repeats
    capacity = target_capacity([masks[sel] for sel in batches])
    scores = np.empty(len(tokens), np.float32)
    for start, sel in zip(starts, batches):
        stop = min(start + batch_size, len(tokens))
        out = _caption_logprob(model, jnp.asarray(tokens[sel]), jnp.asarray(masks[sel]),
                               jnp.asarray(np.asarray(feats)[feat_rows[sel]]), max_targets=capacity)
        scores[start:stop] = np.asarray(out)[: stop - start]
    scores = scores.reshape(len(records), len(names))
    kinds = np.asarray([rec["kind"] for rec in records])
    hit = scores.argmax(1) == kinds
    held = np.asarray([world.is_heldout(int(k)) for k in kinds])
    out = {"chance": 1.0 / len(names), "margin": _mean_block(margins(scores, kinds))}
    for key, sel in (("all", np.ones_like(held)), ("heldout", held), ("train", ~held)):
        out[key] = proportion(hit[sel])
    out["accuracy"] = out["all"]["accuracy"]
    return out


def proportion(hits: np.ndarray) -> dict:
    """Accuracy of 0/1 hits with its Wilson 95% interval."""
    n = int(len(hits))
    acc = float(np.mean(hits)) if n else float("nan")
    lo, hi = stats.wilson_interval(float(np.sum(hits)), n)
    return {"accuracy": acc, "ci": [lo, hi], "n": n}


def _mean_block(values: np.ndarray) -> dict:
    m, se = stats.mean_se(values)
    return {"mean": m, "se": se, "ci": stats.interval(m, se)}


# ----------------------------------------------------------------------------- H3 knowledge


def knowledge_hop(model, tokenizer, world, *, n: int, seq_len: int) -> dict:
    """H3: the LLM's choice among four values on fact questions asked in text, for kinds whose
    facts appear only in pre-training text (held out) and for the others."""
    from visual_priors.eval.language import score_multiple_choice
    from visual_priors.world.language_tasks import knowledge_items
    out = {"chance": 0.25}
    for key, heldout in (("heldout", True), ("train", False)):
        items = knowledge_items(world, n, heldout=heldout)
        scores = score_multiple_choice(model, tokenizer, items, seq_len=seq_len)
        width = max(len(s) for s in scores)
        table = np.full((len(items), width), -np.inf)
        for i, s in enumerate(scores):
            table[i, :len(s)] = s
        gold = np.asarray([it.gold for it in items])
        m = margins(table, gold)
        out[key] = {**proportion(m > 0), "margin": _mean_block(m),
                    "chance": float(np.mean([1 / it.n_options for it in items]))}
    return out


# ----------------------------------------------------------------------------- the verdict


def _above(block: Mapping, chance: float) -> bool:
    lo = block.get("ci", [float("nan")])[0]
    return bool(np.isfinite(lo) and lo > chance)


def verdict(chain: Mapping) -> dict:
    """Which hops carry signal, and the first that does not, in words.

    chain: {"H1": {prop: {"accuracy", "chance", "ci"}}, "H2": naming_hop, "H3": knowledge_hop,
    "H4": {category: accuracy block with "chance"}, "H5": {category: image-minus-blind block}}
    (any hop may be missing). A hop holds when every score in it has its interval's lower end
    above chance (for H5, above zero: the image beats blind).
    """
    holds, reasons = {}, {}
    h1 = chain.get("H1") or {}
    if h1:
        weak = [p for p, b in h1.items() if not _above(b, b["chance"])]
        holds["H1"] = not weak
        reasons["H1"] = (f"the frozen encoder's features do not separate {', '.join(weak)}" if weak
                         else "")
    h2 = chain.get("H2")
    if h2:
        holds["H2"] = _above(h2["all"], h2["chance"])
        reasons["H2"] = "" if holds["H2"] else "after stage 1 the model does not name the kinds it is shown"
    h3 = chain.get("H3")
    if h3:
        holds["H3"] = _above(h3["heldout"], h3["chance"])
        reasons["H3"] = ("" if holds["H3"] else "the pre-trained LLM does not answer fact questions about "
                         "kinds it read about only in text")
    h4 = chain.get("H4") or {}
    if h4:
        weak = [c for c, b in h4.items() if not _above(b, b["chance"])]
        holds["H4"] = not weak
        reasons["H4"] = (f"given the scene's true description the model still cannot answer "
                         f"{', '.join(weak)} questions" if weak else "")
    h5 = chain.get("H5") or {}
    if h5:
        weak = [c for c, b in h5.items() if not _above(b, 0.0)]
        holds["H5"] = not weak
        reasons["H5"] = (f"with the image the model does no better than blind on {', '.join(weak)}"
                         if weak else "")
    broken = next((h for h in HOPS if h in holds and not holds[h]), None)
    text = ("every measured hop carries signal" if broken is None else
            f"the chain breaks at {broken} ({HOP_NAMES[broken]}): {reasons[broken]}")
    return {"holds": holds, "broken": broken, "text": text, "reasons": reasons}


def describe_interval(block: Mapping, pct: bool = True) -> str:
    """'62.3% [55.1, 69.0]' (or the plain mean) for report tables."""
    value = block.get("accuracy", block.get("mean"))
    lo, hi = block.get("ci", [float("nan")] * 2)
    if value is None or not np.isfinite(value):
        return "n/a"
    f = (lambda x: f"{100 * x:.1f}") if pct else (lambda x: f"{x:.2f}")
    return f"{f(value)}{'%' if pct else ''} [{f(lo)}, {f(hi)}]"


__all__ = ["HOPS", "HOP_NAMES", "condition_scores", "describe_interval", "knowledge_hop", "margins",
           "naming_hop", "paired_difference", "proportion", "verdict"]
