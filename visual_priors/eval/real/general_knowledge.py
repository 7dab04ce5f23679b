"""General and Knowledge benchmarks (Cambrian-1's grouping): loaders for local copies in their
Hugging Face parquet layouts, as lmms-eval reads them, and each benchmark's own metric.

A loader takes a data file or a directory, read as `visual_priors.eval.real.files` describes:
only the benchmark's evaluation split (hub files ``<split>-NNNNN-of-NNNNN.parquet``, e.g.
``data/testmini-00000-of-00001.parquet``, or the parquet-converter's ``<config>/<split>/0000.parquet``;
a directory whose files name no split is read whole) and, where the hub repository holds several
configs side by side, the benchmark's config folder (MMBench ``en/``, ScienceQA
``ScienceQA-IMG/``, GQA ``testdev_balanced_*``). Image columns may hold the ``datasets`` image
struct ``{"bytes", "path"}``, plain bytes or a path. A missing column or a bad row raises
`BenchmarkFileError` naming the file (and row); files without any item raise it naming the
benchmark.

General
- ``gqa`` -- ``lmms-lab/GQA``, split ``testdev``: ``testdev_balanced_instructions`` (id, imageId,
  question, answer; ``types.structural`` becomes the subtask) joined on ``imageId`` with
  ``testdev_balanced_images`` (id, image). Open-ended; metric: exact match after lmms-eval's
  normalisation (lower case, every ``string.punctuation`` character removed; surrounding
  whitespace stripped as well), as accuracy.
- ``mme`` -- ``lmms-lab/MME``, split ``test``: question_id (the image's file name, shared by its
  two questions: `Item.pair`), image, question, answer (Yes/No), category (the subtask). The
  answer is read from the text as lmms-eval does (lower case, dots dropped, "yes"/"no", a lone
  "y"/"n", else "yes"/"no" inside the first four characters). Per category: acc (per question)
  and acc+ (images with both questions right), category score = 100 * (acc + acc+) on 0-200.
  Perception = sum over the ten perception categories (max 2000), cognition = sum over the four
  cognition categories (max 800, reported only); ``score`` = perception / 20 (Cambrian's
  normalisation, max 100).
- ``mmbench`` -- ``lmms-lab/MMBench`` config ``en``, split ``dev``: index, question, hint, A-D
  (E where present), answer letter, category (the subtask), image. The question text is
  "hint question" when a hint is given (lmms-eval's prompt). Metric: CircularEval as in
  lmms-eval / VLMEvalKit -- rows whose ``index`` agrees modulo 1e6 are one question under
  rotated options, right only if every rotation is right; ``score`` is the accuracy over
  questions, ``vanilla`` the plain per-row accuracy. A file without rotations scores plain
  accuracy.
- ``seed`` -- ``lmms-lab/SEED-Bench``, split ``test``: question, choice_a-choice_d, answer letter,
  image (a list of images), data_type; only ``data_type == "image"`` rows are kept (SEED-Image).
  Subtask: the question type named from ``question_type_id`` (1-9). Metric: accuracy.

Knowledge
- ``scienceqa`` -- ``lmms-lab/ScienceQA`` config ``ScienceQA-IMG``, split ``test``: image,
  question, choices, answer (int index), hint (given as "Context: hint" before the question,
  lmms-eval's default prompt); subtask: ``subject`` where present. Metric: accuracy.
- ``mmmu`` -- ``lmms-lab/MMMU`` (or ``MMMU/MMMU``'s per-subject folders), split ``validation``:
  id (``validation_<Subject>_<n>``; the subject is the subtask), question, options (the string
  repr of a list), answer, image_1..image_7, question_type. Multiple choice: the option index.
  Open: the official MMMU / lmms-eval rule -- key phrases after "is", "so", "answer", ... and the
  numbers in them are normalised (numbers rounded to 2 places, text lower-cased) and a
  prediction is right if a number equals, or a text contains, a normalised reference. Score:
  accuracy over all questions; per subject and per discipline beside it.
- ``ai2d`` -- ``lmms-lab/ai2d``, split ``test``: question, options, answer (the index as a
  string), image. Metric: accuracy.
- ``mathvista`` -- ``AI4Math/MathVista``, split ``testmini``: pid, question, image (a path) and
  decoded_image (the image), choices, unit, precision, answer, question_type
  (multi_choice/free_form), answer_type (text/integer/float/list), metadata (task, ...), query.
  Multiple choice: the option whose text is the answer. Free form: the question carries
  lmms-eval's format instruction; the answer is read from the text without a judge model (the
  whole output if it is a number, else the first number after the last "answer", else the
  last number; the last ``[...]`` for lists) and compared as lmms-eval normalises it: integers
  truncated to int, floats rounded to the item's precision and compared as numbers, lists
  element-wise. Subtask: ``metadata.task``. Score: accuracy, per task and question type beside.

Multi-image items (MMMU, SEED lists) keep every image in `Item.images`, and `Item.image` is the
images side by side (heights matched to the tallest) as PNG; single-image items leave
``images`` empty. Scores are on 0-100 with ``n`` the number of items (MMBench adds
``questions``, the number of circular questions); sub-scores are flat ``"<kind>/<name>"`` keys.
Scoring no items is a ValueError naming the benchmark.
"""

