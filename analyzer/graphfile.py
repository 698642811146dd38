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
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from xml.sax.saxutils import escape as _xml_escape

import numpy as np
import pyarrow as pa

from .graph import KIND_NAMES, NA, _ranges
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
        nxt = g.in_src[_ranges(lo, g.in_ptr[front + 1] - lo)]
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
    io = np.concatenate([g.in_src[_ranges(lo_i, g.in_ptr[picked + 1] - lo_i)],
                         g.out_dst[_ranges(lo_o, g.out_ptr[picked + 1] - lo_o)]])
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
        from .lineage import _resolve_result

        node = _resolve_result(snap, result_id)
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


# -- node attributes -------------------------------------------------------------------------------

def _iso(us: np.ndarray) -> list[str | None]:
    out = np.full(len(us), None, dtype=object)
    ok = us != NA
    if ok.any():
        out[ok] = np.datetime_as_string(us[ok].astype("datetime64[us]"), unit="us", timezone="UTC")
    return out.tolist()


def node_table(snap, nodes: np.ndarray) -> dict[str, list]:
    """Columns describing ``nodes``: id, kind, status, session, partition, pod, name (results),
    message (tasks: output error, else status message), created_at, ended_at."""
    from .describe import failure_messages, session_ids, status_names

    g = snap.graph
    nodes = np.asarray(nodes, dtype=np.int64)
    t = nodes < g.n_tasks
    tn, rn = nodes[t], nodes[~t] - g.n_tasks
    n = len(nodes)

    def spread(task_values, result_values) -> list:
        out = np.empty(n, dtype=object)
        out[t] = task_values
        out[~t] = result_values
        return out.tolist()

    det = g.details.take(pa.array(tn)) if len(tn) else None
    tcol = (lambda c: det[c].to_pylist()) if det is not None else (lambda c: [])
    names = snap.read_columns("results", ["name"])["name"].take(pa.array(rn)).to_pylist() \
        if len(rn) else []
    ts, rts = g.task_ts, g.result_ts
    empty: list = [None] * len(rn)
    return {
        "id": [str(v) for v in g.node_ids(nodes)],
        "kind": spread(["task"] * len(tn), ["result"] * len(rn)),
        "status": [str(v) for v in status_names(g, nodes)],
        "session_id": session_ids(g, nodes),
        "partition_id": spread(tcol("partition_id"), empty),
        "pod_hostname": spread(tcol("pod_hostname"), empty),
        "name": spread([None] * len(tn), names),
        "message": spread(failure_messages(tcol("output_error"), tcol("status_message")), empty),
        "created_at": spread(_iso(ts["created_at"][tn]), _iso(rts["created_at"][rn])),
        "ended_at": spread(_iso(ts["ended_at"][tn]), _iso(rts["completed_at"][rn])),
    }


# -- writers ---------------------------------------------------------------------------------------

def to_dot(snap, sel: Selection, title: str | None = None) -> str:
    """The selection in Graphviz DOT: tasks as boxes, results as ellipses, filled by status;
    payload edges dashed, spawn and retry edges dotted; the target result drawn thick."""
    g = snap.graph
    nodes = sel.nodes
    ids = g.node_ids(nodes)
    from .describe import status_names

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


def _graphml_lines(snap, sel: Selection, chunk: int = 50_000) -> Iterator[str]:
    g = snap.graph
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
        out = []
        for i, n in enumerate(part.tolist()):
            data = "".join(f'<data key="{k}">{xml_escape(cols[k][i])}</data>'
                           for k in _GRAPHML_KEYS if cols[k][i] is not None)
            out.append(f'    <node id="n{n}">{data}</node>\n')
        yield "".join(out)
    for lo in range(0, len(sel.src), chunk):
        yield "".join(f'    <edge source="n{a}" target="n{b}"><data key="edge_kind">{EDGE_KINDS[k]}'
                      f'</data></edge>\n' for a, b, k in zip(sel.src[lo:lo + chunk].tolist(),
                                                             sel.dst[lo:lo + chunk].tolist(),
                                                             sel.kind[lo:lo + chunk].tolist()))
    yield "  </graph>\n</graphml>\n"
    del g


