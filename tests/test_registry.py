"""Every command of the analyzer is registered once (analyzer/registry.py), and the command line
and the Python API are made from that one declaration (issue 18, item 3).

Walks the typer app: a command that is neither in the registry nor listed below with the
reason it is not an analysis fails here, so no command is wired by hand again. Then, for each
registered command: its typer parameters are its declaration's, in order; the API has its
function with the same parameters under their build names; and the options several commands
share (output, bundle, --no-verify, connection) have one declaration each.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time

import pytest
import typer
from typer.testing import CliRunner

from aksnap.analyzer import api, compare
from aksnap.analyzer.registry import COMMANDS
from aksnap.analyzer.testing import failure_bundle
from aksnap.cli import app

runner = CliRunner()

#: commands that are not analyses of a bundle, and why they are not in the registry
NOT_REGISTERED = {
    "version": "prints one line; reads nothing",
    "simulate": "the simulated control plane (aksnap.fixtures): serves until Ctrl-C",
    "export": "talks gRPC and writes a bundle (aksnap.exporter); declared as data in "
              "exporter/commands.py, with the connection group it shares with watch",
    "pack": "format floor (aksnap.pack): one bundle to one file, no answer to render",
    "unpack": "format floor (aksnap.pack): the reverse of pack",
    "redact": "format floor (aksnap.redact): writes a bundle, answers nothing",
    "watch": "composition floor: joins the exporter and the analyzer, follows a live cluster",
    "demo": "composition floor: serves, exports and analyses; calls the API generated here",
    "serve": "composition floor: serves the report's page over HTTP, live from the watch "
             "engine; its drill-downs run the registry's lineage and task",
}


def leaf_commands(group, prefix=()) -> dict[str, object]:
    """Every command of a click group, by its words (``archive add``)."""
    out = {}
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            out.update(leaf_commands(cmd, (*prefix, name)))
        else:
            out[" ".join((*prefix, name))] = cmd
    return out


def unaccounted(group) -> set[str]:
    """Commands of ``group`` neither registered nor listed in NOT_REGISTERED."""
    return set(leaf_commands(group)) - set(COMMANDS) - set(NOT_REGISTERED)


CLI = leaf_commands(typer.main.get_command(app))


def test_every_command_is_registered_or_says_why_not():
    """Given the aksnap app, then each of its commands is in the registry or is one of the few
    that are not analyses (with the reason), never both, and every registered command is on
    the app."""
    assert not unaccounted(typer.main.get_command(app)), \
        "a command wired by hand: declare it in analyzer/registry.py (or say why not above)"
    assert not set(COMMANDS) & set(NOT_REGISTERED)
    assert set(COMMANDS) <= set(CLI)
    assert set(NOT_REGISTERED) <= set(CLI), "stale NOT_REGISTERED entry"
    assert {"compare", "archive add", "archive list", "graph", "trace", "report", "sql",
            "query", "queries"} <= set(COMMANDS)


def test_the_walk_catches_a_hand_written_command():
    """Given an app with the registry's commands plus one written by hand, then the walk names
    that one (the check above can fail)."""
    from aksnap.analyzer import commands

    t = typer.Typer()
    commands.register(t)

    @t.command("rogue")
    def rogue() -> None:
        """Example: aksnap rogue"""

    assert unaccounted(typer.main.get_command(t)) == {"rogue"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_command_is_made_from_its_declaration(name):
    """Given a registered command, then its typer command has exactly the declared parameters
    in the declared order (the bundles, its own, the output group, --no-verify) and its help."""
    from aksnap.options import help_text

    cmd, made = COMMANDS[name], CLI[name]
    declared = [p.dest for p in cmd.cli_params()]
    made_params = [p.name for p in made.params if p.name != "help"]
    if cmd.made_by is not None:
        # made by its module of the composition floor (sessions: a bundle or --endpoint): the
        # declaration's parameters in order, the connection group among them
        from aksnap.exporter.commands import CONNECTION

        assert [p for p in made_params if p not in {c.dest for c in CONNECTION}] == declared
        assert {c.dest for c in CONNECTION} <= set(made_params)
    else:
        assert made_params == declared
    assert made.help == help_text(cmd.help)  # hard line breaks joined: rich wraps it
    assert f"Example: aksnap {name}" in made.help


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_python_api_has_the_command(name):
    """Given a registered command, then the API has its function, whose parameters are the
    command's bundles then its build keywords (the command line's values as build receives
    them: --all of lineage is frontier_limit, its default the module's limit), and a
    render_ function."""
    cmd = COMMANDS[name]
    fn = getattr(api, cmd.api_name)
    params = inspect.signature(fn).parameters
    assert list(params) == [*cmd.bundles, *(p.name for p in cmd.params if p.name is not None)]
    for p in cmd.params:
        if p.name is not None and not p.required:
            assert params[p.name].default == p.api_default()
    assert callable(getattr(api, f"render_{cmd.api_name}"))
    assert cmd.api_name in api.__all__


def test_api_defaults_are_the_command_lines():
    """Given the API's defaults, then they are what the command passes when an option is left
    out: lineage describes the module's 50 frontier nodes, blockers shows 20, graph picks the
    format from the suffix, compare's baseline is 10 runs."""
    from aksnap.analyzer import lineage

    sig = {n: inspect.signature(getattr(api, n)).parameters
           for n in ("lineage", "blockers", "graph_file", "compare")}
    assert sig["lineage"]["frontier_limit"].default == lineage.FRONTIER_SHOWN
    assert sig["blockers"]["limit"].default == 20
    assert sig["graph_file"]["fmt"].default is None
    assert sig["compare"]["history"].default == 10 and sig["compare"]["where"].default == ()