from __future__ import annotations

import ast
import math
import re
import string
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from visual_priors.eval.real import (Benchmark, BenchmarkFileError, Item, accuracy,
                                     check_predictions, option_right, percent, register)
from visual_priors.eval.real.files import (bad, columns, data_files, image, image_bytes,
                                           image_fields, letter_index, nonempty, rows)


# --------------------------------------------------------------------------- shared helpers

def _text(value) -> str:
    """A text cell as a string; None/NaN/"nan" -> ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    s = str(value)
    return "" if s.strip().lower() == "nan" else s


def _mc_item(benchmark, qid, question, options, answer: int, **kw) -> Item:
    options = tuple(str(o) for o in options)
    return Item(benchmark=benchmark, qid=str(qid), question=question, options=options,
                answer=answer, answers=(options[answer],), **kw)


def _mc_scorer(name: str, title: str):
    """The plain multiple-choice accuracy metric for one benchmark."""
    def score(items: Sequence[Item], predictions: Sequence) -> dict:
        check_predictions(title, items, predictions)
        return accuracy(items, [option_right(it, p) for it, p in zip(items, predictions)])
    score.__name__ = score.__qualname__ = f"score_{name}"
    score.__doc__ = f"{title}: accuracy over multiple-choice items, per subtask beside it."
    return score


# --------------------------------------------------------------------------- GQA

def gqa_normalize(text) -> str:
    """lmms-eval's exact-match normalisation for GQA (ignore_case, ignore_punctuation), with
    surrounding whitespace stripped."""
    s = _text(text).lower()
    return s.translate(str.maketrans("", "", string.punctuation)).strip()


def _gqa_files(path: Path) -> tuple[list[Path], list[Path]]:
    files = data_files(path, "testdev")
    root = path if path.is_dir() else path.parent

    def under(config):
        return [p for p in files if config in p.relative_to(root).parts[:-1]]

    instr = under("testdev_balanced_instructions")
    imgs = under("testdev_balanced_images")
    if not instr:
        instr = [p for p in files if "imageId" in columns(p)]
    if not imgs:
        imgs = [p for p in files if {"id", "image"} <= columns(p) and "question" not in columns(p)]
    if not instr:
        raise BenchmarkFileError(f"{path}: no GQA instructions file (testdev_balanced_instructions, "
                                 "with columns id, imageId, question, answer)")
    if not imgs:
        raise BenchmarkFileError(f"{path}: no GQA images file (testdev_balanced_images, with columns "
                                 "id, image); pass the directory holding both configs")
    return instr, imgs


def load_gqa(path: Path) -> list[Item]:
    instr, imgs = _gqa_files(Path(path))
    questions = [r for f in instr for r in rows(f, ("id", "imageId", "question", "answer"))]
    wanted = {str(rec["imageId"]) for _, _, rec in questions}
    images: dict[str, bytes] = {}
    for file, i, rec in (r for f in imgs for r in rows(f, ("id", "image"))):
        key = str(rec["id"])
        if key in wanted and key not in images:
            images[key] = image(rec["image"], file, i)
    items = []
    for file, i, rec in questions:
        image_id = str(rec["imageId"])
        if image_id not in images:
            raise bad(file, i, f"imageId {image_id!r} has no row in the images file(s)")
        answer = _text(rec["answer"])
        types = rec.get("types") if isinstance(rec.get("types"), dict) else {}
        items.append(Item(benchmark="gqa", qid=str(rec["id"]), question=_text(rec["question"]),
                          options=(), answer=answer, answers=(answer,), image=images[image_id],
                          subtask=_text(types.get("structural")),
                          meta={"imageId": image_id, "file": str(file), "row": i}))
    return nonempty(items, path, "GQA")


def score_gqa(items: Sequence[Item], predictions: Sequence) -> dict:
    check_predictions("GQA", items, predictions)
    right = [gqa_normalize(p) == gqa_normalize(it.answer) for it, p in zip(items, predictions)]
    return accuracy(items, right)


# --------------------------------------------------------------------------- MME

MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene",
                  "landmark", "artwork", "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation",
                 "code_reasoning")


def mme_parse(text) -> str:
    """"yes", "no" or "other" from a generated answer, as lmms-eval (after Otter) reads it."""
    s = _text(text).lower().strip().replace(".", "")
    if s in ("yes", "no"):
        return s
    if len(s) == 1:
        return {"y": "yes", "n": "no"}.get(s, "other")
    head = s[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def load_mme(path: Path) -> list[Item]:
    items = []
    seen: dict[str, int] = defaultdict(int)
    for file, i, rec in rows(path, ("question_id", "image", "question", "answer", "category"), "test"):
        category = _text(rec["category"])
        if category not in MME_PERCEPTION + MME_COGNITION:
            raise bad(file, i, f"unknown MME category {category!r}")
        answer = _text(rec["answer"]).strip()
        if answer.lower().replace(".", "") not in ("yes", "no"):
            raise bad(file, i, f"answer {answer!r} is not Yes/No")
        qid = _text(rec["question_id"])
        seen[qid] += 1
        items.append(Item(benchmark="mme", qid=f"{qid}#{seen[qid]}", question=_text(rec["question"]),
                          options=(), answer=answer, answers=(answer,),
                          image=image(rec["image"], file, i), subtask=category, pair=qid,
                          meta={"question_id": qid, "file": str(file), "row": i}))
    return nonempty(items, path, "MME")


def score_mme(items: Sequence[Item], predictions: Sequence) -> dict:
    check_predictions("MME", items, predictions)
    per_cat: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for it, p in zip(items, predictions):
        gold = str(it.answer).lower().strip().replace(".", "")
        per_cat[it.subtask][it.pair or it.qid].append(mme_parse(p) == gold)
    out: dict = {}
    cat_score = {}
    for cat, pairs in sorted(per_cat.items()):
        answers = [r for rs in pairs.values() for r in rs]
        acc = percent(answers)
        acc_plus = percent(all(rs) for rs in pairs.values())
        cat_score[cat] = acc + acc_plus
        out[f"acc/{cat}"] = acc
        out[f"acc_plus/{cat}"] = acc_plus
        out[f"category/{cat}"] = acc + acc_plus
    perception = sum(cat_score.get(c, 0.0) for c in MME_PERCEPTION)
    cognition = sum(cat_score.get(c, 0.0) for c in MME_COGNITION)
    return {"score": perception / 20.0, "perception": perception, "cognition": cognition,
            "n": len(items), **out}


# --------------------------------------------------------------------------- MMBench

def load_mmbench(path: Path) -> list[Item]:
    items = []
    required = ("index", "question", "hint", "A", "B", "answer", "category", "image")
    for file, i, rec in rows(path, required, "dev", config="en"):
        options = []
        for letter in "ABCDE":
            value = _text(rec.get(letter))
            if not value.strip():
                break
            options.append(value)
        if len(options) < 2:
            raise bad(file, i, "fewer than two options in columns A-E")
        answer = letter_index(rec["answer"], len(options), file, i)
        try:
            index = int(rec["index"])
        except (TypeError, ValueError) as e:
            raise bad(file, i, f"index {rec['index']!r} is not an integer") from e
        hint = _text(rec["hint"]).strip()
        question = _text(rec["question"])
        items.append(_mc_item(
            "mmbench", index, f"{hint} {question}" if hint else question, options, answer,
            image=image(rec["image"], file, i), subtask=_text(rec["category"]),
            pair=str(index % 1_000_000),
            meta={"hint": hint, "l2_category": _text(rec.get("L2-category") or rec.get("l2-category")),
                  "source": _text(rec.get("source")), "file": str(file), "row": i}))
    return nonempty(items, path, "MMBench")


def score_mmbench(items: Sequence[Item], predictions: Sequence) -> dict:
    check_predictions("MMBench", items, predictions)
    right = [option_right(it, p) for it, p in zip(items, predictions)]
    groups: dict[str, list[bool]] = defaultdict(list)
    category: dict[str, str] = {}
    for it, r in zip(items, right):
        key = it.pair or it.qid
        groups[key].append(r)
        if key not in category or int(it.qid) < 1_000_000:
            category[key] = it.subtask
    hits = {k: all(v) for k, v in groups.items()}
    by_category: dict[str, list[bool]] = defaultdict(list)
    for key, hit in hits.items():
        if category[key]:
            by_category[category[key]].append(hit)
    return {"score": percent(hits.values()), "vanilla": percent(right), "n": len(items),
            "questions": len(hits),
            **{f"subtask/{c}": percent(v) for c, v in sorted(by_category.items())}}


# --------------------------------------------------------------------------- SEED-Bench (image)

SEED_QUESTION_TYPES = {
    1: "Scene Understanding", 2: "Instance Identity", 3: "Instance Attributes",
    4: "Instance Location", 5: "Instances Counting", 6: "Spatial Relation",
    7: "Instance Interaction", 8: "Visual Reasoning", 9: "Text Understanding",
    10: "Action Recognition", 11: "Action Prediction", 12: "Procedure Understanding",
}


def load_seed(path: Path) -> list[Item]:
    items = []
    required = ("question", "choice_a", "choice_b", "choice_c", "choice_d", "answer", "image",
                "data_type")
    for file, i, rec in rows(path, required, "test"):
        if _text(rec["data_type"]).strip().lower() != "image":
            continue
        options = [_text(rec[f"choice_{c}"]) for c in "abcd"]
        answer = letter_index(rec["answer"], 4, file, i)
        cell = rec["image"]
        cells = cell if isinstance(cell, list) else [cell]
        blobs = [image(c, file, i) for c in cells]
        if not blobs:
            raise bad(file, i, "empty image list")
        qtype = rec.get("question_type_id")
        try:
            subtask = SEED_QUESTION_TYPES.get(int(qtype), str(qtype))
        except (TypeError, ValueError):
            subtask = _text(qtype)
        qid = _text(rec.get("question_id")) or f"seed-{len(items)}"
        items.append(_mc_item("seed", qid, _text(rec["question"]), options, answer,
                              subtask=subtask, **image_fields(blobs, file, i),
                              meta={"file": str(file), "row": i}))
    return nonempty(items, path, "SEED")


# --------------------------------------------------------------------------- ScienceQA-IMG

def load_scienceqa(path: Path) -> list[Item]:
    items = []
    for file, i, rec in rows(path, ("image", "question", "choices", "answer", "hint"), "test",
                             config="ScienceQA-IMG"):
        choices = rec["choices"]
        if not isinstance(choices, list) or len(choices) < 2:
            raise bad(file, i, f"choices {choices!r} is not a list of options")
        try:
            answer = int(rec["answer"])
        except (TypeError, ValueError) as e:
            raise bad(file, i, f"answer {rec['answer']!r} is not an option index") from e
        if not 0 <= answer < len(choices):
            raise bad(file, i, f"answer {answer} out of range for {len(choices)} choices")
        hint = _text(rec["hint"]).strip()
        question = _text(rec["question"])
        items.append(_mc_item(
            "scienceqa", f"scienceqa-{len(items)}",
            f"Context: {hint}\n{question}" if hint else question, choices, answer,
            image=image(rec["image"], file, i, required=False), subtask=_text(rec.get("subject")),
            meta={"hint": hint, "file": str(file), "row": i}))
    return nonempty(items, path, "ScienceQA")


# --------------------------------------------------------------------------- MMMU

MMMU_DISCIPLINES = {
    "Art and Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health and Medicine": ("Basic_Medical_Science", "Clinical_Medicine",
                            "Diagnostics_and_Laboratory_Medicine", "Pharmacy", "Public_Health"),
    "Humanities and Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech and Engineering": ("Agriculture", "Architecture_and_Engineering", "Computer_Science",
                             "Electronics", "Energy_and_Power", "Materials",
                             "Mechanical_Engineering"),
}
_MMMU_SUBJECT_TO_DISCIPLINE = {s: d for d, subs in MMMU_DISCIPLINES.items() for s in subs}


def _literal_list(text) -> list | None:
    if isinstance(text, list):
        return text
    try:
        value = ast.literal_eval(_text(text).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return list(value) if isinstance(value, (list, tuple)) else None


def load_mmmu(path: Path) -> list[Item]:
    items = []
    required = ("id", "question", "options", "answer", "question_type", "image_1")
    for file, i, rec in rows(path, required, "validation"):
        qid = _text(rec["id"])
        m = re.match(r"^[^_]+_(.+)_\d+$", qid)
        if not m:
            raise bad(file, i, f"id {qid!r} is not <split>_<Subject>_<n>")
        subject = m.group(1)
        blobs = [b for b in (image(rec.get(f"image_{k}"), file, i, f"image_{k}", required=False)
                             for k in range(1, 8)) if b]
        qtype = _text(rec["question_type"]).strip()
        meta = {"question_type": qtype, "subfield": _text(rec.get("subfield")),
                "discipline": _MMMU_SUBJECT_TO_DISCIPLINE.get(subject, ""),
                "file": str(file), "row": i}
        fields = image_fields(blobs, file, i)
        if qtype == "multiple-choice":
            options = _literal_list(rec["options"])
            if not options:
                raise bad(file, i, f"options {rec['options']!r} is not the repr of a list")
            answer = letter_index(rec["answer"], len(options), file, i)
            items.append(_mc_item("mmmu", qid, _text(rec["question"]), options, answer,
                                  subtask=subject, meta=meta, **fields))
        elif qtype == "open":
            answer = _text(rec["answer"])
            refs = _literal_list(answer) if answer.strip().startswith("[") else None
            answers = tuple(str(a) for a in refs) if refs else (answer,)
            items.append(Item(benchmark="mmmu", qid=qid, question=_text(rec["question"]),
                              options=(), answer=answer, answers=answers, subtask=subject,
                              meta=meta, **fields))
        else:
            raise bad(file, i, f"question_type {qtype!r} is neither multiple-choice nor open")
    return nonempty(items, path, "MMMU")


_MMMU_NUMBER_PATTERNS = (
    re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b"),                      # 1,234,567
    re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+"),                   # scientific
    re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])"),  # plain
)
_MMMU_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")


def _mmmu_is_number(s: str) -> bool:
    try:
        float(s.replace(",", ""))
    except ValueError:
        return False
    return True


def _mmmu_normalize(s: str) -> list:
    s = s.strip()
    if _mmmu_is_number(s):
        return [round(float(s.replace(",", "")), 2)]
    s = s.lower()
    return [" " + s, s + " "] if len(s) == 1 else [s]


def mmmu_open_candidates(response) -> list:
    """The normalised candidate answers MMMU's official rule reads from an open response: the
    shortest tail after a key phrase in each line ("=" also counts on the last line), or the
    whole response, plus every number in them."""
    text = _text(response).strip().strip(".").lower()
    # the official rule lower-cases before splitting on ". <Capital>", so only newlines split
    parts = re.split(r"\.\s(?=[A-Z])|\n", text)
    keys = []
    for k, part in enumerate(parts):
        indicators = _MMMU_INDICATORS + (("=",) if k == len(parts) - 1 else ())
        tails = [part.split(ind)[-1].strip() for ind in indicators if ind in part]
        if tails:
            shortest = min(tails, key=len)
            if shortest not in (":", ",", ".", "!", "?", ";", "'"):
                keys.append(shortest)
    if not keys:
        keys = [text]
    found = list(keys)
    for key in keys:
        for pattern in _MMMU_NUMBER_PATTERNS:
            found.extend(pattern.findall(key))
    out = []
    for s in found:
        for v in _mmmu_normalize(s):
            if v not in out:
                out.append(v)
    return out


def mmmu_open_right(response, references: Sequence[str]) -> bool:
    refs = [v for r in references for v in _mmmu_normalize(str(r))]
    for cand in mmmu_open_candidates(response):
        if isinstance(cand, str):
            if any(isinstance(r, str) and r in cand for r in refs):
                return True
        elif cand in refs:
            return True
    return False


def score_mmmu(items: Sequence[Item], predictions: Sequence) -> dict:
    check_predictions("MMMU", items, predictions)
    right = [option_right(it, p) if it.multiple_choice else mmmu_open_right(p, it.answers)
             for it, p in zip(items, predictions)]
    return accuracy(items, right,
                     discipline=[it.meta.get("discipline", "") for it in items],
                     question_type=[it.meta.get("question_type", "") for it in items])


# --------------------------------------------------------------------------- AI2D

def load_ai2d(path: Path) -> list[Item]:
    items = []
    for file, i, rec in rows(path, ("question", "options", "answer", "image"), "test"):
        options = rec["options"]
        if not isinstance(options, list) or len(options) < 2:
            raise bad(file, i, f"options {options!r} is not a list of options")
        try:
            answer = int(str(rec["answer"]).strip())
        except (TypeError, ValueError) as e:
            raise bad(file, i, f"answer {rec['answer']!r} is not an option index") from e
        if not 0 <= answer < len(options):
            raise bad(file, i, f"answer {answer} out of range for {len(options)} options")
        items.append(_mc_item("ai2d", f"ai2d-{len(items)}", _text(rec["question"]), options, answer,
                              image=image(rec["image"], file, i),
                              meta={"file": str(file), "row": i}))
    return nonempty(items, path, "AI2D")


# --------------------------------------------------------------------------- MathVista

def _mathvista_instruction(answer_type: str, precision: int | None) -> str:
    """lmms-eval's "format-prompt" instruction for a free-form question."""
    if answer_type == "integer":
        return "Answer the question using a single integer number."
    if answer_type == "float":
        places = {1: "one decimal place", 2: "two decimal places"}.get(
            precision, f"{precision} decimal places")
        return f"Answer the question using a single floating-point number with {places}."
    if answer_type == "list":
        return "Answer the question using a Python list."
    return "Answer the question using a single word or phrase."


