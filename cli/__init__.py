"""The `aksnap` command line: a thin typer shell over the Python API.

The composition floor (folder ``cli/``): the one package that joins the layers. Each layer
registers its own commands (``aksnap.exporter.commands``, ``aksnap.analyzer.commands``,
``aksnap.fixtures.commands``, ``aksnap.pack``, ``aksnap.redact``); ``aksnap.cli.demo`` and
``aksnap.cli.watch`` live here because they import several layers. Commands are declared as
data (``aksnap.options``: parameters, the shared option groups) and the analyzer's all come
from one registry (``aksnap.analyzer.registry``); ``docs/architecture.md`` maps the floors.
Nothing below imports this package (``tests/test_layers.py``). Heavy imports stay inside the command bodies so that
`aksnap sql` never loads gRPC and `aksnap export` never loads DuckDB.
"""

from __future__ import annotations

import sys

import typer
from typer import _click as click
from typer.core import TyperGroup, TyperOption
from typer.exceptions import Abort

from aksnap import __version__
from aksnap.errors import AksnapError


class AksnapGroup(TyperGroup):
    """The root command, and the one place an error becomes a message and an exit code.

    Every error a user can see is an :class:`~aksnap.errors.AksnapError` raised below (the
    layers never print one nor exit): caught here once, it is one line, ``aksnap: error:
    <sentence>``, and its ``exit_code``. A usage mistake (an unknown option, ``--jobs many``,
    a missing argument) is one such line too, with exit code 2, instead of click's boxed usage
    panel; Ctrl-C is ``aksnap: interrupted``, 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except Abort:
            typer.echo("aksnap: interrupted", err=True)
            sys.exit(130)
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.ClickException as e:
            fail(usage_sentence(e), code=e.exit_code)
            sys.exit(e.exit_code)
        except AksnapError as e:
            fail(str(e), code=e.exit_code)
            sys.exit(e.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


def usage_sentence(e: "click.exceptions.ClickException") -> str:
    """click's message as one sentence, pointing at the command's help (unless it is a whole
    sentence already: a path of the wrong kind, ``aksnap.paths``)."""
    if getattr(e, "whole_sentence", False):
        return e.format_message()
    msg = " ".join(e.format_message().split())
    msg = msg[:1].lower() + msg[1:]
    ctx = getattr(e, "ctx", None)
    where = ctx.command_path if ctx is not None else "aksnap"
    return f"{msg.rstrip('.')}; see `{where} -h`"


def _flag_type(self, ctx):
    # A boolean flag takes no value: show no "<bool>" beside it in the help.
    if self.is_flag and self.metavar is None:
        return None
    return _display_type_rich(self, ctx)


_display_type_rich = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type

app = typer.Typer(
    cls=AksnapGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    name="aksnap",
    help="armonik-snapshot: export ArmoniK sessions into Parquet bundles and diagnose them "
         "offline (lineage, blockers, root causes, critical path).\n\n"
         "Example: aksnap demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """armonik-snapshot: export ArmoniK sessions into Parquet bundles and diagnose them offline."""


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print ``aksnap: error: MESSAGE`` on stderr and return the exit to raise.

    Called by :class:`AksnapGroup` only: a command or a layer raises an
    :class:`~aksnap.errors.AksnapError` instead, which ends here. Messages quote ids, paths
    and server replies, so control characters, DEL, C1 and bidi overrides in them are shown
    escaped (``\\x1b``, ``\\u202e``), never sent to the terminal. Newlines and tabs stay: a
    database error may span lines and cannot drive a terminal.
    """
    from aksnap.output import safe_text

    typer.echo("aksnap: error: " + safe_text(str(message), keep="\n\t"), err=True)
    return typer.Exit(code)


@app.command("version")
def version() -> None:
    """Print aksnap's version and the bundle format version it writes and reads.

    Example: aksnap version
    """
    from aksnap.bundle import FORMAT_VERSION

    typer.echo(f"aksnap {__version__} (bundle format {FORMAT_VERSION})")


def _register() -> None:
    from aksnap import pack, redact
    from aksnap.analyzer import commands as analyzer_commands
    from aksnap.exporter import commands as exporter_commands
    from aksnap.fixtures import commands as fixture_commands

    from . import demo, serve, sessions, watch

    for module in (fixture_commands, exporter_commands, analyzer_commands,
                   sessions,  # a bundle, or a control plane: both layers
                   demo, watch, serve,  # these tie the layers together: this floor
                   pack, redact):  # sharing a bundle (docs/sharing.md): format-level
        module.register(app)


_register()


def _unwrap_help(typer_app: typer.Typer) -> None:
    """Every command's help as the terminal wraps it (:func:`aksnap.options.help_text`): the
    docstrings are hard-wrapped at about 95 columns, which rich would keep as line breaks
    (ragged at 80 columns, narrow at 200); a list of commands shows each one's first
    sentence."""
    import inspect

    from aksnap.options import help_text, short_help

    for info in typer_app.registered_commands:
        info.help = help_text(info.help if info.help is not None
                              else inspect.getdoc(info.callback) or "")
        if info.short_help is None:
            info.short_help = short_help(info.help)
    for group in typer_app.registered_groups:
        sub = group.typer_instance
        if sub is not None:
            sub.info.help = help_text(sub.info.help) if isinstance(sub.info.help, str) \
                else sub.info.help
            _unwrap_help(sub)


_unwrap_help(app)


class _WithoutPandas:
    """A meta-path finder that refuses pandas. pyarrow imports pandas, when it is installed, at
    its first conversion just to check whether it was handed a pandas object (0.3-0.5 s of
    every command); the aksnap process never hands it one. Installed by :func:`main` only, so
    the Python API in a notebook keeps pyarrow's pandas integration."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("the aksnap command line does not use pandas")
        return None


def main() -> None:
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _WithoutPandas())
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("aksnap: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
