"""Every command of the analyzer, declared once: the analyses of a bundle (analyze, lineage,
blockers, critical-path, task, check, diff), the SQL (sql, query, queries), the files drawn
from a bundle (graph, trace, report), the archives of many runs (archive add, archive list,
compare), and what ``analyze`` and ``report`` do with a series recorded by ``aksnap watch
--record``.

A :class:`Command` says what a command is: its name, help (ending with its example), where
its work lives (an :class:`Impl`: ``build`` -> plain data, ``sections``, ``render``), its
parameters (:class:`aksnap.options.Param`, each with the ``build`` keyword it becomes), the
bundles it opens, its output group, its exit code. From this one declaration:

- :mod:`aksnap.analyzer.commands` makes the typer command (its signature, help and options,
  the shared groups ``-o/--section/--wide``, the bundle argument and ``--no-verify``) and runs
  it (:meth:`Command.execute`, then render, then the exit code);
- :mod:`aksnap.analyzer.api` makes the notebook function of the same name (``api.lineage``,
  ``api.compare``, ...), with the same parameters under their ``build`` names and the
  command line's defaults, and a ``render_<name>``.

So a new analysis is one module (``build(snap, ...) -> data``, ``sections(data)``,
``render(data, fmt, section)``) plus one entry here (docs/architecture.md).

Importing this module is cheap (typer only): the analysis modules, DuckDB, numpy and
rustworkx are imported when a command runs, so `aksnap sql` never loads the graph.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import typer

from aksnap import paths
from aksnap.options import NO_VERIFY, QUIET, OutputGroup, Param, bundle_param

#: build() keywords that name an id: (its kind, which of the analysis' bundles holds it); a unique
#: prefix of it is accepted, in any case
ID_KINDS = {"result_id": ("result", 0), "task_id": ("task", 0), "session_id": ("session", 0),
            "session_a": ("session", 0), "session_b": ("session", 1)}
#: the output formats of an analysis, unless it says otherwise
FORMATS = ("table", "json", "yaml", "csv")
#: what a command that writes a file prints: what it wrote (one record)
SUMMARY_FORMATS = ("table", "json", "yaml")
#: sessions listed by ``aksnap sessions`` unless --limit says otherwise (both forms)
LIMIT_SESSIONS = 50
#: the output group of an analysis: -o, --section, --wide and the hidden --format
ANSWER = OutputGroup(FORMATS, section=True, wide=True, deprecated=True)


def _fn(module: str, name: str) -> Callable[..., Any]:
    """``aksnap.analyzer.<module>.<name>``, imported when first called (not when declared)."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(f"aksnap.analyzer.{module}"), name)(*args, **kwargs)
    call.__name__ = call.__qualname__ = name
    return call


@dataclass(frozen=True)
class Impl:
    """Where a command's work lives: functions of ``aksnap.analyzer.<module>``, imported when
    the command runs. ``build(*inputs, **keywords) -> data`` (plain data, JSON-ready),
    ``sections(data) -> [Section]`` (its tables, the main one first; None: one table, no
    ``--section``), ``render(data, fmt, section) -> str``. ``sources``: build also takes
    ``sources=`` (the paths it was given: a file it writes must never replace them);
    ``verify``: build takes ``verify=`` (it opens bundles itself: a recorded series)."""

    module: str
    build: str = "build"
    render: str = "render"
    sections: Optional[str] = "sections"
    sources: bool = False
    verify: bool = False

    def function(self, attr: str) -> Callable[..., Any]:
        return getattr(importlib.import_module(f"aksnap.analyzer.{self.module}"),
                       getattr(self, attr))


@dataclass(frozen=True)
class Answer:
    """What :meth:`Command.execute` returns: the data, the :class:`Impl` that built it (the
    command's own, or its series'), and the snapshots opened (empty for a series)."""
    data: Any
    impl: Impl
    snaps: tuple = ()

    def render(self, fmt: str = "table", section: Optional[str] = None) -> str:
        return self.impl.function("render")(self.data, fmt, section)

    def sections(self) -> list:
        return self.impl.function("sections")(self.data) if self.impl.sections else []