def _decimals(s: str) -> int:
    return len(s.split(".", 1)[1]) if "." in s else 0


def load_mathvista(path: Path) -> list[Item]:
    items = []
    required = ("pid", "question", "choices", "answer", "question_type", "answer_type", "precision")
    for file, i, rec in rows(path, required, "testmini"):
        # the decoded image, else the file the "image" path names beside the data file
        column = "decoded_image" if image_bytes(rec.get("decoded_image"), file) else "image"
        picture = image(rec.get(column), file, i, column)
        qtype = _text(rec["question_type"]).strip()
        atype = _text(rec["answer_type"]).strip()
        answer = _text(rec["answer"]).strip()
        question = _text(rec["question"])
        unit = _text(rec.get("unit")).strip()
        if unit:
            question += f" (Unit: {unit})"
        metadata = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
        task = _text(metadata.get("task"))
        precision = rec["precision"]
        if precision is None or (isinstance(precision, float) and math.isnan(precision)):
            precision = _decimals(answer) if atype == "float" else None
        else:
            precision = int(precision)
        meta = {"question_type": qtype, "answer_type": atype, "precision": precision,
                "query": _text(rec.get("query")), "task": task,
                "category": _text(metadata.get("category")), "file": str(file), "row": i}
        common = dict(image=picture, subtask=task or qtype, meta=meta)
        if qtype == "multi_choice":
            choices = rec["choices"]
            if not isinstance(choices, list) or len(choices) < 2:
                raise bad(file, i, f"choices {choices!r} is not a list of options")
            choices = [str(c) for c in choices]
            if answer not in [c.strip() for c in choices]:
                raise bad(file, i, f"answer {answer!r} is not one of the choices")
            index = [c.strip() for c in choices].index(answer)
            items.append(_mc_item("mathvista", _text(rec["pid"]), question, choices, index, **common))
        elif qtype == "free_form":
            if atype in ("integer", "float"):
                try:
                    float(answer)
                except ValueError as e:
                    raise bad(file, i, f"{atype} answer {answer!r} is not a number") from e
            items.append(Item(benchmark="mathvista", qid=_text(rec["pid"]),
                              question=f"{question}\n{_mathvista_instruction(atype, precision)}",
                              options=(), answer=answer, answers=(answer,), **common))
        else:
            raise bad(file, i, f"question_type {qtype!r} is neither multi_choice nor free_form")
    return nonempty(items, path, "MathVista")


