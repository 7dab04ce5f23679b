"""The evaluate step and the language step.

evaluate: the world's sixteen benchmark families and MLE-Bench on held-out scenes, options
scored by likelihood with the image and without it (the blind baseline); free-form greedy
answers parsed back to an option (the paper's parser) with ``eval.answer_tokens``; the real
benchmark files a study names, each with its own metric; reasoning traces on Knowledge and
Vision-Centric questions, judged by the world's rules or an LLM; and the language results of
the run's LLM. language: the language battery of one pre-trained LLM, shared by every run that
adapts it. alignment: the representational alignment (PRH's metrics) of one pre-trained LLM with
the reference vision encoders, likewise shared.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np

from visual_priors.data import multimodal
from visual_priors.world.instructions import described_prompt
from visual_priors.eval import alignment, alignment_features, colour, judge as judge_lib, language, mle_bench
from visual_priors.eval import real, signal, vqa
from visual_priors.model import encoders, generate
from visual_priors.suite.adapt_steps import build_mllm
from visual_priors.suite.stage import Stage, Step
from visual_priors.suite.step_io import Locate, restore_module, result_of, tokenizer_of, world_of
from visual_priors.suite.steps import load_llm
from visual_priors.suite.vision_steps import load_features

# Categories whose questions the judge reads reasoning traces on (the paper's App. A.2).
JUDGED = ("knowledge", "vision_centric")
REAL_CATEGORIES = ("general", "knowledge", "ocr_chart", "vision_centric")


def _questions(feat_dir: Path, name: str = "eval"):
    return [SimpleNamespace(**q) for q in json.loads((feat_dir / f"{name}.json").read_text())]


@dataclasses.dataclass(frozen=True)
class Language(Stage):
    """Perplexity and zero-shot accuracy of one pre-trained LLM (language.run_battery) and the
    text-knowledge hop (H3): shared by every run that adapts the LLM."""
    kind: ClassVar[str] = "language"
    version: ClassVar[int] = 2  # 2: the text-knowledge hop
    world: dict
    tasks: list
    n_per_task: int
    seq_len: int
    paths: dict  # lm-eval task name -> file
    knowledge_questions: int

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        tok = tokenizer_of(step, locate)
        pre = step.input("pretrain")
        model = load_llm(locate(pre), pre.unit.scale, tok)
        tasks = tuple(self.tasks) + tuple(t for t in sorted(self.paths or {}) if t not in self.tasks)
        world = world_of(self.world)
        result = language.run_battery(model, tok, world=world, tasks=tasks, n_per_task=self.n_per_task,
                                      seq_len=self.seq_len, paths=self.paths or {})
        if self.knowledge_questions:  # the text-knowledge hop (H3)
            result["knowledge"] = signal.knowledge_hop(model, tok, world, n=self.knowledge_questions,
                                                       seq_len=self.seq_len)
        return result

    def describe(self, step: Step, owner: str) -> str:
        return f"({owner})"


@dataclasses.dataclass(frozen=True)
class Alignment(Stage):
    """The LLM's alignment with each reference encoder on held-out world image-caption pairs:
    caption features of every LLM hidden state, image features of every encoder block, the
    best layer pair of the study metric per encoder and their mean, and PRH's metric table
    (alignment.alignment_report). With `colour`, PRH's colour probe of the same LLM on the
    world's images as well (colour.summary under ``colour``; the whole probe in colour.json,
    its plot in colour_ab.png)."""
    kind: ClassVar[str] = "alignment"
    world: dict
    seed: int
    encoders: list  # reference encoders, one input step each, in this order
    metric: str
    topk: int
    pairs: int
    q: float
    exact: bool
    text_len: int
    table_metrics: list
    table_topk: int
    colour: dict | None = None  # the colour probe's settings; None: off

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        tok = tokenizer_of(step, locate)
        pre = step.input("pretrain")
        world = world_of(self.world)
        images, captions = alignment_features.caption_pairs(world, self.pairs, self.seed)
        tokens, mask = alignment_features.caption_tokens(tok, captions, self.text_len)
        llm = load_llm(locate(pre), pre.unit.scale, tok)
        llm_feats = alignment_features.llm_features(llm, tokens, mask)
        references = {}
        for name, encoder_step in zip(self.encoders, step.inputs_of("encoder"), strict=True):
            encoder = encoders.load_frozen(locate(encoder_step) / "encoder")
            references[name] = alignment_features.vision_features(encoder, images)
        report = alignment.alignment_report(llm_feats, references, metric=self.metric, topk=self.topk,
                                            q=self.q, exact=self.exact, table_metrics=self.table_metrics,
                                            table_topk=self.table_topk)
        result = {**report, "scale": pre.unit.scale, "caption_tokens": float(mask.sum(1).mean())}
        if self.colour:
            probe = colour.colour_probe(llm, tok, world=world, **self.colour)
            (out / "colour.json").write_text(json.dumps(probe, indent=1))
            colour.plot_colour_probe(probe, out / "colour_ab.png")
            result["colour"] = colour.summary(probe)
        return result


@dataclasses.dataclass(frozen=True)
class Evaluate(Stage):
    """The run's MLLM on the world's benchmark families, MLE-Bench, the signal chain, free-form
    answers, judged reasoning traces and the real benchmark files, with its LLM's language
    results."""
    kind: ClassVar[str] = "evaluate"
    # 2: SFT sets; 3: sixteen families, real files, the judge; 4: the signal chain.
    version: ClassVar[int] = 4
    questions_per_benchmark: int  # held-out questions of each world benchmark family
    mle_per_bin: int  # MLE-Bench questions per object-size bin
    text_len: int  # prompt and option tokens scored with the image or blind
    naming_per_kind: int  # the connector hop's held-out images of each kind (H2)
    knowledge_questions: int
    described_text_len: int  # room for the scene's description in its place (H4)
    answer_tokens: int  # greedy tokens of a free-form answer (0: none generated)
    judge: dict  # the reasoning-trace judge and how many questions it reads

    def run(self, step: Step, out: Path, locate: Locate) -> dict:
        return run_evaluate(step, out, locate)

    def describe(self, step: Step, owner: str) -> str:
        return f"({owner})"


def run_evaluate(step, out: Path, locate: Locate) -> dict:
    f: Evaluate = step.unit
    tok = tokenizer_of(step, locate)
    feat_dir = locate(step.input("features"))
    feats = load_features(feat_dir, "eval")
    questions = _questions(feat_dir)
    pre_step = step.input("pretrain")
    # Every parameter comes from the SFT checkpoint, so the pre-trained LLM is not read first.
    model = restore_module(build_mllm(pre_step, locate, tok, feats.shape[-1], 0, load_pretrained=False),
                           locate(step.input("sft")) / "mllm", {"kind": "mllm"})

    sums, _ = vqa.score_options(model, tok, questions, feats, text_len=f.text_len)
    blind_sums, _ = vqa.score_options(model, tok, questions, None, text_len=f.text_len)
    pred, blind_pred = sums.argmax(1), blind_sums.argmax(1)

    vqa_idx = [i for i, q in enumerate(questions) if q.category != "mle"]
    mle_idx = [i for i, q in enumerate(questions) if q.category == "mle"]
    vq = [questions[i] for i in vqa_idx]
    bench_acc = vqa.accuracy_by(vq, pred[vqa_idx], "benchmark")
    bench_cat = {q.benchmark: q.category for q in vq}
    summary = vqa.summarize(bench_acc, bench_cat)
    blind_acc = vqa.accuracy_by(vq, blind_pred[vqa_idx], "benchmark")
    blind = vqa.summarize(blind_acc, bench_cat)
    mq = [questions[i] for i in mle_idx]
    mle_acc = vqa.accuracy_by(mq, pred[mle_idx], "size_bin")
    counts = {b: sum(q.size_bin == b for q in mq) for b in mle_acc}
    pre = result_of(pre_step, locate)
    n_questions = {b: sum(q.benchmark == b for q in vq) for b in bench_acc}
    chance = {b: float(np.mean([1 / len(q.options) for q in vq if q.benchmark == b])) for b in bench_acc}
    chance_summary = vqa.summarize(chance, bench_cat)
    result = {
        "scale": pre["scale"], "params": pre["params"], "tokens": pre["tokens"], "flops": pre["flops"],
        "benchmarks": bench_acc, "benchmark_category": bench_cat, "categories": summary["categories"],
        "overall": summary["overall"], "blind": blind["categories"], "blind_overall": blind["overall"],
        "blind_benchmarks": blind_acc, "chance_benchmarks": chance,
        # Per category: the yes/no family's chance is 1/2, the others' 1/4.
        "chance": {**chance_summary["categories"], "overall": chance_summary["overall"]},
        "mle": mle_bench.summarize(mle_acc, counts),
        "perplexity": result_of(step.input("perplexity"), locate)["mean"],
        "final_loss": pre["train"]["final_loss"],
        "n_questions": n_questions, "language": result_of(step.input("language"), locate),
    }
    result.update(_signal_chain(step, locate, model, tok, vq, sums[vqa_idx], blind_sums[vqa_idx], bench_cat,
                                chance_summary["categories"], f, out))
    if f.answer_tokens:
        result["generated"] = _generated(model, tok, vq, np.asarray(feats)[vqa_idx], bench_cat,
                                         f.answer_tokens)
    judge_cfg = f.judge or {}
    if judge_cfg.get("questions_per_benchmark"):
        result["judge"] = _judged(model, tok, vq, np.asarray(feats)[vqa_idx], judge_cfg, step, locate)
    for real_step in step.inputs_of("real_features"):
        result["real"] = _real(model, tok, locate(real_step), f)
        # Real files for every category replace the world's families as the run's scores.
        if set(REAL_CATEGORIES) <= set(result["real"]["categories"]):
            world_scores = {k: result[k] for k in ("benchmarks", "benchmark_category", "categories",
                                                   "overall")}
            result.update({k: result["real"][k] for k in world_scores})
            result["world"] = world_scores
    return result


def _signal_chain(step, locate: Locate, model, tok, questions, image_sums, blind_sums, bench_cat: dict,
                  chance: dict, f: Evaluate, out: Path) -> dict:
    """Scores per condition with intervals (accuracy and the log-probability margin), image
    minus blind paired by question, the perfect-perception hop (H4: each question asked about
    the scene's description, no image), and the run's whole chain H1-H5 with its verdict.
    Per-question margins go to per_question.json."""
    answers = [q.answer for q in questions]
    groups = [q.benchmark for q in questions]
    described = [SimpleNamespace(**{**vars(q), "question": described_prompt(q.description, q.question)})
                 for q in questions]
    described_sums, _ = vqa.score_options(model, tok, described, None, text_len=f.described_text_len)
    scores = {"image": image_sums, "blind": blind_sums, "described": described_sums}
    conditions = {k: signal.condition_scores(v, answers, groups, bench_cat) for k, v in scores.items()}
    difference = signal.paired_difference(image_sums, blind_sums, answers, groups, bench_cat)
    held = np.asarray([q.heldout_facts for q in questions])
    heldout = None
    if held.any():  # facts only pre-training text states: does seeing the kind help?
        sub = [q.category for q in questions if q.heldout_facts]
        heldout = signal.paired_difference(image_sums[held], blind_sums[held], np.asarray(answers)[held],
                                           sub, {c: c for c in sub})
    margins = {k: signal.margins(v, answers) for k, v in scores.items()}
    (out / "per_question.json").write_text(json.dumps([
        {"benchmark": q.benchmark, "category": q.category, "answer": q.answer,
         **{f"margin_{k}": float(margins[k][i]) for k in scores}} for i, q in enumerate(questions)]))
    align = step.input("sft").input("align")
    encoder = step.input("features").input("encoder")
    chain = {"H1": result_of(encoder, locate).get("probes"), "H2": result_of(align, locate).get("naming"),
             "H3": result_of(step.input("language"), locate).get("knowledge"),
             "H4": {c: {**b, "chance": chance[c]} for c, b in conditions["described"]["accuracy"]["categories"].items()},
             "H5": difference["accuracy"]["categories"]}
    chain = {k: v for k, v in chain.items() if v}
    return {"signal": {**conditions, "image_minus_blind": difference, "heldout_facts": heldout},
            "chain": chain, "chain_verdict": signal.verdict(chain)}


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


def _judged(model, tok, questions, feats, cfg: dict, step, locate: Locate) -> dict:
    """Answers with an explanation to the first questions of every Knowledge and Vision-Centric
    family, judged for logical soundness (% coherent) and depth (words per trace)."""
    per_bench: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        if q.category in JUDGED and len(per_bench[q.benchmark]) < cfg["questions_per_benchmark"]:
            per_bench[q.benchmark].append(i)
    rows = [i for b in sorted(per_bench) for i in per_bench[b]]
    chosen = [questions[i] for i in rows]
    prompts = [judge_lib.explain_prompt(q.question, q.options) for q in chosen]
    texts = generate.answer(model, tok, prompts, feats[rows], max_new_tokens=cfg["max_tokens"], batch_size=64)
    traces = [judge_lib.Trace(question=q.question, options=tuple(q.options), answer=q.answer, text=t,
                              benchmark=q.benchmark, category=q.category, evidence=q.evidence)
              for q, t in zip(chosen, texts)]
    if cfg.get("url"):
        judge = judge_lib.LLMReasoningJudge(cfg["url"], cfg["model"])
    else:
        world = world_of(step.input("features").unit.world)
        judge = judge_lib.RuleJudge(judge_lib.world_vocabulary(world))
    out = judge_lib.summarize(traces, judge.judge(traces))
    out["judge"] = "llm:" + cfg["model"] if cfg.get("url") else "rules"
    out["examples"] = [{"question": t.question, "trace": t.text} for t in traces[:3]]
    return out


def _real(model, tok, feat_dir: Path, f: Evaluate) -> dict:
    """Every real benchmark file: multiple-choice items scored by likelihood over options,
    open-ended ones by greedy answers under the benchmark's own metric; items without an image
    are scored without one. Category score = mean of its benchmarks, overall = mean of all."""
    records = json.loads((feat_dir / "real.json").read_text())
    items = [real.item_from_record({k: v for k, v in r.items() if k != "row"}) for r in records]
    rows = np.array([r["row"] for r in records])
    feats = load_features(feat_dir, "real")
    pred: list = [None] * len(items)
    for with_image in (True, False):
        for choice in (True, False):
            idx = [i for i, it in enumerate(items) if (rows[i] >= 0) == with_image and bool(it.options) == choice]
            if not idx:
                continue
            group_feats = np.asarray(feats[rows[idx]]) if with_image else None
            if choice:
                sums, _ = vqa.score_options(model, tok, [items[i] for i in idx], group_feats,
                                            text_len=f.text_len)
                answers = [int(p) for p in sums.argmax(1)]
            else:
                answers = generate.answer(model, tok, [items[i].question for i in idx], group_feats,
                                          max_new_tokens=max(f.answer_tokens or 0, 16), batch_size=32)
            for i, a in zip(idx, answers):
                pred[i] = a
    scores, categories = {}, {}
    for name in sorted({it.benchmark for it in items}):
        idx = [i for i, it in enumerate(items) if it.benchmark == name]
        bench = real.get(name)
        scores[name] = bench.score([items[i] for i in idx], [pred[i] for i in idx])
        categories[name] = bench.category
    vq = {b: s["score"] / 100 for b, s in scores.items() if categories[b] != "mle"}
    summary = vqa.summarize(vq, {b: categories[b] for b in vq})
    return {"scores": scores, "benchmarks": vq, "benchmark_category": {b: categories[b] for b in vq},
            "categories": summary["categories"], "overall": summary["overall"],
            "mle": scores.get("mle_bench")}
