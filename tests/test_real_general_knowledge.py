"""General and Knowledge benchmark loaders and metrics on tiny parquet files in the real layouts."""

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import visual_priors.eval.real.general_knowledge as gk
from visual_priors.eval.real import BenchmarkFileError, decode_image, files, get


def png(color=(255, 0, 0), size=(4, 4)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def hf_image(data: bytes, name="img.png") -> dict:
    """The `datasets` Image feature as stored in parquet."""
    return {"bytes": data, "path": name}


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


RED, GREEN, BLUE = png((255, 0, 0)), png((0, 255, 0)), png((0, 0, 255))


def test_registered_names_and_categories():
    expect = {"gqa": "general", "mme": "general", "mmbench": "general", "seed": "general",
              "scienceqa": "knowledge", "mmmu": "knowledge", "ai2d": "knowledge",
              "mathvista": "knowledge"}
    for name, category in expect.items():
        bench = get(name)
        assert bench.name == name and bench.category == category and bench.layout


def test_image_bytes_accepts_struct_plain_bytes_and_path(tmp_path):
    assert files.image_bytes(hf_image(RED)) == RED
    assert files.image_bytes(RED) == RED
    assert files.image_bytes(None) is None
    assert files.image_bytes({"bytes": None, "path": None}) is None
    f = tmp_path / "a.png"
    f.write_bytes(GREEN)
    assert files.image_bytes({"bytes": None, "path": str(f)}) == GREEN


def test_rows_yields_file_row_and_dict_and_names_missing_column(tmp_path):
    f = write(tmp_path / "d" / "x.parquet", [{"a": 1, "b": "u"}, {"a": 2, "b": "v"}])
    rows = list(files.rows(tmp_path / "d", ["a"]))
    assert rows == [(f, 0, {"a": 1, "b": "u"}), (f, 1, {"a": 2, "b": "v"})]
    with pytest.raises(BenchmarkFileError) as err:
        list(files.rows(f, ["a", "zzz"]))
    assert str(f) in str(err.value) and "'zzz'" in str(err.value)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(BenchmarkFileError, match="bad.parquet"):
        list(files.rows(bad, ["a"]))


def test_data_files_split_names_config_and_jsonl(tmp_path):
    root = tmp_path / "repo"
    for rel in ["data/test-00000-of-00001.parquet", "test_2d.parquet", "test.parquet",
                "cfg/test/0000.parquet", "other/test/0000.parquet", "train-00000-of-00001.parquet",
                "validation.parquet", "testmini-00000-of-00001.parquet", ".cache/test.parquet"]:
        write(root / rel, [{"a": 1}])
    (root / "test.jsonl").write_text('{"a": 2}\n')
    rel = [p.relative_to(root).as_posix() for p in files.data_files(root, "test")]
    assert rel == ["cfg/test/0000.parquet", "data/test-00000-of-00001.parquet",
                   "other/test/0000.parquet", "test.parquet", "test_2d.parquet"]
    assert [p.relative_to(root).as_posix() for p in files.data_files(root, "test", config="cfg")] == [
        "cfg/test/0000.parquet"]
    with pytest.raises(BenchmarkFileError, match=r"'dev'.*found splits: test, testmini, train, validation"):
        files.data_files(root, "dev")
    # no parquet file of the split: the jsonl ones are read
    (root / "dev.jsonl").write_text('{"a": 3}\n\n{"a": 4}\n')
    assert [r[1:] for r in files.rows(root, ["a"], "dev")] == [(0, {"a": 3}), (1, {"a": 4})]
    # files naming no split are read whole, whatever the split asked for
    plain = tmp_path / "plain"
    write(plain / "x.parquet", [{"a": 1}])
    assert files.data_files(plain, "test") == [plain / "x.parquet"]
    with pytest.raises(BenchmarkFileError, match=r"dev\.jsonl, row 0: missing column\(s\) 'b'"):
        list(files.rows(root / "dev.jsonl", ["b"]))


def test_image_cells_resolve_relative_paths_and_check_the_header(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(BLUE)
    data = tmp_path / "data.parquet"
    assert files.image({"bytes": None, "path": "img/a.png"}, data, 0) == BLUE
    assert files.image("img/a.png", data, 0) == BLUE
    assert files.image(None, data, 3, "image_2", required=False) is None
    with pytest.raises(BenchmarkFileError, match=r"data\.parquet, row 3: no image in column 'image_2'"):
        files.image(None, data, 3, "image_2")
    with pytest.raises(BenchmarkFileError, match=r"row 1: image file .*img/b\.png"):
        files.image({"bytes": None, "path": "img/b.png"}, data, 1, required=False)
    with pytest.raises(BenchmarkFileError, match="row 2: column 'image' is not a readable image"):
        files.image(b"junk", data, 2)


def test_image_fields_single_and_multi():
    assert files.image_fields([], Path("f"), 0) == {"image": None, "images": ()}
    assert files.image_fields([RED], Path("f"), 0) == {"image": RED, "images": ()}
    fields = files.image_fields([RED, png((0, 0, 255), (2, 8))], Path("f"), 0)
    assert fields["images"] == (RED, png((0, 0, 255), (2, 8)))
    assert decode_image(fields["image"]).shape == (8, 10, 3)  # 4x4 scaled to 8x8, then 2x8


# ----------------------------------------------------------------------------- GQA

def gqa_dir(tmp_path) -> Path:
    root = tmp_path / "GQA"
    write(root / "testdev_balanced_instructions" / "testdev-00000-of-00001.parquet", [
        {"id": "q1", "imageId": "n1", "question": "Is it red?", "answer": "yes",
         "types": {"structural": "verify", "semantic": "attr", "detailed": "x"}},
        {"id": "q2", "imageId": "n2", "question": "What is worn?", "answer": "t-shirt",
         "types": {"structural": "query", "semantic": "rel", "detailed": "x"}},
        {"id": "q3", "imageId": "n1", "question": "Which side?", "answer": "left",
         "types": {"structural": "query", "semantic": "rel", "detailed": "x"}},
    ])
    write(root / "testdev_balanced_images" / "testdev-00000-of-00001.parquet", [
        {"id": "n2", "image": hf_image(GREEN)}, {"id": "n1", "image": hf_image(RED)},
        {"id": "unused", "image": hf_image(BLUE)},
    ])
    # another config in the same repository must not be read
    write(root / "testdev_all_instructions" / "testdev-00000-of-00001.parquet", [
        {"id": "zz", "imageId": "n1", "question": "?", "answer": "no"}])
    return root


def test_gqa_joins_images_on_image_id_and_scores_exact_match(tmp_path):
    bench = get("gqa")
    items = bench.load(gqa_dir(tmp_path))
    assert [it.qid for it in items] == ["q1", "q2", "q3"]
    assert [it.image for it in items] == [RED, GREEN, RED]
    assert items[1].options == () and items[1].answer == "t-shirt"
    assert [it.subtask for it in items] == ["verify", "query", "query"]
    out = bench.score(items, ["Yes.", " T-Shirt\n", "left side"])
    assert out["score"] == pytest.approx(200 / 3)
    assert out["subtask/verify"] == 100.0 and out["subtask/query"] == 50.0
    assert bench.score(items, ["no", None, "LEFT!"])["score"] == pytest.approx(100 / 3)


def test_gqa_normalisation_cases():
    assert gk.gqa_normalize("Yes.") == "yes"
    assert gk.gqa_normalize("T-Shirt") == gk.gqa_normalize("tshirt")
    assert gk.gqa_normalize("  on the left ") == "on the left"
    assert gk.gqa_normalize("left side") != gk.gqa_normalize("left")


def test_gqa_missing_image_names_the_row(tmp_path):
    root = gqa_dir(tmp_path)
    write(root / "testdev_balanced_images" / "testdev-00000-of-00001.parquet",
          [{"id": "n1", "image": hf_image(RED)}])
    with pytest.raises(BenchmarkFileError, match=r"testdev_balanced_instructions.*row 1.*'n2'"):
        get("gqa").load(root)


# ----------------------------------------------------------------------------- MME

def mme_rows():
    rows = []
    for qid, cat, image in [("existence/1.png", "existence", RED), ("existence/2.png", "existence", GREEN),
                            ("code_reasoning/1.png", "code_reasoning", BLUE)]:
        rows.append({"question_id": qid, "image": hf_image(image), "category": cat,
                     "question": "Is there a dog? Please answer yes or no.", "answer": "Yes"})
        rows.append({"question_id": qid, "image": hf_image(image), "category": cat,
                     "question": "Is there a cat? Please answer yes or no.", "answer": "No"})
    return rows


def test_mme_acc_acc_plus_and_perception_over_20(tmp_path):
    path = write(tmp_path / "MME" / "data" / "test-00000-of-00001.parquet", mme_rows())
    bench = get("mme")
    items = bench.load(path.parent.parent)
    assert len(items) == 6 and items[0].pair == items[1].pair == "existence/1.png"
    assert items[0].pair != items[2].pair and items[0].qid != items[1].qid
    assert items[0].subtask == "existence" and items[0].options == ()
    preds = ["Yes, there is.", "No",          # image 1: both right
             "yes", "Yes",                    # image 2: one right
             "y", "n"]                        # cognition image: both right
    out = bench.score(items, preds)
    assert out["acc/existence"] == 75.0
    assert out["acc_plus/existence"] == 50.0
    assert out["category/existence"] == 125.0
    assert out["perception"] == 125.0
    assert out["score"] == pytest.approx(125.0 / 20)
    assert out["cognition"] == 200.0
    # perfect answers everywhere: each perception category contributes 200, 2000 / 20 = 100
    rows = []
    for k, cat in enumerate(gk.MME_PERCEPTION):
        for row in mme_rows()[:2]:
            rows.append({**row, "category": cat, "question_id": f"{cat}/{k}.png"})
    write(tmp_path / "full" / "test-00000-of-00001.parquet", rows)
    items = bench.load(tmp_path / "full")
    perfect = [it.answer for it in items]
    assert bench.score(items, perfect)["score"] == pytest.approx(100.0)


def test_mme_yes_no_parsing():
    assert gk.mme_parse("Yes, there is a dog.") == "yes"
    assert gk.mme_parse("No.") == "no"
    assert gk.mme_parse("N") == "no"
    assert gk.mme_parse("I cannot tell") == "other"


def test_mme_unknown_category_is_a_bad_row(tmp_path):
    rows = mme_rows()
    rows[3]["category"] = "weather"
    path = write(tmp_path / "test-00000-of-00001.parquet", rows)
    with pytest.raises(BenchmarkFileError, match=r"test-00000-of-00001.parquet, row 3.*weather"):
        get("mme").load(path)


# ----------------------------------------------------------------------------- MMBench

def mmbench_row(index, answer, category, hint=None, d="four"):
    return {"index": index, "question": "Which number?", "hint": hint, "A": "one", "B": "two",
            "C": "three", "D": d, "answer": answer, "category": category, "image": hf_image(RED),
            "source": "s", "L2-category": "l2", "split": "dev"}


def test_mmbench_circular_eval_over_rotations(tmp_path):
    root = tmp_path / "MMBench"
    write(root / "en" / "dev-00000-of-00001.parquet", [
        mmbench_row(0, "B", "ocr", hint="Look closely."),
        mmbench_row(1, "C", "count", d=None),
        mmbench_row(1_000_000, "A", "ocr"),      # rotation of question 0
    ])
    write(root / "cn" / "dev-00000-of-00001.parquet", [mmbench_row(5, "A", "ocr")])
    write(root / "en" / "test-00000-of-00001.parquet", [mmbench_row(7, "A", "ocr")])
    bench = get("mmbench")
    items = bench.load(root)
    assert [it.qid for it in items] == ["0", "1", "1000000"]
    assert items[0].question == "Look closely. Which number?"
    assert items[1].question == "Which number?"
    assert items[1].options == ("one", "two", "three") and items[1].answer == 2
    assert items[0].answer == 1 and items[0].pair == items[2].pair == "0"
    out = bench.score(items, [1, 2, 3])        # question 0 right once, wrong on its rotation
    assert out["score"] == 50.0 and out["vanilla"] == pytest.approx(200 / 3)
    assert out["subtask/ocr"] == 0.0 and out["subtask/count"] == 100.0
    assert bench.score(items, [1, 2, 0])["score"] == 100.0
    assert bench.score(items, [None, None, None])["score"] == 0.0


def test_mmbench_bad_answer_letter_names_file_and_row(tmp_path):
    f = write(tmp_path / "dev-00000-of-00001.parquet",
              [mmbench_row(0, "A", "ocr"), mmbench_row(1, "D", "ocr", d=None)])
    with pytest.raises(BenchmarkFileError, match=rf"{f.name}, row 1: answer 'D'"):
        get("mmbench").load(tmp_path)


# ----------------------------------------------------------------------------- SEED

def test_seed_keeps_image_items_and_pastes_multi_image_side_by_side(tmp_path):
    tall, short = png((0, 0, 255), (4, 6)), png((0, 255, 0), (2, 3))
    base = {"choice_a": "a", "choice_b": "b", "choice_c": "c", "choice_d": "d"}
    write(tmp_path / "data" / "test-00000-of-00001.parquet", [
        {**base, "question_id": "101", "question": "Q1", "answer": "C", "data_type": "image",
         "question_type_id": 5, "image": [hf_image(RED)]},
        {**base, "question_id": "102", "question": "Q2", "answer": "A", "data_type": "video",
         "question_type_id": 10, "image": [hf_image(RED), hf_image(GREEN)]},
        {**base, "question_id": "103", "question": "Q3", "answer": "D", "data_type": "image",
         "question_type_id": 1, "image": [hf_image(tall), hf_image(short)]},
    ])
    bench = get("seed")
    items = bench.load(tmp_path)
    assert [it.qid for it in items] == ["101", "103"]
    assert items[0].image == RED and items[0].images == ()
    assert items[0].subtask == "Instances Counting" and items[1].subtask == "Scene Understanding"
    assert items[1].images == (tall, short)
    composite = decode_image(items[1].image)
    assert composite.shape == (6, 8, 3)
    assert tuple(composite[0, 0]) == (0, 0, 255) and tuple(composite[0, 7]) == (0, 255, 0)
    assert items[0].options == ("a", "b", "c", "d") and items[0].answer == 2
    out = bench.score(items, [2, 0])
    assert out["score"] == 50.0 and out["subtask/Instances Counting"] == 100.0


# ----------------------------------------------------------------------------- ScienceQA

def test_scienceqa_img_context_and_accuracy(tmp_path):
    root = tmp_path / "ScienceQA"
    rows = [
        {"image": hf_image(RED), "question": "Which is a mammal?", "choices": ["frog", "cow", "eel"],
         "answer": 1, "hint": "Cows give milk.", "subject": "natural science"},
        {"image": hf_image(GREEN), "question": "Which word rhymes?", "choices": ["cat", "dog"],
         "answer": 0, "hint": "", "subject": "language science"},
    ]
    write(root / "ScienceQA-IMG" / "test-00000-of-00001.parquet", rows)
    write(root / "ScienceQA-IMG" / "train-00000-of-00001.parquet", rows)
    write(root / "ScienceQA-FULL" / "test-00000-of-00001.parquet", rows * 2)
    bench = get("scienceqa")
    items = bench.load(root)
    assert len(items) == 2
    assert items[0].question == "Context: Cows give milk.\nWhich is a mammal?"
    assert items[1].question == "Which word rhymes?"
    assert items[0].options == ("frog", "cow", "eel") and items[0].answers == ("cow",)
    out = bench.score(items, [1, 1])
    assert out["score"] == 50.0 and out["subtask/natural science"] == 100.0


# ----------------------------------------------------------------------------- MMMU

def mmmu_row(qid, qtype, options, answer, images):
    row = {"id": qid, "question": "<image 1> What?", "options": options, "answer": answer,
           "question_type": qtype, "subfield": "x", "explanation": "", "img_type": "['x']",
           "topic_difficulty": "Easy"}
    for k in range(1, 8):
        row[f"image_{k}"] = hf_image(images[k - 1]) if k <= len(images) else None
    return row


def test_mmmu_multiple_choice_open_and_multi_image(tmp_path):
    write(tmp_path / "data" / "validation-00000-of-00001.parquet", [
        mmmu_row("validation_Accounting_1", "multiple-choice", "['$5', '$6', '$7']", "B", [RED]),
        mmmu_row("validation_Art_Theory_2", "open", "[]", "24", [png((0, 0, 255), (4, 6)),
                                                                  png((0, 255, 0), (2, 3))]),
        mmmu_row("validation_Math_3", "open", "[]", "cat", [GREEN]),
    ])
    write(tmp_path / "data" / "dev-00000-of-00001.parquet",
          [mmmu_row("dev_Math_9", "open", "[]", "1", [RED])])
    bench = get("mmmu")
    items = bench.load(tmp_path)
    assert [it.subtask for it in items] == ["Accounting", "Art_Theory", "Math"]
    assert items[0].options == ("$5", "$6", "$7") and items[0].answer == 1
    assert items[1].options == () and len(items[1].images) == 2
    assert decode_image(items[1].image).shape == (6, 8, 3)
    out = bench.score(items, [1, "The final answer is 24.", "It is a dog."])
    assert out["score"] == pytest.approx(200 / 3)
    assert out["subtask/Accounting"] == 100.0 and out["subtask/Math"] == 0.0
    assert out["discipline/Business"] == 100.0 and out["question_type/open"] == 50.0
    assert bench.score(items, [0, "24.5", "so it is a cat"])["score"] == pytest.approx(100 / 3)


def test_mmmu_open_rule():
    assert gk.mmmu_open_right("Thus the value is 3.14159", ["3.14"])
    assert gk.mmmu_open_right("1,000", ["1000"])
    assert not gk.mmmu_open_right("The value is 3.2", ["3.14"])


def test_mmmu_bad_options_repr_names_the_row(tmp_path):
    f = write(tmp_path / "validation-00000-of-00001.parquet",
              [mmmu_row("validation_Art_1", "multiple-choice", "not a list", "A", [RED])])
    with pytest.raises(BenchmarkFileError, match=rf"{f.name}, row 0: options"):
        get("mmmu").load(f)


# ----------------------------------------------------------------------------- AI2D

def test_ai2d_string_answer_index(tmp_path):
    write(tmp_path / "data" / "test-00000-of-00001.parquet", [
        {"question": "Which stage?", "options": ["egg", "larva", "pupa", "adult"], "answer": "2",
         "image": hf_image(RED)},
        {"question": "What eats grass?", "options": ["cow", "lion"], "answer": "0",
         "image": hf_image(GREEN)},
    ])
    bench = get("ai2d")
    items = bench.load(tmp_path)
    assert items[0].answer == 2 and items[0].answers == ("pupa",) and items[1].image == GREEN
    assert bench.score(items, [2, 1])["score"] == 50.0
    assert bench.score(items, [2, 0])["score"] == 100.0


def test_ai2d_missing_column_names_the_file(tmp_path):
    f = write(tmp_path / "test-00000-of-00001.parquet",
              [{"question": "q", "choices": ["a", "b"], "answer": "0", "image": hf_image(RED)}])
    with pytest.raises(BenchmarkFileError) as err:
        get("ai2d").load(tmp_path)
    assert str(f) in str(err.value) and "'options'" in str(err.value)


# ----------------------------------------------------------------------------- MathVista

def mathvista_row(pid, qtype, atype, answer, choices=None, precision=None, unit=None, task="t"):
    return {"pid": pid, "question": f"Question {pid}?", "image": f"images/{pid}.jpg",
            "decoded_image": hf_image(RED), "choices": choices, "unit": unit,
            "precision": precision, "answer": answer, "question_type": qtype,
            "answer_type": atype, "query": f"Hint: ...\nQuestion {pid}?",
            "metadata": {"category": "math-targeted-vqa", "task": task, "split": "testmini",
                         "skills": ["arithmetic reasoning"], "context": "c", "grade": "g",
                         "language": "english", "source": "s", "img_height": 4, "img_width": 4}}


def test_mathvista_precision_and_option_scoring(tmp_path):
    write(tmp_path / "data" / "testmini-00000-of-00001.parquet", [
        mathvista_row("1", "multi_choice", "text", "8/11", choices=["3/11", "8/11", "6/11"],
                      task="geometry problem solving"),
        mathvista_row("2", "free_form", "integer", "14", task="math word problem"),
        mathvista_row("3", "free_form", "float", "1.45", precision=2.0, unit="$",
                      task="math word problem"),
        mathvista_row("4", "free_form", "list", "[2007, 2008]", task="figure question answering"),
    ])
    write(tmp_path / "data" / "test-00000-of-00002.parquet",
          [mathvista_row("99", "free_form", "integer", "1")])
    bench = get("mathvista")
    items = bench.load(tmp_path)
    assert [it.qid for it in items] == ["1", "2", "3", "4"]
    assert items[0].options == ("3/11", "8/11", "6/11") and items[0].answer == 1
    assert items[0].image == RED and items[0].subtask == "geometry problem solving"
    assert items[2].question == ("Question 3? (Unit: $)\nAnswer the question using a single "
                                 "floating-point number with two decimal places.")
    assert items[1].question.endswith("single integer number.")
    out = bench.score(items, [1, "The answer is 14.", "1.449", "It peaked between [2007, 2008]."])
    assert out["score"] == 100.0
    out = bench.score(items, [0, "13", "1.46", "[2008, 2007]"])
    assert out["score"] == 0.0
    out = bench.score(items, [None, "14.0", "1.4", "[2007,2008]"])
    assert out["score"] == 50.0
    assert out["question_type/free_form"] == pytest.approx(200 / 3)
    assert out["subtask/math word problem"] == 50.0


def test_mathvista_float_compares_at_item_precision():
    assert gk.mathvista_free_form_right("1.5", "1.50", "float", 2)
    assert gk.mathvista_free_form_right("0.62", "0.6", "float", 1)
    assert not gk.mathvista_free_form_right("0.66", "0.6", "float", 1)
    assert not gk.mathvista_free_form_right("no idea", "3", "integer", None)


def test_mathvista_answer_outside_choices_is_a_bad_row(tmp_path):
    f = write(tmp_path / "testmini-00000-of-00001.parquet",
              [mathvista_row("1", "multi_choice", "text", "9", choices=["1", "2"])])
    with pytest.raises(BenchmarkFileError, match=rf"{f.name}, row 0: answer '9'"):
        get("mathvista").load(f)


def test_every_benchmark_refuses_to_score_no_items():
    for name in ("gqa", "mme", "mmbench", "seed", "scienceqa", "mmmu", "ai2d", "mathvista"):
        bench = get(name)
        with pytest.raises(ValueError, match=f"^{bench.title}: no items to score"):
            bench.score([], [])


def test_files_without_items_name_the_benchmark(tmp_path):
    base = {"choice_a": "a", "choice_b": "b", "choice_c": "c", "choice_d": "d", "question": "Q",
            "answer": "A", "image": [hf_image(RED)]}
    write(tmp_path / "test-00000-of-00001.parquet", [{**base, "data_type": "video"}])
    with pytest.raises(BenchmarkFileError, match="no SEED items"):
        get("seed").load(tmp_path)


def test_mmbench_n_counts_items_and_questions_counts_circular_groups(tmp_path):
    write(tmp_path / "dev-00000-of-00001.parquet",
          [mmbench_row(0, "B", "ocr"), mmbench_row(1_000_000, "A", "ocr")])
    items = get("mmbench").load(tmp_path)
    out = get("mmbench").score(items, [1, 0])
    assert out["n"] == 2 and out["questions"] == 1 and out["score"] == 100.0
    with pytest.raises(TypeError):
        get("mmbench").score(items, ["B", 0])


def test_loaders_read_jsonl_and_check_image_headers(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "0.png").write_bytes(GREEN)
    (tmp_path / "test.jsonl").write_text(
        '{"question": "q", "options": ["a", "b"], "answer": "1", "image": "images/0.png"}\n')
    (item,) = get("ai2d").load(tmp_path)
    assert item.image == GREEN and item.answer == 1
    write(tmp_path / "bad" / "test-00000-of-00001.parquet",
          [{"question": "q", "options": ["a", "b"], "answer": "1", "image": hf_image(b"junk")}])
    with pytest.raises(BenchmarkFileError, match=r"row 0: column 'image' is not a readable image"):
        get("ai2d").load(tmp_path / "bad")


def test_directory_without_the_split_is_an_error(tmp_path):
    write(tmp_path / "data" / "test-00000-of-00001.parquet", [mathvista_row("1", "free_form", "integer", "1")])
    with pytest.raises(BenchmarkFileError, match="testmini"):
        get("mathvista").load(tmp_path)


def test_item_records_round_trip_through_json(tmp_path):
    """The evaluate step scores items rebuilt from real.json, not from the files again."""
    import dataclasses
    import json

    from visual_priors.eval.real import item_from_record, item_record

    items = get("mme").load(write(tmp_path / "MME" / "data" / "test-00000-of-00001.parquet", mme_rows()))
    back = [item_from_record(json.loads(json.dumps(item_record(it)))) for it in items]
    assert back == [dataclasses.replace(it, image=None, images=()) for it in items]
    assert [b.meta for b in back] == [it.meta for it in items]
    preds = ["Yes", "No", "No", "No", "Yes", "No"]
    assert get("mme").score(back, preds) == get("mme").score(items, preds)