_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def _as_number(s: str) -> float | None:
    s = s.strip().rstrip(".").replace(",", "").strip()
    try:
        value = float(s)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def mathvista_extract(text, answer_type: str) -> str | None:
    """The answer read from a free-form generation: for lists the last ``[...]``; otherwise the
    whole output if it is a number, else the first number after the last "answer", else the
    last number; None if there is none."""
    s = _text(text).strip()
    if answer_type == "list":
        found = re.findall(r"\[[^\[\]]*\]", s)
        return found[-1] if found else None
    if _as_number(s) is not None:
        return s.rstrip(".").replace(",", "")
    lower = s.lower()
    at = lower.rfind("answer")
    if at >= 0:
        after = _NUMBER.findall(s[at:])
        if after:
            return after[0].replace(",", "")
    numbers = _NUMBER.findall(s)
    return numbers[-1].replace(",", "") if numbers else None


def _list_values(s: str) -> list | None:
    values = _literal_list(s)
    if values is None:
        return None
    out = []
    for v in values:
        n = _as_number(str(v))
        out.append(n if n is not None else str(v).strip().lower())
    return out


def mathvista_free_form_right(prediction, answer: str, answer_type: str,
                              precision: int | None) -> bool:
    extracted = mathvista_extract(prediction, answer_type)
    if extracted is None:
        return False
    if answer_type == "integer":
        pred, gold = _as_number(extracted), _as_number(answer)
        return pred is not None and gold is not None and int(pred) == int(gold)
    if answer_type == "float":
        pred, gold = _as_number(extracted), _as_number(answer)
        digits = precision if precision is not None else _decimals(answer)
        return (pred is not None and gold is not None
                and abs(round(pred, digits) - round(gold, digits)) < 0.5 * 10 ** -(digits + 3))
    if answer_type == "list":
        pred, gold = _list_values(extracted), _list_values(answer)
        if pred is not None and gold is not None:
            return pred == gold
        return re.sub(r"\s+", "", extracted) == re.sub(r"\s+", "", answer)
    return extracted.strip().lower() == answer.strip().lower()


