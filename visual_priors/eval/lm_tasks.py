"""The paper's language benchmarks read from local copies, prompted as lm-evaluation-harness does.

A task's ``path`` is a data file (.parquet, .jsonl, .json) or a directory laid out as a Hugging
Face dataset repository (for example ``ai2_arc/ARC-Easy/test-00000-of-00001.parquet`` or
``winogrande/winogrande_xl/validation-00000-of-00001.parquet``). In a directory, files of the
task's configuration (SPLITS: ARC-Easy, winogrande_xl, main, ...) are taken when there are any,
then those of the split lm-eval evaluates (validation or test, named anywhere in the file's
relative path); a single file is read as it is. Documents keep file order, so ``limit=n`` reads
the first n, as lm-eval's ``--limit`` does.

Prompts, choices and gold follow the task files of lm-evaluation-harness (v0.4):

    piqa            "Question: {goal}\\nAnswer:"                 [sol1, sol2]           label
    hellaswag       preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())
                                                                  preprocess(endings)    int(label)
    winogrande      partial: sentence[:blank] + option          " " + text after blank  answer 1/2
    arc_easy,
    arc_challenge   "Question: {question}\\nAnswer:"             choices.text   label.index(answerKey)
    copa            premise minus its last character + " because" / " therefore"
                                                                  choices, first letter lowercased
    sciq            "{support.lstrip()}\\nQuestion: {question}\\nAnswer:"
                                                                  [d1, d2, d3, correct]  3
    openbookqa      question_stem                               choices.text   label.index(key)
    boolq           "{passage}\\nQuestion: {question}?\\nAnswer:"  ["no", "yes"]          label
    lambada         text minus its last word                    " " + last word (lambada_openai)
    wikitext        the document ("page"), scored by rolling log-likelihood

Every choice is scored after lm-eval's target delimiter, a space. A record that lacks a field
raises TaskFormatError (a ValueError) naming the file, the record and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from visual_priors.errors import BadFile
from visual_priors.world.language_tasks import ClozeItem, MCItem, split_last_word

MC_TASKS = ("piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "copa", "sciq",
            "openbookqa", "boolq")
PPL_TASKS = ("wikitext", "lambada")
REAL_TASKS = PPL_TASKS + MC_TASKS
# (Hugging Face configuration directories, split lm-eval evaluates) per task.
SPLITS: dict[str, tuple[tuple[str, ...], str]] = {
    "piqa": ((), "validation"),
    "hellaswag": ((), "validation"),
    "winogrande": (("winogrande_xl",), "validation"),
    "arc_easy": (("ARC-Easy",), "test"),
    "arc_challenge": (("ARC-Challenge",), "test"),
    "copa": (("copa",), "validation"),
    "sciq": ((), "test"),
    "openbookqa": (("main",), "test"),
    "boolq": (("boolq",), "validation"),
    "lambada": (("default", "en"), "test"),
    "wikitext": (("wikitext-2-raw-v1",), "test"),
}
# Path tokens that name each split.
_SPLIT_WORDS = {"validation": {"validation", "valid", "val", "dev"}, "test": {"test"}}
DATA_SUFFIXES = (".parquet", ".jsonl", ".json")


class TaskFormatError(BadFile):
    """A task file that is not in the layout its task needs."""


# ----------------------------------------------------------------------- reading files


def _read_file(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        try:
            return pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow raises several types for unreadable files
            raise TaskFormatError(f"{path}: not a readable parquet file ({err})") from err
    if path.suffix == ".jsonl":
        out = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise TaskFormatError(f"{path}: line {n} is not JSON ({err})") from err
        return out
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise TaskFormatError(f"{path}: not JSON ({err})") from err
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise TaskFormatError(f"{path}: a .json task file must hold a list of records "
                                  "(or {\"data\": [...]})")
        return data
    raise TaskFormatError(f"{path}: unsupported file type; use one of {', '.join(DATA_SUFFIXES)}")


def task_files(task: str, path: str | Path) -> list[Path]:
    """The data files of `task` under `path` (see the module docstring), in sorted order."""
    if task not in SPLITS:
        raise ValueError(f"unknown real task {task!r}; valid: {', '.join(REAL_TASKS)}")
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{task}: no file or directory at {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)
    if not files:
        raise TaskFormatError(f"{root}: no {', '.join(DATA_SUFFIXES)} files for {task}")
    configs, split = SPLITS[task]

    def parts(p: Path) -> list[str]:
        return [t for t in re.split(r"[/\\._-]+", p.relative_to(root).as_posix().lower()) if t]

    if configs:
        wanted = {c.lower() for c in configs}
        in_config = [p for p in files
                     if any(d.lower() in wanted for d in p.relative_to(root).parts[:-1])]
        files = in_config or files
    chosen = [p for p in files if _SPLIT_WORDS[split] & set(parts(p))]
    if not chosen:
        names = ", ".join(p.relative_to(root).as_posix() for p in files[:10])
        raise TaskFormatError(f"{root}: no {split} file for {task} (lm-eval evaluates its "
                              f"{split} split); found: {names}")
    return chosen


def read_docs(task: str, path: str | Path, limit: int | None = None) -> Iterator[tuple[Path, int, dict]]:
    """(file, record number, record) of the task's documents, the first `limit` of them."""
    count = 0
    for file in task_files(task, path):
        for i, doc in enumerate(_read_file(file)):
            if limit is not None and count >= limit:
                return
            if not isinstance(doc, Mapping):
                raise TaskFormatError(f"{file}: record {i} is a {type(doc).__name__}, not a mapping")
            yield file, i, dict(doc)
            count += 1


