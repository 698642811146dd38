"""One error path: every error a user can see is an ``AksnapError`` (``aksnap.errors``), raised
by the layers and caught once, by the CLI entry (``aksnap.cli.AksnapGroup.main``), which prints
``aksnap: error: <sentence>`` and exits with the error's ``exit_code``."""

import importlib
import inspect
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from aksnap.cli import AksnapGroup
from aksnap.errors import AksnapError, Interrupted, OptionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_layers import MODS  # noqa: E402 - every module of the package, as pyproject maps them

# Exceptions that never reach a user as such, each with the reason.
INTERNAL = {
    "aksnap.packed._NotRegular": "an OSError in the packed-file reader, said as a BundleError",
    "aksnap.thrift_compact.ThriftError": "a Parquet footer's bytes; parquet_verify says it as a "
                                         "BundleError",
    "aksnap.parquet_verify._FlatbufferError": "ARROW:schema's bytes; parquet_verify says it as "
                                              "a check problem",
    "aksnap.exporter.api.ExportInterrupted": "a KeyboardInterrupt for Python callers; the export "
                                             "command says it as an Interrupted",
    "aksnap.fixtures.events.StreamDropped": "the simulated server dropping an event stream",
    "aksnap.fixtures.filters.FilterError": "the simulated server's INVALID_ARGUMENT, over gRPC",
    "aksnap.fixtures.wire.Abort": "the simulated server ending a call with a gRPC status",
}


def test_every_error_a_user_can_see_is_an_aksnap_error():
    """Given every module of the package, when every exception class it defines is listed,
    then each is an AksnapError, or is internal (never reaches a user) for a stated reason."""
    found, strays = set(), []
    for name in MODS:
        if name == "aksnap.__main__":
            continue  # runs the CLI when imported
        module = importlib.import_module(name)
        for attr, c in vars(module).items():
            if inspect.isclass(c) and issubclass(c, BaseException) and c.__module__ == name:
                found.add(f"{name}.{attr}")
                if not issubclass(c, AksnapError) and f"{name}.{attr}" not in INTERNAL:
                    strays.append(f"{name}.{attr}")
    assert not strays, f"make these subclass aksnap.errors.AksnapError: {strays}"
    assert set(INTERNAL) <= found, f"stale INTERNAL entries: {set(INTERNAL) - found}"
    assert {"aksnap.errors.BundleError", "aksnap.analyzer.snapshot.AnalysisError",
            "aksnap.exporter.client.ExportError", "aksnap.cli.watch.WatchError"} <= found


@pytest.mark.parametrize("error, code", [
    (AksnapError("a bad value \x1b[2J"), 2),
    (OptionError("--x must be >= 0"), 2),
    (AksnapError("the cluster went away", exit_code=1), 1),
    (Interrupted("interrupted; nothing was written to out"), 130),
])
def test_the_cli_entry_says_any_aksnap_error_once_with_its_exit_code(error, code):
    """Given a command that raises an AksnapError (no `fail`, no try/except of its own),
    when the root command runs it, then stderr holds one line `aksnap: error: <sentence>`
    (control characters escaped), stdout nothing, and the exit code is the error's."""
    app = typer.Typer(cls=AksnapGroup, add_completion=False)

    @app.command("boom")
    def boom() -> None:
        raise error

    @app.command("other")
    def other() -> None:
        pass

    r = CliRunner().invoke(app, ["boom"])
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    assert isinstance(r.exception, SystemExit)
    assert r.stdout == ""
    assert r.stderr == f"aksnap: error: {str(error).replace(chr(27), chr(92) + 'x1b')}\n"


def test_subclasses_keep_their_exit_codes_and_python_types():
    """The classes the Python API has always raised keep their names, places, exit codes and
    (for FormatError and SectionError) their ValueError base."""
    from aksnap.analyzer.common import SectionError
    from aksnap.bundle import BundleError
    from aksnap.cli.demo import DemoError
    from aksnap.cli.watch import WatchError
    from aksnap.exporter.client import ConnectionSettingsError, ExportError, SelectionError
    from aksnap.output import FormatError
    from aksnap.paths import PathError

    assert BundleError("x").exit_code == 2 and ExportError("x").exit_code == 1
    assert SelectionError("x").exit_code == 2 and ConnectionSettingsError("x").exit_code == 2
    assert WatchError("x").exit_code == 2 and WatchError("x", exit_code=1).exit_code == 1
    assert DemoError("x").exit_code == 2 and Interrupted("x").exit_code == 130
    assert issubclass(FormatError, ValueError) and issubclass(SectionError, ValueError)
    assert issubclass(PathError, AksnapError) and PathError("x").exit_code == 2
    assert str(BundleError("one sentence")) == "one sentence"
    import aksnap.bundle_format
    import aksnap.errors

    assert BundleError is aksnap.errors.BundleError is aksnap.bundle_format.BundleError