def score_mathvista(items: Sequence[Item], predictions: Sequence) -> dict:
    check_predictions("MathVista", items, predictions)
    right = []
    for it, p in zip(items, predictions):
        if it.multiple_choice:
            right.append(option_right(it, p))
        else:
            right.append(mathvista_free_form_right(p, str(it.answer), it.meta.get("answer_type", ""),
                                                   it.meta.get("precision")))
    return accuracy(items, right, question_type=[it.meta.get("question_type", "") for it in items])


# --------------------------------------------------------------------------- registry

_HF = "Hugging Face parquet"
for _bench in (
    Benchmark("gqa", "GQA", "general", load_gqa, score_gqa,
              f"lmms-lab/GQA {_HF}: testdev_balanced_instructions + testdev_balanced_images"),
    Benchmark("mme", "MME", "general", load_mme, score_mme, f"lmms-lab/MME {_HF}, split test"),
    Benchmark("mmbench", "MMBench", "general", load_mmbench, score_mmbench,
              f"lmms-lab/MMBench {_HF}, config en, split dev"),
    Benchmark("seed", "SEED", "general", load_seed, _mc_scorer("seed", "SEED"),
              f"lmms-lab/SEED-Bench {_HF}, split test, image items only"),
    Benchmark("scienceqa", "ScienceQA", "knowledge", load_scienceqa,
              _mc_scorer("scienceqa", "ScienceQA"),
              f"lmms-lab/ScienceQA {_HF}, config ScienceQA-IMG, split test"),
    Benchmark("mmmu", "MMMU", "knowledge", load_mmmu, score_mmmu,
              f"lmms-lab/MMMU {_HF}, split validation"),
    Benchmark("ai2d", "AI2D", "knowledge", load_ai2d, _mc_scorer("ai2d", "AI2D"),
              f"lmms-lab/ai2d {_HF}, split test"),
    Benchmark("mathvista", "MathVista", "knowledge", load_mathvista, score_mathvista,
              f"AI4Math/MathVista {_HF}, split testmini"),
):
    register(_bench)
