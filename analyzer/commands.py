"""CLI commands of aksnap.analyzer (registered by aksnap.cli), made from the registry.

Every command of :data:`aksnap.analyzer.registry.COMMANDS` becomes a typer command
(:func:`make_command`: its parameters, then the shared output group and ``--no-verify``,
declared once in :mod:`aksnap.options`) with one generic body (:func:`run_command`): take the
output options, run the checks that come before any work (``--out``, ``--dot``), open the
bundles and build (:meth:`~aksnap.analyzer.registry.Command.execute`, which also sends a
series recorded by ``aksnap watch --record`` to its own build), render, exit code. DuckDB,
numpy and rustworkx are imported inside the bodies, so `aksnap export` never loads them and
`aksnap sql` never loads the graph. Bad input (missing bundle, other format version, failed
checksum, unknown or ambiguous id, unknown query, bad parameter) is an AksnapError: one
sentence on stderr and exit code 2, said by the CLI entry.
"""

from __future__ import annotations

from typing import Any

import typer

from aksnap.options import take_quiet, take_verify, typer_function

from .registry import COMMANDS, GROUPS, Command


def run_command(cmd: Command, values: dict[str, Any]) -> None:
    """The body of every analyzer command: checks, open and build, render, exit code."""
    fmt, section = cmd.output.take(values)
    verify = take_verify(values)
    quiet = False
    if cmd.bundles:
        from .progress import enable

        quiet = take_quiet(values)
        enable(quiet)
    if cmd.before is not None:
        cmd.before(values)
    answer = cmd.execute([values[b] for b in cmd.bundles], cmd.build_kwargs(values), verify)
    if cmd.after is not None and answer.impl is cmd.impl:
        cmd.after(answer.snaps[0] if answer.snaps else None, answer.data, values)
    text = answer.render(fmt, section)
    for snap in answer.snaps or ():
        note = getattr(snap, "verified_note", None)
        if note and not quiet:  # said, never silent: what this answer's trust rests on
            typer.echo(f"aksnap: note: {snap.path}: {note} (`aksnap check` hashes them again)",
                       err=True)
    if fmt == "csv" and section is None:
        names = [s.name for s in answer.sections()]
        if len(names) > 1:
            typer.echo(f"aksnap: csv is the {names[0]} table; --section NAME for another "
                       f"({', '.join(names[1:])})", err=True)
    typer.echo(text)
    code = cmd.exit_code(answer.data) if cmd.exit_code and answer.impl is cmd.impl else 0
    if code:
        raise typer.Exit(code)


def make_command(cmd: Command):
    """The typer function of ``cmd``: its declared parameters (:meth:`Command.cli_params`)."""
    return typer_function(cmd.name, cmd.help, cmd.cli_params(),
                          lambda values: run_command(cmd, values))


def register(app: typer.Typer) -> None:
    """Add every command of the registry to the aksnap app (a command of two words, such as
    ``archive add``, under its group)."""
    groups: dict[str, typer.Typer] = {}
    for cmd in COMMANDS.values():
        if cmd.made_by is not None:
            continue  # its module of the composition floor registers it
        target = app
        if len(cmd.words) == 2:
            group = cmd.words[0]
            if group not in groups:
                groups[group] = typer.Typer(name=group, no_args_is_help=True, help=GROUPS[group])
                app.add_typer(groups[group])
            target = groups[group]
        target.command(cmd.words[-1])(make_command(cmd))


__all__ = ["make_command", "register", "run_command"]