def to_graphml(snap, sel: Selection) -> str:
    """The selection in GraphML (node attributes: ``_GRAPHML_KEYS``; edges: ``kind``)."""
    return "".join(_graphml_lines(snap, sel))


def _json_parts(snap, sel: Selection, chunk: int = 50_000) -> Iterator[str]:
    head = {"scope": sel.scope, "nodes_total": sel.total, "nodes_written": int(len(sel.nodes)),
            "truncated": sel.truncated, "directed": True, "edge_kinds": list(EDGE_KINDS)}
    yield '{"graph": ' + json.dumps(head) + ',\n "nodes": ['
    first = True
    for lo in range(0, len(sel.nodes), chunk):
        part = sel.nodes[lo:lo + chunk]
        cols = node_table(snap, part)
        keys = list(cols)
        rows = [json.dumps(dict(zip(keys, vals))) for vals in zip(*(cols[k] for k in keys))]
        if rows:
            yield ("" if first else ",") + "\n  " + ",\n  ".join(rows)
            first = False
    yield '],\n "edges": ['
    first = True
    g = snap.graph
    for lo in range(0, len(sel.src), chunk):
        a = g.node_ids(sel.src[lo:lo + chunk])
        b = g.node_ids(sel.dst[lo:lo + chunk])
        rows = [json.dumps({"source": s, "target": t, "kind": EDGE_KINDS[k]})
                for s, t, k in zip(a, b, sel.kind[lo:lo + chunk].tolist())]
        if rows:
            yield ("" if first else ",") + "\n  " + ",\n  ".join(rows)
            first = False
    yield "]}\n"


def to_json(snap, sel: Selection) -> str:
    """The selection as JSON: ``graph`` (scope, counts, truncated), ``nodes`` (one object each,
    keyed by bundle id) and ``edges`` (source, target, kind) — networkx's
    ``node_link_graph(data, edges="edges")`` reads it."""
    return "".join(_json_parts(snap, sel))


def write_atomically(out: Path, parts, binary: bool = False) -> int:
    """Write the parts (text; with ``binary``, bytes-like or text) to ``out`` through a
    temporary sibling file renamed into place; return the size written."""
    out = Path(out)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    except OSError as e:
        raise AnalysisError(f"cannot write {str(out)!r} ({e.strerror}); check the path") from None
    size = 0
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from the reader it is for
        with (os.fdopen(fd, "wb") if binary else
              os.fdopen(fd, "w", encoding="utf-8", newline="\n")) as f:
            for p in parts:
                if binary and isinstance(p, str):
                    p = p.encode("utf-8")
                f.write(p)
                size += len(p)
        os.replace(tmp, out)
    except OSError as e:
        os.unlink(tmp) if os.path.exists(tmp) else None
        raise AnalysisError(f"cannot write {str(out)!r} ({e.strerror}); check the path") from None
    except BaseException:
        os.unlink(tmp) if os.path.exists(tmp) else None
        raise
    return size


def write(snap, out: str | os.PathLike, fmt: str = "dot", session_id: str | None = None,
          result_id: str | None = None, max_nodes: int | None = -1) -> dict[str, Any]:
    """Write the graph (see :func:`select`) to ``out`` in ``fmt``; ``max_nodes`` -1 is the
    format's default (:data:`DEFAULT_MAX_NODES`), 0 or None no cap. Returns what was written:
    path, format, scope, nodes, edges, nodes_total, truncated and, when cut, the sentence."""
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
    write_atomically(Path(out), parts)
    return {"path": str(out), "format": fmt, "scope": sel.scope, "nodes": int(len(sel.nodes)),
            "edges": int(len(sel.src)), "nodes_total": sel.total, "truncated": sel.truncated,
            "note": sel.cut_sentence()}
