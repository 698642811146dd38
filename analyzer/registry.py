"""The analyses of one bundle (two for diff), registered once: analyze, lineage, blockers,
critical-path, task, check and diff, each with its name, where its ``build`` and ``render``
live, the options it takes, its help and example. ``aksnap.analyzer.commands`` makes the CLI
commands from this list and ``aksnap.analyzer.api`` the notebook functions, so a new analysis
of this kind is one module (``build(snap, ...) -> data``, ``sections(data)``,
``render(data, fmt, section)``) plus one entry here. The other commands of the analyzer are
not in it yet: sql, query, queries, archive and compare are written out in ``commands.py``,
graph, trace and report in ``visual_commands.py``, and ``analyze`` of a recorded series is
dispatched by hand (``commands.run_analysis``).

Importing this module is cheap (typer only): the analysis modules, numpy and rustworkx are
imported when an analysis runs, so `aksnap sql` never loads them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from aksnap import paths

#: build() keywords that name an id: (its kind, which of the analysis' bundles holds it); a unique
#: prefix of it is accepted, in any case
ID_KINDS = {"result_id": ("result", 0), "task_id": ("task", 0), "session_id": ("session", 0),
            "session_a": ("session", 0), "session_b": ("session", 1)}
#: the output formats of an analysis, unless it says otherwise
FORMATS = ("table", "json", "yaml", "csv")


@dataclass(frozen=True)
class Param:
    """One option or argument of an analysis: ``name`` is its ``build`` keyword (None: used by
    the command only, e.g. ``--dot``); ``to_build`` turns the CLI value into the build value."""
    dest: str
    annotation: Any
    cli: Any  # typer.Argument(...) / typer.Option(...)
    name: Optional[str] = None
    to_build: Optional[Callable[[Any], Any]] = None


@dataclass(frozen=True)
class Analysis:
    name: str                      # the CLI command
    module: str                    # aksnap.analyzer.<module>: build, sections, render
    help: str                      # the command's help; ends with its example
    params: tuple[Param, ...] = ()
    verify_option: bool = True     # takes --no-verify
    open_kwargs: dict = field(default_factory=dict)  # Snapshot.open(...) beyond verify
    exit_code: Optional[Callable[[dict], int]] = None  # non-zero exit from the answer
    after: Optional[Callable[[Any, dict, dict], None]] = None  # side effect (lineage --dot)
    before: Optional[Callable[[dict], None]] = None  # checks before the bundle is read (--dot)
    # the bundles it reads, as positional arguments (``build`` gets one Snapshot each, in order):
    # one for most analyses, two for ``diff`` (A and B)
    bundles: tuple[str, ...] = ("bundle",)
    formats: tuple[str, ...] = FORMATS  # what -o offers

    @property
    def mod(self):
        return importlib.import_module(f"aksnap.analyzer.{self.module}")

    def build(self, *snaps, **kwargs) -> dict:
        """Resolve id prefixes (each in the bundle that holds it), then the module's ``build``."""
        for key, (kind, which) in ID_KINDS.items():
            if kwargs.get(key) is not None:
                kwargs[key] = snaps[which].resolve_id(kind, kwargs[key])
        return self.mod.build(*snaps, **kwargs)

    def render(self, data: dict, fmt: str = "table", section: str | None = None) -> str:
        return self.mod.render(data, fmt, section)

    def sections(self, data: dict) -> list:
        return self.mod.sections(data)


def _session(help_text: str = "Only this session (default: every session); a unique prefix is enough."):
    return Param("session", Optional[str], typer.Option(None, "--session", "-s", help=help_text,
                                                        show_default=False, metavar="SESSION_ID"),
                 name="session_id")


def _all_or(module: str, constant: str):
    """``--all`` -> None (no limit), else the module's default limit (read when it runs)."""
    return lambda everything: None if everything else getattr(
        importlib.import_module(f"aksnap.analyzer.{module}"), constant)


