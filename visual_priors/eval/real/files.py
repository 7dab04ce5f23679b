"""Reading benchmark files: the helpers every loader in this package shares.

A loader's path is one ``.parquet`` / ``.jsonl`` file or a directory searched recursively (hidden
files and folders skipped, files in sorted order of their relative path). Parquet files are
preferred; jsonl files are read where a directory holds no parquet file of the wanted split.

Split choice: a file names a split when its name (before the first dot) is ``<split>``, or starts
with ``<split>-`` (the hub layout, ``test-00000-of-00001.parquet``) or ``<split>_``
(``test_2d.parquet``); failing that, when a folder on its way is named ``<split>`` (the
parquet-converter layout, ``<config>/<split>/0000.parquet``). If any file names a split, only the
files naming the wanted one are read (none is an error that lists the splits found); a directory
whose files name no split is read whole. Where a repository holds several configs side by side,
the files under a folder named after the benchmark's config are preferred.

Image cells may hold the ``datasets`` image struct ``{"bytes", "path"}``, raw bytes, or a path
(absolute, or relative to the data file's folder); required images must have a readable header.
Multi-image items keep every image in `Item.images` and get a side-by-side composite (heights
matched to the tallest) as `Item.image`; single-image items leave ``images`` empty.

Every error is a `BenchmarkFileError` naming the file and, where it can, the row.
"""

from __future__ import annotations

import io
import json
import numbers
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from visual_priors.eval.real import BenchmarkFileError, Item

KINDS = (".parquet", ".jsonl")
SPLITS = frozenset({"train", "validation", "val", "dev", "test", "testmini", "testdev"})
_HUB_FILE = re.compile(r"^([A-Za-z][A-Za-z_]*)-\d{5}-of-\d{5}")


def bad(file: Path, row: int, msg: str) -> BenchmarkFileError:
    """The error for one bad row: ``"<file>, row <row>: <msg>"``."""
    return BenchmarkFileError(f"{file}, row {row}: {msg}")


# --------------------------------------------------------------------------- which files

def split_of(rel: Path, split: str | None = None) -> str | None:
    """The split a data file names (see the module docstring), given its path relative to the
    directory searched; `split` counts as a split name beside the usual ones. None if none."""
    names = SPLITS | {split} if split else SPLITS
    stem = rel.name.split(".")[0]
    for name in sorted(names, key=len, reverse=True):  # "test_2d" before "test"
        if stem == name or stem.startswith((name + "-", name + "_")):
            return name
    hub = _HUB_FILE.match(stem)
    if hub:
        return hub.group(1)
    for folder in reversed(rel.parts[:-1]):
        if folder in names:
            return folder
    return None


def data_files(path: Path, split: str | None = None, config: str | None = None) -> list[Path]:
    """The data files a loader reads: `path` itself if it is a file; under a directory the
    ``.parquet`` files (else the ``.jsonl`` ones) of `split`, preferring those under a folder
    named `config` (see the module docstring for the rules)."""
    path = Path(path)
    if path.is_file():
        if path.suffix not in KINDS:
            raise BenchmarkFileError(f"{path}: not a .parquet or .jsonl file")
        return [path]
    if not path.is_dir():
        raise BenchmarkFileError(f"{path}: no such file or directory")
    found: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    for file in path.rglob("*"):
        rel = file.relative_to(path)
        if file.suffix in found and not any(p.startswith(".") for p in rel.parts) and file.is_file():
            found[file.suffix].append(file)
    if not any(found.values()):
        raise BenchmarkFileError(f"{path}: no .parquet or .jsonl files under this directory")
    if split is not None:
        named = {f: split_of(f.relative_to(path), split) for fs in found.values() for f in fs}
        if any(named.values()):
            found = {kind: [f for f in fs if named[f] == split] for kind, fs in found.items()}
            if not any(found.values()):
                splits = sorted({s for s in named.values() if s})
                raise BenchmarkFileError(
                    f"{path}: no data files of split {split!r} (found splits: {', '.join(splits)})")
    files = sorted(found[".parquet"] or found[".jsonl"], key=lambda f: f.relative_to(path).as_posix())
    if config is not None:
        under = [f for f in files if config in f.relative_to(path).parts[:-1]]
        files = under or files
    return files


