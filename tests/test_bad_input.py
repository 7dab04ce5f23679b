"""Bad input gets one line naming the problem and its file or field, exit code 2, and leaves
every file as it was; a bug keeps its traceback."""

from __future__ import annotations

import gzip
import json
import logging

import numpy as np
import pytest
import safetensors.numpy

from visual_priors import cli
from visual_priors.config import loading, scales
from visual_priors.errors import UserError
from visual_priors.model.convert import hf_llama
from visual_priors.suite import spec

STUDY = "experiments/quickstart.py:tiny"


def _hf_dir(tmp_path, weights: bytes | None = None):
    """A Hugging Face Llama directory of scale t1 whose model.safetensors holds `weights`."""
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(hf_llama.config_to_hf(scales.get("t1"))))
    (hf / "model.safetensors").write_bytes(weights)
    return hf


def _safetensors_bytes(tmp_path) -> bytes:
    path = tmp_path / "whole.safetensors"
    safetensors.numpy.save_file({"w": np.zeros((64, 64), np.float32)}, path)
    data = path.read_bytes()
    path.unlink()
    return data


# Each case: (files to write, relative to tmp_path) -> (argv, the file or field the line names).
def set_of_wrong_type(tmp_path):
    return ["suite", "plan", STUDY, "--set", "pretrain.optim.lr=abc"], "pretrain.optim.lr"


def unknown_align_parts(tmp_path):
    return ["suite", "plan", STUDY, "--set", "align.train=('llm',)"], "align.train"


def hf_config_not_json(tmp_path):
    hf = _hf_dir(tmp_path, b"")
    (hf / "config.json").write_text('{"hidden_size": 64, "num_hidden')
    return ["convert", "import", str(hf), str(tmp_path / "out")], str(hf / "config.json")


def truncated_safetensors(tmp_path):
    hf = _hf_dir(tmp_path, _safetensors_bytes(tmp_path)[:-100])
    return ["convert", "import", str(hf), str(tmp_path / "out")], str(hf / "model.safetensors")


def not_safetensors(tmp_path):
    hf = _hf_dir(tmp_path, b"PK\x03\x04 a zip archive, not tensors")
    return ["convert", "import", str(hf), str(tmp_path / "out")], str(hf / "model.safetensors")


def registry_not_a_database(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "registry.sqlite").write_text("step,status\ntokenizer,done\n" * 50)
    return ["suite", "status", "--root", str(tmp_path / "runs")], "registry.sqlite"


def truncated_step_result(tmp_path):
    _, steps = spec.expand(loading.load(STUDY))
    finished = tmp_path / "runs" / steps[0].name
    finished.mkdir(parents=True)
    (finished / "result.json").write_text('{"path": "tokeniz')
    return ["suite", "run", STUDY, "--root", str(tmp_path / "runs")], str(finished / "result.json")


def empty_corpus_file(tmp_path):
    (tmp_path / "books.jsonl").write_bytes(b"")
    (tmp_path / "corpora.json").write_text(json.dumps({"books": {"format": "jsonl", "paths": ["books.jsonl"]}}))
    return ["data", "sources", "--corpora", str(tmp_path / "corpora.json")], str(tmp_path / "books.jsonl")


def unreadable_corpus_file(tmp_path):
    # A gzip header, then bytes that do not inflate: the first read fails.
    (tmp_path / "books.jsonl.gz").write_bytes(gzip.compress(b"")[:10] + bytes(range(256)))
    (tmp_path / "corpora.json").write_text(json.dumps({"books": {"format": "jsonl", "paths": ["books.jsonl.gz"]}}))
    return (["data", "label", "--sources", "books", "--corpora", str(tmp_path / "corpora.json"),
             "--cache", str(tmp_path / "cache"), "--tokens", "2000", "--sample-chars", "20000"],
            str(tmp_path / "books.jsonl.gz"))


def benchmark_missing_column(tmp_path):
    rows = [{"question_id": "a.png", "image": None, "question": "Is there a cat?", "category": "existence"}]
    (tmp_path / "mme.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ["benchmarks", "--check", f"mme={tmp_path / 'mme.jsonl'}"], "answer"


CASES = [set_of_wrong_type, unknown_align_parts, hf_config_not_json, truncated_safetensors, not_safetensors,
         registry_not_a_database, truncated_step_result, empty_corpus_file, unreadable_corpus_file,
         benchmark_missing_column]


def _snapshot(root) -> dict:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_bad_input_is_one_line_naming_its_file_or_field(case, tmp_path, capsys):
    argv, names = case(tmp_path)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert names in err
    after = _snapshot(tmp_path)
    assert {p: after[p] for p in before} == before  # nothing written was changed or removed


def test_benchmark_missing_column_names_file_and_column(tmp_path, capsys):
    argv, _ = benchmark_missing_column(tmp_path)
    cli.main(argv)
    err = capsys.readouterr().err
    assert str(tmp_path / "mme.jsonl") in err and "'answer'" in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(cli.models, "cmd_scales", broken)
    with pytest.raises(ValueError, match="invariant"):
        cli.main(["scales"])


# A checkpoint is read inside a training step, not by a command of its own: these cases go
# through the checkpointer the training loop uses.
def _two_checkpoints(tmp_path):
    from visual_priors.train.checkpoint import Checkpointer

    params, opt = {"w": np.arange(4, dtype=np.float32)}, [np.zeros(4, np.float32)]
    ckpt = Checkpointer(tmp_path, keep=3, metadata={"kind": "llm", "scale": "t1"}, async_save=False)
    for step in (1, 2):
        ckpt.save(step, {"w": params["w"] + step}, opt, {"position": step})
    ckpt.close()
    return params, opt


def test_a_checkpoint_of_another_scale_is_a_user_error_naming_its_directory(tmp_path):
    from visual_priors.train.checkpoint import Checkpointer

    params, opt = _two_checkpoints(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(UserError) as caught:
        Checkpointer(tmp_path, metadata={"kind": "llm", "scale": "t2"}).restore_latest(params, opt)
    line = str(caught.value)
    assert len(line.splitlines()) == 1 and str(tmp_path) in line and "'t1'" in line and "'t2'" in line
    assert _snapshot(tmp_path) == before


def test_a_corrupt_latest_checkpoint_falls_back_and_says_so(tmp_path, caplog):
    from visual_priors.train.checkpoint import Checkpointer

    params, opt = _two_checkpoints(tmp_path)
    for f in (tmp_path / "2" / "params").rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and f.suffix != ".json":
            f.write_bytes(b"\0garbage")
    before = _snapshot(tmp_path)
    with caplog.at_level(logging.WARNING):
        step, restored, *_ = Checkpointer(tmp_path, metadata={"kind": "llm", "scale": "t1"}).restore_latest(params, opt)
    assert step == 1
    np.testing.assert_array_equal(np.asarray(restored["w"]), params["w"] + 1)
    assert "checkpoint at step 2" in caplog.text and "trying an older one" in caplog.text
    assert _snapshot(tmp_path) == before  # the damaged checkpoint is kept for inspection
