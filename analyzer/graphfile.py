"""The task/data graph as a file: Graphviz DOT, GraphML (Gephi, yEd, networkx) or JSON.

``select(snap, session_id, result_id, max_nodes)`` picks the nodes (one result's upstream, one
session, or the whole bundle) and cuts them to ``max_nodes``; ``to_dot`` / ``to_graphml`` /
``to_json`` write the selection; ``write(snap, out, fmt, ...)`` does both, atomically. ``aksnap
lineage --dot`` goes through the same selection and the same DOT writer.

Every string of the bundle is escaped for the format it lands in, so that an id or a message
holding quotes, markup, NUL, ESC or bidi overrides cannot end a string, open an element or
drive a terminal: :func:`visible` turns what is not printable into its visible Python escape
(``\\x00``, ``\\u202e``) and doubles backslashes, so two distinct strings stay distinct; DOT
then escapes quotes and ``&`` (Graphviz decodes entities), XML escapes ``& < > " '``. JSON
holds every string exactly (ASCII, ``\\u`` escapes).

What is kept when a selection is cut: for a result, the upstream nodes nearest to it (breadth
first along inputs); for a session or bundle, the tasks created first (the top of the spawn
tree, in submission order) with their inputs and outputs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from xml.sax.saxutils import escape as _xml_escape

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .describe import result_node, status_names
from .graph import KIND_NAMES, NA, concat_ranges
from .snapshot import AnalysisError

FORMATS = ("dot", "graphml", "json")
#: the default cap per format: Graphviz lays out a few thousand nodes in seconds, not more
DEFAULT_MAX_NODES = {"dot": 5000, "graphml": 200_000, "json": 200_000}
EDGE_KINDS = KIND_NAMES + ("spawn", "retry")

_COLORS = {"COMPLETED": "palegreen", "ERROR": "salmon", "TIMEOUT": "salmon", "CANCELLED": "grey",
           "ABORTED": "salmon", "DELETED": "grey", "RETRIED": "khaki", "PROCESSING": "lightblue",
           "SUBMITTED": "lightyellow", "DISPATCHED": "lightblue", "PENDING": "white",
           "CREATED": "white"}


# -- escaping --------------------------------------------------------------------------------------

def visible(s: str) -> str:
    """``s`` on one line with every non-printable character (NUL, newlines, ANSI escapes, DEL,
    C1, bidi overrides, lone surrogates) as its visible Python escape and backslashes doubled:
    injective (two distinct strings never look the same) and safe in any text format."""
    return "".join(c if c.isprintable() and c != "\\" else
                   ("\\\\" if c == "\\" else repr(c)[1:-1]) for c in s)


def dot_escape(s: str) -> str:
    """The text of a double-quoted Graphviz ID or label showing ``s`` exactly, on one line.

    :func:`visible` first; then backslashes are doubled again and quotes escaped, so that a
    label shows the escape instead of a line break, no string ends in an escaped quote, and two
    distinct ids never become the same node. ``&`` is written ``&amp;`` so that an id holding
    ``&#27;`` is not turned into a control character by Graphviz's entity decoding.
    """
    return visible(s).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")


def xml_escape(s: str) -> str:
    """``s`` as XML character data or an attribute value (XML 1.0 cannot hold most control
    characters even as references: they are shown as their escapes by :func:`visible`)."""
    return _xml_escape(visible(s), {'"': "&quot;", "'": "&apos;"})


# -- selection -------------------------------------------------------------------------------------

@dataclass
class Selection:
    """Nodes (sorted indices) and the edges among them, with what was asked and what was cut."""
    nodes: np.ndarray
    total: int                      # nodes before the cut
    scope: str                      # "result R", "session S", "bundle"
    target: int = -1                # the result asked for, else -1
    src: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dst: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # EDGE_KINDS index

    @property
    def truncated(self) -> bool:
        return len(self.nodes) < self.total

    def cut_sentence(self, what: str = "graph") -> str | None:
        """The sentence to say on stderr when the selection was cut, else None."""
        if not self.truncated:
            return None
        if self.target >= 0:
            keep, more = "the nodes nearest the result", "`aksnap graph --result ID --max-nodes 0` writes every one"
        else:
            keep = "the tasks created first, with their inputs and outputs"
            more = "--max-nodes 0 writes every one, --result ID one result's upstream"
        return (f"aksnap: the {what} of {self.scope} has {self.total} nodes; {len(self.nodes)} "
                f"written ({keep}); {more}")


def _nearest_upstream(g, node: int, cap: int) -> np.ndarray:
    """Up to ``cap`` nodes: ``node`` and its ancestors, breadth first along inputs."""
    seen = np.zeros(g.n, dtype=bool)
    seen[node] = True
    parts, count = [np.array([node], dtype=np.int64)], 1
    front = parts[0]
    while len(front) and count < cap:
        lo = g.in_ptr[front]
        nxt = g.in_src[concat_ranges(lo, g.in_ptr[front + 1] - lo)]
        nxt = np.unique(nxt[~seen[nxt]])[:cap - count]
        seen[nxt] = True
        parts.append(nxt)
        count += len(nxt)
        front = nxt
    return np.sort(np.concatenate(parts))


def _first_tasks_with_io(g, mask: np.ndarray, cap: int) -> np.ndarray:
    """The tasks of ``mask`` created first, with their inputs and outputs, at most ``cap`` nodes."""
    tasks = np.flatnonzero(mask[:g.n_tasks])
    created = g.task_ts["created_at"][tasks]
    tasks = tasks[np.lexsort((tasks, np.where(created == NA, np.iinfo(np.int64).max, created)))]
    deg = (g.in_ptr[tasks + 1] - g.in_ptr[tasks]) + (g.out_ptr[tasks + 1] - g.out_ptr[tasks])
    k = int(np.searchsorted(np.cumsum(1 + deg), cap, side="right"))  # an upper bound of the size
    picked = tasks[:max(k, 1)] if len(tasks) else tasks
    lo_i, lo_o = g.in_ptr[picked], g.out_ptr[picked]
    io = np.concatenate([g.in_src[concat_ranges(lo_i, g.in_ptr[picked + 1] - lo_i)],
                         g.out_dst[concat_ranges(lo_o, g.out_ptr[picked + 1] - lo_o)]])
    out = np.unique(np.concatenate([picked, io[mask[io]]]))
    if len(out) > cap:  # a single task with more inputs than the cap
        out = out[:cap]
    if not len(tasks):  # results only (client data nobody reads yet)
        out = np.flatnonzero(mask)[:cap]
    return out


def _edges(g, nodes: np.ndarray, extra: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src, dst, kind = g.subgraph_edges(nodes)
    if not extra:
        return src, dst, kind.astype(np.int64)
    mask = np.zeros(g.n, dtype=bool)
    mask[nodes] = True
    parts = [(src, dst, kind.astype(np.int64))]
    for k, a in ((3, g.parent), (4, g.previous_attempt)):
        child = np.flatnonzero(a >= 0)
        par = a[child]
        keep = mask[child] & mask[par]
        parts.append((par[keep], child[keep], np.full(int(keep.sum()), k, dtype=np.int64)))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def select(snap, session_id: str | None = None, result_id: str | None = None,
           max_nodes: int | None = 5000, extra_edges: bool = True) -> Selection:
    """The nodes to write: ``result_id``'s upstream (and itself), else ``session_id``'s nodes,
    else the whole bundle; cut to ``max_nodes`` (None: no cap). ``extra_edges`` adds the spawn
    (parent -> subtask) and retry (attempt -> next attempt) edges to the data edges."""
    g = snap.graph
    cap = max_nodes if max_nodes else None
    if result_id is not None:
        node = result_node(snap, result_id)
        nodes = np.append(g.ancestors(node), node)
        total = len(nodes)
        if cap is not None and total > cap:
            nodes = _nearest_upstream(g, node, cap)
        sel = Selection(np.sort(nodes), total, f"result {result_id}", target=node)
    else:
        if session_id is not None:
            snap.require_session(session_id)
        mask = g.session_nodes(session_id)
        total = int(mask.sum())
        nodes = (_first_tasks_with_io(g, mask, cap) if cap is not None and total > cap
                 else np.flatnonzero(mask))
        sel = Selection(nodes, total, f"session {session_id}" if session_id else "the bundle")
    sel.src, sel.dst, sel.kind = _edges(g, sel.nodes, extra_edges)
    return sel


# -- text, column-wise -----------------------------------------------------------------------------
# Millions of nodes are written without Python per node: each line is built by Arrow string
# kernels over whole columns and written from the Arrow buffer. Only the rare string that needs
# more than ASCII quoting (non-ASCII, control characters, backslashes) goes through Python.

_JSON_PLAIN = r'[^\x20\x21\x23-\x5b\x5d-\x7e]'   # anything but printable ASCII without " and \
_XML_PLAIN = r'[^\x20-\x5b\x5d-\x7e]'              # anything but printable ASCII without \


def _strings(values) -> pa.Array:
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string())
    return arr.cast(pa.string())


def _fix(out: pa.Array, arr: pa.Array, pattern: str, fn) -> pa.Array:
    bad = pc.fill_null(pc.match_substring_regex(arr, pattern), False)
    if pc.any(bad).as_py():
        fixed = [fn(v) for v in pc.filter(arr, bad).to_pylist()]
        out = pc.replace_with_mask(out, bad, pa.array(fixed, pa.string()))
    return out


def jstr(values, null: str | None = None) -> pa.Array:
    """Each value as a JSON string literal (quotes included), ASCII only; a null becomes
    ``null`` when given (e.g. "null"), else the empty string's literal."""
    arr = _strings(values)
    filled = pc.fill_null(arr, "")
    out = _fix(pc.binary_join_element_wise('"', filled, '"', ""), filled, _JSON_PLAIN, json.dumps)
    if null is not None:
        out = pc.if_else(pc.is_null(arr), null, out)
    return out


