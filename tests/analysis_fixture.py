"""A small synthetic paper: results in the analysis schema of `suite.executor.collect`.

Three studies with known ground truth, small enough to fit in a second:
- scale_sweep: t1..t3 x four token budgets on web_crawl, code and encyclopedia; final loss
  follows a Chinchilla law (the same exponents for every source, E shifted per source, so every
  scale orders the three mixtures alike: decision accuracy 1) and category accuracies a
  sigmoid of loss, between about 27% and 70%;
- vision_grid: t3 runs on `grid:reasoning=R,visual=V` cells whose overall accuracy peaks at
  60 / 15 (a quadratic bowl plus noise) while text accuracy falls and perplexity rises with R;
- category_sweep: t3 runs on `category:code_reasoning=P` with an alignment score rising with P,
  recorded in the shape of `eval.alignment.alignment_report` (per-reference best scores and
  PRH's metric table, every entry rising with P).

`write_export(path)` writes them with the suite's own exporter, as `visual-priors suite
export` does, so notebooks and report code read the same table users get.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visual_priors.config.profiles import ALIGNMENT_METRICS
from visual_priors.suite import export

CATEGORIES = ("general", "knowledge", "ocr_chart", "vision_centric")
BENCHMARKS = {"general": ("scene", "attribute"), "knowledge": ("science", "math"),
              "ocr_chart": ("text", "chart"), "vision_centric": ("depth", "count")}
PARAMS = {"t1": 150_000, "t2": 600_000, "t3": 2_000_000}
TOKENS = (50_000, 100_000, 200_000, 400_000)
# L(N, D) = E + A / N^alpha + B / D^beta
LAW = {"E": 1.9, "A": 120.0, "alpha": 0.34, "B": 600.0, "beta": 0.37}
# The scale sweep's sources and their irreducible loss E (web_crawl's is LAW's).
SWEEP_E = {"web_crawl": LAW["E"], "code": LAW["E"] - 0.3, "encyclopedia": LAW["E"] + 0.3}
CHANCE = 0.25
N_QUESTIONS = 200
# The alignment references of the tiny paper studies and how far each sits from their mean.
ALIGNMENT_REFERENCES = {"supervised": -0.0008, "contrastive": 0.0008}


def chinchilla_loss(n, d, e: float = LAW["E"]) -> float:
    return e + LAW["A"] / n ** LAW["alpha"] + LAW["B"] / d ** LAW["beta"]


def loss_accuracy(loss: float, i: int) -> float:
    """Category i's accuracy at a loss: lower loss, higher accuracy (losses here are about 7.5-15)."""
    return CHANCE + (1 - CHANCE) / (1 + np.exp(0.6 * (loss - 8.5 - 0.3 * i)))


def _run(name, study, scale, tokens, mixture, cat_acc, rng, *, loss=None, extra=None) -> dict:
    params = PARAMS[scale]
    loss = chinchilla_loss(params, tokens) if loss is None else loss
    bench, bcat, nq = {}, {}, {}
    for cat, names in BENCHMARKS.items():
        for b in names:
            bench[b] = float(np.clip(cat_acc[cat] + rng.normal(0, 0.004), 0, 1))
            bcat[b], nq[b] = cat, N_QUESTIONS
    cats = {c: float(np.mean([bench[b] for b in BENCHMARKS[c]])) for c in CATEGORIES}
    record = {
        "run": name, "study": study, "scale": scale, "token_budget": tokens, "mixture": mixture,
        "text_mixture": mixture, "encoder": "contrastive", "sft_set": "full",
        "params": params, "tokens": tokens, "flops": 6.0 * params * tokens,
        "final_loss": float(loss * np.exp(rng.normal(0, 0.002))), "perplexity": float(np.exp(loss)),
        "chance": CHANCE, "benchmarks": bench, "benchmark_category": bcat, "n_questions": nq,
        "categories": cats, "overall": float(np.mean(list(bench.values()))),
        "mle": {"0-30": cats["general"] - 0.03, "30-60": cats["general"],
                "60-100": cats["general"] + 0.02, "overall": cats["general"]},
        "language": {"avg_acc": float(0.9 - 0.05 * loss + rng.normal(0, 0.003)),
                     "perplexity": {"mean": float(np.exp(loss))}},
    }
    record.update(extra or {})
    return record


