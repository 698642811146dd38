"""The `aksnap` command line: a thin typer shell over the Python API.

The composition floor (folder ``cli/``): the one package that joins the layers. Each layer
registers its own commands (``aksnap.exporter.commands``, ``aksnap.analyzer.commands``,
``aksnap.fixtures.commands``, ``aksnap.pack``, ``aksnap.redact``); ``aksnap.cli.demo`` and
``aksnap.cli.watch`` live here because they import several layers. Commands are declared as
data (``aksnap.options``: parameters, the shared option groups) and the analyzer's all come
from one registry (``aksnap.analyzer.registry``); ``docs/architecture.md`` maps the floors.
Nothing below imports this package (``tests/test_layers.py``). ``aksnap X`` imports X's module
only (:class:`LazyGroup`, the table of :mod:`aksnap.cli.catalog`: importing every module made
``aksnap --help`` 0.50 s of CPU and ``aksnap export --help`` 0.64 s, 0.21 and 0.35 s now), and
heavy imports stay inside the command bodies, so that `aksnap sql` never loads gRPC and
`aksnap export` never loads DuckDB.
"""

from __future__ import annotations

import sys

import typer
from typer import _click as click
from typer.core import TyperCommand, TyperGroup, TyperOption
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


class LazyGroup(AksnapGroup):
    """The root command: ``aksnap X`` imports X's module only (the others cost 0.1-0.5 s of
    imports, and would load DuckDB's or gRPC's dependants for nothing).

    Until a command is run its entry is a placeholder made from :mod:`aksnap.cli.catalog`
    (its name and line of help), enough for ``aksnap --help`` and for suggestions on a typo.
    Resolving a name to run it imports its module, which registers its commands on the app;
    the placeholders of that module are replaced by the real commands. ``commands``, read
    from outside, is every real command (all modules imported): what a walk over the app
    (the tests, the docs) expects."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from aksnap.cli.catalog import COMMANDS

        built = self._commands
        placeholders = {name: _Placeholder(name, module, line)
                        for name, (module, line) in COMMANDS.items() if name not in built}
        # the help's order whatever was registered already: the app's own, then the table's
        order = [n for n in built if n not in COMMANDS] + list(COMMANDS)
        self._commands = {n: built.get(n) or placeholders[n] for n in order}

    @property
    def commands(self):
        if not self._names_only:
            self._load(*dict.fromkeys(c.module for c in self._commands.values()
                                      if isinstance(c, _Placeholder)))
        return self._commands

    @commands.setter
    def commands(self, value) -> None:
        self._commands = value

    _names_only = False

    def _load(self, *modules: str) -> None:
        """Import ``modules`` and put their real commands in place of their placeholders."""
        import typer.main

        for module in modules:
            register(module)
        names = [n for n, c in self._commands.items()
                 if isinstance(c, _Placeholder) and c.module in modules]
        if names:
            built = typer.main.get_group_from_info(
                typer.models.TyperInfo(_app_of(names)),
                pretty_exceptions_short=app.pretty_exceptions_short,
                rich_markup_mode=app.rich_markup_mode, suggest_commands=app.suggest_commands)
            for name in names:
                self._commands[name] = built.commands[name]

    def add_command(self, cmd, name=None) -> None:
        self._commands[name or cmd.name] = cmd

    def get_command(self, ctx, cmd_name):
        return self._commands.get(cmd_name)

    def list_commands(self, ctx) -> list[str]:
        return list(self._commands)

    def resolve_command(self, ctx, args):
        cmd = self._commands.get(args[0]) if args else None
        if isinstance(cmd, _Placeholder):
            self._load(cmd.module)
        self._names_only = True  # a typo's suggestions need the names, not every module
        try:
            return super().resolve_command(ctx, args)
        finally:
            self._names_only = False


class _Placeholder(TyperCommand):
    """A command not imported yet: its name and line of help, for the list of commands."""

    def __init__(self, name: str, module: str, line: str):
        super().__init__(name, short_help=line, help=line)
        self.module = module


def _app_of(names: list[str]) -> typer.Typer:
    """A typer app holding the app's commands and groups named ``names`` (a callback makes it
    a group even for one command)."""
    t = typer.Typer()
    t.callback()(lambda: None)
    t.registered_commands = [c for c in app.registered_commands if c.name in names]
    t.registered_groups = [g for g in app.registered_groups
                           if (g.name or g.typer_instance.info.name) in names]
    return t


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
    cls=LazyGroup,
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


def _unwrap_help(commands: list, groups: list) -> None:
    """Every command's help as the terminal wraps it (:func:`aksnap.options.help_text`): the
    docstrings are hard-wrapped at about 95 columns, which rich would keep as line breaks
    (ragged at 80 columns, narrow at 200); a list of commands shows each one's first
    sentence."""
    import inspect

    from aksnap.options import help_text, short_help

    for info in commands:
        info.help = help_text(info.help if info.help is not None
                              else inspect.getdoc(info.callback) or "")
        if info.short_help is None:
            info.short_help = short_help(info.help)
    for group in groups:
        sub = group.typer_instance
        if sub is not None:
            sub.info.help = help_text(sub.info.help) if isinstance(sub.info.help, str) \
                else sub.info.help
            _unwrap_help(sub.registered_commands, sub.registered_groups)


_unwrap_help(app.registered_commands, app.registered_groups)
_registered: set[str] = set()


def register(module: str) -> None:
    """Import ``module`` (one of :data:`aksnap.cli.catalog.MODULES`) and register its commands
    on the app, once."""
    import importlib

    if module in _registered:
        return
    n_commands, n_groups = len(app.registered_commands), len(app.registered_groups)
    importlib.import_module(module).register(app)
    _registered.add(module)
    commands = app.registered_commands[n_commands:]
    groups = app.registered_groups[n_groups:]
    _unwrap_help(commands, groups)


def register_all() -> None:
    """Every command on the app (what ``aksnap X`` does for X's module alone)."""
    from aksnap.cli.catalog import MODULES

    for module in MODULES:
        register(module)


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