# ----------------------------------------------------------------------- documents


class _Doc:
    """A record read through field checks that name the file, the record and the field."""

    def __init__(self, task: str, file: Path, index: int, doc: dict):
        self.task, self.file, self.index, self.doc = task, file, index, doc

    def error(self, message: str) -> TaskFormatError:
        return TaskFormatError(f"{self.file}: record {self.index} of {self.task}: {message}")

    def __getitem__(self, name: str) -> Any:
        value = self.doc
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise self.error(f"missing field {name!r} (fields: {', '.join(map(str, self.doc))})")
            value = value[part]
        if value is None:
            raise self.error(f"field {name!r} is empty")
        return value

    def text(self, name: str) -> str:
        value = self[name]
        if not isinstance(value, str):
            raise self.error(f"field {name!r} must be text, got {type(value).__name__}")
        return value

    def texts(self, name: str) -> list[str]:
        value = self[name]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise self.error(f"field {name!r} must be a list of texts")
        return list(value)

    def index_of(self, name: str, n: int, base: int = 0) -> int:
        """An integer label (or its string form) in [0, n) after subtracting `base`."""
        value = self[name]
        if isinstance(value, bool):
            value = int(value)
        try:
            i = int(str(value).strip()) - base
        except ValueError:
            raise self.error(f"field {name!r} must be an integer label, got {value!r}") from None
        if not 0 <= i < n:
            raise self.error(f"label {value!r} in field {name!r} is outside the {n} choices")
        return i


