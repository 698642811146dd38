"""``aksnap X`` imports X's module only, and ``aksnap --help`` still lists every command.

The list comes from a static table (:mod:`aksnap.cli.catalog`: name -> module, line of help)
so that the help imports no command module. A table can go stale: the first test registers
every module in full and compares.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys

import typer

from aksnap.cli import _unwrap_help
from aksnap.cli.catalog import COMMANDS, MODULES


def _registered() -> dict[str, tuple[str, str]]:
    """What the modules register, in the table's shape: each module on an app of its own."""
    commands, groups = {}, {}
    for module in MODULES:
        t = typer.Typer()
        t.callback()(lambda: None)
        importlib.import_module(module).register(t)
        _unwrap_help(t.registered_commands, t.registered_groups)
        group_names = {g.name or g.typer_instance.info.name for g in t.registered_groups}
        for name, cmd in typer.main.get_command(t).commands.items():
            line = inspect.cleandoc(cmd.short_help or cmd.help or "").split("\n\n")[0].strip()
            (groups if name in group_names else commands)[name] = (module, line)
    return {**commands, **groups}  # typer lists a group after the commands


def test_the_catalog_is_what_the_modules_register():
    """Given every command module registered in full, then the catalog has exactly their
    commands, in the order of the help, each with its module and the line the list shows."""
    registered = _registered()
    for name, entry in registered.items():
        assert COMMANDS.get(name) == entry, (
            f"cli/catalog.py is stale for `aksnap {name}`; its entry is:\n"
            f"    {name!r}: {entry!r},")
    assert list(COMMANDS) == list(registered), "cli/catalog.py: commands gone or out of order"


_PROBE = """
import json, sys
from aksnap.cli import app, main, register_all
from aksnap.cli.catalog import MODULES
if sys.argv[1] == "all":
    register_all()
try:
    sys.argv = ["aksnap", *sys.argv[2:]]
    main()
except SystemExit:
    pass
print(json.dumps([m for m in (*MODULES, "duckdb", "grpc") if m in sys.modules]), file=sys.stderr)
"""


def _run(mode: str, *args: str) -> tuple[str, list[str]]:
    r = subprocess.run([sys.executable, "-c", _PROBE, mode, *args], capture_output=True,
                       text=True, env={**os.environ, "COLUMNS": "100", "TERM": "dumb"})
    return r.stdout, json.loads(r.stderr.strip().splitlines()[-1])


def test_help_lists_every_command_and_imports_none():
    """Given `aksnap --help`, then it prints what the app with every module registered prints,
    and no command module (nor DuckDB, nor gRPC) was imported."""
    lazy, imported = _run("lazy", "--help")
    eager, _ = _run("all", "--help")
    assert imported == []
    assert lazy == eager
    for name in COMMANDS:
        assert f" {name} " in lazy


def test_a_command_imports_its_module_only():
    """Given `aksnap export -h` and `aksnap sql -h`, then each imports its own module and no
    other command module (the export no DuckDB, the analyzer's command no gRPC)."""
    _, imported = _run("lazy", "export", "-h")
    assert imported == ["aksnap.exporter.commands"]
    _, imported = _run("lazy", "sql", "-h")
    assert imported == ["aksnap.analyzer.commands"]
