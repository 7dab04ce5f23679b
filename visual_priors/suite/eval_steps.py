"""The evaluate step: option scoring by likelihood on held-out questions, with the image and
without it (the blind baseline), per benchmark, category and MLE-Bench size bin; and, with
``eval.answer_tokens``, free-form greedy answers parsed back to an option (the paper's parser)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from visual_priors.data import multimodal
from visual_priors.eval import mle_bench, vqa
from visual_priors.model import generate
from visual_priors.suite.adapt_steps import build_mllm
from visual_priors.suite.step_io import Locate, restore_module, result_of, tokenizer_of
from visual_priors.suite.vision_steps import load_features


def _questions(feat_dir: Path):
    return [SimpleNamespace(**q) for q in json.loads((feat_dir / "eval.json").read_text())]


def run_evaluate(step, out: Path, locate: Locate) -> dict:
    """Option scoring by likelihood on held-out questions, with and without the image."""
    f = step.fields
    tok = tokenizer_of(step, locate)
    feat_dir = locate(step.input("features"))
    feats = load_features(feat_dir, "eval")
    questions = _questions(feat_dir)
    pre_step = step.input("pretrain")
    # Every parameter comes from the SFT checkpoint, so the pre-trained LLM is not read first.
    model = restore_module(build_mllm(pre_step, locate, tok, feats.shape[-1], 0, load_pretrained=False),
                           locate(step.input("sft")) / "mllm", {"kind": "mllm"})

    sums, _ = vqa.score_options(model, tok, questions, feats, text_len=f["text_len"])
    blind_sums, _ = vqa.score_options(model, tok, questions, None, text_len=f["text_len"])
    pred, blind_pred = sums.argmax(1), blind_sums.argmax(1)

    vqa_idx = [i for i, q in enumerate(questions) if q.category != "mle"]
    mle_idx = [i for i, q in enumerate(questions) if q.category == "mle"]
    vq = [questions[i] for i in vqa_idx]
    bench_acc = vqa.accuracy_by(vq, pred[vqa_idx], "benchmark")
    bench_cat = {q.benchmark: q.category for q in vq}
    summary = vqa.summarize(bench_acc, bench_cat)
    blind = vqa.summarize(vqa.accuracy_by(vq, blind_pred[vqa_idx], "benchmark"), bench_cat)
    mq = [questions[i] for i in mle_idx]
    mle_acc = vqa.accuracy_by(mq, pred[mle_idx], "size_bin")
    counts = {b: sum(q.size_bin == b for q in mq) for b in mle_acc}
    pre = result_of(pre_step, locate)
    n_questions = {b: sum(q.benchmark == b for q in vq) for b in bench_acc}
    result = {
        "scale": pre["scale"], "params": pre["params"], "tokens": pre["tokens"], "flops": pre["flops"],
        "benchmarks": bench_acc, "benchmark_category": bench_cat, "categories": summary["categories"],
        "overall": summary["overall"], "blind": blind["categories"], "blind_overall": blind["overall"],
        "chance": 1.0 / len(questions[0].options), "mle": mle_bench.summarize(mle_acc, counts),
        "perplexity": pre["perplexity_mean"], "final_loss": pre["train"]["final_loss"],
        "n_questions": n_questions,
    }
    if f.get("answer_tokens"):
        result["generated"] = _generated(model, tok, vq, np.asarray(feats)[vqa_idx], bench_cat,
                                         f["answer_tokens"])
    return result


def _generated(model, tok, questions, feats, bench_cat: dict, max_new_tokens: int) -> dict:
    """Greedy answers (KV cache) to the questions, parsed to an option; an answer the parser
    cannot place counts as wrong."""
    prompts = [multimodal.question_prompt(q.question, q.options) for q in questions]
    texts = generate.answer(model, tok, prompts, feats, max_new_tokens=max_new_tokens, batch_size=64)
    picked = [vqa.parse_answer(t, q.options) for t, q in zip(texts, questions)]
    pred = np.array([-1 if p is None else p for p in picked])
    summary = vqa.summarize(vqa.accuracy_by(questions, pred, "benchmark"), bench_cat)
    return {"categories": summary["categories"], "overall": summary["overall"],
            "unparsed": float(np.mean([p is None for p in picked])),
            "examples": [{"question": q.question, "answer": t} for q, t in zip(questions[:5], texts)]}