@dataclass(frozen=True)
class Command:
    """One command of the analyzer (``name``: its words, ``archive add`` for a subcommand)."""

    name: str
    impl: Impl
    help: str                      # the command's help; ends with its example
    params: tuple[Param, ...] = ()
    #: the bundles it reads, as positional arguments (build gets one Snapshot each, in order):
    #: one for most commands, two for diff (A and B), none for queries, archive and compare
    bundles: tuple[str, ...] = ("bundle",)
    output: OutputGroup = ANSWER
    verify_option: bool = True     # takes --no-verify (when it reads bundles)
    open_kwargs: dict = field(default_factory=dict)  # Snapshot.open(...) beyond verify
    resolve_ids: bool = True       # id prefixes of ID_KINDS resolved before build
    exit_code: Optional[Callable[[Any], int]] = None  # non-zero exit from the answer
    before: Optional[Callable[[dict], None]] = None   # checks before a bundle is read (--out)
    after: Optional[Callable[[Any, Any, dict], None]] = None  # side effect (lineage --dot)
    #: a directory recorded by `aksnap watch --record` given as the bundle: this does the work
    series: Optional[Impl] = None
    api: Optional[str] = None      # the Python API's name (default: the name, with _)
    #: the module of the composition floor that makes the typer command instead (it adds a
    #: form the analyzer cannot answer: ``sessions --endpoint``, against a control plane); the
    #: bundle form is still this declaration's, and so is the Python API
    made_by: Optional[str] = None

    @property
    def formats(self) -> tuple[str, ...]:
        return self.output.formats

    @property
    def api_name(self) -> str:
        return self.api or self.name.replace("-", "_").replace(" ", "_")

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.name.split())

    def cli_params(self) -> tuple[Param, ...]:
        """Every parameter of the command line, in the help's order: the bundles, the
        command's own, the output group, then --no-verify and --quiet."""
        out = [bundle_param(b) for b in self.bundles] + list(self.params)
        out += self.output.params()
        if self.bundles and self.verify_option:
            out.append(NO_VERIFY)
        if self.bundles:
            out.append(QUIET)
        return tuple(out)

    def build_kwargs(self, values: dict[str, Any]) -> dict[str, Any]:
        """The build keywords of the command line's values."""
        return {p.name: p.build_value(values) for p in self.params if p.name is not None}

    # -- running it (the command line and the Python API alike) -----------------------------

    def execute(self, inputs: Sequence[Any], kwargs: dict[str, Any],
                verify: bool = True) -> Answer:
        """Open the bundles (``inputs``: paths, or Snapshots already open), resolve id
        prefixes, build. A recorded series given as the one bundle goes to :attr:`series`."""
        if not inputs:  # queries, archive, compare: no bundle to open (nor DuckDB to load)
            return Answer(self.build(**kwargs), self.impl)
        from .snapshot import Snapshot

        given = [p for p in inputs if not isinstance(p, Snapshot)]
        if self.series is not None and len(inputs) == 1 and given:
            from .series import series_members

            if series_members(inputs[0]) is not None:
                extra = {"verify": verify} if self.series.verify else {}
                return Answer(self.series.function("build")(inputs[0], **kwargs, **extra),
                              self.series)
        open_kwargs = {"verify": verify, **self.open_kwargs}
        snaps = tuple(s if isinstance(s, Snapshot) else Snapshot.open(s, **open_kwargs)
                      for s in inputs)
        return Answer(self.build(*snaps, sources=tuple(given), **kwargs), self.impl, snaps)

    def build(self, *snaps: Any, sources: tuple = (), **kwargs: Any) -> Any:
        """The impl's ``build`` on open snapshots (id prefixes resolved, each in its bundle)."""
        if self.resolve_ids:
            for key, (kind, which) in ID_KINDS.items():
                if kwargs.get(key) is not None:
                    kwargs[key] = snaps[which].resolve_id(kind, kwargs[key])
        if self.impl.sources:
            kwargs["sources"] = sources
        return self.impl.function("build")(*snaps, **kwargs)

    def render(self, data: Any, fmt: str = "table", section: Optional[str] = None) -> str:
        return self.impl.function("render")(data, fmt, section)

    def sections(self, data: Any) -> list:
        return self.impl.function("sections")(data) if self.impl.sections else []


# -- parameters several commands share ----------------------------------------------------------

def _session(help_text: str = "Only this session (default: every session); a unique prefix "
             "is enough."):
    return Param("session", Optional[str], typer.Option(None, "--session", "-s", help=help_text,
                                                        show_default=False, metavar="SESSION_ID"),
                 name="session_id")


