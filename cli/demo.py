"""``aksnap demo``: the whole loop on a laptop, with no cluster and no argument.

It starts the simulated ArmoniK control plane in-process on a free loopback port with the
``demo`` scenario (a failure chain and a blocked result), exports it through real gRPC into a
bundle (default ``./aksnap-demo/bundle``, replaced on every run if it is a bundle; ``--keep
DIR`` is refused if DIR exists, unless ``--overwrite``), and prints what the analyzer says
about it (``-o json|yaml``: one document). Lives in the composition floor (``aksnap.cli``)
because it ties the three layers together; every import of a layer is inside the function
bodies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from aksnap import paths
from aksnap.errors import AksnapError
from aksnap.output import output_option

DEFAULT_OUT = Path("aksnap-demo") / "bundle"
# The demo's summary and analysis as one document, or the text a person reads.
FORMATS = ("table", "json", "yaml")


class DemoError(AksnapError):
    """The demo cannot run as asked (``--keep DIR`` exists); ``exit_code`` 1 when the analysis
    of the bundle it just wrote fails."""


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``out`` unless ``overwrite``, and even then replace only a bundle
    (never a folder of the user's), as ``aksnap export`` does; before any server starts."""
    import os

    from aksnap.bundle_writer import replaceable_problem

    if not os.path.lexists(out):
        return
    if not overwrite:
        raise DemoError(f"{out} already exists; pass --overwrite to replace it, or choose "
                        "another --keep DIR")
    why = replaceable_problem(Path(os.path.abspath(out)))
    if why:
        raise DemoError(why.replace("another --out", "another --keep DIR"))


def run_demo(out: Path | None = None, seed: int = 0, tasks: int | None = None,
             overwrite: bool = False) -> dict[str, Any]:
    """Serve the demo scenario, export it to ``out`` and return what was done (plain data).

    ``out`` None is the demo's own ``./aksnap-demo/bundle``, replaced on every run (if it is a
    bundle); any other existing ``out`` is refused unless ``overwrite``."""
    from aksnap.exporter import export
    from aksnap.fixtures.scenarios import build_scenario_now
    from aksnap.fixtures.server import SimulatedControlPlane

    if out is None:
        out, overwrite = DEFAULT_OUT, True
    out = Path(out)
    _check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # Anchored on the wall clock, as a real cluster is: "PROCESSING for 40 s" then reads true
    # next to the export time.
    scenario = build_scenario_now("demo", seed=seed, tasks=tasks)
    with SimulatedControlPlane(scenario) as cp:
        endpoint = cp.start("127.0.0.1", 0)
        summary = export(endpoint, out, all_sessions=True, overwrite=overwrite)
    return {
        "endpoint": endpoint,
        "bundle": summary.path,
        "summary": summary,
        "truth": scenario.truth,
        "seconds": time.perf_counter() - t0,
    }


def _call(fn: Callable, *args) -> str:
    out = fn(*args)
    if isinstance(out, str):
        return out
    render = getattr(out, "render", None)
    if callable(render):
        return render()
    from aksnap.output import to_json

    return to_json(out)


def _data(fn: Callable, *args) -> Any:
    """An analysis as plain data: its own JSON rendering (durations in seconds), parsed."""
    import json

    out = fn(*args)
    render = getattr(out, "render", None)
    return json.loads(render("json")) if callable(render) else out


QUESTIONS = (("blocked_result", "why is this result not ready?"),
             ("failed_result", "why did this result fail?"))


def _analysis(path: Path, truth: dict[str, Any]) -> str:
    """The analyzer's overview, then the lineage of the blocked and of the failed result."""
    from aksnap.analyzer import api

    sections = [_call(api.overview, path)]
    for key, question in QUESTIONS:
        if truth.get(key):
            sections.append(f"\n== {question} ({truth[key]})\n{_call(api.lineage, path, truth[key])}")
    return "\n".join(sections)


def _document(done: dict[str, Any]) -> dict[str, Any]:
    """The whole demo as one document (``-o json|yaml``): the export's summary, the overview
    and the lineage of the blocked and of the failed result."""
    from aksnap.analyzer import api

    path, truth = done["summary"].path, done["truth"]
    analysis = {"overview": _data(api.overview, path)}
    for key, _ in QUESTIONS:
        if truth.get(key):
            analysis[key] = {"result_id": truth[key], "lineage": _data(api.lineage, path, truth[key])}
    return {"endpoint": done["endpoint"], "scenario": "demo", "export": done["summary"].as_dict(),
            "analysis": analysis}


def demo_command(
    keep: Optional[Path] = typer.Option(None, "--keep", help="Write the bundle into DIR and "
                                        "leave it there; refused if DIR exists, unless "
                                        "--overwrite (default: ./aksnap-demo/bundle, replaced "
                                        "on every run).", show_default=False, metavar="DIR",
                                        callback=paths.dir_out),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the bundle at --keep DIR "
                                   "(only a bundle, never a folder of yours)."),
    output: Optional[str] = output_option(FORMATS),
) -> None:
    """Serve a simulated ArmoniK cluster, export it and show what the analyzer finds.

    No cluster needed: a simulated control plane with a failure chain and a blocked result.
    -o json or yaml prints the export's summary and the analyses as one document.

    Example: aksnap demo --keep ./demo-bundle -o json
    """
    from aksnap.bundle import BundleError
    from aksnap.exporter import ExportError
    from aksnap.output import resolve_format, to_json, to_yaml

    fmt = resolve_format(output, FORMATS)
    done = run_demo(keep, overwrite=overwrite)
    try:
        if fmt != "table":
            doc = _document(done)
            typer.echo(to_json(doc) if fmt == "json" else to_yaml(doc))
            return
        s = done["summary"]
        typer.echo(f"simulated control plane on {done['endpoint']} (demo scenario); exported "
                   f"{s.rows['tasks']} tasks and {s.rows['results']} results in {s.seconds:.2f} s "
                   f"to {s.path} ({s.snapshot} snapshot)\n")
        typer.echo(_analysis(s.path, done["truth"]))
    except (BundleError, ExportError) as e:
        # the bundle the demo just wrote cannot be read back: the demo failed, not the user
        raise DemoError(str(e), exit_code=1) from None


def register(app: typer.Typer) -> None:
    """Add ``aksnap demo`` to the app."""
    app.command("demo")(demo_command)