def scale_sweep(rng, source: str = "web_crawl") -> list[dict]:
    runs = []
    suffix = "" if source == "web_crawl" else f"-{source}"
    for scale in PARAMS:
        for tokens in TOKENS:
            loss = chinchilla_loss(PARAMS[scale], tokens, SWEEP_E[source])
            acc = {c: loss_accuracy(loss, i) for i, c in enumerate(CATEGORIES)}
            runs.append(_run(f"scale_sweep/{scale}-{tokens}{suffix}", "scale_sweep", scale,
                             tokens, f"source:{source}", acc, rng, loss=loss))
    return runs


GRID_CELLS = tuple([(r, v) for r in range(50, 90, 5) for v in (5, 10, 15)]
                   + [(r, v) for r in (60, 65) for v in (20, 25, 30)])


def grid_accuracy(r: float, v: float) -> float:
    return 0.33 - 0.00002 * (r - 60) ** 2 - 0.00008 * (v - 15) ** 2


def vision_grid(rng) -> list[dict]:
    runs = []
    for r, v in GRID_CELLS:
        base = grid_accuracy(r, v)
        acc = {c: base + 0.01 * (i - 1.5) + rng.normal(0, 0.003) for i, c in enumerate(CATEGORIES)}
        run = _run(f"vision_grid/r{r}-v{v}", "vision_grid", "t3", 75_000,
                   f"grid:reasoning={r},visual={v}", acc, rng)
        # More reasoning text, weaker language: the trade-off of the paper's Table 2.
        run["language"]["avg_acc"] -= 0.001 * (r - 50)
        run["language"]["perplexity"]["mean"] *= 1 + 0.004 * (r - 50)
        runs.append(run)
    return runs


def category_sweep(rng) -> list[dict]:
    runs = []
    for p in (0, 25, 50, 75, 100):
        acc = {c: 0.3 + 0.0004 * p * (c in ("knowledge", "vision_centric")) + rng.normal(0, 0.003)
               for c in CATEGORIES}
        score = 0.05 + 0.0002 * p + rng.normal(0, 0.0005)
        runs.append(_run(f"category_sweep/code_reasoning@{p}", "category_sweep", "t3", 75_000,
                         f"category:code_reasoning={p}", acc, rng,
                         extra={"alignment": alignment_result(float(score))}))
    return runs


def alignment_result(score: float) -> dict:
    """An alignment step's result (`alignment_report` plus the step's keys) whose LSBS score
    is `score`; every reference and PRH metric moves with it (metric i sits at i/10 + score)."""
    table = {m: 0.1 * i + score for i, m in enumerate(ALIGNMENT_METRICS)}
    encoders = {
        name: {"score": score + shift, "layers": [2, 3], "layer_scores": [[score + shift] * 4] * 3,
               "llm_layers": 3, "vision_layers": 4,
               "table": {m: {"score": v + shift, "layers": [1, 2]} for m, v in table.items()}}
        for name, shift in ALIGNMENT_REFERENCES.items()}
    return {"score": score, "metric": "mutual_knn", "topk": 20, "q": 0.95, "exact": True,
            "samples": 256, "encoders": encoders, "table_topk": 10, "table": table, "scale": "t3",
            "caption_tokens": 21.5}


def paper_results(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    runs = scale_sweep(rng) + vision_grid(rng) + category_sweep(rng)
    # The other sweep sources draw their noise apart, so the runs above stay as they were.
    extra = np.random.default_rng((seed, 1))
    return runs + [r for source in SWEEP_E if source != "web_crawl"
                   for r in scale_sweep(extra, source)]


def write_export(path: str | Path, seed: int = 0) -> Path:
    return export.write(paper_results(seed), path)