def _result(help_text: str) -> Param:
    return Param("result", Optional[str], typer.Option(None, "--result", "-r", help=help_text,
                                                       show_default=False, metavar="RESULT_ID"),
                 name="result_id")


def _all_or(module: str, constant: str):
    """``--all`` -> None (no limit), else the module's default limit (read when it runs)."""
    return lambda everything: None if everything else getattr(
        importlib.import_module(f"aksnap.analyzer.{module}"), constant)


def _fail_on(help_text: str) -> Param:
    return Param("fail_on", Optional[str], typer.Option(None, "--fail-on", help=help_text,
                                                       show_default=False,
                                                       metavar="regression|change"),
                 name="fail_on")


#: the findings' options (aksnap findings, analyze)
_FINDING_THRESHOLD = Param("threshold", List[str], typer.Option(
    [], "--threshold", "-t", help="NAME=VALUE: override a finding's threshold (repeatable; "
    "docs/findings.md lists them, e.g. stall_min_s=600, straggler_ratio=20).",
    metavar="NAME=VALUE"), name="thresholds")
_FINDING_FAIL_ON = Param("fail_on", Optional[str], typer.Option(
    None, "--fail-on", help="Exit 1 when a finding is at least this severe (for CI).",
    show_default=False, metavar="warning|error"), name="fail_on")


def _check_findings(values: dict) -> None:
    """--threshold and --fail-on refused before any work (reading the bundle can take long)."""
    from aksnap.analyzer.findings import check_fail_on, parse_thresholds

    parse_thresholds(values.get("threshold") or [])
    check_fail_on(values.get("fail_on"))


_ARCHIVE = Param("archive", Path, typer.Argument(..., help="The archive directory (created by "
                                                 "the first add).", show_default=False,
                                                 metavar="ARCHIVE", callback=paths.dir_out),
                 name="archive", to_build=os.fspath)
_PARAMS = Param("param", List[str], typer.Option([], "--param", "-p", help="Bind $k to v "
                                                 "(repeatable).", metavar="k=v"),
                name="params", to_build=_fn("sql", "parse_params"))
_MEMORY_LIMIT = Param("memory_limit", str, typer.Option("4GB", "--memory-limit", help="Most "
                                                        "memory DuckDB may use.", metavar="SIZE"),
                      name="memory_limit")


def _out(example: str) -> Param:
    return Param("out", Path, typer.Option(..., "--out", help=f"The file to write, e.g. {example} "
                                           "(refused if it exists, unless --overwrite; written "
                                           "atomically).", show_default=False, metavar="FILE",
                                           callback=paths.file_out), name="out")


_OVERWRITE_OUT = Param("overwrite", bool, typer.Option(False, "--overwrite", help="Replace an "
                                                       "existing --out file (a regular file "
                                                       "only: never a link, a directory or the "
                                                       "bundle read)."), name="overwrite")
#: what a command writing a file prints about it (-o table|json|yaml only)
_WRITTEN = OutputGroup(SUMMARY_FORMATS)


# -- what runs before and after the work ---------------------------------------------------------

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


def _check_out(values: dict) -> None:
    """``--out FILE`` refused before any work (reading the bundle can take long)."""
    from aksnap.output import check_output_file

    check_output_file(values["out"], overwrite=values["overwrite"], sources=(values["bundle"],))


def _check_graph(values: dict) -> None:
    _check_out(values)
    from aksnap.analyzer.writers import graph_options

    graph_options(values["out"], values["fmt"], values["max_nodes"])


def _say_note(snap, info: dict, values: dict) -> None:
    """A file cut to a limit: the sentence on stderr (the summary says it too)."""
    if info.get("note"):
        typer.echo(info["note"], err=True)


def _failing(data: dict) -> int:
    return 1 if data["failing"] else 0


# -- the commands --------------------------------------------------------------------------------

#: the command groups (``aksnap archive ...``): their help
GROUPS = {
    "archive": "Many runs in one Parquet dataset, laid out by table and run (hive partitioning: "
               "tasks/run=<id>/...), with a runs table; DuckDB, pandas, Spark and Trino read it "
               "without aksnap (docs/comparison.md). `aksnap compare` reads it.\n\n"
               "Example: aksnap archive add ./nightly.archive run-42.aksnap --label env=nightly",
}

COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command(
        "analyze", Impl("overview"),
        """Overview of each session: tasks and results by status, wall time, throughput, phase
        breakdown, error classes, retries, root causes, top blockers, the critical path in one
        line, and the anomaly count. Over more than 20 sessions: a summary (totals, and the
        sessions standing out by failures, waiting and wall time; -o csv gives one row per
        session, --session one session in full). Sections: sessions (csv's default), phases,
        error_classes, root_causes, top_blockers. Given a directory recorded by `aksnap watch
        --record`: the tasks by status over time, one row per recorded state (section states).
        The findings come first (the few that matter most; all of them: `aksnap findings`; in
        JSON under findings); --fail-on exits 1 when one is that severe.

        Example: aksnap analyze ./run.aksnap -o json""",
        (_session(), _FINDING_THRESHOLD, _FINDING_FAIL_ON),
        before=_check_findings, exit_code=_fn("findings", "exit_code"),
        series=Impl("series"), api="overview"),
    Command(
        "findings", Impl("findings"),
        """What is wrong with the run, why, and what to do: the findings of a catalogue of
        rules (failures grouped by root cause and error class, a cancelled session, retries that
        never recover, a bad node, a dependency that can never be satisfied, a starved
        partition, a straggler, a stall, a throughput drop, a capacity-bound run; a clean run
        in one line), ranked by severity and impact, each with the command that shows the
        detail. Thresholds are stated (-o json, docs/findings.md) and overridable. --fail-on
        warning|error exits 1 for CI. Sections: findings (csv's default), thresholds.

        Example: aksnap findings ./run.aksnap --threshold stall_min_s=600 --fail-on error""",
        (_session(), _FINDING_THRESHOLD, _FINDING_FAIL_ON),
        before=_check_findings, exit_code=_fn("findings", "exit_code")),
    Command(
        "lineage", Impl("lineage"),
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
    Command(
        "blockers", Impl("blockers"),
        """Incomplete work ranked by how many incomplete downstream results each blocking node
        (incomplete, with every input complete) holds up.

        Example: aksnap blockers ./run.aksnap --session 6f1c --limit 10 -o csv""",
        (_session(),
         Param("limit", int, typer.Option(20, "--limit", "-n", help="How many blockers to show (0 = all)."),
               name="limit", to_build=lambda n: n or None))),
    Command(
        "critical-path", Impl("critical_path"),
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
    Command(
        "whatif", Impl("whatif"),
        """What if this run had other pods, another scheduling policy, or ran lazily? Replays
        the recorded run (its DAG, each task's measured pod time, ArmoniK's release rules:
        inputs COMPLETED, subtasks after their parent, retries after the failed attempt) as a
        discrete-event simulation with a pod pool per partition. Says the model's error first
        (the recorded order at the recorded capacity against the recorded makespan), then the
        predicted makespan, the time to each --target result, utilisation per partition, the
        replay's critical path and, with --curve, the makespan at half, once, twice and four
        times the pods. --policy lazy runs only what the targets need and counts what it
        saves. docs/whatif.md gives the model and its measured error. Sections: summary
        (csv's default), sessions, partitions, targets, critical_path, calibration, lazy, curve.

        Example: aksnap whatif ./run.aksnap --pods 16 --target 0b5e2c1a --curve""",
        (_session(),
         Param("pods", Optional[int], typer.Option(None, "--pods", help="Pods in every partition "
                                                   "(default: as recorded, the most pods busy at "
                                                   "once).", show_default=False, metavar="N"),
               name="pods"),
         Param("partition", List[str], typer.Option([], "--partition", help="Pods in one "
                                                    "partition, NAME=N (repeatable; over "
                                                    "--pods).", metavar="NAME=N"),
               name="partitions"),
         Param("policy", str, typer.Option("fifo", "--policy", help="Which queued task a freed "
                                           "pod takes: fifo (ArmoniK's queue: priority, then "
                                           "first queued), recorded (the recorded dispatch "
                                           "order), critical-path (longest remaining path "
                                           "first), lazy (fifo over only what the --target "
                                           "results need).",
                                           metavar="recorded|fifo|critical-path|lazy"),
               name="policy"),
         Param("target", List[str], typer.Option([], "--target", "-t", help="A result whose "
                                                 "completion time to predict (a unique prefix is "
                                                 "enough; repeatable; lazy needs one).",
                                                 metavar="RESULT_ID"), name="targets"),
         Param("curve", bool, typer.Option(False, "--curve", help="Also replay at half, twice "
                                           "and four times the pods (where adding pods stops "
                                           "helping)."), name="curve"),
         Param("calibration", bool, typer.Option(True, "--calibration/--no-calibration",
                                                 help="Also replay the recorded order on the "
                                                 "recorded pods to state the model's error (a "
                                                 "second replay; --no-calibration skips it)."),
               name="calibrate"))),
    Command(
        "task", Impl("task_view"),
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
    Command(
        "sessions", Impl("sessions"),
        """The sessions of a bundle, the most recently created first: id, status, creation time
        and tasks by status set (success, failed, retried, cancelled, open: they add up to the
        tasks; -o json also by status), to find an id without armonik-cli. With --endpoint
        instead of BUNDLE: the sessions of a control plane (one Sessions.ListSessions call for
        the page, then one Tasks.CountTasksByStatus per session listed: at most --limit).

        Example: aksnap sessions --endpoint 10.0.0.1:5001 --limit 10""",
        (Param("limit", int, typer.Option(LIMIT_SESSIONS, "--limit", "-n", help="List the N "
                                          "sessions created last (0: every one).",
                                          metavar="N"), name="limit", to_build=lambda n: n or None),),
        made_by="aksnap.cli.sessions"),
    Command(
        "check", Impl("check"),
        """Integrity (checksums, format version) and graph anomalies: results with no producer,
        references to ids not in the bundle, tasks waiting on aborted results, cycles,
        statuses contradicting timestamps, duplicate ids. Exit code 1 when anything is found.
        Sections: findings (csv's default), counts.

        Example: aksnap check ./run.aksnap || echo "see the findings above\"""",
        (_session(),),
        verify_option=False,
        open_kwargs={"verify": False, "collect_problems": True},
        exit_code=lambda data: 1 if data["total"] else 0),
    Command(
        "diff", Impl("diff"),
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
         _fail_on("Exit 1 when any figure regressed (regression) or changed at all (change).")),
        bundles=("a", "b"),
        output=OutputGroup(FORMATS + ("markdown",), section=True, wide=True, deprecated=True),
        exit_code=_failing),

    # -- SQL over the bundle's views -----------------------------------------------------------
    Command(
        "sql", Impl("sql", build="sql", sections=None),
        """Run SQL (DuckDB) over the bundle's views; parameters are bound, never pasted. The SQL
        runs sandboxed: DuckDB holds no path (the tables reach it as Arrow datasets), so nothing
        is read or written but the bundle's tables; SQL that redefines a view gets no answer;
        configuration locked, --memory-limit. To save an answer use -o csv > FILE;
        --allow-external lifts the sandbox (only for SQL you wrote: it may write any file).

        Example: aksnap sql ./run.aksnap "SELECT status, count(*) AS n FROM tasks GROUP BY ALL\"""",
        (Param("query", str, typer.Argument(..., help="SQL over the views sessions, tasks, "
                                            "results, partitions, task_dependencies, task_outputs, "
                                            "result_producers, task_parents, task_attempts, "
                                            "task_retries, task_phases, bundle_info.",
                                            show_default=False, metavar="SQL"), name="query"),
         _PARAMS,
         Param("allow_external", bool, typer.Option(False, "--allow-external", help="Lift the "
                                                    "sandbox: the SQL may read and write any "
                                                    "file (the bundle's too), install and load "
                                                    "extensions. Only for SQL you wrote."),
               name="allow_external"),
         _MEMORY_LIMIT),
        output=OutputGroup(FORMATS, wide=True, deprecated=True), resolve_ids=False,
        open_kwargs={"connect": False}),  # the sandbox comes first (--allow-external: on use)
    Command(
        "query", Impl("sql", build="query", sections=None),
        """Run one of the named queries of queries/*.sql with bound parameters (checked: a
        parameter a query reads as a number must be one), sandboxed as `aksnap sql`.

        Example: aksnap query ./run.aksnap phase_percentiles --param session_id=6f1c...""",
        (Param("name", str, typer.Argument(..., help="A query name (see `aksnap queries`).",
                                           show_default=False, metavar="NAME"), name="name"),
         Param("param", List[str], typer.Option([], "--param", "-p", help="Bind the query's $k "
                                                "to v (repeatable).", metavar="k=v"),
               name="params", to_build=_fn("sql", "parse_params")),
         _MEMORY_LIMIT),
        output=OutputGroup(FORMATS, wide=True, deprecated=True), resolve_ids=False,
        open_kwargs={"connect": False}),
    Command(
        "queries", Impl("sql", build="list_queries", render="render_queries", sections=None),
        """List the named queries: purpose, parameters, output columns.

        Example: aksnap queries -o json""",
        bundles=(), output=OutputGroup(FORMATS, wide=True, deprecated=True), resolve_ids=False),

    # -- archives of many runs -------------------------------------------------------------------
    Command(
        "archive add", Impl("archive", build="add", render="render_added", sections=None),
        """Add bundles to an archive (created when new): each bundle's Parquet copied under
        <table>/run=<id>/, its checksums verified on the way in, a row in the runs table. The run
        id comes from the manifest's digest, so adding the same bundle twice adds it once.

        Example: aksnap archive add ./nightly.archive run-42.aksnap --label env=nightly""",
        (_ARCHIVE,
         Param("bundles", List[Path], typer.Argument(..., help="Bundles (or packed files) to add.",
                                                     show_default=False, metavar="BUNDLE...",
                                                     callback=paths.bundle_in), name="bundles",
               to_build=list),
         Param("label", List[str], typer.Option([], "--label", "-l", help="Label the runs "
                                                "key=value (repeatable); compare --where selects "
                                                "by label.", metavar="k=v"), name="labels")),
        bundles=(), output=OutputGroup(FORMATS, wide=True), resolve_ids=False),
    Command(
        "archive list", Impl("archive", build="runs", render="render_runs", sections=None),
        """The runs of an archive, oldest first: run id, export time, ArmoniK versions, labels,
        sessions, tasks, manifest digest.

        Example: aksnap archive list ./nightly.archive -o csv""",
        (_ARCHIVE,),
        bundles=(), output=OutputGroup(FORMATS, wide=True), resolve_ids=False),
    Command(
        "compare", Impl("compare"),
        """Every run of an archive against its baseline (the median and MAD of the previous
        --history runs, or a pinned --baseline run): one row per run and metric (tasks, failures,
        retries, wall time, makespan, throughput, phase percentiles per partition, errors), the
        trend of each metric, and the runs that regress. One SQL query per metric family over the
        whole archive (queries/compare_*.sql), on DuckDB or, with --engine spark, on Spark.
        Sections: rows (csv's default), trends, runs.

        Example: aksnap compare ./nightly.archive --where env=nightly --last 30 --fail-on regression""",
        (_ARCHIVE,
         Param("where", List[str], typer.Option([], "--where", "-w", help="Only runs with this "
                                                "label (key=value; repeatable: all must hold).",
                                                metavar="k=v"), name="where"),
         Param("last", Optional[int], typer.Option(None, "--last", "-n", help="Report the last N "
                                                   "runs (earlier ones still feed their "
                                                   "baselines).", show_default=False), name="last"),
         Param("metric", List[str], typer.Option([], "--metric", "-m", help="Only these metrics "
                                                 "(a name, a family such as phase, or a glob such "
                                                 "as phase.*.p90; repeatable).", metavar="METRIC"),
               name="metrics"),
         Param("history", int, typer.Option(10, "--history", help="The rolling baseline: median "
                                            "and MAD of this many previous runs."), name="history"),
         Param("baseline", Optional[str], typer.Option(None, "--baseline", help="Compare every "
                                                       "run with this one instead (a run id or a "
                                                       "unique prefix).", show_default=False,
                                                       metavar="RUN"), name="baseline"),
         Param("k", float, typer.Option(3.0, "--k", help="A run regresses beyond k x 1.4826 x MAD "
                                        "from the median ..."), name="k"),
         Param("min_rel", float, typer.Option(0.10, "--min-rel", help="... and beyond this share "
                                              "of the baseline ..."), name="min_rel"),
         Param("min_abs", float, typer.Option(0.05, "--min-abs", help="... and beyond this much, "
                                              "in the metric's unit."), name="min_abs"),
         Param("engine", str, typer.Option("duckdb", "--engine", help="duckdb (this machine) or "
                                           "spark (pyspark: the spark extra).",
                                           metavar="duckdb|spark"), name="engine"),
         Param("master", Optional[str], typer.Option(None, "--master", help="Spark master URL "
                                                     "(default local[*]).", show_default=False,
                                                     metavar="URL"), name="master"),
         _fail_on("Exit 1 when a reported run regressed (regression) or changed at all "
                  "(change).")),
        bundles=(), output=OutputGroup(FORMATS + ("markdown",), section=True, wide=True),
        resolve_ids=False, exit_code=_fn("compare", "exit_code")),
    # -- files drawn from a bundle ---------------------------------------------------------------
    Command(
        "graph", Impl("writers", build="graph", sections=None, sources=True),
        """Write the task/data graph (the whole bundle, one session, or one result's upstream) as
        Graphviz DOT, GraphML or JSON: tasks and results as nodes (status, session, partition, pod,
        message, times), data, payload, produces, spawn and retry edges. Every bundle string is
        escaped for the format, so hostile ids and messages cannot break the file. Prints what was
        written.

        Example: aksnap graph ./run.aksnap --result 0b5e2c1a --out lineage.dot && dot -Tsvg lineage.dot > l.svg""",
        (_out("graph.dot"),
         # no -f here: elsewhere -f is the deprecated spelling of -o (the answer's format)
         Param("fmt", Optional[str], typer.Option(None, "--format", help="dot (Graphviz), "
                                                  "graphml (Gephi, yEd, networkx) or json "
                                                  "(nodes and edges); default: from --out's "
                                                  "suffix (.dot/.gv, .graphml, .json), else dot.",
                                                  metavar="dot|graphml|json", show_default=False),
               name="fmt"),
         _session("Only this session (a unique prefix is enough)."),
         _result("Only this result's upstream (the tasks and results it depends on; a unique "
                 "prefix is enough)."),
         Param("max_nodes", int, typer.Option(-1, "--max-nodes", help="Write at most N nodes "
                                              "(default 5000 for dot, 200000 otherwise; 0: "
                                              "every one); a cut is said on stderr.",
                                              show_default=False, metavar="N"), name="max_nodes"),
         _OVERWRITE_OUT),
        output=_WRITTEN, resolve_ids=False, before=_check_graph, after=_say_note, api="graph_file"),
    Command(
        "trace", Impl("writers", build="trace", sections=None, sources=True),
        """Write the run as a Chrome/Perfetto trace (JSON trace event format; open it in
        ui.perfetto.dev or chrome://tracing): one track per pod (slots of the partition when pods
        are unknown), each task a slice with its dispatch, fetching, processing and finishing
        phases nested, waiting and queued as counters (and slices on small traces), data
        dependencies as flow arrows from producer to consumer, retries linked. A limited trace
        (--session, --result, --max-tasks) says so in the file and on stderr.

        Example: aksnap trace ./run.aksnap --session 6f1c --out trace.json""",
        (_out("trace.json"),
         _session("Only this session (a unique prefix is enough)."),
         _result("Only this result's upstream (the tasks that produced what it reads, with their "
                 "retried attempts; a unique prefix is enough)."),
         Param("max_tasks", int, typer.Option(200_000, "--max-tasks", help="Write at most N "
                                              "tasks, the first by start (0: every one; a "
                                              "million tasks is about 0.5 GB of JSON).",
                                              metavar="N"), name="max_tasks"),
         _OVERWRITE_OUT),
        output=_WRITTEN, resolve_ids=False, before=_check_out, after=_say_note, api="trace_file"),
    Command(
        "report", Impl("writers", build="report", render="render_report", sections=None,
                       sources=True),
        """Write one self-contained HTML page (opens offline; no network: its CSS and JavaScript
        are inlined and a Content-Security-Policy forbids loads): per session the overview, tasks
        by status over time, throughput, phase distributions per partition, error classes with
        examples, retries, top blockers, the critical path as a Gantt strip, and the lineage of
        the results that matter (blocked, then failed) as an interactive DAG (click a node for its
        detail, expand upstream; frontier and root causes highlighted), with an id search. Big
        views are aggregated and the page says how. Every bundle string is shown as text.

        BUNDLE may be a series recorded by `aksnap watch --record DIR`: the page of its latest
        bundle, plus tasks by status over time as recorded (one point per recorded state).

        Example: aksnap report ./run.aksnap --out report.html""",
        (_out("report.html"),
         _session("Only this session (default: the 5 largest)."),
         _result("Draw this result's lineage first, with more of its upstream (its session is "
                 "shown)."),
         _OVERWRITE_OUT),
        output=_WRITTEN, resolve_ids=False, before=_check_out, api="report_file",
        series=Impl("writers", build="report_series", render="render_report", sections=None,
                    verify=True)),

]}

__all__ = ["Command", "Impl", "Answer", "COMMANDS", "GROUPS", "ID_KINDS", "FORMATS",
           "SUMMARY_FORMATS"]