def xml_text(values) -> pa.Array:
    """:func:`xml_escape` of each value, column-wise (nulls stay null)."""
    arr = _strings(values)
    out = arr
    for c, ent in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&apos;")):
        out = pc.replace_substring(out, c, ent)
    return _fix(out, pc.fill_null(arr, ""), _XML_PLAIN, xml_escape)


def join_lines(*parts) -> pa.Array:
    """Literal strings and string arrays concatenated element-wise."""
    return pc.binary_join_element_wise(*parts, "")


def text_buffer(lines: pa.Array) -> memoryview:
    """The bytes of all elements of a string array back to back (no per-row Python)."""
    lines = lines.cast(pa.large_string())
    if not len(lines):
        return memoryview(b"")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[int(offsets[0]):int(offsets[-1])]


# -- node attributes -------------------------------------------------------------------------------

def _iso(us: np.ndarray) -> pa.Array:
    """µs since the epoch (NA: null) as ISO 8601 UTC text, column-wise."""
    t = pa.array(np.where(us == NA, 0, us), pa.timestamp("us", tz="UTC"), mask=us == NA)
    return pc.strftime(t, format="%Y-%m-%dT%H:%M:%SZ")


def node_table(snap, nodes: np.ndarray) -> dict[str, pa.Array]:
    """Columns (Arrow strings, null where not applicable) describing ``nodes``: id, kind,
    status, session, partition, pod, name (results), message (tasks: output error, else
    status message), created_at, ended_at (results: completed_at)."""
    from aksnap.bundle import RESULT_STATUSES, TASK_STATUSES

    g = snap.graph
    nodes = np.asarray(nodes, dtype=np.int64)
    t = nodes < g.n_tasks
    order = np.concatenate([np.flatnonzero(t), np.flatnonzero(~t)])  # tasks first, then back
    back = pa.array(np.argsort(order, kind="stable"))
    tn, rn = nodes[t], nodes[~t] - g.n_tasks
    nt, nr = len(tn), len(rn)

    def both(task_part: pa.Array | None, result_part: pa.Array | None) -> pa.Array:
        a = task_part if task_part is not None else pa.nulls(nt, pa.string())
        b = result_part if result_part is not None else pa.nulls(nr, pa.string())
        return pa.concat_arrays([_strings(a), _strings(b)]).take(back)

    det = g.details.take(pa.array(tn)).combine_chunks() if nt else None
    col = (lambda c: det[c].combine_chunks() if isinstance(det[c], pa.ChunkedArray) else det[c]) \
        if det is not None else (lambda c: pa.nulls(0, pa.string()))
    err = pc.utf8_trim_whitespace(pc.fill_null(_strings(col("output_error")), ""))
    msg = pc.utf8_trim_whitespace(pc.fill_null(_strings(col("status_message")), ""))
    message = pc.if_else(pc.not_equal(err, ""), err, msg)
    message = pc.if_else(pc.equal(message, ""), pa.scalar(None, pa.string()), message)
    names = _strings(snap.read_columns("results", ["name"])["name"].take(pa.array(rn))) if nr else None
    tvocab = pa.array(list(TASK_STATUSES) + ["UNKNOWN"], pa.string())
    rvocab = pa.array(list(RESULT_STATUSES) + ["UNKNOWN"], pa.string())
    tcodes, rcodes = g.task_status[tn], g.result_status[rn]
    ts, rts = g.task_ts, g.result_ts
    return {
        "id": g.node_id_array(nodes),
        "kind": both(pa.repeat(pa.scalar("task"), nt), pa.repeat(pa.scalar("result"), nr)),
        "status": both(tvocab.take(pa.array(np.where(tcodes < 0, len(tvocab) - 1, tcodes))),
                       rvocab.take(pa.array(np.where(rcodes < 0, len(rvocab) - 1, rcodes)))),
        "session_id": _strings(g.sessions.take(pa.array(g.session_of[nodes].astype(np.int64)))),
        "partition_id": both(col("partition_id") if nt else None, None),
        "pod_hostname": both(col("pod_hostname") if nt else None, None),
        "name": both(None, names),
        "message": both(message if nt else None, None),
        "created_at": both(_iso(ts["created_at"][tn]), _iso(rts["created_at"][rn])),
        "ended_at": both(_iso(ts["ended_at"][tn]), _iso(rts["completed_at"][rn])),
    }


