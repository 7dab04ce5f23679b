"""OCR & Chart, Vision-Centric and MLE-Bench loaders on tiny files in the real layouts, and their
metrics against hand-computed values."""

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from visual_priors.eval.real import BenchmarkFileError, Item, decode_image, get
from visual_priors.eval.real import mle, ocr_vision
from visual_priors.eval.real.ocr_vision import (
    normalize_vqa_answer, ocrbench_correct, relaxed_correct, split_options, vqa_accuracy)


def png(color=(255, 0, 0), size=(4, 3)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def cell(data: bytes | None) -> dict | None:
    return None if data is None else {"bytes": data, "path": "x.png"}


def write_parquet(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_registered_names_and_categories():
    expected = {"textvqa": "ocr_chart", "chartqa": "ocr_chart", "ocrbench": "ocr_chart",
                "realworldqa": "vision_centric", "blink": "vision_centric", "cvbench_coco": "vision_centric",
                "cvbench_ade": "vision_centric", "cvbench_omni3d": "vision_centric", "mle_bench": "mle"}
    for name, category in expected.items():
        assert get(name).category == category
    assert get("textvqa").load is ocr_vision.load_textvqa and get("mle_bench").score is mle.score_mle_bench


# ------------------------------------------------------------------ VQA accuracy (TextVQA)

@pytest.mark.parametrize("agree, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_accuracy_leave_one_out(agree, expected):
    answers = ["stop"] * agree + [f"other{k}" for k in range(10 - agree)]
    assert vqa_accuracy("stop", answers) == pytest.approx(expected)


def test_vqa_normalisation():
    assert normalize_vqa_answer("Two") == "2"
    assert normalize_vqa_answer("a dog.") == "dog"
    assert normalize_vqa_answer("The  Cat!") == "cat"
    assert normalize_vqa_answer("dont") == "don't"
    assert normalize_vqa_answer("3.5") == "3.5"
    assert normalize_vqa_answer("1,000") == "1000"
    assert vqa_accuracy("Two", ["2"] * 3 + ["x"] * 7) == pytest.approx(0.9)
    assert vqa_accuracy("a dog.", ["dog"] * 10) == 1.0


def textvqa_rows(n_right):
    return [{"image_id": "img0", "question_id": 7, "question": "what does the sign say?",
             "image": cell(png()), "answers": ["stop"] * n_right + ["pots"] * (10 - n_right),
             "ocr_tokens": ["STOP"], "set_name": "val"}]


def test_textvqa_load_and_score(tmp_path):
    root = tmp_path / "textvqa"
    write_parquet(root / "data" / "validation-00000-of-00001.parquet", textvqa_rows(2))
    write_parquet(root / "data" / "train-00000-of-00001.parquet", textvqa_rows(9) * 3)  # not read
    items = get("textvqa").load(root)
    assert len(items) == 1
    item = items[0]
    assert (item.qid, item.options, len(item.answers), item.answer) == ("7", (), 10, "pots")
    assert decode_image(item.image).shape == (3, 4, 3)
    assert item.meta["ocr_tokens"] == ["STOP"]
    assert get("textvqa").score(items, ["Stop."])["score"] == pytest.approx(60.0)
    assert get("textvqa").score(items, ["go"])["score"] == 0.0


# ------------------------------------------------------------------ ChartQA

def test_relaxed_accuracy_bounds():
    assert relaxed_correct("104.9", "100")
    assert not relaxed_correct("105.1", "100")
    assert relaxed_correct("95.1", "100")
    assert not relaxed_correct("94.9", "100")
    assert relaxed_correct("45%", "45")
    assert relaxed_correct(" Yes ", "yes")
    assert not relaxed_correct("yes", "no")
    assert relaxed_correct("0", "0") and not relaxed_correct("0.01", "0")


def test_chartqa_load_and_score(tmp_path):
    rows = [{"type": "human_test", "question": "q1", "answer": "100", "image": cell(png())},
            {"type": "human_test", "question": "q2", "answer": "Blue", "image": cell(png())},
            {"type": "augmented_test", "question": "q3", "answer": "20", "image": cell(png())}]
    path = write_parquet(tmp_path / "test-00000-of-00001.parquet", rows)
    items = get("chartqa").load(path)
    assert [i.subtask for i in items] == ["human_test", "human_test", "augmented_test"]
    result = get("chartqa").score(items, ["104.9", "blue", "21.1"])
    assert result["score"] == pytest.approx(200 / 3)
    assert result["subtask/human_test"] == 100.0 and result["subtask/augmented_test"] == 0.0


# ------------------------------------------------------------------ OCRBench

def test_ocrbench_rules():
    assert ocrbench_correct("The word is HELLO world", ["hello"])
    assert not ocrbench_correct("hell", ["hello"])
    assert ocrbench_correct("x", ["nope", " X "])
    # HME100k: spaces removed from both sides
    assert ocrbench_correct("x^{2}+1", ["x ^ { 2 } + 1"], "HME100k")
    assert not ocrbench_correct("x^{2}+1", ["x ^ { 2 } + 1"], "IIIT5K")


def test_ocrbench_load_and_score(tmp_path):
    rows = [{"dataset": "IIIT5K", "question": "what is written?", "question_type": "Regular Text Recognition",
             "answer": ["Coffee"], "image": cell(png())} for _ in range(3)]
    rows.append({"dataset": "HME100k", "question": "write the formula",
                 "question_type": "Handwritten Mathematical Expression Recognition",
                 "answer": ["a + b"], "image": cell(png())})
    path = write_parquet(tmp_path / "ocrbench" / "test-00000-of-00001.parquet", rows)
    items = get("ocrbench").load(path.parent)
    assert items[3].meta["dataset"] == "HME100k" and items[0].answers == ("Coffee",)
    result = get("ocrbench").score(items, ["coffee", "COFFEE shop", "tea", "a+b"])
    assert result["right"] == 3 and result["n"] == 4 and result["score"] == pytest.approx(75.0)
    assert result["subtask/Regular Text Recognition"] == pytest.approx(200 / 3)


# ------------------------------------------------------------------ RealWorldQA

RWQA_MC = ("In which direction is the car facing?\n\nA. Left\nB. Straight\nC. Right\n\n"
           "Please answer directly with only the letter of the correct option and nothing else.")


def test_split_options():
    stem, options = split_options(RWQA_MC)
    assert stem == "In which direction is the car facing?"
    assert options == ("Left", "Straight", "Right")
    assert split_options("How many cars are there?") == ("How many cars are there?", ())


def test_realworldqa_load_and_score(tmp_path):
    rows = [{"image": cell(png()), "question": RWQA_MC, "answer": "C"},
            {"image": cell(png()), "question": "How many cars?\nPlease answer directly with a single word or number.",
             "answer": "3"}]
    path = write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", rows)
    mc, open_item = get("realworldqa").load(tmp_path)
    assert mc.options == ("Left", "Straight", "Right") and mc.answer == 2
    assert open_item.options == () and open_item.answer == "3"
    assert get("realworldqa").score([mc, open_item], [2, "Three."])["score"] == 100.0
    assert get("realworldqa").score([mc, open_item], [None, "4"])["score"] == 0.0
    assert get("realworldqa").score([mc, open_item], [1, "3"])["score"] == 50.0
    with pytest.raises(TypeError):
        get("realworldqa").score([mc, open_item], ["C", "3"])
    with pytest.raises(ValueError):
        get("realworldqa").score([mc, open_item], [2])
    assert path.exists()


# ------------------------------------------------------------------ BLINK

def blink_row(idx, sub_task, answer, n_images=2, split="val"):
    images = [png((0, 255, 0), (4, 3)), png((0, 0, 255), (5, 6)), png(), png()][:n_images]
    row = {"idx": f"{split}_{sub_task}_{idx}", "question": "Which image is brighter?", "sub_task": sub_task,
           "choices": ["first", "second"], "answer": answer, "prompt": "...", "explanation": ""}
    for k in range(4):
        row[f"image_{k + 1}"] = cell(images[k]) if k < n_images else None
    return row


def test_blink_load_and_score(tmp_path):
    write_parquet(tmp_path / "Art_Style" / "val-00000-of-00001.parquet",
                  [blink_row(1, "Art_Style", "(B)"), blink_row(2, "Art_Style", "(A)")])
    write_parquet(tmp_path / "Counting" / "val-00000-of-00001.parquet", [blink_row(1, "Counting", "(A)", 1)])
    write_parquet(tmp_path / "Counting" / "test-00000-of-00001.parquet",
                  [blink_row(1, "Counting", "", 1, split="test")])  # hidden answers: not read
    items = get("blink").load(tmp_path)
    assert [i.qid for i in items] == ["val_Art_Style_1", "val_Art_Style_2", "val_Counting_1"]
    assert items[0].answer == 1 and items[1].answer == 0 and items[0].subtask == "Art_Style"
    assert len(items[0].images) == 2 and items[2].images == ()  # one image: `images` stays empty
    composite = decode_image(items[0].image)  # 4x3 scaled to the 5x6 one's height: 8x6 + 5x6
    assert composite.shape == (6, 13, 3)
    assert tuple(composite[0, 0]) == (0, 255, 0) and tuple(composite[0, 8]) == (0, 0, 255)
    assert items[2].image == png((0, 255, 0), (4, 3))
    result = get("blink").score(items, [1, 1, 0])
    assert result["score"] == pytest.approx(200 / 3)
    assert result["subtask/Art_Style"] == 50.0 and result["subtask/Counting"] == 100.0


# ------------------------------------------------------------------ CV-Bench

def cvbench_rows():
    rows = []
    for idx, (kind, task, source) in enumerate([("2D", "Count", "COCO"), ("2D", "Relation", "COCO"),
                                                ("2D", "Count", "ADE20K"), ("3D", "Depth", "Omni3D"),
                                                ("3D", "Distance", "Omni3D"), ("3D", "Depth", "Omni3D")]):
        rows.append({"idx": idx, "type": kind, "task": task, "image": cell(png()), "question": f"q{idx}",
                     "choices": ["3", "2", "1", "0"], "answer": "(B)", "prompt": f"q{idx}\n(A) 3 (B) 2",
                     "filename": f"img/{kind}/{idx}.png", "source": source, "source_dataset": source})
    return rows


def test_cvbench_split_by_source(tmp_path):
    rows = cvbench_rows()
    write_parquet(tmp_path / "test_2d.parquet", [r for r in rows if r["type"] == "2D"])
    write_parquet(tmp_path / "test_3d.parquet", [r for r in rows if r["type"] == "3D"])
    write_jsonl(tmp_path / "test_2d.jsonl", [{k: v for k, v in r.items() if k != "image"} for r in rows])
    coco, ade, omni = (get(n).load(tmp_path) for n in ("cvbench_coco", "cvbench_ade", "cvbench_omni3d"))
    assert [i.qid for i in coco] == ["2D:0", "2D:1"]
    assert [i.qid for i in ade] == ["2D:2"]
    assert [i.qid for i in omni] == ["3D:3", "3D:4", "3D:5"]
    assert all(i.answer == 1 and i.options == ("3", "2", "1", "0") for i in coco + ade + omni)
    assert {i.meta["source"] for i in omni} == {"Omni3D"} and omni[1].subtask == "Distance"
    result = get("cvbench_omni3d").score(omni, [1, 0, None])
    assert result["score"] == pytest.approx(100 / 3)
    assert result["subtask/Depth"] == 50.0 and result["subtask/Distance"] == 0.0


def test_cvbench_jsonl_with_image_files(tmp_path):
    rows = cvbench_rows()
    for r in rows:
        (tmp_path / r["filename"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / r["filename"]).write_bytes(png((9, 9, 9)))
    write_jsonl(tmp_path / "test_2d.jsonl", [{k: v for k, v in r.items() if k != "image"} for r in rows])
    items = get("cvbench_ade").load(tmp_path)
    assert len(items) == 1 and tuple(decode_image(items[0].image)[0, 0]) == (9, 9, 9)
    (tmp_path / rows[2]["filename"]).unlink()
    with pytest.raises(BenchmarkFileError, match=r"test_2d\.jsonl.*row 2.*img/2D/2\.png"):
        get("cvbench_ade").load(tmp_path)


# ------------------------------------------------------------------ layout errors

def test_missing_column_names_file_and_column(tmp_path):
    rows = textvqa_rows(3)
    del rows[0]["answers"]
    path = write_parquet(tmp_path / "validation.parquet", rows)
    with pytest.raises(BenchmarkFileError, match=r"validation\.parquet.*'answers'"):
        get("textvqa").load(path)


def test_bad_answer_and_bad_image_name_the_row(tmp_path):
    path = write_parquet(tmp_path / "Art_Style" / "val.parquet", [blink_row(1, "Art_Style", "(C)")])
    with pytest.raises(BenchmarkFileError, match=r"val\.parquet, row 0.*'\(C\)'"):
        get("blink").load(tmp_path)
    rows = [{"type": "human_test", "question": "q", "answer": "1", "image": {"bytes": b"junk", "path": None}}]
    write_parquet(tmp_path / "chart.parquet", rows)
    with pytest.raises(BenchmarkFileError, match=r"chart\.parquet, row 0.*not a readable image"):
        get("chartqa").load(tmp_path / "chart.parquet")
    with pytest.raises(BenchmarkFileError, match="no such file"):
        get("ocrbench").load(tmp_path / "absent")
    assert path.exists()


def test_every_benchmark_refuses_to_score_no_items():
    for name in ("textvqa", "chartqa", "ocrbench", "realworldqa", "blink", "cvbench_coco",
                 "cvbench_ade", "cvbench_omni3d", "mle_bench"):
        bench = get(name)
        with pytest.raises(ValueError, match=f"^{bench.title}: no items to score"):
            bench.score([], [])


def test_directory_without_the_split_is_an_error(tmp_path):
    write_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", textvqa_rows(3))
    with pytest.raises(BenchmarkFileError, match=r"'validation'.*found splits: train"):
        get("textvqa").load(tmp_path)


# ------------------------------------------------------------------ MLE-Bench

def mle_rows(tmp_path):
    (tmp_path / "images").mkdir()
    rows = []
    for k, sub in enumerate(["existence_0-30", "existence_30-60", "existence_60-100"]):
        (tmp_path / "images" / f"{k}.png").write_bytes(png((k, k, k)))
        rows.append({"image": f"images/{k}.png", "question": "Which of the following appears in this image?",
                     "choices": ["curtain", "television", "Cabinet", "mirror"], "answer": "cabinet",
                     "answer_text": "cabinet", "sub_task": sub})
    return rows


def test_mle_bench_load(tmp_path):
    write_jsonl(tmp_path / "data.jsonl", mle_rows(tmp_path))
    items = get("mle_bench").load(tmp_path)
    assert [i.subtask for i in items] == ["0-30", "30-60", "60-100"]
    assert items[0].answer == 2 and items[0].options[2] == "Cabinet"
    assert tuple(decode_image(items[1].image)[0, 0]) == (1, 1, 1)
    result = get("mle_bench").score(items, [2, 0, None])
    assert result["0-30"] == 100.0 and result["30-60"] == 0.0 and result["60-100"] == 0.0


def test_mle_bench_missing_image_file(tmp_path):
    rows = mle_rows(tmp_path)
    (tmp_path / "images" / "1.png").unlink()
    write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(BenchmarkFileError, match=r"data\.jsonl, row 1.*images/1\.png"):
        get("mle_bench").load(tmp_path / "data.jsonl")


def test_mle_bench_table5_gpt5_row():
    # gpt-5: 73.63 / 90.69 / 86.31 on 732 / 698 / 431 questions -> 82.97 weighted, 83.54 macro
    items, preds = [], []
    for size_bin, n, right in (("0-30", 732, 539), ("30-60", 698, 633), ("60-100", 431, 372)):
        for k in range(n):
            items.append(Item("mle_bench", f"{size_bin}/{k}", "q", ("a", "b", "c", "d"), 0, ("a",),
                              subtask=size_bin))
            preds.append(0 if k < right else np.int64(3))
    result = get("mle_bench").score(items, preds)
    assert round(result["0-30"], 2) == 73.63
    assert round(result["30-60"], 2) == 90.69
    assert round(result["60-100"], 2) == 86.31
    assert round(result["overall"], 2) == 82.97 and result["score"] == result["overall"]
    assert round(result["macro"], 2) == 83.54
