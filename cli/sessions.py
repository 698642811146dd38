"""``aksnap sessions``: the sessions of a bundle, or of a control plane, to find an id.

Two forms of one command, so it lives in the composition floor: ``aksnap sessions BUNDLE``
is the registry's declaration (:data:`aksnap.analyzer.registry.COMMANDS` ``["sessions"]``,
run by its generic body; ``api.sessions`` is the same), and ``aksnap sessions --endpoint E``
(or ``AK_ENDPOINT``, ``-c``, armonik-cli's file) asks the control plane through
:func:`aksnap.exporter.listing.list_sessions` and renders its answer the same way. The typer
command is the declaration's parameters with the bundle optional, plus the connection group
(declared once, with ``aksnap export``'s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from aksnap import paths
from aksnap.options import (NO_VERIFY, QUIET, Param, bundle_param, take_quiet, take_verify,
                            typer_function)


def _params() -> tuple:
    from aksnap.analyzer.registry import COMMANDS
    from aksnap.exporter.commands import CONNECTION

    cmd = COMMANDS["sessions"]
    shared = bundle_param("bundle").cli  # the one declaration, made optional (--endpoint)
    bundle = Param("bundle", Optional[Path], typer.Argument(
        None, help=shared.help, show_default=False, metavar="BUNDLE", callback=paths.bundle_in))
    return (bundle, *cmd.params, *CONNECTION, *cmd.output.params(), NO_VERIFY, QUIET)


def sessions_body(values: dict[str, Any]) -> None:
    """A bundle: the registry's command. Else the control plane the connection options
    name (the same resolver as export and watch)."""
    from aksnap.analyzer.commands import run_command
    from aksnap.analyzer.registry import COMMANDS
    from aksnap.errors import OptionError
    from aksnap.exporter.commands import CONNECTION, take_connection

    cmd = COMMANDS["sessions"]
    # given: not its default (--jobs has one, the others None)
    connecting = [p.cli.param_decls[0] for p in CONNECTION
                  if values.get(p.dest) is not None and values.get(p.dest) != p.cli.default]
    if values["bundle"] is not None:
        if connecting:
            raise OptionError(f"aksnap sessions reads a BUNDLE or a control plane, not both; "
                              f"drop {connecting[0]} or the bundle")
        for p in CONNECTION:
            values.pop(p.dest)
        run_command(cmd, values)
        return
    import os

    from aksnap.analyzer.sessions import render
    from aksnap.exporter.commands import notices_on_stderr
    from aksnap.exporter.listing import list_sessions

    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    fmt, section = cmd.output.take(values)
    take_verify(values)
    take_quiet(values)
    options, retry, budget = take_connection(values)
    with notices_on_stderr():
        data = list_sessions(options, limit=cmd.build_kwargs(values)["limit"], retry=retry,
                             budget=budget)
    typer.echo(render(data, fmt, section))


def register(app: typer.Typer) -> None:
    from aksnap.analyzer.registry import COMMANDS

    app.command("sessions")(typer_function("sessions", COMMANDS["sessions"].help, _params(),
                                           sessions_body))
