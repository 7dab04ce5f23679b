"""OCR & Chart and Vision-Centric benchmarks from local Hugging Face parquet copies.

Layouts (the columns lmms-eval reads; a path is one parquet/jsonl file or a folder, read as
`visual_priors.eval.real.files` describes: only the benchmark's split where file or folder names
name splits, parquet files preferred to jsonl ones):

- ``textvqa``: lmms-lab/textvqa, split validation; question_id, question, image, answers (the ten
  human answers), ocr_tokens (kept in meta). Metric: VQA accuracy, min(#humans agreeing / 3, 1)
  averaged over the ten leave-one-out subsets of nine answers, after the EvalAI answer
  normalisation (`normalize_vqa_answer`) of prediction and answers alike.
- ``chartqa``: lmms-lab/ChartQA, split test; question, answer, image, type (human_test /
  augmented_test, the subtask). Metric: relaxed accuracy (`relaxed_correct`): numbers within 5 %
  of the target (a trailing % is dropped from either side), other answers exactly equal after
  lower-casing and stripping; accuracy per type beside it.
- ``ocrbench``: echo840/OCRBench, split test; question, answer (list of strings), question_type
  (the subtask), dataset, image. Metric (`ocrbench_correct`): right when some answer, lower-cased
  and stripped, is a substring of the lower-cased prediction (HME100k items: with every space
  removed from both); score = 100 * right / n, i.e. right / 10 for the 1,000 questions; "right"
  and the accuracy per question type beside it.
- ``realworldqa``: lmms-lab/RealWorldQA or xai-org/RealworldQA, split test; image, question, answer.
  Options are read from "A. ..." lines in the question; items whose answer is an option letter
  (or an option's text) become multiple choice (question = the text before the options),
  the others stay open-ended and are scored by exact match after lower-casing, dropping
  punctuation and mapping a lone number word to its digits. Metric: accuracy.
- ``blink``: BLINK-Benchmark/BLINK, split val, one folder per sub-task; idx, question, sub_task,
  image_1 .. image_4, choices, answer "(A)", prompt. Items with several images keep every one in
  `Item.images` and their side-by-side PNG (heights matched) as `Item.image`; single-image items
  leave ``images`` empty. Metric: accuracy, plus accuracy per sub-task.
- ``cvbench_coco``, ``cvbench_ade``, ``cvbench_omni3d``: nyu-visionx/CV-Bench, split test; idx,
  type, task, image (or, in the jsonl annotations, filename relative to the file's folder),
  question, choices, answer "(A)", prompt, source (COCO / ADE20K / Omni3D). Each registered
  benchmark keeps one source, as the paper counts them separately. Metric: accuracy, plus
  accuracy per task.

Multiple-choice items are scored from the predicted option index (None = wrong), open-ended ones
from the generated text. Every score is on a 0-100 scale; results also hold "n" (the number of
items) and "subtask/<name>" (accuracy per subtask) where items have subtasks. Loading files
without items raises `BenchmarkFileError`, scoring no items a ValueError, each naming the
benchmark.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from visual_priors.eval.real import (Benchmark, BenchmarkFileError, Item, accuracy,
                                     check_predictions, option_right, register)
from visual_priors.eval.real.files import (bad, check_unique, image, image_fields, letter_index,
                                           nonempty, row_id, row_meta, rows, strings_cell, text_cell)

# --------------------------------------------------------------------------------------------
# metrics

_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                 "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})
_PUNCTUATION = ';/[]"{}()=+\\_-><@`,?!'
_PERIOD = re.compile(r"\.(?!\d)")
# The VQA evaluation's contraction table, as the contracted forms it restores; a word missing
# exactly one of a form's apostrophes ("dont", "couldnt've", "couldn'tve") is restored.
_CONTRACTED = """
    ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't
    haven't he'd he'd've he's how'd how'll how's isn't it'd it'd've it'll ma'am mightn't
    mightn't've might've mustn't must've needn't not've o'clock oughtn't 'ow's'at shan't she'd've
    should've shouldn't shouldn't've somebody'd've somebody'll somebody's someone'd someone'd've
    someone'll someone's something'd something'd've something'll that's there'd there'd've
    there're there's they'd they'd've they'll they're they've 'twas wasn't we'd've we've weren't
    what'll what're what's what've when's where'd where's where've who'd who'd've who'll who's
    who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've
    you'd you'd've you'll you're you've""".split()
_CONTRACTIONS = {word[:i] + word[i + 1:]: word
                 for word in _CONTRACTED for i, ch in enumerate(word) if ch == "'"}


def normalize_vqa_answer(text: str) -> str:
    """The EvalAI / VQA answer normalisation lmms-eval applies to TextVQA answers: lower case;
    commas and question marks dropped; punctuation removed (where it touches a space) or turned
    into a space; periods not followed by a digit removed; number words zero..ten (and "none")
    to digits; articles dropped; missing apostrophes of contractions restored."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's")
    text = text.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for p in _PUNCTUATION:
        out = out.replace(p, "" if (p + " " in text or " " + p in text) else " ")
    out = _PERIOD.sub("", out)
    words = [_NUMBER_WORDS.get(w, w) for w in out.split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words)


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA accuracy in [0, 1]: for each human answer left out, min(#other humans giving the
    normalised prediction / 3, 1); the mean over the leave-one-out subsets."""
    if not answers:
        return 0.0
    pred = normalize_vqa_answer(prediction)
    refs = [normalize_vqa_answer(a) for a in answers]
    matches = sum(r == pred for r in refs)
    accs = [min(1.0, (matches - (r == pred)) / 3) for r in refs]
    return sum(accs) / len(accs)


def _to_number(text: str) -> float | None:
    text = text.strip()
    if text.endswith("%"):
        text = text[:-1].rstrip()
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def relaxed_correct(prediction: str, target: str, tolerance: float = 0.05) -> bool:
    """ChartQA's relaxed accuracy: when both parse as numbers (a trailing % dropped), right if
    |prediction - target| <= tolerance * |target| (a zero target needs zero); otherwise right
    only if equal after lower-casing and stripping."""
    p, t = _to_number(prediction), _to_number(target)
    if p is not None and t is not None:
        return p == 0 if t == 0 else abs(p - t) / abs(t) <= tolerance
    return prediction.strip().lower() == target.strip().lower()


def ocrbench_correct(prediction: str, answers: Sequence[str], dataset: str = "") -> bool:
    """OCRBench's rule: some answer, lower-cased and stripped (newlines as spaces), occurs in the
    lower-cased prediction; for HME100k (formulas) spaces are removed from both first."""
    pred = prediction.lower().strip().replace("\n", " ")
    for answer in answers:
        ref = answer.lower().strip().replace("\n", " ")
        if dataset == "HME100k":
            if ref.replace(" ", "") in pred.replace(" ", ""):
                return True
        elif ref in pred:
            return True
    return False


_OPEN_NUMBER_WORDS = {k: v for k, v in _NUMBER_WORDS.items() if k != "none"}


def _short_answer(text: str) -> str:
    text = re.sub(r"[^\w\s]", "", text.lower()).strip()
    return _OPEN_NUMBER_WORDS.get(text, text)


def short_answer_correct(prediction: str, target: str) -> bool:
    """RealWorldQA's open questions: exact match after lower-casing, dropping punctuation and
    mapping a lone number word (zero..ten) to its digits, on both sides."""
    return _short_answer(prediction) == _short_answer(target)


def score_textvqa(items: Sequence[Item], predictions: Sequence) -> dict:
    check_predictions("TextVQA", items, predictions)
    accs = [vqa_accuracy(p or "", item.answers) for item, p in zip(items, predictions)]
    return {"score": 100.0 * sum(accs) / len(accs), "n": len(items)}


def score_chartqa(items: Sequence[Item], predictions: Sequence) -> dict:
    check_predictions("ChartQA", items, predictions)
    flags = [relaxed_correct(p or "", item.answer) for item, p in zip(items, predictions)]
    return accuracy(items, flags)


def score_ocrbench(items: Sequence[Item], predictions: Sequence) -> dict:
    check_predictions("OCRBench", items, predictions)
    flags = [ocrbench_correct(p or "", item.answers, item.meta.get("dataset", ""))
             for item, p in zip(items, predictions)]
    return {**accuracy(items, flags), "right": sum(flags)}


def score_choices(items: Sequence[Item], predictions: Sequence, title: str) -> dict:
    """Accuracy over multiple-choice items (open-ended ones by `short_answer_correct`), with the
    accuracy of every subtask beside it; `title` names the benchmark in errors."""
    check_predictions(title, items, predictions)
    flags = [option_right(item, p) if item.multiple_choice else short_answer_correct(p or "", item.answer)
             for item, p in zip(items, predictions)]
    return accuracy(items, flags)


def _choices_scorer(name: str, title: str) -> Callable[[Sequence[Item], Sequence], dict]:
    def score(items: Sequence[Item], predictions: Sequence) -> dict:
        return score_choices(items, predictions, title)
    score.__name__ = score.__qualname__ = f"score_{name}"
    score.__doc__ = f"{title}: `score_choices`."
    return score


# --------------------------------------------------------------------------------------------
# loaders


def load_textvqa(path: Path) -> list[Item]:
    path = Path(path)
    items = []
    for file, i, row in rows(path, ("question_id", "question", "image", "answers"), "validation"):
        answers = row.get("answers")
        if not answers:
            raise bad(file, i, "no reference answers (a test split?)")
        answers = strings_cell(row, "answers", file, i)
        meta = row_meta(file, i)
        for key in ("image_id", "ocr_tokens"):
            if row.get(key) is not None:
                meta[key] = row[key]
        items.append(Item(
            benchmark="textvqa", qid=str(row["question_id"]), question=text_cell(row, "question", file, i),
            options=(), answer=Counter(answers).most_common(1)[0][0], answers=answers,
            image=image(row["image"], file, i, "image"), meta=meta))
    check_unique(items, path)
    return nonempty(items, path, "TextVQA")


def load_chartqa(path: Path) -> list[Item]:
    path = Path(path)
    items = []
    for file, i, row in rows(path, ("question", "answer", "image", "type"), "test"):
        answer = text_cell(row, "answer", file, i)
        items.append(Item(
            benchmark="chartqa", qid=row_id(file, path, i), question=text_cell(row, "question", file, i),
            options=(), answer=answer, answers=(answer,), image=image(row["image"], file, i, "image"),
            subtask=text_cell(row, "type", file, i), meta=row_meta(file, i)))
    return nonempty(items, path, "ChartQA")


def load_ocrbench(path: Path) -> list[Item]:
    path = Path(path)
    items = []
    for file, i, row in rows(path, ("question", "answer", "question_type", "dataset", "image"), "test"):
        answers = strings_cell(row, "answer", file, i)
        items.append(Item(
            benchmark="ocrbench", qid=row_id(file, path, i), question=text_cell(row, "question", file, i).strip(),
            options=(), answer=answers[0], answers=answers, image=image(row["image"], file, i, "image"),
            subtask=text_cell(row, "question_type", file, i),
            meta=row_meta(file, i, dataset=text_cell(row, "dataset", file, i))))
    return nonempty(items, path, "OCRBench")


_OPTION_LINE = re.compile(r"^\s*([A-Z])\.\s+(.*?)\s*$")


def split_options(question: str) -> tuple[str, tuple[str, ...]]:
    """(stem, options) from a question with its options on lines "A. ...", "B. ...": the stem is
    the text before the first option line; options must run A, B, C ... without gaps."""
    lines = question.splitlines()
    options: list[str] = []
    first = None
    for n, line in enumerate(lines):
        match = _OPTION_LINE.match(line)
        if match and ord(match.group(1)) - 65 == len(options):
            if first is None:
                first = n
            options.append(match.group(2))
        elif options:
            if line.strip():
                break
    if first is None or len(options) < 2:
        return question.strip(), ()
    return "\n".join(lines[:first]).strip(), tuple(options)


def load_realworldqa(path: Path) -> list[Item]:
    path = Path(path)
    items = []
    for file, i, row in rows(path, ("image", "question", "answer"), "test"):
        prompt = text_cell(row, "question", file, i)
        answer = text_cell(row, "answer", file, i).strip()
        stem, options = split_options(prompt)
        index = None
        if options:
            letter = answer.strip("().").strip()
            if len(letter) == 1 and "A" <= letter.upper() <= chr(64 + len(options)):
                index = ord(letter.upper()) - 65
            else:
                lowered = [o.lower() for o in options]
                if answer.lower() in lowered:
                    index = lowered.index(answer.lower())
        common = dict(benchmark="realworldqa", qid=row_id(file, path, i),
                      image=image(row["image"], file, i, "image"), meta=row_meta(file, i, prompt=prompt))
        if index is None:
            # open question: the model sees the whole text, instruction included
            items.append(Item(question=prompt.strip(), options=(), answer=answer, answers=(answer,), **common))
        else:
            items.append(Item(question=stem, options=options, answer=index, answers=(options[index],), **common))
    return nonempty(items, path, "RealWorldQA")


def load_blink(path: Path) -> list[Item]:
    path = Path(path)
    items = []
    for file, i, row in rows(path, ("idx", "question", "sub_task", "image_1", "choices", "answer"), "val"):
        options = strings_cell(row, "choices", file, i, min_len=2)
        answer = letter_index(text_cell(row, "answer", file, i), len(options), file, i)
        blobs = [image(row.get(key), file, i, key, required=key == "image_1")
                 for key in ("image_1", "image_2", "image_3", "image_4")]
        items.append(Item(
            benchmark="blink", qid=str(row["idx"]), question=text_cell(row, "question", file, i),
            options=options, answer=answer, answers=(options[answer],),
            **image_fields([b for b in blobs if b is not None], file, i),
            subtask=text_cell(row, "sub_task", file, i), meta=row_meta(file, i, prompt=row.get("prompt"))))
    check_unique(items, path)
    return nonempty(items, path, "BLINK")


_CVBENCH_COLUMNS = ("idx", "type", "task", "question", "choices", "answer", "source")


def _load_cvbench(path: Path, source: str, name: str) -> list[Item]:
    path = Path(path)
    items = []
    for file, i, row in rows(path, _CVBENCH_COLUMNS, "test"):
        # the parquet embeds images; the jsonl annotations name files beside them instead
        column = "image" if "image" in row else "filename" if "filename" in row else None
        if column is None:
            raise BenchmarkFileError(f"{file}: missing column 'image' (nor a 'filename' column)")
        if text_cell(row, "source", file, i) != source:
            continue
        picture = image(row[column], file, i, column)
        options = strings_cell(row, "choices", file, i, min_len=2)
        answer = letter_index(text_cell(row, "answer", file, i), len(options), file, i)
        kind = text_cell(row, "type", file, i)
        items.append(Item(
            benchmark=name, qid=f"{kind}:{row['idx']}", question=text_cell(row, "question", file, i),
            options=options, answer=answer, answers=(options[answer],), image=picture,
            subtask=text_cell(row, "task", file, i),
            meta=row_meta(file, i, type=kind, source=source, prompt=row.get("prompt"))))
    check_unique(items, path)
    return nonempty(items, path, f"CV-Bench {source}")


def _cvbench_loader(source: str, name: str) -> Callable[[Path], list[Item]]:
    def load(path: Path) -> list[Item]:
        return _load_cvbench(path, source, name)
    load.__name__ = f"load_{name}"
    load.__doc__ = f"CV-Bench items whose source is {source}."
    return load


# --------------------------------------------------------------------------------------------
# registry

_CVBENCH_LAYOUT = ("nyu-visionx/CV-Bench test parquet (or jsonl + img/), source == {}: idx, type, task, "
                   "image, question, choices, answer, source")
for _bench in (
    Benchmark("textvqa", "TextVQA", "ocr_chart", load_textvqa, score_textvqa,
              "lmms-lab/textvqa validation parquet: question_id, question, image, answers"),
    Benchmark("chartqa", "ChartQA", "ocr_chart", load_chartqa, score_chartqa,
              "lmms-lab/ChartQA test parquet: question, answer, image, type"),
    Benchmark("ocrbench", "OCRBench", "ocr_chart", load_ocrbench, score_ocrbench,
              "echo840/OCRBench test parquet: question, answer (list), question_type, dataset, image"),
    Benchmark("realworldqa", "RealWorldQA", "vision_centric", load_realworldqa,
              _choices_scorer("realworldqa", "RealWorldQA"),
              "lmms-lab/RealWorldQA or xai-org/RealworldQA test parquet: image, question, answer"),
    Benchmark("blink", "BLINK", "vision_centric", load_blink, _choices_scorer("blink", "BLINK"),
              "BLINK-Benchmark/BLINK val parquet, a folder per sub-task: idx, question, sub_task, "
              "image_1..image_4, choices, answer"),
    *(Benchmark(name, title, "vision_centric", _cvbench_loader(source, name),
                _choices_scorer(name, title), _CVBENCH_LAYOUT.format(source))
      for source, name, title in (("COCO", "cvbench_coco", "CV-Bench COCO"),
                                  ("ADE20K", "cvbench_ade", "CV-Bench ADE"),
                                  ("Omni3D", "cvbench_omni3d", "CV-Bench Omni3D"))),
):
    register(_bench)
