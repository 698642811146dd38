"""Both a wheel install and an editable install expose one import root, `aksnap`, from any
working directory, and no repository folder shadows it."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = (
    "import aksnap, aksnap.bundle, aksnap.exporter, aksnap.analyzer, aksnap.fixtures, aksnap.queries;"
    "import aksnap.cli, aksnap.cli.demo, aksnap.cli.watch;"
    "import importlib.util as u, sys, os;"
    "squat = [n for n in ('exporter', 'analyzer', 'fixtures', 'queries', 'core', 'cli')"
    "         if u.find_spec(n)];"
    "assert not squat or os.getcwd() == sys.argv[1], f'generic names squatted: {squat}';"
    "assert not aksnap.__file__.startswith(os.path.join(sys.argv[1], 'aksnap')), 'shadowed';"
    "print(aksnap.__file__)"
)


def _venv(tmp: Path) -> Path:
    # The dependencies are already installed for the running interpreter: expose its
    # site-packages through a plain .pth line (which does not run the .pth hooks found there,
    # so the running environment's own install of aksnap stays invisible). The test checks how
    # *our* distribution is laid out, not that PyPI is reachable.
    venv.EnvBuilder(with_pip=True).create(tmp)
    py = tmp / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site) / "_aksnap_test_deps.pth").write_text("\n".join(deps) + "\n")
    return py


def _pip(py: Path, *args: str) -> None:
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", *args],
                   check=True, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["wheel", "editable"])
def test_install_imports_from_any_directory(tmp_path, mode):
    """Given a fresh venv with the project installed as a wheel or editable,
    when Python starts in an unrelated directory and in the repository root,
    then `aksnap` and its subpackages (the composition floor `aksnap.cli` too) import and the
    CLI answers, as the console script and as `python -m aksnap`."""
    py = _venv(tmp_path / "venv")
    if mode == "wheel":
        out = tmp_path / "dist"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)], check=True)
        wheel = next(out.glob("armonik_snapshot-*.whl"))
        _pip(py, str(wheel))
    else:
        _pip(py, "-e", str(ROOT))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for cwd in (elsewhere, ROOT):
        r = subprocess.run([str(py), "-c", PROBE, str(ROOT)], cwd=cwd, capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        if mode == "wheel":
            assert "site-packages" in r.stdout
    r = subprocess.run([str(py.parent / "aksnap"), "version"], cwd=elsewhere, capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0 and "bundle format" in r.stdout, r.stderr
    # `python -m aksnap` too: core/__main__.py hands over to the composition floor, aksnap.cli
    r = subprocess.run([str(py), "-m", "aksnap", "version"], cwd=elsewhere, capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0 and "bundle format" in r.stdout, r.stderr
    if mode == "wheel":
        r = subprocess.run([str(py), "-c", "import aksnap.queries as q; print(len(q.names()))"],
                           cwd=elsewhere, capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        # the report page's CSS and JavaScript are package data, inlined into every report
        r = subprocess.run([str(py), "-c", "from aksnap.analyzer import report; "
                            "print(len(report._asset('report.js')), len(report._asset('report.css')))"],
                           cwd=elsewhere, capture_output=True, text=True, env=env)
        assert r.returncode == 0 and all(int(n) > 1000 for n in r.stdout.split()), r.stderr
