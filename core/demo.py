"""``aksnap demo``: the whole loop on a laptop, with no cluster and no argument.

It starts the simulated ArmoniK control plane in-process on a free loopback port with the
``demo`` scenario (a failure chain and a blocked result), exports it through real gRPC into a
bundle (default ``./aksnap-demo/bundle``, replaced on every run), and prints what the
analyzer says about it. Lives in the root package because it is the one place that ties the
three layers together; every import is inside the function bodies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import typer

DEFAULT_OUT = Path("aksnap-demo") / "bundle"


class DemoError(Exception):
    pass


def _check_replaceable(out: Path) -> None:
    """Replace only what a previous demo (or export) wrote: never a folder of the user's."""
    if not out.exists():
        return
    if out.is_dir() and ((out / "manifest.json").is_file() or not any(out.iterdir())):
        return
    raise DemoError(f"{out} exists and is not an aksnap bundle; choose another folder with "
                    "--keep DIR or remove it")


def run_demo(out: Path = DEFAULT_OUT, seed: int = 0, tasks: int | None = None) -> dict[str, Any]:
    """Serve the demo scenario, export it to ``out`` and return what was done (plain data)."""
    from aksnap.exporter import export
    from aksnap.fixtures.scenarios import build_scenario_now
    from aksnap.fixtures.server import SimulatedControlPlane

    out = Path(out)
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # Anchored on the wall clock, as a real cluster is: "PROCESSING for 40 s" then reads true
    # next to the export time.
    scenario = build_scenario_now("demo", seed=seed, tasks=tasks)
    with SimulatedControlPlane(scenario) as cp:
        endpoint = cp.start("127.0.0.1", 0)
        summary = export(endpoint, out, all_sessions=True, overwrite=True)
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


def _analysis(path: Path, truth: dict[str, Any]) -> str:
    """The analyzer's overview, then the lineage of the blocked and of the failed result."""
    from aksnap.analyzer import api

    sections = [_call(api.overview, path)]
    for key, question in (("blocked_result", "why is this result not ready?"),
                          ("failed_result", "why did this result fail?")):
        if truth.get(key):
            sections.append(f"\n== {question} ({truth[key]})\n{_call(api.lineage, path, truth[key])}")
    return "\n".join(sections)


def demo_command(
    keep: Optional[Path] = typer.Option(None, "--keep", help="Write the bundle into DIR and "
                                        "leave it there (default: ./aksnap-demo/bundle, "
                                        "replaced on every run).", show_default=False,
                                        metavar="DIR"),
) -> None:
    """Serve a simulated ArmoniK cluster, export it and show what the analyzer finds.

    No cluster needed: a simulated control plane with a failure chain and a blocked result.

    Example: aksnap demo --keep ./demo-bundle
    """
    from aksnap.cli import fail

    out = keep if keep is not None else DEFAULT_OUT
    try:
        done = run_demo(out)
    except DemoError as e:
        raise fail(str(e))
    from aksnap.bundle import BundleError
    from aksnap.exporter import ExportError

    s = done["summary"]
    typer.echo(f"simulated control plane on {done['endpoint']} (demo scenario); exported "
               f"{s.rows['tasks']} tasks and {s.rows['results']} results in {s.seconds:.2f} s "
               f"to {s.path} ({s.snapshot} snapshot)\n")
    try:
        typer.echo(_analysis(s.path, done["truth"]))
    except (BundleError, ExportError) as e:
        raise fail(str(e), code=1)


def register(app: typer.Typer) -> None:
    """Add ``aksnap demo`` to the app."""
    app.command("demo")(demo_command)