# -- the shared option groups ---------------------------------------------------------------------

SHARED = ("--no-verify", "--wide", "--section", "--endpoint", "--config",
          "--certificate-authority", "--client-certificate", "--client-key", "--retry-for")


def _options(spelling: str) -> dict[str, object]:
    return {name: p for name, c in CLI.items() for p in c.params
            if spelling in getattr(p, "opts", [])}


@pytest.mark.parametrize("spelling", SHARED)
def test_a_shared_option_has_one_declaration(spelling):
    """Given an option several commands take, then it reads the same everywhere: one help,
    one metavar, one default, one kind of path."""
    found = _options(spelling)
    assert len(found) >= 2, spelling
    shapes = {(p.help, p.metavar, repr(p.default), p.opts and tuple(sorted(p.opts)),
               getattr(p.callback, "path_kind", None)) for p in found.values()}
    assert len(shapes) == 1, (spelling, shapes)


def test_export_and_watch_take_the_whole_connection_group():
    from aksnap.exporter.commands import CONNECTION

    spellings = [p.cli.param_decls[0] for p in CONNECTION]
    for name in ("export", "watch"):
        opts = {o for p in CLI[name].params for o in getattr(p, "opts", [])}
        assert set(spellings) <= opts, (name, set(spellings) - opts)


def test_every_output_option_is_the_shared_one():
    """Given any command's -o/--output, then it is the shared declaration for its formats."""
    for name, p in _options("--output").items():
        formats = p.metavar.split("|")
        assert p.opts == ["--output", "-o"] and p.help.startswith(
            f"Output format: {', '.join(formats)} (default: $AK_OUTPUT"), name


def test_every_bundle_argument_is_the_shared_one():
    """Given the registered commands' bundle arguments, then each is the one declaration (a
    bundle directory or a packed file, which must exist)."""
    seen = {(p.help, getattr(p.callback, "path_kind", None)) for name in COMMANDS
            for p in CLI[name].params if p.name in COMMANDS[name].bundles}
    assert len(seen) == 1 and "packed file" in next(iter(seen))[0]


# -- behaviour through the declaration ---------------------------------------------------------------

@pytest.fixture(scope="module")
def fb(tmp_path_factory):
    return failure_bundle(tmp_path_factory.mktemp("registry") / "failure.aksnap")