# -- writers ---------------------------------------------------------------------------------------

def to_dot(snap, sel: Selection, title: str | None = None) -> str:
    """The selection in Graphviz DOT: tasks as boxes, results as ellipses, filled by status;
    payload edges dashed, spawn and retry edges dotted; the target result drawn thick."""
    g = snap.graph
    nodes = sel.nodes
    ids = g.node_ids(nodes)
    statuses = status_names(g, nodes).tolist()
    title = title or f"aksnap graph of {sel.scope}"
    lines = [f'digraph "{dot_escape(title)}" {{', "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=10, style=filled];']
    for n, nid, status in zip(nodes.tolist(), ids, statuses):
        task = n < g.n_tasks
        # "\\n" is Graphviz's line break; the parts are escaped on their own so that a newline
        # inside an id is shown, not obeyed.
        label = dot_escape(f"{'task' if task else 'result'} {nid}") + "\\n" + dot_escape(status)
        extra = ", penwidth=3" if n == sel.target else ""
        lines.append(f'  "{dot_escape(nid)}" [shape={"box" if task else "ellipse"}, '
                     f'fillcolor={_COLORS.get(status, "white")}, label="{label}"{extra}];')
    sid, did = g.node_ids(sel.src), g.node_ids(sel.dst)
    for a, b, k in zip(sid, did, sel.kind.tolist()):
        name = EDGE_KINDS[k]
        style = {"payload": ", style=dashed", "spawn": ", style=dotted, color=grey40",
                 "retry": ", style=dotted, color=orange"}.get(name, "")
        lines.append(f'  "{dot_escape(a)}" -> "{dot_escape(b)}" [label="{name}"{style}];')
    if sel.truncated:
        lines.append(f'  "truncated" [shape=note, label="{len(nodes)} of the {sel.total} nodes '
                     f'shown"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


_GRAPHML_KEYS = ("id", "kind", "status", "session_id", "partition_id", "pod_hostname", "name",
                 "message", "created_at", "ended_at")


def _graphml_lines(snap, sel: Selection, chunk: int = 100_000) -> Iterator:
    yield '<?xml version="1.0" encoding="UTF-8"?>\n'
    yield ('<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
           'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
           'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n')
    for k in _GRAPHML_KEYS:
        yield f'  <key id="{k}" for="node" attr.name="{k}" attr.type="string"/>\n'
    yield '  <key id="edge_kind" for="edge" attr.name="kind" attr.type="string"/>\n'
    yield ('  <key id="truncated" for="graph" attr.name="truncated" attr.type="string"/>\n'
           '  <key id="scope" for="graph" attr.name="scope" attr.type="string"/>\n')
    yield '  <graph id="G" edgedefault="directed">\n'
    yield f'    <data key="scope">{xml_escape(sel.scope)}</data>\n'
    if sel.truncated:
        yield (f'    <data key="truncated">{len(sel.nodes)} of the {sel.total} nodes written'
               '</data>\n')
    # node ids are the node indices ("n42"): XML ids stay simple, the bundle id is a data field
    for lo in range(0, len(sel.nodes), chunk):
        part = sel.nodes[lo:lo + chunk]
        cols = node_table(snap, part)
        pieces = []
        for k in _GRAPHML_KEYS:
            text = xml_text(cols[k])
            pieces.append(pc.fill_null(join_lines(f'<data key="{k}">', text, "</data>"), ""))
        yield text_buffer(join_lines('    <node id="n', pc.cast(pa.array(part), pa.string()), '">',
                                     *pieces, "</node>\n"))
    kinds = pa.array(list(EDGE_KINDS), pa.string())
    for lo in range(0, len(sel.src), chunk):
        yield text_buffer(join_lines(
            '    <edge source="n', pc.cast(pa.array(sel.src[lo:lo + chunk]), pa.string()),
            '" target="n', pc.cast(pa.array(sel.dst[lo:lo + chunk]), pa.string()),
            '"><data key="edge_kind">', kinds.take(pa.array(sel.kind[lo:lo + chunk])),
            "</data></edge>\n"))
    yield "  </graph>\n</graphml>\n"


def _text(parts) -> str:
    return "".join(p if isinstance(p, str) else bytes(p).decode("utf-8") for p in parts)


def to_graphml(snap, sel: Selection) -> str:
    """The selection in GraphML (node attributes: ``_GRAPHML_KEYS``; edges: ``kind``)."""
    return _text(_graphml_lines(snap, sel))


def _separators(n: int, first: bool) -> pa.Array:
    """What goes before each of ``n`` JSON array items: a comma but before the very first."""
    sep = pa.repeat(pa.scalar(",\n  "), n)
    if first and n:
        sep = pc.if_else(pa.array(np.arange(n) == 0), "\n  ", sep)
    return sep


def _json_parts(snap, sel: Selection, chunk: int = 100_000) -> Iterator:
    head = {"scope": sel.scope, "nodes_total": sel.total, "nodes_written": int(len(sel.nodes)),
            "truncated": sel.truncated, "directed": True, "edge_kinds": list(EDGE_KINDS)}
    yield '{"graph": ' + json.dumps(head) + ',\n "nodes": ['
    for lo in range(0, len(sel.nodes), chunk):
        cols = node_table(snap, sel.nodes[lo:lo + chunk])
        parts: list = []
        for k in cols:
            parts += [f',"{k}":' if parts else f'{{"{k}":', jstr(cols[k], null="null")]
        yield text_buffer(join_lines(_separators(len(cols["id"]), lo == 0), *parts, "}"))
    yield '],\n "edges": ['
    g = snap.graph
    kinds = pa.array(list(EDGE_KINDS), pa.string())
    for lo in range(0, len(sel.src), chunk):
        hi = min(lo + chunk, len(sel.src))
        yield text_buffer(join_lines(
            _separators(hi - lo, lo == 0), '{"source":', jstr(g.node_id_array(sel.src[lo:hi])),
            ',"target":', jstr(g.node_id_array(sel.dst[lo:hi])), ',"kind":"',
            kinds.take(pa.array(sel.kind[lo:hi])), '"}'))
    yield "]}\n"


def to_json(snap, sel: Selection) -> str:
    """The selection as JSON: ``graph`` (scope, counts, truncated), ``nodes`` (one object each,
    keyed by bundle id) and ``edges`` (source, target, kind) — networkx's
    ``node_link_graph(data, edges="edges")`` reads it."""
    return _text(_json_parts(snap, sel))


def write_atomically(out: Path, parts, binary: bool = False, overwrite: bool = False,
                     sources=(), option: str = "--out") -> int:
    """Write the parts (text; with ``binary``, bytes-like or text) to ``out`` through
    :func:`aksnap.output.atomic_output` (an existing file only with ``overwrite``; never
    through a link, into a bundle or over ``sources``; all or nothing); return the size
    written. Raises BundleError, one sentence."""
    from aksnap.output import atomic_output

    size = 0
    with atomic_output(out, overwrite=overwrite, option=option, sources=sources) as f:
        for p in parts:
            if isinstance(p, str):
                p = p.encode("utf-8")
            f.write(p)
            size += len(p)
    return size


def write(snap, out: str | os.PathLike, fmt: str = "dot", session_id: str | None = None,
          result_id: str | None = None, max_nodes: int | None = -1,
          overwrite: bool = False, sources=()) -> dict[str, Any]:
    """Write the graph (see :func:`select`) to ``out`` in ``fmt``; ``max_nodes`` -1 is the
    format's default (:data:`DEFAULT_MAX_NODES`), 0 or None no cap; an existing file at
    ``out`` is replaced only with ``overwrite``; ``sources``: other paths read, never written
    (the packed file the bundle came from). Returns what was written: path, format, scope,
    nodes, edges, nodes_total, truncated and, when cut, the sentence."""
    from aksnap.output import check_output_file

    sources = (snap.path, *sources)
    check_output_file(out, overwrite=overwrite, sources=sources)  # before the work
    if fmt not in FORMATS:
        raise AnalysisError(f"unknown graph format {fmt!r}; use one of {', '.join(FORMATS)}")
    if max_nodes is not None and max_nodes < 0:
        max_nodes = DEFAULT_MAX_NODES[fmt]
    if session_id is not None:
        session_id = snap.resolve_id("session", session_id)
    if result_id is not None:
        result_id = snap.resolve_id("result", result_id)
    sel = select(snap, session_id, result_id, max_nodes)
    parts = {"dot": lambda: [to_dot(snap, sel)], "graphml": lambda: _graphml_lines(snap, sel),
             "json": lambda: _json_parts(snap, sel)}[fmt]()
    write_atomically(Path(out), parts, binary=True, overwrite=overwrite, sources=sources)
    return {"path": str(out), "format": fmt, "scope": sel.scope, "nodes": int(len(sel.nodes)),
            "edges": int(len(sel.src)), "nodes_total": sel.total, "truncated": sel.truncated,
            "note": sel.cut_sentence()}