# --------------------------------------------------------------------------- rows

def rows(path: Path, required: Sequence[str] = (), split: str | None = None,
         config: str | None = None) -> Iterator[tuple[Path, int, dict]]:
    """(file, row index within the file, row as a dict) for every row of every data file
    `data_files` chooses. A file that cannot be read, or a file (parquet) or row (jsonl) lacking
    a `required` column, raises `BenchmarkFileError` naming the file and the columns."""
    for file in data_files(path, split, config):
        if file.suffix == ".jsonl":
            yield from _jsonl_rows(file, required)
        else:
            yield from _parquet_rows(file, required)


def columns(file: Path) -> set[str]:
    """The column names of a data file (a jsonl file's: those of its first row)."""
    if file.suffix == ".jsonl":
        return set(next((rec for _, _, rec in _jsonl_rows(file, ())), {}))
    import pyarrow.parquet as pq
    try:
        return set(pq.read_schema(file).names)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise BenchmarkFileError(f"{file}: not a readable parquet file ({e})") from e


def _missing(required: Sequence[str], names) -> str:
    missing = [c for c in required if c not in names]
    return f"missing column(s) {', '.join(map(repr, missing))}" if missing else ""


def _parquet_rows(file: Path, required: Sequence[str]) -> Iterator[tuple[Path, int, dict]]:
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(file)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise BenchmarkFileError(f"{file}: not a readable parquet file ({e})") from e
    names = reader.schema_arrow.names
    missing = _missing(required, names)
    if missing:
        raise BenchmarkFileError(f"{file}: {missing} (columns: {', '.join(names)})")
    row = 0
    try:
        for batch in reader.iter_batches(batch_size=64):
            for record in batch.to_pylist():
                yield file, row, record
                row += 1
    except Exception as e:  # pyarrow's errors for a corrupt file (ArrowInvalid, OSError)
        raise BenchmarkFileError(f"{file}: unreadable near row {row} ({e})") from e


def _jsonl_rows(file: Path, required: Sequence[str]) -> Iterator[tuple[Path, int, dict]]:
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BenchmarkFileError(f"{file}: not a readable jsonl file ({e})") from e
    row = 0
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchmarkFileError(f"{file}, line {line_no}: not JSON ({e})") from e
        if not isinstance(record, dict):
            raise BenchmarkFileError(f"{file}, line {line_no}: not a JSON object")
        missing = _missing(required, record)
        if missing:
            raise bad(file, row, f"{missing} (line {line_no})")
        yield file, row, record
        row += 1


# --------------------------------------------------------------------------- cells

def text_cell(row: dict, column: str, file: Path, index: int) -> str:
    """A text cell as a string (numbers as their text); anything else is a bad row."""
    value = row.get(column)
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise bad(file, index, f"column {column!r} is not text ({value!r})")
    return value


def strings_cell(row: dict, column: str, file: Path, index: int, min_len: int = 1) -> tuple[str, ...]:
    """A list-of-strings cell (a lone string counts as a list of one) with at least `min_len`
    entries."""
    value = row.get(column)
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, (list, tuple)) or len(value) < min_len
            or not all(isinstance(v, str) for v in value)):
        raise bad(file, index, f"column {column!r} must be a list of at least {min_len} strings, "
                               f"got {value!r}")
    return tuple(value)


def letter_index(value, n_options: int, file: Path, index: int) -> int:
    """The option index of an answer letter: "B", "b" or "(B)" -> 1."""
    letter = ("" if value is None else str(value)).strip().strip("()").strip().upper()
    if len(letter) != 1 or not "A" <= letter <= "Z" or ord(letter) - 65 >= n_options:
        raise bad(file, index, f"answer {value!r} is not the letter of one of {n_options} options")
    return ord(letter) - 65


