"""Trust in what sharing reads (issue 17, items 5 and 13): the pack cache answers only about
the packed file it was handed, and a full cache disk is a sentence, never a traceback or a
half-extracted entry (docs/sharing.md)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aksnap import pack as pack_mod
from aksnap.analyzer.testing import anomaly_bundle, failure_bundle
from aksnap.bundle import TABLES, BundleError, read_manifest
from aksnap.cli import app
from aksnap.pack import open_packed, pack

runner = CliRunner()
MEMBERS = ["manifest.json"] + [f"{t}.parquet" for t in TABLES]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AK_OUTPUT", raising=False)


@pytest.fixture
def packed(tmp_path):
    """(the packed file of the failure bundle, its cache entry's path, the seed: another bundle)."""
    fb = failure_bundle(tmp_path / "fb")
    s = pack(fb, tmp_path / "fb.aksnap")
    other = anomaly_bundle(tmp_path / "other")
    return s.path, tmp_path / "cache" / f"packed-{s.sha256}", other


def _tasks(argv) -> int:
    r = runner.invoke(app, [*argv, "-o", "json"])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


def _seed(entry: Path, src: Path, files=MEMBERS) -> None:
    entry.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(src / name, entry / name)


# -- item 5: a pre-seeded cache entry ---------------------------------------------------------

def test_a_seeded_cache_entry_does_not_answer_for_the_packed_file(packed):
    """Given the cache pre-seeded with another, intact bundle at the packed file's entry name
    (packed-<sha of the file>), when analyze and check read the packed file, then they answer
    about the packed bundle (14 tasks), not the seeded one, and the entry now holds the packed
    file's members."""
    f, entry, other = packed
    _seed(entry, other)
    assert read_manifest(entry).tables["tasks"].rows != 14  # the seed is another bundle
    a = _tasks(["analyze", str(f)])
    assert sum(s["tasks"] for s in a["sessions"]) == 14, a["sessions"]
    c = _tasks(["check", str(f)])
    assert c["checksums"] == "ok" and c["anomalies"] == []  # the seed has every anomaly
    assert read_manifest(entry).tables["tasks"].rows == 14
    with open(f, "rb") as z:
        import zipfile

        want = zipfile.ZipFile(z).read("manifest.json")
    assert (entry / "manifest.json").read_bytes() == want


@pytest.mark.parametrize("how", ["another bundle", "the right manifest, another table",
                                 "a table edited in place", "an extra file"])
def test_a_cache_entry_that_does_not_match_the_file_is_extracted_again(packed, how):
    """Given an entry at the right name that differs from the packed file in any member (its
    manifest, a table behind the right manifest, a byte edited in place) or holds something
    else, when the packed file is opened, then the entry is replaced by the file's members and
    every table's SHA-256 is the one the packed manifest says."""
    f, entry, other = packed
    good = open_packed(f)
    assert good == entry
    if how == "another bundle":
        shutil.rmtree(entry)
        _seed(entry, other)
    elif how == "the right manifest, another table":
        os.unlink(entry / "results.parquet")
        shutil.copyfile(other / "results.parquet", entry / "results.parquet")
    elif how == "a table edited in place":
        p = entry / "tasks.parquet"
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))  # same size: only its checksum tells
    else:
        (entry / "notes.txt").write_text("hi")
    d = open_packed(f)
    assert d == entry
    m = read_manifest(d)
    from aksnap.bundle import sha256_file

    assert all(sha256_file(d / e.file) == e.sha256 for e in m.tables.values())
    assert m.tables["tasks"].rows == 14 and sorted(p.name for p in d.iterdir()) == sorted(MEMBERS)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # nothing left aside


def test_a_cache_entry_that_is_a_symbolic_link_is_not_followed(packed, tmp_path):
    """Given the entry name taken by a symlink to another bundle, when the packed file is
    opened, then the link is not used: the answer is about the packed file, and the linked
    bundle is untouched."""
    f, entry, other = packed
    entry.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(other, entry)
    before = {p.name: p.read_bytes() for p in other.iterdir()}
    d = open_packed(f)
    assert read_manifest(d).tables["tasks"].rows == 14
    assert not d.is_symlink() and d.resolve() != other.resolve()
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before


def test_a_cache_entry_owned_by_another_user_is_not_trusted(packed, monkeypatch):
    """Given an entry that matches the file byte for byte but belongs to another user (who may
    change it after it is checked), when the packed file is opened, then aksnap does not
    read it: it extracts its own copy."""
    f, entry, _ = packed
    assert open_packed(f) == entry
    theirs = (entry / "tasks.parquet").stat().st_ino
    real = os.getuid()
    monkeypatch.setattr(pack_mod.os, "getuid", lambda: real + 1)  # the entry is now "theirs"
    d = open_packed(f)
    assert (d / "tasks.parquet").stat().st_ino != theirs  # its own copy, wherever it lies
    assert read_manifest(d).tables["tasks"].rows == 14


# -- item 13: a full disk in the cache --------------------------------------------------------

def _full_disk_after(monkeypatch, budget: int) -> None:
    """Writes into the cache fail with ENOSPC once ``budget`` bytes were written."""
    written = [0]
    real_write = os.write

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            written[0] += len(b)
            if written[0] > budget:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return self.f.__exit__(*a)

    real_fdopen = os.fdopen
    monkeypatch.setattr(pack_mod.os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))
    del real_write


@pytest.mark.parametrize("budget", [0, 4000, 15000])
def test_a_full_cache_disk_is_one_sentence_and_leaves_nothing(packed, tmp_path, monkeypatch, budget):
    """Given a cache on a file system that fills up after ``budget`` bytes (ENOSPC on write),
    when analyze and check read the packed file, then each exits non-zero with one sentence
    naming the cache and AKSNAP_CACHE_DIR, no traceback, and the cache holds no entry and no
    partial directory; once space is back, the file opens and answers."""
    f, entry, _ = packed
    _full_disk_after(monkeypatch, budget)
    r = runner.invoke(app, ["analyze", str(f)])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("aksnap: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "No space left on device" in r.stderr and "AKSNAP_CACHE_DIR" in r.stderr
    assert str(tmp_path / "cache") in r.stderr and "Traceback" not in r.output
    r = runner.invoke(app, ["check", str(f)])
    assert r.exit_code != 0 and "Traceback" not in r.output and "No space left" in r.output
    assert not entry.exists() and list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(BundleError, match="AKSNAP_CACHE_DIR"):
        open_packed(f)
    monkeypatch.undo()
    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    assert read_manifest(open_packed(f)).tables["tasks"].rows == 14


def test_a_full_temporary_directory_with_the_cache_off_is_one_sentence(packed, monkeypatch):
    """Given AKSNAP_CACHE_DIR="" (a private temporary directory) on a full disk, then one
    sentence naming the temporary directory, and it is removed."""
    f, _, _ = packed
    monkeypatch.setenv("AKSNAP_CACHE_DIR", "")
    _full_disk_after(monkeypatch, 100)
    with pytest.raises(BundleError, match="No space left on device") as e:
        open_packed(f)
    assert "TMPDIR" in str(e.value) or "AKSNAP_CACHE_DIR" in str(e.value)
    assert not [d for d in pack_mod._private_dirs if os.path.exists(d)]
