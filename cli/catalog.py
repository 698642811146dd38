"""Which module registers each command, and what ``aksnap --help`` shows of it.

``aksnap X`` imports only X's module (``aksnap.cli.LazyGroup``): an export never loads the
analyzer's modules, ``aksnap sql`` never the exporter's, and ``aksnap --help`` lists every
command from this table without importing any of them. The table is data, so it can go
stale: ``tests/test_cli_lazy.py`` registers every module in full and fails, with the entry to
paste, when a name, its module, its order or its line of help differs from what the modules
register.
"""

from __future__ import annotations

#: The modules that register commands (``module.register(app)``), in the order of the help.
MODULES = ("aksnap.fixtures.commands", "aksnap.exporter.commands", "aksnap.analyzer.commands",
           "aksnap.cli.sessions",  # a bundle, or a control plane: both layers
           "aksnap.cli.demo", "aksnap.cli.watch", "aksnap.cli.serve",  # these join the layers
           "aksnap.pack", "aksnap.redact")  # sharing a bundle (docs/sharing.md): format-level

#: command -> (the module that registers it, the first paragraph of its short help as the
#: list of commands shows it), in the order of the help (typer lists groups after commands).
COMMANDS: dict[str, tuple[str, str]] = {
    'simulate': ('aksnap.fixtures.commands',
        'Serve a simulated ArmoniK control plane over real gRPC until interrupted.'),
    'export': ('aksnap.exporter.commands',
        'Export sessions, their tasks and results, and the partitions into a bundle.'),
    'analyze': ('aksnap.analyzer.commands',
        'Overview of each session: tasks and results by status, wall time, throughput, phase '
        'breakdown, error classes, retries, root causes, top blockers, the critical path in '
        'one line, and the anomaly count.'),
    'findings': ('aksnap.analyzer.commands',
        'What is wrong with the run, why, and what to do: the findings of a catalogue of '
        'rules (failures grouped by root cause and error class, a cancelled session, retries '
        'that never recover, a bad node, a dependency that can never be satisfied, a starved '
        'partition, a straggler, a stall, a throughput drop, a capacity-bound run; a clean '
        'run in one line), ranked by severity and impact, each with the command that shows '
        'the detail.'),
    'lineage': ('aksnap.analyzer.commands',
        "Why isn't this result ready?"),
    'blockers': ('aksnap.analyzer.commands',
        'Incomplete work ranked by how many incomplete downstream results each blocking node '
        '(incomplete, with every input complete) holds up.'),
    'critical-path': ('aksnap.analyzer.commands',
        'The chain of dependencies (data, spawn and retry edges) that decided when each '
        "session's last result completed, task by task (waiting, queued, fetching, "
        'processing, finishing), with its share of the wall time.'),
    'whatif': ('aksnap.analyzer.commands',
        'What if this run had other pods, another scheduling policy, or ran lazily?'),
    'task': ('aksnap.analyzer.commands',
        'One task in full: its attempts, parent chain, subtasks, inputs and outputs with '
        'their status (and where ownership moved), and its timeline.'),
    'check': ('aksnap.analyzer.commands',
        'Integrity (checksums, format version) and graph anomalies: results with no producer, '
        'references to ids not in the bundle, tasks waiting on aborted results, cycles, '
        'statuses contradicting timestamps, duplicate ids.'),
    'diff': ('aksnap.analyzer.commands',
        'Two runs side by side: sessions of A matched with sessions of B (--session-a and '
        '--session-b, or automatically: same application and partitions, then the closest '
        'task count; the match and its reason are printed), then per matched session the '
        'tasks and results by status, wall time, makespan, throughput, phase percentiles per '
        'partition, the critical path (length, time by phase, which phase grew), error '
        "classes (new, gone, changed), retries, pods used and the graph's shape."),
    'sql': ('aksnap.analyzer.commands',
        "Run SQL (DuckDB) over the bundle's views; parameters are bound, never pasted."),
    'query': ('aksnap.analyzer.commands',
        'Run one of the named queries of queries/*.sql with bound parameters (checked: a '
        'parameter a query reads as a number must be one), sandboxed as `aksnap sql`.'),
    'queries': ('aksnap.analyzer.commands',
        'List the named queries: purpose, parameters, output columns.'),
    'compare': ('aksnap.analyzer.commands',
        'Every run of an archive against its baseline (the median and MAD of the previous '
        '--history runs, or a pinned --baseline run): one row per run and metric (tasks, '
        'failures, retries, wall time, makespan, throughput, phase percentiles per partition, '
        'errors), the trend of each metric, and the runs that regress.'),
    'graph': ('aksnap.analyzer.commands',
        "Write the task/data graph (the whole bundle, one session, or one result's upstream) "
        'as Graphviz DOT, GraphML or JSON: tasks and results as nodes (status, session, '
        'partition, pod, message, times), data, payload, produces, spawn and retry edges.'),
    'trace': ('aksnap.analyzer.commands',
        'Write the run as a Chrome/Perfetto trace (JSON trace event format; open it in '
        'ui.perfetto.dev or chrome://tracing): one track per pod (slots of the partition when '
        'pods are unknown), each task a slice with its dispatch, fetching, processing and '
        'finishing phases nested, waiting and queued as counters (and slices on small '
        'traces), data dependencies as flow arrows from producer to consumer, retries linked.'),
    'report': ('aksnap.analyzer.commands',
        'Write one self-contained HTML page (opens offline; no network: its CSS and '
        'JavaScript are inlined and a Content-Security-Policy forbids loads): per session the '
        'overview, tasks by status over time, throughput, phase distributions per partition, '
        'error classes with examples, retries, top blockers, the critical path as a Gantt '
        'strip, and the lineage of the results that matter (blocked, then failed) as an '
        'interactive DAG (click a node for its detail, expand upstream; frontier and root '
        'causes highlighted), with an id search.'),
    'sessions': ('aksnap.cli.sessions',
        'The sessions of a bundle, the most recently created first: id, status, creation time '
        'and tasks by status set (success, failed, retried, cancelled, open: they add up to '
        'the tasks; -o json also by status), to find an id without armonik-cli.'),
    'demo': ('aksnap.cli.demo',
        'Serve a simulated ArmoniK cluster, export it and show what the analyzer finds.'),
    'watch': ('aksnap.cli.watch',
        'Follow a running session (or one result) live: progress, throughput and ETA, the '
        'blocking frontier, new failures and their root causes.'),
    'serve': ('aksnap.cli.serve',
        "Serve the report's page in a browser, live for a running session: a bundle (its "
        'report), a series recorded by `aksnap watch --record` (the report, with a slider '
        'over the recorded states), or --endpoint with --session or --result (the watch '
        'engine reconciles in the background and the page updates in place: findings first, '
        'progress, blocking frontier, lineage of the result, how fresh the data is and '
        'whether the cluster answers).'),
    'pack': ('aksnap.pack',
        'Write a bundle as one file to attach to a bug report, and print its size.'),
    'unpack': ('aksnap.pack',
        'Extract a packed bundle into a bundle directory, after every safety check.'),
    'redact': ('aksnap.redact',
        'Write a copy of a bundle whose identifying strings are keyed pseudonyms.'),
    'archive': ('aksnap.analyzer.commands',
        'Many runs in one Parquet dataset, laid out by table and run (hive partitioning: '
        'tasks/run=<id>/...), with a runs table; DuckDB, pandas, Spark and Trino read it '
        'without aksnap (docs/comparison.md). `aksnap compare` reads it.'),
}