def row_id(file: Path, root: Path, index: int) -> str:
    """A question id for rows without one: ``<file relative to the loader's path>:<row>``."""
    rel = file.name if Path(root).is_file() else file.relative_to(root).as_posix()
    return f"{rel}:{index}"


def row_meta(file: Path, index: int, **extra) -> dict:
    return {"file": str(file), "row": index, **extra}


# --------------------------------------------------------------------------- images

def _image_path(value, file: Path | None) -> Path | None:
    """The file an image cell names by path (relative paths from `file`'s folder), if any."""
    ref = value.get("path") if isinstance(value, dict) else value
    if not isinstance(ref, str) or not ref:
        return None
    p = Path(ref)
    return p if p.is_absolute() or file is None else Path(file).parent / p


def image_bytes(value, file: Path | None = None) -> bytes | None:
    """Encoded image bytes from an image cell: the ``datasets`` struct ``{"bytes", "path"}``
    (bytes preferred), raw bytes, or a path; a path is read if the file exists (relative paths
    from the folder of the data `file`). None where the cell yields no image."""
    if isinstance(value, dict) and value.get("bytes"):
        return bytes(value["bytes"])
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value) or None
    p = _image_path(value, file)
    return p.read_bytes() if p is not None and p.is_file() else None


def image(value, file: Path, row: int, column: str = "image", required: bool = True) -> bytes | None:
    """An image cell's bytes (see `image_bytes`), checked to have a readable image header. A
    cell without an image is a bad row, or None where not `required`; a path to a missing file is
    a bad row either way."""
    data = image_bytes(value, file)
    if data is None:
        p = _image_path(value, file)
        if p is not None:
            raise bad(file, row, f"image file {p} (column {column!r}) not found")
        if not required:
            return None
        raise bad(file, row, f"no image in column {column!r}")
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)):
            pass
    except Exception as e:  # PIL raises several types for undecodable data
        raise bad(file, row, f"column {column!r} is not a readable image ({e})") from e
    return data


def side_by_side(images: Sequence[bytes]) -> bytes:
    """One PNG with the images pasted left to right, each scaled to the tallest one's height."""
    from PIL import Image

    ims = []
    for data in images:
        with Image.open(io.BytesIO(data)) as im:
            ims.append(im.convert("RGB"))
    height = max(im.height for im in ims)
    scaled = [im if im.height == height else
              im.resize((max(1, round(im.width * height / im.height)), height), Image.BICUBIC)
              for im in ims]
    canvas = Image.new("RGB", (sum(im.width for im in scaled), height), (255, 255, 255))
    x = 0
    for im in scaled:
        canvas.paste(im, (x, 0))
        x += im.width
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def image_fields(blobs: Sequence[bytes], file: Path, row: int) -> dict:
    """`Item`'s image fields for a row's images: none -> no image; one -> ``image`` only
    (``images`` empty); several -> every one in ``images`` and the side-by-side composite as
    ``image``."""
    if not blobs:
        return {"image": None, "images": ()}
    if len(blobs) == 1:
        return {"image": blobs[0], "images": ()}
    try:
        composite = side_by_side(blobs)
    except Exception as e:  # PIL raises several types for undecodable data
        raise bad(file, row, f"cannot decode image ({e})") from e
    return {"image": composite, "images": tuple(blobs)}


# --------------------------------------------------------------------------- item lists

def nonempty(items: list[Item], path: Path, title: str) -> list[Item]:
    """`items`, or a `BenchmarkFileError` naming the benchmark when the files held none."""
    if not items:
        raise BenchmarkFileError(f"{path}: no {title} items found")
    return items


def check_unique(items: Sequence[Item], path: Path) -> None:
    """Question ids must be unique (a benchmark stored twice under the path repeats them)."""
    seen: dict[str, str] = {}
    for item in items:
        if item.qid in seen:
            raise BenchmarkFileError(
                f"{path}: question id {item.qid!r} appears twice ({seen[item.qid]} and "
                f"{item.meta.get('file')}); is the benchmark stored twice?")
        seen[item.qid] = item.meta.get("file")
