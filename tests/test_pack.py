"""Packed bundles (``aksnap pack``, ``aksnap unpack``, any command on a packed file): one file
that round-trips, and a stranger's crafted file refused with a sentence, nothing written
outside the cache (docs/sharing.md)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aksnap.analyzer.snapshot import Snapshot
from aksnap.analyzer.testing import failure_bundle
from aksnap.bundle import TABLES, BundleError, OpenBundle, read_manifest
from aksnap.cli import app
from aksnap.pack import open_packed, pack, unpack

runner = CliRunner()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AKSNAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AK_OUTPUT", raising=False)


@pytest.fixture
def fb(tmp_path):
    return failure_bundle(tmp_path / "fb")


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_pack_round_trips_and_every_command_reads_the_file(fb, tmp_path):
    """Given a bundle, when packed, then the file is a stored zip with the manifest first,
    analyze answers on it as on the folder, Snapshot/OpenBundle open it, and unpack gives
    back the same bytes."""
    r = runner.invoke(app, ["pack", str(fb), "--out", str(tmp_path / "fb.aksnap"), "-o", "json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    f = tmp_path / "fb.aksnap"
    assert info["bytes"] == f.stat().st_size and info["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    with zipfile.ZipFile(f) as z:
        names = [i.filename for i in z.infolist()]
        assert names[0] == "manifest.json" and set(names[1:]) == {f"{t}.parquet" for t in TABLES}
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    # the findings' next commands name the bundle they were asked of: the same once named alike
    a = json.loads(runner.invoke(app, ["analyze", str(fb), "-o", "json"]).stdout.replace(str(fb), "B"))
    b = json.loads(runner.invoke(app, ["analyze", str(f), "-o", "json"]).stdout.replace(str(f), "B"))
    a.pop("bundle"), b.pop("bundle")
    assert a == b
    with Snapshot.open(f) as snap:
        assert snap.sql("SELECT count(*) AS n FROM tasks").to_pylist() == [{"n": 14}]
    OpenBundle.open(f).close()
    assert read_manifest(f).tables["tasks"].rows == 14
    out = unpack(f, tmp_path / "again")
    for name in ["manifest.json"] + [f"{t}.parquet" for t in TABLES]:
        if name != "manifest.json":
            assert (out / name).read_bytes() == (fb / name).read_bytes()
    assert _tree(tmp_path / "cache") == {f"packed-{info['sha256']}", *(
        f"packed-{info['sha256']}/{n}" for n in ["manifest.json"] + [f"{t}.parquet" for t in TABLES])}


def test_packing_twice_gives_the_same_file(fb, tmp_path):
    a, b = pack(fb, tmp_path / "a.aksnap"), pack(fb, tmp_path / "b.aksnap")
    assert a.sha256 == b.sha256


def test_max_size_refuses_and_says_what_would_fit(fb, tmp_path):
    r = runner.invoke(app, ["pack", str(fb), "--out", str(tmp_path / "x.aksnap"), "--max-size", "10KB"])
    assert r.exit_code == 2 and r.stderr.startswith("aksnap: error: the packed file would be")
    assert "over --max-size 10.0 KB" in r.stderr and "--session" in r.stderr
    assert not (tmp_path / "x.aksnap").exists() and not list(tmp_path.glob(".x.aksnap*"))
    r = runner.invoke(app, ["pack", str(fb), "--out", str(tmp_path / "x.aksnap"), "--max-size", "lots"])
    assert r.exit_code == 2 and "not a size" in r.stderr
    assert runner.invoke(app, ["pack", str(fb), "--out", str(tmp_path / "x.aksnap"),
                               "--max-size", "1MiB"]).exit_code == 0


def test_concurrent_openings_share_one_extraction(fb, tmp_path):
    """Given 6 threads opening the same packed file at once, then all get the same complete
    directory and no temporary directory is left in the cache."""
    f = pack(fb, tmp_path / "fb.aksnap").path
    got, errors = [], []

    def run():
        try:
            got.append(open_packed(f))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(got)) == 1
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [got[0].name]


def test_cache_off_extracts_into_a_private_temporary_directory(fb, tmp_path, monkeypatch):
    f = pack(fb, tmp_path / "fb.aksnap").path
    monkeypatch.setenv("AKSNAP_CACHE_DIR", "")
    d = open_packed(f)
    assert d.is_dir() and read_manifest(d).tables["tasks"].rows == 14
    assert not (tmp_path / "cache").exists()


# -- crafted files ---------------------------------------------------------------------------

def _members(fb: Path) -> list[tuple[str, bytes]]:
    return [("manifest.json", (fb / "manifest.json").read_bytes())] + [
        (f"{t}.parquet", (fb / f"{t}.parquet").read_bytes()) for t in TABLES]


def _zip(path: Path, members, compress=zipfile.ZIP_STORED, mode=None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = compress
            zi.create_system = 3
            zi.external_attr = ((mode or {}).get(name, stat.S_IFREG | 0o644)) << 16
            z.writestr(zi, data)
    return path


def _crafted(kind: str, fb: Path, d: Path) -> Path:
    m = _members(fb)
    p = d / f"{kind}.aksnap"
    outside = str(d / "outside" / "evil")
    if kind == "zip-slip":
        return _zip(p, m + [("../outside/evil", b"x")])
    if kind == "absolute path":
        return _zip(p, m + [(outside, b"x")])
    if kind == "symlink":
        return _zip(p, m[:-1] + [(m[-1][0], outside.encode())],
                    mode={m[-1][0]: stat.S_IFLNK | 0o777})
    if kind == "device":
        return _zip(p, m[:-1] + [m[-1]], mode={m[-1][0]: stat.S_IFCHR | 0o666})
    if kind == "duplicate":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _zip(p, m + [m[1]])
    if kind == "missing member":
        return _zip(p, m[:-1])
    if kind == "extra member":
        return _zip(p, m + [("notes.txt", b"hi")])
    if kind == "larger than the manifest":
        return _zip(p, m[:2] + [(m[2][0], m[2][1] + b"\0" * 10)] + m[3:])
    if kind == "zip bomb":
        return _zip(p, m[:2] + [(m[2][0], b"\0" * 50_000_000)] + m[3:], compress=zipfile.ZIP_DEFLATED)
    if kind == "truncated":
        good = pack(fb, d / "good.aksnap").path.read_bytes()
        p.write_bytes(good[: len(good) // 2])
        return p
    if kind == "truncated tail":
        good = pack(fb, d / "good2.aksnap").path.read_bytes()
        p.write_bytes(good[:-10])
        return p
    if kind == "wrong checksum":
        data = bytearray(m[2][1])
        data[len(data) // 2] ^= 0xFF  # the zip's CRC is recomputed; the manifest's SHA-256 is not
        return _zip(p, m[:2] + [(m[2][0], bytes(data))] + m[3:])
    if kind == "corrupt crc":
        good = bytearray(pack(fb, d / "good3.aksnap").path.read_bytes())
        i = good.find(b"PAR1", 200) + 300
        good[i] ^= 0xFF
        p.write_bytes(bytes(good))
        return p
    if kind == "not a zip":
        p.write_bytes(b"PK\x03\x04" + b"garbage" * 100)
        return p
    raise AssertionError(kind)


KINDS = ["zip-slip", "absolute path", "symlink", "device", "duplicate", "missing member",
         "extra member", "larger than the manifest", "zip bomb", "truncated", "truncated tail",
         "wrong checksum", "corrupt crc", "not a zip"]


@pytest.mark.parametrize("kind", KINDS)
def test_crafted_packed_files_are_refused_with_a_sentence(kind, fb, tmp_path):
    """Given a crafted packed file, when analyze, check and unpack read it, then each exits
    non-zero with one `aksnap: error:` sentence (check: exit 1, the sentence as its finding),
    no traceback, and nothing is written anywhere: not outside the cache, not in it."""
    d = tmp_path / "d"
    d.mkdir()
    f = _crafted(kind, fb, d)
    before = _tree(tmp_path)
    for argv in (["analyze", str(f)], ["unpack", str(f), "--out", str(tmp_path / "u")],
                 ["lineage", str(f), "r6"]):
        r = runner.invoke(app, argv)
        assert r.exit_code == 2, (argv, r.output)
        assert r.stderr.startswith("aksnap: error: ") and r.stderr.count("\n") == 1, r.stderr
        assert "Traceback" not in r.output
    r = runner.invoke(app, ["check", str(f)])
    assert r.exit_code == 1 and "Traceback" not in r.output and "refused" in r.stdout + r.stderr
    after = _tree(tmp_path)
    new = after - before
    assert new <= {"cache"}, new  # at most the (empty) cache folder itself
    assert not (d / "outside").exists() and not (tmp_path / "u").exists()
    with pytest.raises(BundleError, match="refused as a packed bundle"):
        open_packed(f)


def test_a_cached_extraction_removed_by_hand_is_extracted_again(fb, tmp_path):
    f = pack(fb, tmp_path / "fb.aksnap").path
    d = open_packed(f)
    os.unlink(d / "tasks.parquet")
    assert open_packed(f) == d and (d / "tasks.parquet").is_file()


def test_unpack_overwrite_replaces_only_a_bundle(tmp_path):
    """Given a bundle at --out, `unpack --overwrite` replaces it atomically; a folder that is
    not a bundle is refused even with --overwrite, and its files survive."""
    from aksnap.analyzer.testing import failure_bundle

    fb = failure_bundle(tmp_path / "fb")
    packed = tmp_path / "fb.aksnap"
    assert runner.invoke(app, ["pack", str(fb), "--out", str(packed)]).exit_code == 0
    other = failure_bundle(tmp_path / "other")
    r = runner.invoke(app, ["unpack", str(packed), "--out", str(other)])
    assert r.exit_code == 2 and "already exists" in r.stderr
    r = runner.invoke(app, ["unpack", str(packed), "--out", str(other), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert (other / "manifest.json").read_bytes() == (fb / "manifest.json").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fb", "fb.aksnap", "other"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    r = runner.invoke(app, ["unpack", str(packed), "--out", str(mine), "--overwrite"])
    assert r.exit_code == 2 and "not an aksnap bundle" in r.stderr
    assert (mine / "notes.txt").read_text() == "keep me"
