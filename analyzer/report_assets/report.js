// aksnap report: draws the page from the JSON of the script element with the id "data".
// Every string of the bundle reaches the DOM through textContent (or an attribute value set with
// setAttribute), never as markup: no innerHTML, insertAdjacentHTML, document.write or eval here.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const STATUSES = ["PENDING", "SUBMITTED", "DISPATCHED", "PROCESSING", "COMPLETED", "RETRIED",
    "ERROR", "TIMEOUT", "CANCELLED", "CANCELLING", "PAUSED", "CREATING", "CREATED", "ABORTED",
    "DELETED"];
  const COLORS = {PENDING: "#d5dbe2", SUBMITTED: "#efe3a0", DISPATCHED: "#8fb8e8",
    PROCESSING: "#4d8fd6", COMPLETED: "#59b86b", RETRIED: "#e4b440", ERROR: "#d9534f",
    TIMEOUT: "#b5403c", CANCELLED: "#9aa3ad", CANCELLING: "#b8bfc7", PAUSED: "#c9b3e6",
    CREATING: "#e8edf2", UNSPECIFIED: "#777", UNKNOWN: "#555"};
  const PHASE_COLORS = {waiting: "#cfd6de", queued: "#efd27a", dispatch: "#9bc1ec",
    fetching: "#7aa7dc", processing: "#3f7fcf", finishing: "#2e5f9e"};
  const byId = new Map();   // node id -> [{dag, index}] of the DAGs holding it
  const pageIds = new Map(); // every id shown in the page -> a short description

  // Bundle strings shown visibly: control characters and bidi overrides as \uXXXX escapes.
  function vis(s) {
    if (s === null || s === undefined) return "";
    return String(s).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
      (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = vis(text);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs || {}) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = vis(text);
    return e;
  }
  function statusClass(s) { return STATUSES.includes(s) ? "st-" + s : "st-other"; }
  function fmtS(s) {
    if (s === null || s === undefined) return "";
    s = Number(s);
    if (s < 1e-3) return (s * 1e6).toFixed(0) + " µs";
    if (s < 1) return (s * 1e3).toFixed(1) + " ms";
    if (s < 120) return s.toFixed(2) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(2) + " h";
  }
  function fmtN(n) { return n === null || n === undefined ? "" : Number(n).toLocaleString("en"); }
  function idLink(id) {
    const a = el("a", "idlink", id);
    a.addEventListener("click", () => { searchFor(id); });
    return a;
  }
  function table(rows, cols) {
    const t = el("table"), head = el("tr");
    for (const [k, label] of cols) head.appendChild(el("th", "", label || k));
    t.appendChild(head);
    for (const r of rows) {
      const tr = el("tr");
      for (const [k, , kind] of cols) {
        const v = r[k];
        const td = el("td", kind === "id" ? "id" : kind === "msg" ? "msg" : "");
        if (kind === "id" && v) td.appendChild(idLink(v));
        else if (kind === "s") td.textContent = fmtS(v);
        else if (Array.isArray(v)) td.textContent = vis(v.join(" | "));
        else if (v && typeof v === "object") td.textContent = vis(JSON.stringify(v));
        else td.textContent = vis(v === null || v === undefined ? "" : v);
        tr.appendChild(td);
      }
      t.appendChild(tr);
    }
    return t;
  }
  function legend(items) {
    const d = el("div", "legend");
    for (const [name, color] of items) {
      const s = el("span");
      const sw = el("span", "sw");
      sw.style.background = color;
      s.appendChild(sw);
      s.appendChild(document.createTextNode(vis(name)));
      d.appendChild(s);
    }
    return d;
  }

  // -- header ---------------------------------------------------------------------------------
  const meta = DATA.meta;
  document.getElementById("meta").textContent = vis(
    `${meta.bundle} · snapshot ${meta.snapshot_time || "unknown"} · ${fmtN(meta.tasks)} tasks, ` +
    `${fmtN(meta.results)} results, ${meta.sessions_total} session(s) · format ${meta.format_version}` +
    ` · ${meta.generator}` + (meta.redacted ? ` · ${meta.redacted}` : ""));
  const main = document.getElementById("main");
  main.textContent = "";
  const notes = el("div", "notes");
  notes.appendChild(el("strong", "", "What this page aggregated: "));
  const ul = el("ul");
  for (const n of DATA.notes) ul.appendChild(el("li", "", n));
  notes.appendChild(ul);
  main.appendChild(notes);

  // -- charts -----------------------------------------------------------------------------------
  const W = 900;
  function axes(g, w, h, x0, xmax, ymax, xlabel, ylabel) {
    g.appendChild(svg("line", {x1: x0, y1: h, x2: w, y2: h, class: "axis"}));
    g.appendChild(svg("line", {x1: x0, y1: 4, x2: x0, y2: h, class: "axis"}));
    g.appendChild(svg("text", {x: x0, y: h + 14}, "0"));
    g.appendChild(svg("text", {x: w - 4, y: h + 14, "text-anchor": "end"}, xmax + " " + xlabel));
    g.appendChild(svg("text", {x: x0 - 4, y: 12, "text-anchor": "end"}, ymax));
    if (ylabel) g.appendChild(svg("text", {x: x0 + 4, y: 12}, ylabel));
  }
  function statusChart(tl, note) {
    const wrap = el("div");
    const names = Object.keys(tl.counts);
    const n = tl.times_s.length;
    if (!n) { wrap.appendChild(el("p", "note", "no task has a creation time")); return wrap; }
    const tmax = tl.times_s[n - 1] || 1, h = 200, x0 = 50;
    let ymax = 1;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (const k of names) s += tl.counts[k][i];
      ymax = Math.max(ymax, s);
    }
    const root = svg("svg", {width: W, height: h + 24, role: "img"});
    const X = (t) => x0 + (W - x0 - 10) * t / tmax, Y = (v) => h - (h - 6) * v / ymax;
    const base = new Array(n).fill(0);
    for (const k of names) {
      const top = base.map((b, i) => b + tl.counts[k][i]);
      const pts = [];
      for (let i = 0; i < n; i++) pts.push(X(tl.times_s[i]) + "," + Y(top[i]));
      for (let i = n - 1; i >= 0; i--) pts.push(X(tl.times_s[i]) + "," + Y(base[i]));
      const poly = svg("polygon", {points: pts.join(" "), fill: COLORS[k] || "#888"});
      poly.appendChild(svg("title", {}, k));
      root.appendChild(poly);
      for (let i = 0; i < n; i++) base[i] = top[i];
    }
    axes(root, W - 10, h, x0, fmtS(tmax), fmtN(ymax), "", "tasks");
    wrap.appendChild(legend(names.map((k) => [k, COLORS[k] || "#888"])));
    wrap.appendChild(root);
    wrap.appendChild(el("p", "note", note || (`${n} instants, one every ${fmtS(tl.bin_s)} from ${tl.t0} ` +
      "(queries/status_over_time.sql's definition; aksnap query BUNDLE status_over_time for the table)")));
    return wrap;
  }
  // Tasks ending per second in each bin, stacked by the vocabulary's final sets (aksnap.columns:
  // completed, failed = ERROR or TIMEOUT, retried attempts, cancelled); queries/throughput.sql's.
  const ENDED = [["completed", "COMPLETED"], ["failed", "ERROR"], ["retried", "RETRIED"],
    ["cancelled", "CANCELLED"]];
  function throughputChart(tl) {
    const wrap = el("div");
    const n = tl.completed.length;
    if (!n) return wrap;
    const h = 140, x0 = 50, bw = (W - x0 - 10) / n, rate = (c) => c / (tl.bin_s || 1);
    const sets = ENDED.filter(([k]) => Array.isArray(tl[k]));
    let ymax = 1e-9;
    for (let i = 0; i < n; i++) ymax = Math.max(ymax, rate(sets.reduce((a, [k]) => a + tl[k][i], 0)));
    const root = svg("svg", {width: W, height: h + 24});
    for (let i = 0; i < n; i++) {
      let y = h;
      for (const [k, color] of sets) {
        const v = rate(tl[k][i]), hv = (h - 6) * v / ymax;
        if (hv <= 0) continue;
        y -= hv;
        const r = svg("rect", {x: x0 + i * bw, y: y, width: Math.max(bw - 1, 1), height: hv, fill: COLORS[color]});
        r.appendChild(svg("title", {}, `${v.toFixed(2)} ${k}/s`));
        root.appendChild(r);
      }
    }
    axes(root, W - 10, h, x0, fmtS(tl.times_s[n] || tl.times_s[n - 1]), ymax.toFixed(1), "", "tasks/s");
    wrap.appendChild(legend(sets.map(([k, color]) => [k + " / s", COLORS[color]])));
    wrap.appendChild(root);
    return wrap;
  }
  // A recorded series (aksnap watch --record): one point per recorded state, as the watch saw it.
  function percentChart(times, pct) {
    const h = 100, x0 = 50, n = times.length, tmax = times[n - 1] || 1;
    const root = svg("svg", {width: W, height: h + 24, role: "img"});
    const X = (t) => x0 + (W - x0 - 10) * t / tmax, Y = (v) => h - (h - 6) * v / 100;
    const line = svg("polyline", {points: times.map((t, i) => X(t) + "," + Y(pct[i])).join(" "),
      fill: "none", stroke: COLORS.COMPLETED, "stroke-width": 2});
    root.appendChild(line);
    for (let i = 0; i < n; i++) {
      const c = svg("circle", {cx: X(times[i]), cy: Y(pct[i]), r: 3, fill: COLORS.COMPLETED});
      c.appendChild(svg("title", {}, `${fmtS(times[i])}: ${pct[i]} % complete`));
      root.appendChild(c);
    }
    axes(root, W - 10, h, x0, fmtS(tmax), "100 %", "", "complete");
    return root;
  }
  function replaySection(rp) {
    const sec = el("section", "session replay");
    sec.id = "replay";
    sec.appendChild(el("h2", "", "Tasks by status over time, as recorded"));
    sec.appendChild(el("p", "", `From ${fmtN(rp.states)} recorded states between ${rp.from || "?"} and ` +
      `${rp.to || "?"} (the cluster's clock), in ${rp.series}` +
      (rp.session_id ? `, session ${rp.session_id}` : "") + "; the rest of this page is the latest one."));
    const rows = rp.rows.filter((r) => r.elapsed_s !== null && r.elapsed_s !== undefined);
    const counts = {};
    for (const k of rp.statuses) counts[k] = rows.map((r) => r[k] || 0);
    const times = rows.map((r) => r.elapsed_s);
    sec.appendChild(statusChart({times_s: times, counts: counts}, `${rows.length} recorded states, ` +
      "one point each (aksnap analyze DIR for the table)"));
    if (rows.length) {
      sec.appendChild(el("h3", "", "Percent complete, as recorded"));
      sec.appendChild(percentChart(times, rows.map((r) => r.percent_complete)));
    }
    const det = el("details");
    det.appendChild(el("summary", "", "the recorded states"));
    det.appendChild(table(rp.rows, [["bundle"], ["at"], ["elapsed_s", "elapsed", "s"], ["tasks"],
      ["percent_complete", "% complete"]].concat(rp.statuses.map((k) => [k])).concat([["rows_fetched", "rows fetched"]])));
    sec.appendChild(det);
    return sec;
  }
  if (DATA.replay) main.appendChild(replaySection(DATA.replay));
  const EDGES = [0]; for (let e = -3; e <= 5.001; e += 0.25) EDGES.push(Math.pow(10, e));
  function histograms(phases) {
    const wrap = el("div");
    const parts = [...new Set(phases.map((p) => p.partition_id))];
    for (const part of parts) {
      wrap.appendChild(el("h4", "", "partition " + vis(part)));
      const row = el("div", "hists");
      for (const p of phases.filter((q) => q.partition_id === part)) {
        const box = el("div", "hist");
        box.appendChild(el("div", "", `${p.phase}: p50 ${fmtS(p.p50_s)}, p90 ${fmtS(p.p90_s)}, max ${fmtS(p.max_s)} (${fmtN(p.tasks)} tasks)`));
        const w = 260, h = 70, nb = p.hist.length, bw = w / nb, ymax = Math.max(...p.hist, 1);
        const root = svg("svg", {width: w, height: h + 14});
        p.hist.forEach((c, i) => {
          if (!c) return;
          const hh = (h - 2) * c / ymax;
          const r = svg("rect", {x: i * bw, y: h - hh, width: Math.max(bw - 0.5, 0.5), height: hh, fill: PHASE_COLORS[p.phase] || "#789"});
          r.appendChild(svg("title", {}, `${fmtN(c)} tasks in [${fmtS(EDGES[i])}, ${fmtS(EDGES[i + 1])})`));
          root.appendChild(r);
        });
        root.appendChild(svg("line", {x1: 0, y1: h, x2: w, y2: h, class: "axis"}));
        root.appendChild(svg("text", {x: 0, y: h + 12}, "0"));
        // bin k covers [EDGES[k], EDGES[k + 1]): 1 ms is edge 1, 1 s edge 13, 1000 s edge 25
        for (const [k, label] of [[1, "1ms"], [13, "1s"], [25, "1000s"]]) {
          root.appendChild(svg("line", {x1: w * k / nb, y1: h, x2: w * k / nb, y2: h + 3, class: "axis"}));
          root.appendChild(svg("text", {x: w * k / nb, y: h + 12, "text-anchor": "middle"}, label));
        }
        box.appendChild(root);
        row.appendChild(box);
      }
      wrap.appendChild(row);
    }
    wrap.appendChild(el("p", "note", "durations on log-spaced bins (4 per decade, from 1 ms to 28 h; the first bin is under 1 ms); " +
      "aksnap query BUNDLE task_phases for every task"));
    return wrap;
  }
  function gantt(cp) {
    const wrap = el("div");
    wrap.appendChild(el("p", "", cp.line || "no critical path (no completed result)"));
    const steps = cp.steps || [];
    if (!steps.length) return wrap;
    let t0 = Infinity, t1 = -Infinity;
    const spans = steps.map((s) => Object.entries(s.phases).map(([ph, [at, d]]) => {
      const a = Date.parse(at) / 1000; t0 = Math.min(t0, a); t1 = Math.max(t1, a + d);
      return [ph, a, d];
    }));
    const span = Math.max(t1 - t0, 1e-6), x0 = 290, rowH = 16, h = steps.length * rowH + 4;
    const root = svg("svg", {width: W, height: h + 20});
    steps.forEach((s, i) => {
      const y = i * rowH + 2;
      const label = svg("text", {x: 0, y: y + 11}, `${i + 1}. ${String(s.id).slice(0, 40)}`);
      root.appendChild(label);
      for (const [ph, a, d] of spans[i]) {
        const r = svg("rect", {x: x0 + (W - x0 - 10) * (a - t0) / span, y: y, height: rowH - 4,
          width: Math.max((W - x0 - 10) * d / span, 0.8), fill: PHASE_COLORS[ph]});
        r.appendChild(svg("title", {}, `${s.id} ${ph} ${fmtS(d)}`));
        root.appendChild(r);
      }
    });
    root.appendChild(svg("line", {x1: x0, y1: h, x2: W - 10, y2: h, class: "axis"}));
    root.appendChild(svg("text", {x: x0, y: h + 14}, "0"));
    root.appendChild(svg("text", {x: W - 10, y: h + 14, "text-anchor": "end"}, fmtS(span)));
    wrap.appendChild(legend(Object.entries(PHASE_COLORS)));
    wrap.appendChild(root);
    if (cp.task_steps > steps.length) wrap.appendChild(el("p", "note", `${steps.length} of ${cp.task_steps} tasks drawn`));
    for (const s of steps) pageIds.set(s.id, "critical path step, " + s.status);
    return wrap;
  }

  // -- lineage DAGs -----------------------------------------------------------------------------
  const NODE_W = 150, NODE_H = 30, COL = 200, ROW = 40;
  const dags = [];
  function dagView(lin) {
    const wrap = el("div", "lineage");
    const why = {blocked: "blocked (not ready, nothing failed)", failed: "failed", asked: "asked for (--result)",
      "last result": "the session's last result (nothing blocked or failed)"}[lin.why] || lin.why;
    const h = el("h4");
    h.appendChild(document.createTextNode("result "));
    h.appendChild(el("span", "id", lin.result_id));
    h.appendChild(document.createTextNode(` · ${lin.status} · ${why}`));
    wrap.appendChild(h);
    wrap.appendChild(el("div", "summary", lin.summary));
    wrap.appendChild(el("p", "note", `${fmtN(lin.nodes_in_page)} of ${fmtN(lin.upstream_nodes)} upstream nodes in this page` +
      (lin.upstream_nodes > lin.nodes_in_page ? ` (the nearest; aksnap report BUNDLE --result ${lin.result_id} for more, aksnap graph --result for all)` : "") +
      `; frontier: ${lin.frontier_total} node(s). Click a node for its detail; the result highlights its frontier (orange) and root causes (red).`));
    const nodes = lin.nodes, edges = lin.edges;
    const maxLayer = Math.max(...nodes.map((n) => n.layer), 0);
    const maxRow = Math.max(...nodes.map((n) => n.row), 0);
    const width = (maxLayer + 1) * COL + 20, height = (maxRow + 1) * ROW + 20;
    const root = svg("svg", {width: width, height: height, class: "dag"});
    const gEdges = svg("g"), gNodes = svg("g");
    root.appendChild(gEdges); root.appendChild(gNodes);
    const dag = {lin, nodes, edges, elems: [], edgeElems: [], inputs: nodes.map(() => []),
      outputs: nodes.map(() => []), wrap};
    const pos = nodes.map((n) => [10 + (maxLayer - n.layer) * COL, 10 + n.row * ROW]);
    edges.forEach(([a, b, kind], k) => {
      dag.inputs[b].push(a);
      dag.outputs[a].push(b);
      const [xa, ya] = pos[a], [xb, yb] = pos[b];
      const x1 = xa + NODE_W, y1 = ya + NODE_H / 2, x2 = xb, y2 = yb + NODE_H / 2, mx = (x1 + x2) / 2;
      const p = svg("path", {d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: "edge" + (kind === 1 ? " payload" : "")});
      gEdges.appendChild(p);
      dag.edgeElems.push(p);
    });
    nodes.forEach((n, i) => {
      const g = svg("g", {class: "node " + n.kind, transform: `translate(${pos[i][0]},${pos[i][1]})`});
      g.setAttribute("data-id", n.id);
      if (n.frontier) g.classList.add("frontier");
      if (n.root) g.classList.add("root");
      if (n.target) g.classList.add("target");
      const r = svg("rect", {width: NODE_W, height: NODE_H, rx: n.kind === "result" ? 14 : 3, class: statusClass(n.status)});
      g.appendChild(r);
      g.appendChild(svg("text", {x: 6, y: 12}, (n.kind === "task" ? "task " : "result ") + String(n.id).slice(0, 13)));
      g.appendChild(svg("text", {x: 6, y: 25}, n.status));
      const more = svg("text", {x: NODE_W - 4, y: 12, "text-anchor": "end", class: "more"}, "");
      g.appendChild(more);
      g.appendChild(svg("title", {}, `${n.kind} ${n.id} ${n.status}`));
      g.addEventListener("click", (ev) => { ev.stopPropagation(); select(dag, i); });
      gNodes.appendChild(g);
      dag.elems.push({g, more});
      if (!byId.has(n.id)) byId.set(n.id, []);
      byId.get(n.id).push([dag, i]);
      pageIds.set(n.id, `${n.kind} ${n.status}`);
    });
    const bar = el("div");
    const all = el("button", "", "show every node in the page");
    all.addEventListener("click", () => { nodes.forEach((n) => { n.visible = true; }); refresh(dag); });
    bar.appendChild(all);
    wrap.appendChild(bar);
    const box = el("div", "dagwrap");
    box.appendChild(root);
    wrap.appendChild(box);
    wrap.appendChild(legend([["frontier (what holds it now)", "#e08a00"], ["root cause", "#b0201b"],
      ["+N: inputs hidden (click, then expand upstream)", "#1f5fa8"]]));
    if (lin.root_causes.length) {
      wrap.appendChild(el("div", "", "Root causes"));
      wrap.appendChild(table(lin.root_causes, [["kind"], ["id", "id", "id"], ["status"], ["explains"], ["message", "message", "msg"]]));
    }
    if (lin.frontier.length) {
      wrap.appendChild(el("div", "", "Blocking frontier"));
      wrap.appendChild(table(lin.frontier, [["kind"], ["id", "id", "id"], ["status"], ["in_status_s", "in status", "s"], ["waiting_for", "waiting for"]]));
    }
    dags.push(dag);
    refresh(dag);
    return wrap;
  }
  function refresh(dag) {
    dag.nodes.forEach((n, i) => {
      const {g, more} = dag.elems[i];
      g.classList.toggle("hidden", !n.visible);
      const hidden = dag.inputs[i].filter((a) => !dag.nodes[a].visible).length + (n.inputs_not_in_page || 0);
      more.textContent = hidden ? "+" + hidden : "";
    });
    dag.edges.forEach(([a, b], k) => {
      dag.edgeElems[k].classList.toggle("hidden", !(dag.nodes[a].visible && dag.nodes[b].visible));
    });
  }
  function reach(adj, starts) {
    const seen = new Set(starts), stack = [...starts];
    while (stack.length) for (const a of adj[stack.pop()]) if (!seen.has(a)) { seen.add(a); stack.push(a); }
    return seen;
  }
  function select(dag, i) {
    for (const d of dags) for (const {g} of d.elems) g.classList.remove("selected", "hl");
    for (const d of dags) for (const e of d.edgeElems) e.classList.remove("hl");
    const n = dag.nodes[i];
    n.visible = true;
    dag.elems[i].g.classList.add("selected");
    // the frontier and root causes upstream of the node: highlighted, made visible
    const up = reach(dag.inputs, [i]);
    const marked = [...up].filter((k) => dag.nodes[k].frontier || dag.nodes[k].root);
    for (const k of marked) { dag.nodes[k].visible = true; dag.elems[k].g.classList.add("hl"); }
    // the paths from them down to the node
    const down = reach(dag.outputs, marked);
    dag.edges.forEach(([a, b], k) => {
      if (up.has(a) && up.has(b) && down.has(a) && down.has(b)) dag.edgeElems[k].classList.add("hl");
    });
    refresh(dag);
    showDetail(dag, i);
    dag.elems[i].g.scrollIntoView({block: "nearest", inline: "nearest"});
  }
  function showDetail(dag, i) {
    const n = dag.nodes[i];
    const d = document.getElementById("detail");
    d.hidden = false;
    d.textContent = "";
    d.appendChild(el("h4", "", `${n.kind} ${n.id}`));
    const dl = el("dl");
    const rows = [["status", n.status], ["session", n.session_id], ["partition", n.partition_id],
      ["pod", n.pod], ["attempt", n.attempt], ["created", n.created_at], ["started", n.started_at],
      ["ended", n.ended_at], ["in status", n.in_status_s !== undefined ? fmtS(n.in_status_s) : null],
      ["waiting for", n.waiting_for], ["explains", n.explains], ["frontier", n.frontier ? "yes: it holds the result now" : null],
      ["root cause", n.root ? "yes: a failure starts here" : null], ["inputs", n.inputs],
      ["not in page", n.inputs_not_in_page || null], ["message", n.message]];
    for (const [k, v] of rows) {
      if (v === null || v === undefined || v === "") continue;
      dl.appendChild(el("dt", "", k));
      dl.appendChild(el("dd", "", v));
    }
    d.appendChild(dl);
    const exp = el("button", "", "expand upstream");
    exp.id = "expand";
    exp.addEventListener("click", () => {
      for (const a of dag.inputs[i]) dag.nodes[a].visible = true;
      refresh(dag);
    });
    d.appendChild(exp);
    d.appendChild(el("p", "note", `aksnap ${n.kind === "task" ? "task" : "lineage"} BUNDLE ${n.id}`));
  }

  // -- sessions -----------------------------------------------------------------------------------
  function cards(items) {
    const c = el("div", "cards");
    for (const [k, v] of items) {
      if (v === null || v === undefined) continue;
      const d = el("div", "card");
      d.appendChild(el("div", "k", k));
      d.appendChild(el("div", "v", v));
      c.appendChild(d);
    }
    return c;
  }
  for (const s of DATA.sessions) {
    const o = s.overview;
    const sec = el("section", "session");
    sec.appendChild(el("h2", "", "Session " + vis(o.session_id)));
    pageIds.set(o.session_id, "session");
    sec.appendChild(cards([["status", o.session_status], ["tasks", fmtN(o.tasks)], ["completed", fmtN(o.completed)],
      ["failed", fmtN(o.failed)], ["retried", fmtN(o.retried)], ["cancelled", fmtN(o.cancelled)],
      ["running", fmtN(o.running)],
      ["results", fmtN(o.results)], ["wall time", fmtS(o.elapsed_s)],
      ["throughput", o.avg_throughput !== null ? Number(o.avg_throughput).toFixed(2) + " tasks/s" : null],
      ["anomalies", fmtN(o.anomalies)], ["blocking nodes", fmtN(s.blocking_nodes)]]));
    sec.appendChild(el("p", "note", "tasks by status: " + JSON.stringify(o.tasks_by_status) +
      " · results by status: " + JSON.stringify(o.results_by_status)));
    if (s.anomalies && s.anomalies.rows.length) {
      sec.appendChild(el("h3", "", "Anomalies"));
      sec.appendChild(el("p", "note", "by kind: " + JSON.stringify(s.anomalies.counts) +
        " (aksnap check BUNDLE --session ID for every one)"));
      sec.appendChild(table(s.anomalies.rows, [["kind"], ["object_id", "object", "id"], ["detail", "detail", "msg"]]));
    }
    sec.appendChild(el("h3", "", "Tasks by status over time"));
    sec.appendChild(statusChart(s.timeline));
    sec.appendChild(el("h3", "", "Throughput"));
    sec.appendChild(throughputChart(s.timeline));
    sec.appendChild(el("h3", "", "Tasks by spawn depth and status"));
    const stCols = STATUSES.concat(["UNSPECIFIED", "UNKNOWN"]).filter((k) => s.depths.some((d) => d[k]));
    sec.appendChild(table(s.depths, [["depth", "depth (0: submitted by the client)"], ["tasks"]].concat(stCols.map((k) => [k]))));
    sec.appendChild(el("h3", "", "Phase durations per partition"));
    sec.appendChild(histograms(s.phases));
    sec.appendChild(el("h3", "", "Error classes"));
    if (s.errors.length) {
      sec.appendChild(table(s.errors, [["status"], ["propagated"], ["error_class", "class", "msg"], ["tasks"],
        ["example_task_id", "example", "id"], ["example_message", "its message", "msg"]]));
      for (const e of s.errors) if (e.example_task_id) pageIds.set(e.example_task_id, "example of an error class");
    } else sec.appendChild(el("p", "note", "no task failed"));
    sec.appendChild(el("h3", "", "Retries"));
    const r = s.retries;
    sec.appendChild(el("p", "", `${fmtN(r.chains)} retried task(s), ${fmtN(r.retries)} retries, at most ${fmtN(r.max_attempts)} attempts, ${fmtN(r.recovered)} recovered`));
    if (r.chains_shown && r.chains_shown.length)
      sec.appendChild(table(r.chains_shown, [["initial_task_id", "first attempt", "id"], ["attempts"],
        ["final_status", "final status"], ["final_task_id", "last attempt", "id"], ["messages", "messages", "msg"]]));
    sec.appendChild(el("h3", "", "Top blockers"));
    if (s.blockers.length) {
      sec.appendChild(table(s.blockers, [["rank"], ["kind"], ["id", "id", "id"], ["status"], ["holds_results", "holds results"],
        ["in_status_s", "in status", "s"], ["waiting_for", "waiting for"], ["partition_id", "partition"]]));
      for (const b of s.blockers) pageIds.set(b.id, "blocker, " + b.status);
      sec.appendChild(el("p", "note", "aksnap blockers BUNDLE --session ID --limit 0 for every one"));
    } else sec.appendChild(el("p", "note", "nothing blocks: every incomplete node waits on nothing incomplete"));
    sec.appendChild(el("h3", "", "Critical path"));
    sec.appendChild(gantt(s.critical_path));
    sec.appendChild(el("h3", "", "Lineage of the results that matter"));
    if (!s.lineages.length) sec.appendChild(el("p", "note", "no result to show"));
    for (const lin of s.lineages) sec.appendChild(dagView(lin));
    main.appendChild(sec);
  }

  // -- search -----------------------------------------------------------------------------------
  const input = document.getElementById("search"), hits = document.getElementById("hits");
  function searchFor(id) { input.value = id; runSearch(); }
  function runSearch() {
    const q = input.value.trim().toLowerCase();
    hits.textContent = "";
    if (!q) return;
    const found = [];
    for (const [id, what] of pageIds) if (id.toLowerCase().startsWith(q)) { found.push([id, what]); if (found.length >= 30) break; }
    const idx = DATA.index;
    if (idx && found.length < 30) {
      for (let k = 0; k < idx.ids.length && found.length < 30; k++) {
        const id = idx.ids[k];
        if (id.toLowerCase().startsWith(q) && !pageIds.has(id))
          found.push([id, (k < idx.tasks ? "task " : "result ") + idx.status[k] + " (not drawn: aksnap report --result ID)"]);
      }
    }
    if (!found.length) { hits.appendChild(el("div", "", "no id starts with that" + (idx ? "" : " among the ids in this page"))); return; }
    for (const [id, what] of found) {
      const d = el("div", "", id + "  ·  " + what);
      d.addEventListener("click", () => { hits.textContent = ""; goTo(id); });
      hits.appendChild(d);
    }
  }
  function goTo(id) {
    const at = byId.get(id);
    if (at) { const [dag, i] = at[0]; select(dag, i); return; }
    for (const td of document.querySelectorAll("td.id")) {
      if (td.textContent === vis(id)) { td.scrollIntoView({block: "center"}); td.parentElement.classList.add("selected"); return; }
    }
  }
  input.addEventListener("input", runSearch);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && hits.firstChild) hits.firstChild.click(); });
  document.addEventListener("click", (e) => { if (!hits.contains(e.target) && e.target !== input) hits.textContent = ""; });
  performance.mark("aksnap-drawn");
  document.body.setAttribute("data-ready", "1");
})();
