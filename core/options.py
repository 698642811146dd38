"""The command line's vocabulary, declared once for every floor: a typed parameter
(:class:`Param`), the option groups several commands share (the output group ``-o/--wide/
--section``, the bundle argument and ``--no-verify``), and :func:`typer_function`, which makes
a typer command from a list of them.

A command is declared as data (its parameters, in order) and one body taking their values as
a dict; the typer function, its signature and its help are generated. The analyzer's registry
(:mod:`aksnap.analyzer.registry`), ``aksnap export`` (:mod:`aksnap.exporter.commands`, which
also declares the connection group) and ``aksnap watch`` are made this way, so an option two
commands share has one declaration: one spelling, one help text, one check.

Cheap to import (typer only): nothing here reads a bundle.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import typer

from aksnap import paths
from aksnap.output import FORMATS, output_option, resolve_format, set_wide, wide_option


@dataclass(frozen=True)
class Param:
    """One argument or option of a command.

    ``dest`` is its key in the values the body receives (the typer parameter name);
    ``cli`` the ``typer.Argument(...)``/``typer.Option(...)`` that says how it is spelled;
    ``name`` the keyword it becomes for the command's ``build`` (and the Python API), None
    when only the command uses it (``--dot``, ``--overwrite`` of lineage); ``to_build`` turns
    the command-line value into the build value (``--all`` -> no limit)."""

    dest: str
    annotation: Any
    cli: Any
    name: Optional[str] = None
    to_build: Optional[Callable[[Any], Any]] = None

    def build_value(self, values: dict[str, Any]) -> Any:
        v = values[self.dest]
        return self.to_build(v) if self.to_build else v

    @property
    def required(self) -> bool:
        return self.cli.default is ... or self.cli.default is Ellipsis

    def api_default(self) -> Any:
        """What the Python API uses when the caller leaves it out: the command line's default,
        as the build receives it (``--all`` off -> the module's limit). ``inspect.Parameter.
        empty`` when the parameter is required."""
        if self.required:
            return inspect.Parameter.empty
        d = self.cli.default
        d = tuple(d) if isinstance(d, list) else d  # never a shared mutable default
        return self.to_build(d) if self.to_build else d


# -- the output group ---------------------------------------------------------------------------

def _section_option():
    return typer.Option(None, "--section", help="Only this table of the answer (csv writes one "
                        "table: the first section unless this names another).",
                        show_default=False, metavar="NAME")


def _deprecated_format_option():
    # the first spelling, kept for scripts written before -o; hidden from the help
    return typer.Option(None, "--format", "-f", hidden=True, show_default=False,
                        help="Deprecated: use -o/--output.")


@dataclass(frozen=True)
class OutputGroup:
    """How a command prints its answer: ``-o/--output`` in ``formats`` (armonik-cli's option,
    ``AK_OUTPUT``, any case); with ``section``, ``--section NAME`` (one table of the answer);
    with ``wide``, ``--wide``; with ``deprecated``, the hidden ``--format/-f`` of scripts
    written before ``-o``."""

    formats: tuple[str, ...] = FORMATS
    section: bool = False
    wide: bool = False
    deprecated: bool = False

    def params(self) -> tuple[Param, ...]:
        out = [Param("output", Optional[str], output_option(self.formats))]
        if self.section:
            out.append(Param("section", Optional[str], _section_option()))
        if self.wide:
            out.append(Param("wide", bool, wide_option()))
        if self.deprecated:
            out.append(Param("deprecated_format", Optional[str], _deprecated_format_option()))
        return tuple(out)

    def take(self, values: dict[str, Any]) -> tuple[str, Optional[str]]:
        """Remove the group's values from ``values``; return (format, section). The format is
        -o, else the deprecated --format, else $AK_OUTPUT, else table; a table is cut to the
        terminal unless --wide."""
        output = values.pop("output", None)
        old = values.pop("deprecated_format", None)
        set_wide(bool(values.pop("wide", False)))
        section = values.pop("section", None)
        return resolve_format(output if output is not None else old, self.formats), section


# -- the bundle group ---------------------------------------------------------------------------

def bundle_param(dest: str = "bundle") -> Param:
    """A bundle read by the command: a positional argument (metavar ``dest`` in capitals), a
    bundle directory or a packed file that must exist (:func:`aksnap.paths.bundle_in`)."""
    return Param(dest, Path, typer.Argument(
        ..., help="Bundle directory or packed file (written by `aksnap export` or `aksnap pack`).",
        show_default=False, metavar=dest.upper(), callback=paths.bundle_in))


#: ``--no-verify``, as every command that reads a bundle takes it
NO_VERIFY = Param("no_verify", bool, typer.Option(
    False, "--no-verify", help="Skip the SHA-256 checks of the Parquet files (faster on big "
    "bundles)."))


#: ``--quiet``, as every command that reads a bundle takes it: no progress on stderr (a first
#: open of a big bundle, which builds its index, shows one on a terminal after 2 s)
QUIET = Param("quiet", bool, typer.Option(
    False, "--quiet", "-q", help="No progress on stderr (shown on a terminal while the first open "
    "of a big bundle builds its index)."))


def take_quiet(values: dict[str, Any]) -> bool:
    """Remove ``--quiet`` from ``values``; whether progress is to be hidden."""
    return bool(values.pop("quiet", False))


def take_verify(values: dict[str, Any]) -> bool:
    """Remove ``--no-verify`` from ``values``; whether the checksums are to be checked."""
    return not values.pop("no_verify", False)


# -- making the typer function --------------------------------------------------------------------

_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s")


def help_text(text: str) -> str:
    """A help text as the terminal should wrap it: the source's hard line breaks inside a
    paragraph joined (rich then wraps each paragraph to the terminal's width, 80 columns or
    200); paragraphs (blank lines), list items (``- ``, ``1. ``) and click's ``\\b`` blocks
    keep their lines."""
    out = []
    for para in inspect.cleandoc(text or "").split("\n\n"):
        if para.startswith("\b"):
            out.append(para)
            continue
        lines: list[str] = []
        for line in para.split("\n"):
            if lines and not _ITEM.match(line):
                lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
            else:
                lines.append(line.rstrip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)[.?!](?=\s|$)")


def short_help(text: str) -> str:
    """What a command list shows of a help text: its first sentence."""
    first = help_text(text).split("\n\n")[0]
    m = _SENTENCE_END.search(first)
    return first[:m.end()] if m else first


def typer_function(name: str, help: str, params: Sequence[Param],
                   body: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    """A function typer turns into the command ``name``: one keyword parameter per
    :class:`Param` (in order: the order of the help), its docstring ``help``; calling it calls
    ``body(values)`` with the parsed values by ``dest``."""
    dests = [p.dest for p in params]
    twice = {d for d in dests if dests.count(d) > 1}
    if twice:
        raise ValueError(f"command {name!r} declares {sorted(twice)} twice")

    def command(**values: Any) -> Any:
        return body(values)

    command.__signature__ = inspect.Signature([
        inspect.Parameter(p.dest, inspect.Parameter.KEYWORD_ONLY, default=p.cli,
                          annotation=p.annotation) for p in params])
    command.__annotations__ = {p.dest: p.annotation for p in params}
    command.__doc__ = help_text(help)
    command.__name__ = command.__qualname__ = name.replace("-", "_").replace(" ", "_") + "_command"
    return command


__all__ = ["Param", "OutputGroup", "bundle_param", "NO_VERIFY", "QUIET", "take_quiet", "take_verify", "typer_function",
           "help_text", "short_help"]