def _check_dot(values: dict) -> None:
    """``lineage --dot FILE``: refused before any work when FILE exists (unless --overwrite),
    is a link, a directory, a FIFO, or the bundle read (:func:`aksnap.output.check_output_file`)."""
    if values.get("dot") is not None:
        from aksnap.output import check_output_file

        check_output_file(values["dot"], overwrite=values.get("overwrite", False), option="--dot",
                          sources=(values["bundle"],))


def _write_dot(snap, data: dict, values: dict) -> None:
    """``lineage --dot FILE``: the upstream as `aksnap graph --result ID --format dot` writes it
    (data edges only), atomically; a cut is said on stderr."""
    dot: Optional[Path] = values.get("dot")
    if dot is None:
        return
    from aksnap.analyzer import graphfile, lineage

    sel = lineage.dot_selection(snap, data["result_id"])
    graphfile.write_atomically(dot, [graphfile.to_dot(snap, sel,
                                                      title=f"lineage of {data['result_id']}")],
                               overwrite=values.get("overwrite", False), option="--dot",
                               sources=(snap.path, values["bundle"]))
    note = sel.cut_sentence("lineage")
    if note:
        typer.echo(note, err=True)


ANALYSES: dict[str, Analysis] = {a.name: a for a in [
    Analysis(
        "analyze", "overview",
        """Overview of each session: tasks and results by status, wall time, throughput, phase
        breakdown, error classes, retries, root causes, top blockers, the critical path in one
        line, and the anomaly count. Over more than 20 sessions: a summary (totals, and the
        sessions standing out by failures, waiting and wall time; -o csv gives one row per
        session, --session one session in full). Sections: sessions (csv's default), phases,
        error_classes, root_causes, top_blockers. Given a directory recorded by `aksnap watch
        --record`: the tasks by status over time, one row per recorded state (section states).

        Example: aksnap analyze ./run.aksnap -o json""",
        (_session(),)),
    Analysis(
        "lineage", "lineage",
        """Why isn't this result ready? Its upstream graph (tasks and results it depends on, by
        status, percent complete), the blocking frontier (what holds it now, and for how long),
        the root causes of failures upstream, and the chain of owners. Sections: frontier (csv's
        default), root_causes, owner_chain, lineage.

        Example: aksnap lineage ./run.aksnap 0b5e2c1a --dot lineage.dot""",
        (Param("result_id", str, typer.Argument(..., help="The result to explain (a unique prefix "
                                                "is enough, any case).", show_default=False,
                                                metavar="RESULT_ID"), name="result_id"),
         Param("dot", Optional[Path], typer.Option(None, "--dot", help="Also write the upstream "
                                                   "subgraph to FILE (Graphviz DOT; refused if "
                                                   "it exists, unless --overwrite).",
                                                   show_default=False, metavar="FILE",
                                                   callback=paths.file_out)),
         Param("overwrite", bool, typer.Option(False, "--overwrite", help="Replace an existing "
                                               "--dot FILE (a regular file only).")),
         Param("all_frontier", bool, typer.Option(False, "--all", help="Describe every node of the "
                                                  "blocking frontier (default: the 50 longest "
                                                  "waiting; all are counted)."),
               name="frontier_limit", to_build=_all_or("lineage", "FRONTIER_SHOWN"))),
        before=_check_dot, after=_write_dot),
    Analysis(
        "blockers", "blockers",
        """Incomplete work ranked by how many incomplete downstream results each blocking node
        (incomplete, with every input complete) holds up.

        Example: aksnap blockers ./run.aksnap --session 6f1c --limit 10 -o csv""",
        (_session(),
         Param("limit", int, typer.Option(20, "--limit", "-n", help="How many blockers to show (0 = all)."),
               name="limit", to_build=lambda n: n or None))),
    Analysis(
        "critical-path", "critical_path",
        """The chain of dependencies (data, spawn and retry edges) that decided when each
        session's last result completed, task by task (waiting, queued, fetching, processing,
        finishing), with its share of the wall time. Over more than 20 sessions: the time by
        segment over all of them and the longest paths (--session for one in full). Sections:
        sessions (csv's default), steps, totals, segments.

        Example: aksnap critical-path ./run.aksnap --session 6f1c -o csv --section steps""",
        (_session(),
         Param("all_steps", bool, typer.Option(False, "--all", help="Every step of a long chain "
                                               "(default: the first, last and longest)."),
               name="all_steps"))),
    Analysis(
        "task", "task_view",
        """One task in full: its attempts, parent chain, subtasks, inputs and outputs with their
        status (and where ownership moved), and its timeline. Long input or output lists are
        counted by status, with the first 50 listed. Sections: task (csv's default), attempts,
        parent_chain, subtasks, inputs, outputs, timeline, root_causes.

        Example: aksnap task ./run.aksnap 3f2a9c4e --all -o csv --section inputs""",
        (Param("task_id", str, typer.Argument(..., help="The task to show (a unique prefix is "
                                              "enough, any case).", show_default=False,
                                              metavar="TASK_ID"), name="task_id"),
         Param("all_io", bool, typer.Option(False, "--all", help="List every input and output "
                                            "(default: counts by status and the first 50)."),
               name="limit", to_build=_all_or("task_view", "LIMIT")))),
    Analysis(
        "check", "check",
        """Integrity (checksums, format version) and graph anomalies: results with no producer,
        references to ids not in the bundle, tasks waiting on aborted results, cycles,
        statuses contradicting timestamps, duplicate ids. Exit code 1 when anything is found.
        Sections: findings (csv's default), counts.

        Example: aksnap check ./run.aksnap || echo "see the findings above\"""",
        (_session(),),
        verify_option=False,
        open_kwargs={"verify": False, "collect_problems": True},
        exit_code=lambda data: 1 if data["total"] else 0),
    Analysis(
        "diff", "diff",
        """Two runs side by side: sessions of A matched with sessions of B (--session-a and
        --session-b, or automatically: same application and partitions, then the closest task
        count; the match and its reason are printed), then per matched session the tasks and
        results by status, wall time, makespan, throughput, phase percentiles per partition,
        the critical path (length, time by phase, which phase grew), error classes (new, gone,
        changed), retries, pods used and the graph's shape. Every row: A, B, delta, relative
        delta and a verdict (regression, improvement, changed, same) from thresholds
        (--threshold PATTERN=N% or =N, e.g. phase.processing.p90=10%; docs/comparison.md lists
        the defaults). --fail-on regression exits 1 when any figure regressed (CI). -o markdown
        pastes into a pull request. Sections: comparisons (csv's default), matches.

        Example: aksnap diff last-week.aksnap tonight.aksnap --fail-on regression -o markdown""",
        (Param("session_a", Optional[str], typer.Option(None, "--session-a", help="The session of A "
                                                       "to compare (a unique prefix is enough); "
                                                       "with --session-b.", show_default=False,
                                                       metavar="SESSION_ID"), name="session_a"),
         Param("session_b", Optional[str], typer.Option(None, "--session-b", help="The session of B "
                                                       "to compare it with.", show_default=False,
                                                       metavar="SESSION_ID"), name="session_b"),
         Param("threshold", list[str], typer.Option([], "--threshold", "-t", help="PATTERN=N% "
                                                   "(relative) or PATTERN=N (absolute, in the "
                                                   "metric's unit), or both as N%,N; PATTERN is a "
                                                   "metric, a prefix (phase) or a glob "
                                                   "(phase.*.p90). Repeatable.",
                                                   metavar="PATTERN=N%"), name="thresholds"),
         Param("fail_on", Optional[str], typer.Option(None, "--fail-on", help="Exit 1 when any "
                                                     "figure regressed (regression) or changed at "
                                                     "all (change).", show_default=False,
                                                     metavar="regression|change"), name="fail_on")),
        bundles=("a", "b"),
        formats=FORMATS + ("markdown",),
        exit_code=lambda data: 1 if data["failing"] else 0),
]}
