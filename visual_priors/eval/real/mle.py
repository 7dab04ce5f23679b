"""MLE-Bench (Multi-Level Existence Bench) from its released ``data.jsonl``.

Layout (JunlinHan/Multi-Level_Existence_Bench): one JSON object a line with ``image`` (a path
relative to the jsonl's folder; ``file_name``, the image-folder convention, is read as well),
``question``, ``choices`` (four strings), ``answer`` (the correct choice's text), ``answer_text``
and ``sub_task`` (existence_0-30 / existence_30-60 / existence_60-100, the target's share of the
image in %). The path is the jsonl file or a folder holding it; a parquet export with embedded
images reads the same way.

Metric: accuracy per size bin ("0-30", "30-60", "60-100", the items' subtask); "overall" weights
the bins by their number of questions, as the paper's table 5 does, and "macro" (the plain mean
over bins, lmms-eval's figure) is reported beside it; "score" is the weighted overall.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from visual_priors.eval import mle_bench
from visual_priors.eval.real import Benchmark, Item, check_predictions, option_right, register
from visual_priors.eval.real.files import bad, image, nonempty, row_id, row_meta, rows, strings_cell, text_cell

BINS = ("0-30", "30-60", "60-100")


def load_mle_bench(path: Path) -> list[Item]:
    path = Path(path)
    items = []
    for file, i, row in rows(path, ("question", "choices", "answer", "sub_task")):
        column = "image" if row.get("image") is not None else "file_name" if "file_name" in row else None
        if column is None:
            raise bad(file, i, "missing column 'image'")
        options = strings_cell(row, "choices", file, i, min_len=2)
        answer_text = text_cell(row, "answer", file, i)
        lowered = [o.strip().lower() for o in options]
        if answer_text in options:
            answer = options.index(answer_text)
        elif answer_text.strip().lower() in lowered:
            answer = lowered.index(answer_text.strip().lower())
        else:
            raise bad(file, i, f"answer {answer_text!r} is not one of the choices {options}")
        sub_task = text_cell(row, "sub_task", file, i)
        size_bin = sub_task.removeprefix("existence_")
        if size_bin not in BINS:
            raise bad(file, i, f"sub_task {sub_task!r} is none of "
                               + ", ".join(f"existence_{b}" for b in BINS))
        ref = row[column]
        qid = str(row["id"]) if row.get("id") is not None else ref if isinstance(ref, str) else row_id(file, path, i)
        items.append(Item(
            benchmark="mle_bench", qid=qid, question=text_cell(row, "question", file, i), options=options,
            answer=answer, answers=(options[answer],), image=image(ref, file, i, column),
            subtask=size_bin, meta=row_meta(file, i)))
    return nonempty(items, path, "MLE-Bench")


def score_mle_bench(items: Sequence[Item], predictions: Sequence) -> dict:
    """Accuracy (%) per size bin, their question-weighted "overall" (= "score") and "macro"."""
    check_predictions("MLE-Bench", items, predictions)
    right: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for item, pred in zip(items, predictions):
        counts[item.subtask] += 1
        right[item.subtask] += option_right(item, pred)
    accuracy = {b: 100.0 * right[b] / counts[b] for b in sorted(counts, key=_bin_order)}
    out = mle_bench.summarize(accuracy, counts)
    return {"score": out["overall"], **out, "n": len(items)}


def _bin_order(name: str):
    return (BINS.index(name), "") if name in BINS else (len(BINS), name)


register(Benchmark(
    "mle_bench", "MLE-Bench", "mle", load_mle_bench, score_mle_bench,
    "JunlinHan/Multi-Level_Existence_Bench data.jsonl: image (path), question, choices, answer (text), sub_task"))