def hellaswag_preprocess(text: str) -> str:
    """lm-eval's HellaSwag cleaning: strip, " [title]" -> ". ", drop [bracketed] WikiHow markup,
    then collapse double spaces once."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _answer_index(d: _Doc, labels_field: str, key_field: str, strip: bool = False) -> int:
    labels = [str(x) for x in d[labels_field]]
    key = str(d[key_field])
    key = key.strip() if strip else key
    if key in labels:
        return labels.index(key)
    # Keys given as numbers where labels are letters, or the other way round.
    if key.isdigit() and 1 <= int(key) <= len(labels):
        return int(key) - 1
    if len(key) == 1 and key.upper() in "ABCDEFGH"[:len(labels)]:
        return "ABCDEFGH".index(key.upper())
    raise d.error(f"answer key {key!r} ({key_field}) is not among the labels {labels}")


def _piqa(d: _Doc) -> MCItem:
    return MCItem.choice(f"Question: {d.text('goal')}\nAnswer:", [d.text("sol1"), d.text("sol2")],
                         d.index_of("label", 2))


def _hellaswag(d: _Doc) -> MCItem:
    ctx = d.text("ctx_a") + " " + d.text("ctx_b").capitalize()
    query = hellaswag_preprocess(d.text("activity_label") + ": " + ctx)
    endings = [hellaswag_preprocess(e) for e in d.texts("endings")]
    return MCItem.choice(query, endings, d.index_of("label", len(endings)))


def _winogrande(d: _Doc) -> MCItem:
    sentence = d.text("sentence")
    if "_" not in sentence:
        raise d.error("field 'sentence' has no blank '_'")
    cut = sentence.index("_")
    options = [d.text("option1"), d.text("option2")]
    return MCItem.partial([sentence[:cut] + o for o in options], sentence[cut + 1:].strip(),
                          d.index_of("answer", 2, base=1), options=options)


def _arc(d: _Doc) -> MCItem:
    choices = d.texts("choices.text")
    return MCItem.choice(f"Question: {d.text('question')}\nAnswer:", choices,
                         _answer_index(d, "choices.label", "answerKey"))


def _copa(d: _Doc) -> MCItem:
    connector = {"cause": "because", "effect": "therefore"}.get(d.text("question"))
    if connector is None:
        raise d.error(f"field 'question' must be 'cause' or 'effect', got {d['question']!r}")
    choices = [c[:1].lower() + c[1:] for c in (d.text("choice1"), d.text("choice2"))]
    return MCItem.choice(d.text("premise").strip()[:-1] + f" {connector}", choices,
                         d.index_of("label", 2))


def _sciq(d: _Doc) -> MCItem:
    context = f"{d.text('support').lstrip()}\nQuestion: {d.text('question')}\nAnswer:"
    choices = [d.text("distractor1"), d.text("distractor2"), d.text("distractor3"),
               d.text("correct_answer")]
    return MCItem.choice(context, choices, 3)


def _openbookqa(d: _Doc) -> MCItem:
    return MCItem.choice(d.text("question_stem"), d.texts("choices.text"),
                         _answer_index(d, "choices.label", "answerKey", strip=True))


def _boolq(d: _Doc) -> MCItem:
    context = f"{d.text('passage')}\nQuestion: {d.text('question')}?\nAnswer:"
    # super_glue/boolq has label 0/1; google/boolq has answer true/false.
    if "label" in d.doc and d.doc["label"] is not None:
        value = d["label"]
        if isinstance(value, str) and value.strip().lower() in ("yes", "no", "true", "false"):
            gold = int(value.strip().lower() in ("yes", "true"))
        else:
            gold = d.index_of("label", 2)
    elif "answer" in d.doc:
        value = d["answer"]
        if isinstance(value, str):
            if value.strip().lower() not in ("yes", "no", "true", "false"):
                raise d.error(f"field 'answer' must be yes/no or true/false, got {value!r}")
            gold = int(value.strip().lower() in ("yes", "true"))
        else:
            gold = int(bool(value))
    else:
        raise d.error(f"missing field 'label' (or 'answer') (fields: {', '.join(map(str, d.doc))})")
    return MCItem.choice(context, ("no", "yes"), gold)


def _lambada(d: _Doc) -> ClozeItem:
    context, target = split_last_word(d.text("text"))
    return ClozeItem(context, target)


def _wikitext(d: _Doc) -> str:
    # EleutherAI/wikitext_document_level keeps a whole article in "page"; the line-level
    # wikitext configurations have "text".
    return d.text("page") if "page" in d.doc else d.text("text")


DOC_TO_ITEM: dict[str, Callable[[_Doc], Any]] = {
    "piqa": _piqa, "hellaswag": _hellaswag, "winogrande": _winogrande, "arc_easy": _arc,
    "arc_challenge": _arc, "copa": _copa, "sciq": _sciq, "openbookqa": _openbookqa,
    "boolq": _boolq, "lambada": _lambada, "wikitext": _wikitext,
}


def doc_to_item(task: str, doc: Mapping, *, file: str | Path = "<doc>", index: int = 0):
    """One record of a task as lm-eval prompts it: an MCItem, a ClozeItem (lambada) or the
    document text (wikitext)."""
    if task not in DOC_TO_ITEM:
        raise ValueError(f"unknown real task {task!r}; valid: {', '.join(REAL_TASKS)}")
    return DOC_TO_ITEM[task](_Doc(task, Path(file), index, dict(doc)))


def load_task(task: str, path: str | Path, limit: int | None = None) -> list:
    """The first `limit` items (all when None) of a real task read from `path`."""
    if task not in DOC_TO_ITEM:
        raise ValueError(f"unknown real task {task!r}; valid: {', '.join(REAL_TASKS)}")
    items = [doc_to_item(task, doc, file=file, index=i) for file, i, doc in read_docs(task, path, limit)]
    if task == "wikitext":
        items = [t for t in items if t.strip()]
    if not items:
        raise TaskFormatError(f"{path}: no documents for {task}")
    return items