def test_the_api_and_the_command_give_the_same_answer(fb, tmp_path):
    """Given the failure bundle, when archived, compared and queried through the API and
    through the command line, then the answers are the same data."""
    arc = tmp_path / "arc"
    added = api.archive_add(arc, [fb], ["env=ci"])
    assert added[0]["status"] == "added" and added[0]["labels"] == {"env": "ci"}
    runs = json.loads(runner.invoke(app, ["archive", "list", str(arc), "-o", "json"]).stdout)
    assert [r["run_id"] for r in runs] == [r["run_id"] for r in api.archive_list(arc)]
    cli = runner.invoke(app, ["compare", str(arc), "--where", "env=ci", "-o", "json"])
    assert cli.exit_code == 0, cli.output
    data = api.compare(arc, where=["env=ci"])
    assert json.loads(cli.stdout)["verdicts"] == data["verdicts"]
    assert json.loads(data.render("json"))["runs"][0]["run_id"] == runs[0]["run_id"]
    q = "SELECT status, count(*) AS n FROM tasks GROUP BY ALL ORDER BY 1"
    cli = json.loads(runner.invoke(app, ["sql", str(fb), q, "-o", "json"]).stdout)
    assert api.sql(fb, q).to_pylist() == cli
    assert [r["name"] for r in api.queries()] == [
        r["name"] for r in json.loads(runner.invoke(app, ["queries", "-o", "json"]).stdout)]


def test_analyze_of_a_series_goes_through_the_registry(fb, tmp_path):
    """Given a directory of recorded bundles, then `analyze DIR` and api.overview(DIR) are the
    series' states (the registry's series Impl), and -o csv says no section note."""
    import shutil

    d = tmp_path / "series"
    d.mkdir()
    shutil.copytree(fb, d / "00000-a")
    r = runner.invoke(app, ["analyze", str(d), "-o", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["bundles"] == 1 == api.overview(d)["bundles"]


def test_compare_takes_its_options_by_keyword():
    """Given compare.build, then its options cannot be passed by position (12 of them were)."""
    with pytest.raises(TypeError):
        compare.build("arc", ["env=ci"])


def test_watch_forwards_retry_for(tmp_path):
    """Given nothing listening, when `aksnap watch --once` runs without --retry-for, then it
    fails at once; with --retry-for 1 it waits about a second first (the shared connection
    group reaches the watch's calls); --retry-for -1 is refused as export refuses it."""
    argv = [sys.executable, "-m", "aksnap", "watch", "--endpoint", "127.0.0.1:1", "--session",
            "s", "--once"]
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    fast = time.monotonic() - t0
    assert r.returncode == 1 and "nothing accepts connections" in r.stderr, r.stderr
    t0 = time.monotonic()
    r = subprocess.run(argv + ["--retry-for", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "after retrying for 1 s" in r.stderr, r.stderr
    # at least the second it was told to retry for (the start-up of a process alone varies by
    # seconds on a loaded machine: the sentence above says it retried)
    assert time.monotonic() - t0 >= 1.0 and fast >= 0
    r = runner.invoke(app, ["watch", "--endpoint", "127.0.0.1:1", "--session", "s",
                            "--retry-for", "-1"])
    assert r.exit_code == 2 and "--retry-for must be a number of seconds >= 0" in r.stderr


# -- start-up stays lazy ----------------------------------------------------------------------------

def _loaded_after(argv: list[str], modules: tuple[str, ...]) -> list[str]:
    code = ("import sys\nfrom aksnap.cli import main\nsys.argv = ['aksnap', *%r]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print([m for m in %r if m in sys.modules])\n") % (argv, modules)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return json.loads(r.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_export_never_loads_duckdb_nor_the_analyses(tmp_path):
    """Given `aksnap export` (against nothing: it fails after parsing, connecting), then
    neither DuckDB, rustworkx nor any analysis was imported: the registry is declarations."""
    loaded = _loaded_after(["export", "--endpoint", "127.0.0.1:1", "--all", "-q", "--out",
                            str(tmp_path / "b")],
                           ("duckdb", "rustworkx", "aksnap.analyzer.snapshot",
                            "aksnap.analyzer.overview", "aksnap.analyzer.graph"))
    assert loaded == []


def test_queries_never_loads_duckdb():
    assert _loaded_after(["queries"], ("duckdb", "rustworkx")) == []
