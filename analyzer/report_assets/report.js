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
    CREATING: "#e8edf2", UNSPECIFIED: "#777", UNKNOWN: "#555", CREATED: "#e8edf2",
    ABORTED: "#d9534f", DELETED: "#9aa3ad"};
  const PHASES = ["waiting", "queued", "dispatch", "fetching", "processing", "finishing"];
  const PHASE_COLORS = {waiting: "#cfd6de", queued: "#efd27a", dispatch: "#9bc1ec",
    fetching: "#7aa7dc", processing: "#3f7fcf", finishing: "#2e5f9e"};
  const byId = new Map();   // node id -> [{dag, index}] of the DAGs holding it
  const pageIds = new Map(); // every id shown in the page -> a short description
  const redraws = [];       // [container, draw(width) -> element]: charts drawn to the page's width
  const CHAR_W = 6.7;       // width of one character of an SVG label (11 px), monospace or close

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
  function plural(n, word) { return `${fmtN(n)} ${word}${Number(n) === 1 ? "" : "s"}`; }
  // Durations as a person says them: 850 µs, 12.4 ms, 3.21 s, 4 min 12 s, 3 h 5 min, 12 d 4 h.
  function fmtS(s) {
    if (s === null || s === undefined || s === "") return "";
    s = Number(s);
    if (!isFinite(s)) return "";
    const neg = s < 0 ? "-" : "";
    s = Math.abs(s);
    if (s < 1e-3) return neg + (s * 1e6).toFixed(0) + " µs";
    if (s < 0.99995) return neg + (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + " ms";
    if (s < 59.95) return neg + s.toFixed(s < 9.995 ? 2 : 1) + " s";
    // each unit rounded once, so never "59 min 60 s" (report.human_seconds says the same)
    const part = (t, per, ua, ub) => { const a = Math.floor(t / per), b = t - a * per; return neg + `${a} ${ua}` + (b ? ` ${b} ${ub}` : ""); };
    if (Math.round(s) < 3600) return part(Math.round(s), 60, "min", "s");
    if (Math.round(s / 60) < 1440) return part(Math.round(s / 60), 60, "h", "min");
    return part(Math.round(s / 3600), 24, "d", "h");
  }
  function fmtN(n) {
    if (n === null || n === undefined || n === "") return "";
    const v = Number(n);
    if (!isFinite(v)) return String(n);
    return Number.isInteger(v) ? v.toLocaleString("en") : v.toLocaleString("en", {maximumFractionDigits: 2});
  }
  // An instant (ISO text or milliseconds) as "2026-01-02 14:03:07 UTC".
  function fmtT(t) {
    if (t === null || t === undefined || t === "") return "";
    const ms = typeof t === "number" ? t : Date.parse(t);
    if (!isFinite(ms)) return String(t);
    return new Date(ms).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  // Counts by name, largest first: "COMPLETED 291 · ERROR 5".
  function fmtCounts(obj) {
    if (!obj) return "";
    return Object.entries(obj).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${fmtN(v)}`).join(" · ");
  }
  function idLink(id) {
    const a = el("a", "idlink", id);
    a.addEventListener("click", () => { searchFor(id); });
    return a;
  }
  function cellText(v, kind) {
    if (v === null || v === undefined) return "";
    if (kind === "s") return fmtS(v);
    if (kind === "t") return fmtT(v);
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v === "number") return fmtN(v);
    if (Array.isArray(v)) return v.map((x) => cellText(x)).join(" | ");
    if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${k} ${cellText(x)}`).join(" · ");
    return v;
  }
  function table(rows, cols) {
    const wrap = el("div", "tablewrap");
    const t = el("table"), head = el("tr");
    for (const [k, label, kind] of cols) head.appendChild(el("th", kind === "n" ? "num" : "", label || k));
    t.appendChild(head);
    for (const r of rows) {
      const tr = el("tr");
      for (const [k, , kind] of cols) {
        const v = r[k];
        const td = el("td", kind === "id" ? "id" : kind === "msg" ? "msg" : (kind === "n" || kind === "s") ? "num" : "");
        if (kind === "id" && v) td.appendChild(idLink(v));
        else td.textContent = vis(cellText(v, kind));
        tr.appendChild(td);
      }
      t.appendChild(tr);
    }
    wrap.appendChild(t);
    return wrap;
  }
  function legend(items) {
    const d = el("div", "legend");
    for (const [name, color, style] of items) {
      const s = el("span");
      const sw = el("span", "sw" + (style ? " " + style : ""));
      sw.style.background = style ? "transparent" : color;
      if (style) sw.style.borderColor = color;
      s.appendChild(sw);
      s.appendChild(document.createTextNode(vis(name)));
      d.appendChild(s);
    }
    return d;
  }
  function chart(draw) {
    const box = el("div", "chart");
    redraws.push([box, draw]);
    box.appendChild(draw(chartWidth()));
    return box;
  }

  // -- header ---------------------------------------------------------------------------------
  const meta = DATA.meta;
  document.getElementById("meta").textContent = vis(
    `${meta.bundle} · snapshot ${meta.snapshot_time ? fmtT(meta.snapshot_time) : "unknown"} · ` +
    `${plural(meta.tasks, "task")}, ${plural(meta.results, "result")}, ${plural(meta.sessions_total, "session")}` +
    ` · format ${meta.format_version} · ${meta.generator}` + (meta.redacted ? ` · ${meta.redacted}` : ""));
  const main = document.getElementById("main");
  for (const n of [...main.querySelectorAll("noscript")]) n.remove();
  // The page's width, measured once (one layout); charts are drawn to it, again on a resize.
  function innerWidth() {
    const cs = getComputedStyle(main);
    return main.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  }
  let MAIN_W = innerWidth();
  function chartWidth() { return Math.max(MAIN_W - 34, 320); }  // a section's border and padding

  // -- axes -------------------------------------------------------------------------------------
  const TIME_STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60,
    120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2592000];
  function tickLabel(ms, step) {
    const iso = new Date(ms).toISOString();
    if (step >= 86400) return iso.slice(5, 10);
    if (step >= 60) return iso.slice(11, 16);
    if (step >= 1) return iso.slice(11, 19);
    return iso.slice(11, 23);
  }
  // A wall-clock axis from t0 to t1 (ms since the epoch, UTC) along y, x0..x1: ticks at round
  // instants, as many as fit without their labels touching, and "time (UTC)" with the date.
  function timeAxis(root, x0, x1, y, t0, t1) {
    root.appendChild(svg("line", {x1: x0, y1: y, x2: x1, y2: y, class: "axis"}));
    const span = Math.max((t1 - t0) / 1000, 1e-3), px = Math.max(x1 - x0, 1);
    const X = (t) => x0 + px * (t - t0) / (span * 1000);
    let step = TIME_STEPS[TIME_STEPS.length - 1];
    for (const s of TIME_STEPS) {
      const w = tickLabel(t0, s).length * CHAR_W + 16;
      if (span / s <= px / w) { step = s; break; }
    }
    const ms = step * 1000, hw = tickLabel(t0, step).length * CHAR_W / 2;
    let last = -Infinity;
    for (let t = Math.ceil(t0 / ms) * ms; t <= t1 + 1e-6; t += ms) {
      const x = X(t);
      root.appendChild(svg("line", {x1: x, y1: y, x2: x, y2: y + 4, class: "axis"}));
      if (x - hw < x0 - 8 || x + hw > x1 + 8 || x - hw < last + 6) continue;
      root.appendChild(svg("text", {x: x, y: y + 15, "text-anchor": "middle", class: "tick time"}, tickLabel(t, step)));
      last = x + hw;
    }
    const d0 = new Date(t0).toISOString().slice(0, 10), d1 = new Date(t1).toISOString().slice(0, 10);
    root.appendChild(svg("text", {x: x0, y: y + 31, class: "caption"},
      `time (UTC) · ${d0 === d1 ? d0 : d0 + " to " + d1} · ${fmtS(span)} shown`));
    return X;
  }
  // A count axis from 0 to max along x0, top..bottom: round ticks, counts with separators.
  function countAxis(root, x0, x1, top, bottom, max, title, fmt) {
    fmt = fmt || fmtN;
    root.appendChild(svg("line", {x1: x0, y1: top, x2: x0, y2: bottom, class: "axis"}));
    const room = Math.max(Math.floor((bottom - top) / 26), 1);
    let step = 1;
    for (let m = 1e-3; ; m *= 10) {
      const s = [1, 2, 5].map((k) => k * m).find((s2) => max / s2 <= room);
      if (s) { step = s; break; }
    }
    const Y = (v) => bottom - (bottom - top) * v / max;
    for (let v = step; v <= max * 1.0001; v += step) {
      const y = Y(v);
      root.appendChild(svg("line", {x1: x0, y1: y, x2: x1, y2: y, class: "grid"}));
      root.appendChild(svg("text", {x: x0 - 5, y: y + 4, "text-anchor": "end", class: "tick"}, fmt(Math.round(v * 1000) / 1000)));
    }
    if (title) root.appendChild(svg("text", {x: x0 + 6, y: top - 6, class: "caption"}, title));
    return Y;
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const m = Math.pow(10, Math.floor(Math.log10(v)));
    for (const k of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (k * m >= v) return k * m;
    return 10 * m;
  }
  const X0 = 70, TOP = 22, AXIS_H = 40;

  // -- charts -----------------------------------------------------------------------------------
  function statusChart(tl, width, t0ms) {
    const names = Object.keys(tl.counts);
    const n = tl.times_s.length, h = 200;
    const root = svg("svg", {width: width, height: TOP + h + AXIS_H, role: "img", class: "timechart"});
    let ymax = 1;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (const k of names) s += tl.counts[k][i];
      ymax = Math.max(ymax, s);
    }
    ymax = niceMax(ymax);
    const t1ms = t0ms + 1000 * (tl.times_s[n - 1] || 1);
    const Y = countAxis(root, X0, width - 10, TOP, TOP + h, ymax, "tasks");
    const g = svg("g");
    root.insertBefore(g, root.firstChild);
    const X = timeAxis(root, X0, width - 10, TOP + h, t0ms, t1ms);
    const base = new Array(n).fill(0);
    for (const k of names) {
      const top = base.map((b, i) => b + tl.counts[k][i]);
      const pts = [];
      for (let i = 0; i < n; i++) pts.push(X(t0ms + 1000 * tl.times_s[i]).toFixed(1) + "," + Y(top[i]).toFixed(1));
      for (let i = n - 1; i >= 0; i--) pts.push(X(t0ms + 1000 * tl.times_s[i]).toFixed(1) + "," + Y(base[i]).toFixed(1));
      const poly = svg("polygon", {points: pts.join(" "), fill: COLORS[k] || "#888"});
      poly.appendChild(svg("title", {}, k));
      g.appendChild(poly);
      for (let i = 0; i < n; i++) base[i] = top[i];
    }
    return root;
  }
  function statusSection(tl, note) {
    const wrap = el("div");
    if (!tl.times_s.length) { wrap.appendChild(el("p", "note", "no task has a creation time")); return wrap; }
    const names = Object.keys(tl.counts);
    wrap.appendChild(legend(names.map((k) => [k, COLORS[k] || "#888"])));
    const t0ms = Date.parse(tl.t0);
    wrap.appendChild(chart((w) => statusChart(tl, w, t0ms)));
    wrap.appendChild(el("p", "note", note || (`${fmtN(tl.times_s.length)} instants, one every ${fmtS(tl.bin_s)} from ${fmtT(tl.t0)} ` +
      "(queries/status_over_time.sql's definition; aksnap query BUNDLE status_over_time for the table)")));
    return wrap;
  }
  // Tasks ending per second in each bin, stacked by the vocabulary's final sets (aksnap.columns:
  // completed, failed = ERROR or TIMEOUT, retried attempts, cancelled); queries/throughput.sql's.
  const ENDED = [["completed", "COMPLETED"], ["failed", "ERROR"], ["retried", "RETRIED"],
    ["cancelled", "CANCELLED"]];
  function throughputChart(tl, width) {
    const n = tl.completed.length, h = 140;
    const t0ms = Date.parse(tl.t0), t1ms = t0ms + 1000 * (tl.times_s[n] || tl.times_s[n - 1] || 1);
    const rate = (c) => c / (tl.bin_s || 1);
    const sets = ENDED.filter(([k]) => Array.isArray(tl[k]));
    let ymax = 1e-9;
    for (let i = 0; i < n; i++) ymax = Math.max(ymax, rate(sets.reduce((a, [k]) => a + tl[k][i], 0)));
    ymax = niceMax(ymax);
    const root = svg("svg", {width: width, height: TOP + h + AXIS_H, class: "timechart"});
    const g = svg("g");
    root.appendChild(g);
    const Y = countAxis(root, X0, width - 10, TOP, TOP + h, ymax, "tasks ending per second");
    const X = timeAxis(root, X0, width - 10, TOP + h, t0ms, t1ms);
    for (let i = 0; i < n; i++) {
      const xa = X(t0ms + 1000 * tl.times_s[i]), xb = X(t0ms + 1000 * (tl.times_s[i + 1] ?? tl.times_s[i] + tl.bin_s));
      let y = TOP + h;
      for (const [k, color] of sets) {
        const v = rate(tl[k][i]), hv = (TOP + h) - Y(v);
        if (hv <= 0) continue;
        y -= hv;
        const r = svg("rect", {x: xa.toFixed(1), y: y.toFixed(1), width: Math.max(xb - xa - 1, 1).toFixed(1), height: hv.toFixed(1), fill: COLORS[color]});
        r.appendChild(svg("title", {}, `${fmtT(t0ms + 1000 * tl.times_s[i])}: ${v.toFixed(2)} ${k}/s`));
        g.appendChild(r);
      }
    }
    return root;
  }
  function throughputSection(tl) {
    const wrap = el("div");
    if (!tl.completed || !tl.completed.length) return wrap;
    const sets = ENDED.filter(([k]) => Array.isArray(tl[k]));
    wrap.appendChild(legend(sets.map(([k, color]) => [k + " / s", COLORS[color]])));
    wrap.appendChild(chart((w) => throughputChart(tl, w)));
    return wrap;
  }

  // -- utilisation per partition: tasks in progress against the partition's pods ---------------
  function utilisationChart(u, p, width) {
    const h1 = 130, gap = 34, h2 = 60, n = u.times_s.length;
    const t0ms = Date.parse(u.t0), t1ms = t0ms + 1000 * (u.times_s[n - 1] || 1);
    const root = svg("svg", {width: width, height: TOP + h1 + gap + h2 + AXIS_H, class: "timechart util"});
    const pods = [p.pod_max, p.pod_reserved, p.pods_observed].filter((v) => v !== null && v !== undefined);
    const ymax = niceMax(Math.max(p.peak_in_progress, ...pods, 1) * 1.05);
    const g = svg("g");
    root.appendChild(g);
    const Y = countAxis(root, X0, width - 10, TOP, TOP + h1, ymax, "tasks in progress (DISPATCHED, PROCESSING) and pods");
    const b2 = TOP + h1 + gap + h2;
    const qmax = niceMax(Math.max(p.peak_queued, 1));
    const Yq = countAxis(root, X0, width - 10, TOP + h1 + gap, b2, qmax, "tasks queued (SUBMITTED)");
    root.appendChild(svg("line", {x1: X0, y1: TOP + h1, x2: width - 10, y2: TOP + h1, class: "axis"}));
    const X = timeAxis(root, X0, width - 10, b2, t0ms, t1ms);
    const area = (vals, Yf, bottom, color) => {
      const pts = [X(t0ms).toFixed(1) + "," + bottom];
      vals.forEach((v, i) => pts.push(X(t0ms + 1000 * u.times_s[i]).toFixed(1) + "," + Yf(v).toFixed(1)));
      pts.push(X(t0ms + 1000 * u.times_s[n - 1]).toFixed(1) + "," + bottom);
      g.appendChild(svg("polygon", {points: pts.join(" "), fill: color, "fill-opacity": 0.85}));
    };
    area(p.in_progress, Y, TOP + h1, COLORS.PROCESSING);
    area(p.queued, Yq, b2, COLORS.SUBMITTED);
    const line = (v, cls) => {
      if (v === null || v === undefined) return;
      const l = svg("line", {x1: X0, x2: width - 10, y1: Y(v), y2: Y(v), class: "podline " + cls});
      l.appendChild(svg("title", {}, `${cls.replace("-", " ")}: ${fmtN(v)}`));
      root.appendChild(l);
    };
    line(p.pod_max, "pod-max");
    line(p.pod_reserved, "pod-reserved");
    line(p.pods_observed, "pods-observed");
    return root;
  }
  function utilisationSection(u) {
    const sec = el("section", "session utilisation");
    sec.id = DATA.anchors.utilisation;
    sec.appendChild(el("h2", "", "Utilisation per partition"));
    sec.appendChild(el("p", "note", "Tasks in progress (acquired by an agent until ended: what a pod runs) over time " +
      "against the partition's pods: pod_max and pod_reserved from the partitions table, and the distinct pods its " +
      "tasks ran on. Below, the tasks waiting in its queue. Every session of the bundle counts: sessions share " +
      "a partition's pods." + (u.partitions_total > u.partitions.length ? ` The ${u.partitions.length} partitions with most tasks of ${u.partitions_total}.` : "")));
    if (!u.partitions.length) { sec.appendChild(el("p", "note", "no task has a creation time")); return sec; }
    for (const p of u.partitions) {
      const div = el("div", "partition");
      div.id = DATA.anchors.utilisation + "-" + String(p.partition_id).replace(/[^A-Za-z0-9_.-]/g, "_");
      div.appendChild(el("h3", "", "partition " + vis(p.partition_id)));
      const busy = p.pods_observed ? ` (${Math.round(100 * p.mean_in_progress / p.pods_observed)} % of the pods seen)` : "";
      div.appendChild(el("p", "", `${plural(p.tasks, "task")} · in progress: peak ${fmtN(p.peak_in_progress)}, ` +
        `mean ${fmtN(p.mean_in_progress)} while it ran${busy} · queued: peak ${fmtN(p.peak_queued)} · pods: ` +
        (p.in_table ? `pod_max ${fmtN(p.pod_max)}, pod_reserved ${fmtN(p.pod_reserved)}` : "not in the partitions table") +
        `, ${fmtN(p.pods_observed)} seen`));
      div.appendChild(legend([["in progress", COLORS.PROCESSING], ["queued", COLORS.SUBMITTED],
        ["pod_max", "#b0201b", "dash"], ["pod_reserved", "#e08a00", "dot"], ["pods seen", "#444", "solid"]]));
      div.appendChild(chart((w) => utilisationChart(u, p, w)));
      sec.appendChild(div);
    }
    return sec;
  }

  // A recorded series (aksnap watch --record): one point per recorded state, as the watch saw it.
  function percentChart(times, pct, width, t0ms) {
    const h = 100, n = times.length;
    const root = svg("svg", {width: width, height: TOP + h + AXIS_H, role: "img", class: "timechart"});
    const Y = countAxis(root, X0, width - 10, TOP, TOP + h, 100, "% complete");
    const X = timeAxis(root, X0, width - 10, TOP + h, t0ms, t0ms + 1000 * (times[n - 1] || 1));
    const line = svg("polyline", {points: times.map((t, i) => X(t0ms + 1000 * t) + "," + Y(pct[i])).join(" "),
      fill: "none", stroke: COLORS.COMPLETED, "stroke-width": 2});
    root.appendChild(line);
    for (let i = 0; i < n; i++) {
      const c = svg("circle", {cx: X(t0ms + 1000 * times[i]), cy: Y(pct[i]), r: 3, fill: COLORS.COMPLETED});
      c.appendChild(svg("title", {}, `${fmtT(t0ms + 1000 * times[i])}: ${pct[i]} % complete`));
      root.appendChild(c);
    }
    return root;
  }
  function replaySection(rp) {
    const sec = el("section", "session replay");
    sec.id = "replay";
    sec.appendChild(el("h2", "", "Tasks by status over time, as recorded"));
    sec.appendChild(el("p", "", `From ${fmtN(rp.states)} recorded states between ${fmtT(rp.from) || "?"} and ` +
      `${fmtT(rp.to) || "?"} (the cluster's clock), in ${rp.series}` +
      (rp.session_id ? `, session ${rp.session_id}` : "") + "; the rest of this page is the latest one."));
    const rows = rp.rows.filter((r) => r.elapsed_s !== null && r.elapsed_s !== undefined);
    const counts = {};
    for (const k of rp.statuses) counts[k] = rows.map((r) => r[k] || 0);
    const times = rows.map((r) => r.elapsed_s);
    const first = rows.find((r) => r.at);
    const t0 = first ? new Date(Date.parse(first.at) - 1000 * first.elapsed_s).toISOString() : new Date(0).toISOString();
    sec.appendChild(statusSection({times_s: times, counts: counts, t0: t0}, `${rows.length} recorded states, ` +
      "one point each (aksnap analyze DIR for the table)"));
    if (rows.length) {
      sec.appendChild(el("h3", "", "Percent complete, as recorded"));
      const pct = rows.map((r) => r.percent_complete), t0ms = Date.parse(t0);
      sec.appendChild(chart((w) => percentChart(times, pct, w, t0ms)));
    }
    const det = el("details");
    det.appendChild(el("summary", "", "the recorded states"));
    det.appendChild(table(rp.rows, [["bundle"], ["at", "at", "t"], ["elapsed_s", "elapsed", "s"], ["tasks", "tasks", "n"],
      ["percent_complete", "% complete", "n"]].concat(rp.statuses.map((k) => [k, k, "n"])).concat([["rows_fetched", "rows fetched", "n"]])));
    sec.appendChild(det);
    return sec;
  }
  // -- what if: the run replayed (aksnap whatif): recorded against predicted, the capacity curve --
  function whatifSection(w) {
    const sec = el("section", "session whatif");
    sec.id = DATA.anchors.whatif;
    sec.appendChild(el("h2", "", "What if: the run replayed"));
    if (!w.available) {
      sec.appendChild(el("p", "note", w.why + (w.command ? "; " : "")));
      if (w.command) sec.appendChild(el("code", "next", w.command));
      return sec;
    }
    sec.appendChild(el("p", "note", "A replay of the recorded DAG with each task's measured time on its pod " +
      "(queue waits excluded), ready when its inputs are completed, on the pods each partition had at once " +
      "(" + Object.entries(w.pods).map(([k, v]) => `${k}: ${fmtN(v)}`).join(", ") + "). " +
      "Recorded against predicted at the recorded pods is the model's error (docs/whatif.md); " +
      "aksnap whatif BUNDLE --pods N --policy lazy --target R for other questions."));
    sec.appendChild(el("h3", "", "Recorded against replayed, per session"));
    sec.appendChild(table(w.sessions, [["session_id", "session", "id"], ["recorded_s", "recorded makespan", "s"],
      ["predicted_s", "replayed", "s"], ["error_pct", "error %", "n"]]));
    if (w.sessions_total > w.sessions.length)
      sec.appendChild(el("p", "note", `the first ${fmtN(w.sessions.length)} of ${plural(w.sessions_total, "session")}`));
    if (w.curve) {
      sec.appendChild(el("h3", "", "Capacity: the makespan with other pod counts (fifo)"));
      sec.appendChild(table(w.curve.map((r) => ({...r, factor: r.factor + "x", saturated: r.saturated ? "yes: more pods stop helping" : "",
        gain: r.gain_over_previous === null || r.gain_over_previous === undefined ? "" : (100 * r.gain_over_previous).toFixed(0) + " % shorter"})),
        [["factor", "pods (x recorded)"], ["pods_total", "pods", "n"], ["predicted_s", "predicted makespan", "s"],
         ["gain", "against the row above"], ["saturated", "saturated"]]));
    }
    return sec;
  }

  // -- the verdict: the findings, ranked, first on the page; each links to its section ----------
  function verdictPanel(v) {
    const sec = document.getElementById(DATA.anchors.verdict);
    if (!sec || !v) return;
    sec.hidden = false;
    sec.classList.add(v.clean ? "clean" : "dirty");
    sec.appendChild(el("h2", "", v.clean ? "Verdict: nothing wrong" : "Verdict"));
    sec.appendChild(el("p", "summary", v.summary));
    const ol = el("ol", "findings");
    for (const f of v.findings) {
      const li = el("li", "finding sev-" + (["error", "warning", "info"].includes(f.severity) ? f.severity : "info"));
      li.setAttribute("data-kind", f.kind);
      li.appendChild(el("span", "sev", f.severity));
      li.appendChild(el("span", "claim", f.claim));
      const i = f.impact || {}, bits = [];
      if (i.results) bits.push(plural(i.results, "result"));
      if (i.tasks) bits.push(plural(i.tasks, "task"));
      if (i.time_lost_s) bits.push(fmtS(i.time_lost_s) + " of pod time");
      const more = el("div", "more");
      if (bits.length) more.appendChild(el("span", "impact", "affects " + bits.join(", ")));
      // linked only to a section the page drew (drawn before this panel is filled)
      if (f.anchor && document.getElementById(f.anchor) !== null) {
        const a = el("a", "goto", "show the detail below");
        a.setAttribute("href", "#" + f.anchor);
        more.appendChild(a);
      } else if (f.next) more.appendChild(el("span", "note", "not drawn in this page:"));
      if (f.next) more.appendChild(el("code", "next", f.next));
      li.appendChild(more);
      ol.appendChild(li);
    }
    if (v.findings.length) sec.appendChild(ol);
    const om = Object.entries(v.omitted || {});
    if (om.length) sec.appendChild(el("p", "note", "not listed: " + om.map(([k, n]) => `${fmtN(n)} more ${k}`).join(", ") +
      " (aksnap findings BUNDLE -o json lists every one)"));
  }
  if (DATA.replay) main.appendChild(replaySection(DATA.replay));

  // Phase durations: one histogram per phase over log-spaced bins, cut to the bins with tasks.
  const EDGES = [0]; for (let e = -3; e <= 5.001; e += 0.25) EDGES.push(Math.pow(10, e));
  const DECADES = [[1, "1 ms"], [5, "10 ms"], [9, "100 ms"], [13, "1 s"], [17, "10 s"], [21, "100 s"],
    [25, "17 min"], [29, "2.8 h"], [33, "28 h"]];  // edge k of EDGES: 10^((k - 13) / 4) s
  function histogram(p) {
    const w = 300, h = 70, top = 6;
    // the bins with tasks, one more each side, at least two decades (8 bins) wide
    let lo = p.hist.findIndex((c) => c > 0), hi = p.hist.length - 1 - [...p.hist].reverse().findIndex((c) => c > 0);
    if (lo < 0) { lo = 0; hi = p.hist.length - 1; }
    lo = Math.max(0, lo - 1); hi = Math.min(p.hist.length - 1, Math.max(hi + 1, lo + 8));
    lo = Math.max(0, Math.min(lo, hi - 8));
    const nb = hi - lo + 1, bw = (w - 20) / nb, ymax = Math.max(...p.hist, 1);
    const root = svg("svg", {width: w, height: top + h + 20, class: "histchart"});
    for (let i = lo; i <= hi; i++) {
      const c = p.hist[i];
      if (!c) continue;
      const hh = (h - 2) * c / ymax;
      const r = svg("rect", {x: 10 + (i - lo) * bw, y: top + h - hh, width: Math.max(bw - 0.5, 0.5), height: hh, fill: PHASE_COLORS[p.phase] || "#789"});
      r.appendChild(svg("title", {}, `${fmtN(c)} tasks in [${fmtS(EDGES[i])}, ${fmtS(EDGES[i + 1])})`));
      root.appendChild(r);
    }
    root.appendChild(svg("line", {x1: 10, y1: top + h, x2: w - 10, y2: top + h, class: "axis"}));
    let last = -Infinity;
    for (const [k, label] of DECADES) {  // bin k starts at edge k
      if (k < lo || k > hi + 1) continue;
      const x = 10 + (k - lo) * bw, hw = label.length * CHAR_W / 2;
      root.appendChild(svg("line", {x1: x, y1: top + h, x2: x, y2: top + h + 3, class: "axis"}));
      const anchor = x - hw < 0 ? "start" : x + hw > w ? "end" : "middle";  // kept inside the chart
      const left = anchor === "start" ? x : anchor === "end" ? x - 2 * hw : x - hw;
      if (left < last + 6) continue;
      root.appendChild(svg("text", {x: x, y: top + h + 14, "text-anchor": anchor, class: "tick"}, label));
      last = left + 2 * hw;
    }
    return root;
  }
  function histograms(phases) {
    const wrap = el("div");
    const parts = [...new Set(phases.map((p) => p.partition_id))];
    for (const part of parts) {
      wrap.appendChild(el("h4", "", "partition " + vis(part)));
      const row = el("div", "hists");
      for (const p of phases.filter((q) => q.partition_id === part)) {
        const box = el("div", "hist");
        box.appendChild(el("div", "histtitle", `${p.phase}: p50 ${fmtS(p.p50_s)}, p90 ${fmtS(p.p90_s)}, max ${fmtS(p.max_s)}`));
        box.appendChild(el("div", "note", plural(p.tasks, "task")));
        box.appendChild(histogram(p));
        row.appendChild(box);
      }
      wrap.appendChild(row);
    }
    wrap.appendChild(el("p", "note", "durations on log-spaced bins (4 per decade, from 1 ms to 28 h; the first bin is under 1 ms); " +
      "aksnap query BUNDLE task_phases for every task"));
    return wrap;
  }

  // -- critical path: its tasks' phases on a wall-clock axis ------------------------------------
  function ganttChart(steps, spans, t0, t1, width) {
    const x0 = Math.min(300, Math.round(width * 0.3)), rowH = 16, h = steps.length * rowH + 4;
    const root = svg("svg", {width: width, height: h + AXIS_H, class: "gantt"});
    const X = timeAxis(root, x0, width - 10, h, t0 * 1000, Math.max(t1, t0 + 1e-3) * 1000);
    const chars = Math.floor((x0 - 10) / CHAR_W);
    steps.forEach((s, i) => {
      const y = i * rowH + 2;
      let label = `${i + 1}. ${s.id}`;
      if (label.length > chars) label = label.slice(0, chars - 1) + "…";
      const t = svg("text", {x: 0, y: y + 11, class: "mono"}, label);
      t.appendChild(svg("title", {}, s.id));
      root.appendChild(t);
      for (const [ph, a, d] of spans[i]) {
        const xa = X(a * 1000), xb = X((a + d) * 1000);
        const r = svg("rect", {x: xa, y: y, height: rowH - 4, width: Math.max(xb - xa, 0.8), fill: PHASE_COLORS[ph]});
        r.appendChild(svg("title", {}, `${s.id} ${ph} ${fmtS(d)} from ${fmtT(a * 1000)}`));
        root.appendChild(r);
      }
    });
    return root;
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
    if (!isFinite(t0)) return wrap;
    wrap.appendChild(legend(Object.entries(PHASE_COLORS)));
    wrap.appendChild(chart((w) => ganttChart(steps, spans, t0, t1, w)));
    if (cp.task_steps > steps.length) wrap.appendChild(el("p", "note", `${fmtN(steps.length)} of ${fmtN(cp.task_steps)} tasks drawn`));
    for (const s of steps) pageIds.set(s.id, "critical path step, " + s.status);
    return wrap;
  }

  // -- the slowest tasks: sortable, filterable ------------------------------------------------
  const SLOW_COLS = [["id", "task", "id"], ["partition_id", "partition"], ["status", "status"], ["pod", "pod"],
    ["total_s", "total", "s"]].concat(PHASES.map((p) => [p + "_s", p, "s"])).concat([["x_p50", "slowest phase × partition p50", "x"]]);
  const SLOW_SHOWN = 20;
  function slowestTable(sl) {
    const wrap = el("div", "slowest");
    const rows = sl.rows;
    if (!rows.length) { wrap.appendChild(el("p", "note", "no task has a duration yet")); return wrap; }
    wrap.appendChild(el("p", "note", `The ${fmtN(sl.per_measure)} slowest tasks by total time (created to ended, or to the snapshot ` +
      `while open) and by each phase: ${plural(rows.length, "task")} of ${fmtN(sl.tasks)}. An open task's current phase counts to the snapshot (marked ▸). ` +
      "Click a column to sort; aksnap query BUNDLE stragglers, aksnap task ID for the detail."));
    const bar = el("div", "filters");
    const mkSelect = (label, values) => {
      const s = el("select");
      s.setAttribute("aria-label", label);
      s.appendChild(el("option", "", "every " + label));
      s.firstChild.value = "";
      for (const v of values) { const o = el("option", "", v); o.value = v; s.appendChild(o); }
      bar.appendChild(s);
      return s;
    };
    const partSel = mkSelect("partition", [...new Set(rows.map((r) => r.partition_id || ""))].sort());
    partSel.className = "f-partition";
    const statSel = mkSelect("status", [...new Set(rows.map((r) => r.status))].sort());
    statSel.className = "f-status";
    const text = el("input", "f-text");
    text.type = "search";
    text.placeholder = "filter: id, pod (substring)";
    text.setAttribute("aria-label", "filter by id or pod");
    bar.appendChild(text);
    const count = el("span", "note f-count");
    bar.appendChild(count);
    wrap.appendChild(bar);
    const tw = el("div", "tablewrap");
    const t = el("table", "sortable");
    const head = el("tr");
    let sortKey = "total_s", sortDir = -1;
    const ths = [];
    for (const [k, label, kind] of SLOW_COLS) {
      const th = el("th", (kind === "s" || kind === "x") ? "num sortkey" : "sortkey", label);
      th.setAttribute("data-key", k);
      th.tabIndex = 0;
      const go = () => { if (sortKey === k) sortDir = -sortDir; else { sortKey = k; sortDir = (kind === "s" || kind === "x") ? -1 : 1; } draw(); };
      th.addEventListener("click", go);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
      ths.push(th);
      head.appendChild(th);
    }
    const body = el("tbody");
    const thead = el("thead");
    thead.appendChild(head);
    t.appendChild(thead);
    t.appendChild(body);
    tw.appendChild(t);
    wrap.appendChild(tw);
    function cmp(a, b) {
      const x = a[sortKey], y = b[sortKey];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;   // missing values last, either way
      if (y === null || y === undefined) return -1;
      return (typeof x === "number" ? x - y : String(x).localeCompare(String(y))) * sortDir;
    }
    let shown = SLOW_SHOWN;
    const more = el("button", "f-more", "");
    more.addEventListener("click", () => { shown = shown === SLOW_SHOWN ? rows.length : SLOW_SHOWN; draw(); });
    wrap.appendChild(more);
    function draw() {
      const q = text.value.trim().toLowerCase();
      const picked = rows.filter((r) => (!partSel.value || (r.partition_id || "") === partSel.value) &&
        (!statSel.value || r.status === statSel.value) &&
        (!q || String(r.id).toLowerCase().includes(q) || String(r.pod || "").toLowerCase().includes(q)));
      picked.sort(cmp);
      body.textContent = "";
      for (const r of picked.slice(0, shown)) {
        const tr = el("tr");
        for (const [k, , kind] of SLOW_COLS) {
          const td = el("td", kind === "id" ? "id" : (kind === "s" || kind === "x") ? "num" : "");
          if (kind === "id") td.appendChild(idLink(r.id));
          else if (kind === "x") td.textContent = r.x_p50 === null || r.x_p50 === undefined ? "" : `${r.worst_phase} × ${fmtN(r.x_p50 >= 10 ? Math.round(r.x_p50) : r.x_p50)}`;
          else if (kind === "s") td.textContent = fmtS(r[k]) + (r.in_phase && (k === r.in_phase + "_s" || k === "total_s") ? " ▸" : "");
          else td.textContent = vis(r[k] === null || r[k] === undefined ? "" : r[k]);
          if (kind === "s") td.setAttribute("data-v", r[k] === null || r[k] === undefined ? "" : r[k]);
          tr.appendChild(td);
        }
        body.appendChild(tr);
      }
      count.textContent = `${fmtN(Math.min(picked.length, shown))} of ${fmtN(picked.length)} shown`;
      more.hidden = picked.length <= SLOW_SHOWN;
      more.textContent = shown === SLOW_SHOWN ? `show all ${fmtN(picked.length)}` : `show the first ${SLOW_SHOWN}`;
      for (const th of ths) {
        const k = th.getAttribute("data-key");
        th.setAttribute("aria-sort", k === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none");
      }
    }
    for (const c of [partSel, statSel]) c.addEventListener("change", draw);
    text.addEventListener("input", draw);
    draw();
    for (const r of rows) if (!pageIds.has(r.id)) pageIds.set(r.id, "slow task, " + r.status);
    return wrap;
  }

  // -- lineage DAGs -----------------------------------------------------------------------------
  const NODE_W = 156, NODE_H = 30, COL = 196, ROW = 40, PAD = 10, MIN_SCALE = 0.6;
  const dags = [];
  function dagView(lin, sessionAnchor) {
    const wrap = el("div", "lineage" + (lin.why === "cause" ? " cause" : ""));
    if (lin.anchor) wrap.id = lin.anchor;
    if (lin.why === "cause") {
      wrap.appendChild(el("h4", "claim", lin.claim));
      const lost = lin.lost_results > lin.results_total ? ` (${plural(lin.lost_results, "result")} lost in all, intermediate ones included)` : "";
      wrap.appendChild(el("p", "", `Explains ${plural(lin.results_total, "final result")} lost${lost}; ` +
        `${plural(lin.roots_total, lin.kind === "results_lost" ? "root result" : "root task")}.`));
      const list = el("div", "results");
      list.appendChild(el("span", "note", lin.results_total > lin.results.length
        ? `the first ${fmtN(lin.results.length)} of ${plural(lin.results_total, "result")}: ` : "results: "));
      lin.results.forEach((r, i) => {
        if (i) list.appendChild(document.createTextNode(" "));
        list.appendChild(idLink(r));
        pageIds.set(r, "result lost, " + lin.status);
      });
      if (lin.results_total > lin.results.length)
        list.appendChild(el("span", "note", ` and ${fmtN(lin.results_total - lin.results.length)} more (aksnap lineage BUNDLE ID for any)`));
      wrap.appendChild(list);
    } else {
      const why = {blocked: "blocked (not ready, nothing failed)", failed: "failed", asked: "asked for (--result)",
        "last result": "the session's last result (nothing blocked or failed)"}[lin.why] || lin.why;
      const h = el("h4");
      h.appendChild(document.createTextNode("result "));
      h.appendChild(el("span", "id", lin.result_id));
      h.appendChild(document.createTextNode(` · ${lin.status} · ${why}`));
      wrap.appendChild(h);
      wrap.appendChild(el("div", "summary", lin.summary));
    }
    wrap.appendChild(el("p", "note", `${fmtN(lin.nodes_in_page)} of ${fmtN(lin.upstream_nodes)} upstream nodes` +
      (lin.why === "cause" ? ` of the ${plural(lin.results.length, "result")} listed` : "") + " in this page" +
      (lin.upstream_nodes > lin.nodes_in_page && lin.result_id ? ` (the nearest; aksnap report BUNDLE --result ${lin.result_id} for more, aksnap graph --result for all)` : "") +
      (lin.why === "cause" ? "; shared upstream drawn once" : `; frontier: ${plural(lin.frontier_total, "node")}`) +
      ". Click a node for its detail; a result highlights its frontier (orange) and root causes (red)."));
    const nodes = lin.nodes, edges = lin.edges;
    const root = svg("svg", {class: "dag"});
    const gEdges = svg("g"), gNodes = svg("g");
    root.appendChild(gEdges); root.appendChild(gNodes);
    const dag = {lin, nodes, edges, elems: [], edgeElems: [], inputs: nodes.map(() => []),
      outputs: nodes.map(() => []), wrap, root, pos: [], scale: 1, size: [0, 0]};
    edges.forEach(([a, b, kind]) => {
      dag.inputs[b].push(a);
      dag.outputs[a].push(b);
      const p = svg("path", {class: "edge" + (kind === 1 ? " payload" : "")});
      gEdges.appendChild(p);
      dag.edgeElems.push(p);
    });
    nodes.forEach((n, i) => {
      const g = svg("g", {class: "node " + n.kind});
      g.setAttribute("data-id", n.id);
      if (n.frontier) g.classList.add("frontier");
      if (n.root) g.classList.add("root");
      if (n.target) g.classList.add("target");
      const r = svg("rect", {width: NODE_W, height: NODE_H, rx: n.kind === "result" ? 14 : 3, class: statusClass(n.status)});
      g.appendChild(r);
      g.appendChild(svg("text", {x: 8, y: 12, class: "mono"}, (n.kind === "task" ? "task " : "result ") + String(n.id).slice(0, 13)));
      g.appendChild(svg("text", {x: 8, y: 25}, n.status));
      const more = svg("text", {x: NODE_W - 6, y: 25, "text-anchor": "end", class: "more"}, "");
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
    all.addEventListener("click", () => { nodes.forEach((n) => { n.visible = true; }); refresh(dag); scrollToTarget(dag); });
    bar.appendChild(all);
    wrap.appendChild(bar);
    const box = el("div", "dagwrap");
    box.appendChild(root);
    dag.box = box;
    wrap.appendChild(box);
    wrap.appendChild(legend([["frontier (what holds it now)", "#e08a00"], ["root cause", "#b0201b"],
      ["+N: inputs hidden (click, then expand upstream)", "#1f5fa8"]]));
    if (lin.root_causes.length) {
      const cols = [["kind"], ["id", "id", "id"], ["status"], ["explains", "explains (lost nodes downstream)", "n"], ["pod_hostname", "pod"], ["message", "message", "msg"]];
      if (lin.why === "cause" && lin.roots_total > 3) {  // alike by construction: folded
        const det = el("details", "roots");
        det.appendChild(el("summary", "", `the root ${lin.kind === "results_lost" ? "results" : "tasks"}` +
          (lin.roots_total > lin.root_causes.length ? ` (the first ${fmtN(lin.root_causes.length)} of ${fmtN(lin.roots_total)})` : ` (${fmtN(lin.roots_total)})`)));
        det.appendChild(table(lin.root_causes, cols));
        wrap.appendChild(det);
      } else {
        wrap.appendChild(el("div", "", "Root causes"));
        wrap.appendChild(table(lin.root_causes, cols));
      }
    }
    if (lin.frontier.length) {
      wrap.appendChild(el("div", "", "Blocking frontier"));
      wrap.appendChild(table(lin.frontier, [["kind"], ["id", "id", "id"], ["status"], ["in_status_s", "in status", "s"], ["waiting_for", "waiting for"]]));
    }
    dags.push(dag);
    refresh(dag);
    return wrap;
  }
  // Lays the visible nodes out: columns by hops from the result (the result on the right), each
  // column ordered by the mean height of the nodes it feeds (the page's data gives the order of
  // ties) and centred on them, nodes a row apart; then the drawing is fitted to its box.
  function layout(dag) {
    const {nodes} = dag;
    const layers = new Map();
    let maxLayer = 0;
    nodes.forEach((n, i) => {
      if (!n.visible) return;
      if (!layers.has(n.layer)) layers.set(n.layer, []);
      layers.get(n.layer).push(i);
      maxLayer = Math.max(maxLayer, n.layer);
    });
    const y = new Array(nodes.length).fill(null);
    for (const L of [...layers.keys()].sort((a, b) => a - b)) {
      const items = layers.get(L).map((i) => {
        const placed = dag.outputs[i].filter((j) => y[j] !== null);
        const want = placed.length ? placed.reduce((a, j) => a + y[j], 0) / placed.length : null;
        return [i, want];
      });
      items.sort((a, b) => (a[1] ?? 1e12) - (b[1] ?? 1e12) || nodes[a[0]].row - nodes[b[0]].row);
      let prev = -Infinity, sumWant = 0, sumGot = 0, nWant = 0;
      for (const [i, want] of items) {
        const yy = prev === -Infinity ? (want ?? 0) : Math.max(want ?? (prev + ROW), prev + ROW);
        y[i] = yy;
        prev = yy;
        if (want !== null) { sumWant += want; sumGot += yy; nWant++; }
      }
      if (nWant) { const shift = (sumWant - sumGot) / nWant; for (const [i] of items) y[i] += shift; }
    }
    let minY = Infinity, maxY = -Infinity;
    for (const v of y) if (v !== null) { minY = Math.min(minY, v); maxY = Math.max(maxY, v); }
    if (!isFinite(minY)) { minY = 0; maxY = 0; }
    dag.pos = nodes.map((n, i) => y[i] === null ? null : [PAD + (maxLayer - n.layer) * COL, PAD + y[i] - minY]);
    dag.size = [2 * PAD + maxLayer * COL + NODE_W, 2 * PAD + (maxY - minY) + NODE_H];
    nodes.forEach((n, i) => {
      if (dag.pos[i]) dag.elems[i].g.setAttribute("transform", `translate(${dag.pos[i][0]},${dag.pos[i][1]})`);
    });
    dag.edges.forEach(([a, b], k) => {
      const pa = dag.pos[a], pb = dag.pos[b];
      if (!pa || !pb) return;
      const x1 = pa[0] + NODE_W, y1 = pa[1] + NODE_H / 2, x2 = pb[0], y2 = pb[1] + NODE_H / 2, mx = (x1 + x2) / 2;
      dag.edgeElems[k].setAttribute("d", `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`);
    });
    fit(dag);
  }
  // Scales the drawing down to its box's width (not below MIN_SCALE: then the box scrolls).
  function fit(dag) {
    const [w, h] = dag.size, avail = chartWidth() - 2;
    dag.scale = Math.min(1, Math.max(avail / w, MIN_SCALE));
    dag.root.setAttribute("viewBox", `0 0 ${w} ${h}`);
    dag.root.setAttribute("width", Math.ceil(w * dag.scale));
    dag.root.setAttribute("height", Math.ceil(h * dag.scale));
  }
  // Scrolls the box so that the (first) result is in view: it sits in the rightmost column.
  function scrollToTarget(dag, i) {
    if (i === undefined) i = dag.nodes.findIndex((n) => n.target);
    const p = dag.pos[i];
    if (!p) return;
    const box = dag.box, s = dag.scale;
    const bw = box.clientWidth, bh = box.clientHeight;
    const left = p[0] * s, right = (p[0] + NODE_W) * s, top = p[1] * s, bottom = (p[1] + NODE_H) * s;
    if (right > box.scrollLeft + bw || left < box.scrollLeft) box.scrollLeft = Math.max(0, right + PAD * s - bw);
    if (bottom > box.scrollTop + bh || top < box.scrollTop) box.scrollTop = Math.max(0, (top + bottom) / 2 - bh / 2);
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
    layout(dag);
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
    dag.box.scrollIntoView({block: "nearest"});
    scrollToTarget(dag, i);
  }
  // The detail panel takes the right of the window; the page narrows beside it (charts drawn
  // again to the width left), and takes the whole width again when it is closed.
  const detail = document.getElementById("detail");
  function openDetail(open) {
    detail.hidden = !open;
    document.body.classList.toggle("detail-open", open);
    redrawAll();
  }
  function showDetail(dag, i) {
    const n = dag.nodes[i];
    detail.textContent = "";
    const close = el("button", "close", "×");
    close.setAttribute("aria-label", "close");
    close.addEventListener("click", () => { openDetail(false); });
    detail.appendChild(close);
    detail.appendChild(el("h4", "", `${n.kind} ${n.id}`));
    const dl = el("dl");
    const rows = [["status", n.status], ["session", n.session_id], ["partition", n.partition_id],
      ["pod", n.pod], ["attempt", n.attempt], ["created", fmtT(n.created_at)], ["started", fmtT(n.started_at)],
      ["ended", fmtT(n.ended_at)], ["in status", n.in_status_s !== undefined ? fmtS(n.in_status_s) : null],
      ["waiting for", n.waiting_for], ["explains", n.explains], ["frontier", n.frontier ? "yes: it holds the result now" : null],
      ["root cause", n.root ? "yes: a failure starts here" : null], ["inputs", n.inputs],
      ["not in page", n.inputs_not_in_page || null], ["message", n.message]];
    for (const [k, v] of rows) {
      if (v === null || v === undefined || v === "") continue;
      dl.appendChild(el("dt", "", k));
      dl.appendChild(el("dd", "", typeof v === "number" ? fmtN(v) : v));
    }
    detail.appendChild(dl);
    const exp = el("button", "", "expand upstream");
    exp.id = "expand";
    exp.addEventListener("click", () => {
      for (const a of dag.inputs[i]) dag.nodes[a].visible = true;
      refresh(dag);
    });
    detail.appendChild(exp);
    detail.appendChild(el("p", "note", `aksnap ${n.kind === "task" ? "task" : "lineage"} BUNDLE ${n.id}`));
    if (detail.hidden) openDetail(true);
    // for a page served by aksnap serve: its drill-down asks the server (nothing listens offline)
    document.dispatchEvent(new CustomEvent("aksnap:select", {detail: {kind: n.kind, id: n.id}}));
  }

  // -- sessions -----------------------------------------------------------------------------------
  function cards(items) {
    const c = el("div", "cards");
    for (const [k, v, cls] of items) {
      if (v === null || v === undefined || v === "") continue;
      const d = el("div", "card" + (cls ? " " + cls : ""));
      d.appendChild(el("div", "k", k));
      d.appendChild(el("div", "v", v));
      c.appendChild(d);
    }
    return c;
  }
  function inSet(counts, set) { return (set || []).reduce((a, k) => a + (counts[k] || 0), 0); }
  function heading(tag, text, id) { const h = el(tag, "", text); if (id) h.id = id; return h; }
  const SETS = meta.task_sets || {};
  for (const s of DATA.sessions) {
    const o = s.overview, A = s.anchors || {};
    const sec = el("section", "session");
    if (A.session) sec.id = A.session;
    const h2 = el("h2");
    h2.appendChild(document.createTextNode("Session "));
    h2.appendChild(el("span", "id", o.session_id));
    if (o.session_status) h2.appendChild(el("span", "badge", "session status " + o.session_status));
    sec.appendChild(h2);
    pageIds.set(o.session_id, "session");
    const byStatus = o.tasks_by_status || {};
    const waiting = inSet(byStatus, SETS.waiting), progress = inSet(byStatus, SETS.in_progress);
    sec.appendChild(cards([["tasks", fmtN(o.tasks)], ["completed", fmtN(o.completed)],
      ["failed", fmtN(o.failed), o.failed ? "bad" : ""], ["retried", fmtN(o.retried)], ["cancelled", fmtN(o.cancelled)],
      ["waiting", fmtN(waiting)], ["in progress", fmtN(progress)],
      ["cancelling", byStatus.CANCELLING ? fmtN(byStatus.CANCELLING) : null],
      ["results", fmtN(o.results)], ["results lost", s.lost && s.lost.lost_results ? fmtN(s.lost.lost_results) : null, "bad"],
      ["wall time", fmtS(o.elapsed_s)],
      ["throughput", o.avg_throughput !== null && o.avg_throughput !== undefined ? fmtN(Number(o.avg_throughput).toFixed(2)) + " tasks/s" : null],
      ["anomalies", fmtN(o.anomalies)], ["blocking nodes", fmtN(s.blocking_nodes)]]));
    const sum = el("p", "note");
    sum.textContent = vis(`tasks by status: ${fmtCounts(o.tasks_by_status)} · results by status: ${fmtCounts(o.results_by_status)}` +
      ` (waiting: ${(SETS.waiting || []).join(", ")}; in progress: ${(SETS.in_progress || []).join(", ")})`);
    sec.appendChild(sum);
    main.appendChild(sec);

    // what failed, by root cause, and what holds the rest
    const lin = el("div", "block");
    if (A.lineage) lin.id = A.lineage;
    const lost = s.lost || {};
    lin.appendChild(el("h3", "", "Lineage: what failed, by root cause, and what holds the rest"));
    const causes = s.lineages.filter((l) => l.why === "cause");
    if (lost.lost_results) lin.appendChild(el("p", "", `${plural(lost.lost_results, "final result")} lost (ABORTED or DELETED, read by no task), ` +
      `explained by ${plural(causes.length + (lost.more_causes || 0), "root cause")}` +
      (lost.more_causes ? ` (the ${fmtN(causes.length)} largest drawn)` : "") +
      (lost.unexplained ? `; ${fmtN(lost.unexplained)} with no failure upstream in the bundle` : "") + "."));
    if (!s.lineages.length) lin.appendChild(el("p", "note", "no result to show"));
    for (const l of s.lineages) lin.appendChild(dagView(l));
    sec.appendChild(lin);

    const cpb = el("div", "block");
    if (A["critical-path"]) cpb.id = A["critical-path"];
    cpb.appendChild(el("h3", "", "Critical path"));
    cpb.appendChild(gantt(s.critical_path));
    sec.appendChild(cpb);

    const slow = el("div", "block");
    if (A.stragglers) slow.id = A.stragglers;
    slow.appendChild(el("h3", "", "Slowest tasks"));
    slow.appendChild(slowestTable(s.slowest || {rows: [], tasks: 0}));
    sec.appendChild(slow);

    const tlb = el("div", "block");
    if (A.timeline) tlb.id = A.timeline;
    tlb.appendChild(el("h3", "", "Tasks by status over time"));
    tlb.appendChild(statusSection(s.timeline));
    tlb.appendChild(el("h3", "", "Throughput"));
    tlb.appendChild(throughputSection(s.timeline));
    sec.appendChild(tlb);

    const fb = el("div", "block");
    if (A.failures) fb.id = A.failures;
    fb.appendChild(el("h3", "", "Error classes"));
    if (s.errors.length) {
      fb.appendChild(table(s.errors, [["status"], ["propagated", "propagated"], ["error_class", "class", "msg"], ["tasks", "tasks", "n"],
        ["example_task_id", "example", "id"], ["example_message", "its message", "msg"]]));
      for (const e of s.errors) if (e.example_task_id) pageIds.set(e.example_task_id, "example of an error class");
    } else fb.appendChild(el("p", "note", "no task failed"));
    fb.appendChild(el("h3", "", "Retries"));
    const r = s.retries;
    fb.appendChild(el("p", "", `${plural(r.chains, "retried task")}, ${fmtN(r.retries)} ${r.retries === 1 ? "retry" : "retries"}` +
      `, at most ${plural(r.max_attempts, "attempt")}, ${fmtN(r.recovered)} recovered`));
    if (r.chains_shown && r.chains_shown.length)
      fb.appendChild(table(r.chains_shown, [["initial_task_id", "first attempt", "id"], ["attempts", "attempts", "n"],
        ["final_status", "final status"], ["final_task_id", "last attempt", "id"], ["messages", "messages", "msg"]]));
    sec.appendChild(fb);

    const bb = el("div", "block");
    if (A.blockers) bb.id = A.blockers;
    bb.appendChild(el("h3", "", "Top blockers"));
    if (s.blockers.length) {
      bb.appendChild(table(s.blockers, [["rank", "rank", "n"], ["kind"], ["id", "id", "id"], ["status"], ["holds_results", "holds results", "n"],
        ["in_status_s", "in status", "s"], ["waiting_for", "waiting for"], ["partition_id", "partition"]]));
      for (const b of s.blockers) pageIds.set(b.id, "blocker, " + b.status);
      bb.appendChild(el("p", "note", "aksnap blockers BUNDLE --session ID --limit 0 for every one"));
    } else bb.appendChild(el("p", "note", "nothing blocks: every incomplete node waits on nothing incomplete"));
    sec.appendChild(bb);

    if (s.anomalies && s.anomalies.rows.length) {
      sec.appendChild(el("h3", "", "Anomalies"));
      sec.appendChild(el("p", "note", "by kind: " + fmtCounts(s.anomalies.counts) +
        " (aksnap check BUNDLE --session ID for every one)"));
      sec.appendChild(table(s.anomalies.rows, [["kind"], ["object_id", "object", "id"], ["detail", "detail", "msg"]]));
    }
    sec.appendChild(el("h3", "", "Phase durations per partition"));
    sec.appendChild(histograms(s.phases));
    sec.appendChild(el("h3", "", "Tasks by spawn depth and status"));
    const stCols = STATUSES.concat(["UNSPECIFIED", "UNKNOWN"]).filter((k) => s.depths.some((d) => d[k]));
    sec.appendChild(table(s.depths, [["depth", "depth (0: submitted by the client)", "n"], ["tasks", "tasks", "n"]].concat(stCols.map((k) => [k, k, "n"]))));
  }
  if (DATA.utilisation) main.appendChild(utilisationSection(DATA.utilisation));
  if (DATA.whatif) main.appendChild(whatifSection(DATA.whatif));
  const notes = el("details", "notes");
  notes.id = "aggregated";
  notes.appendChild(el("summary", "", `What this page aggregated (${plural(DATA.notes.length, "note")})`));
  const ul = el("ul");
  for (const n of DATA.notes) ul.appendChild(el("li", "", n));
  notes.appendChild(ul);
  main.appendChild(notes);

  // -- a resize: charts drawn again to the new width, DAGs fitted again --------------------------
  function redrawAll() {
    const w = innerWidth();
    if (w === MAIN_W) return;
    MAIN_W = w;
    for (const [box, draw] of redraws) { box.textContent = ""; box.appendChild(draw(chartWidth())); }
    for (const d of dags) { fit(d); scrollToTarget(d); }
  }
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(redrawAll, 120); });

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
  verdictPanel(DATA.verdict);  // last: its links go to the sections drawn above
  // Scrolling a DAG's box to its result needs the page laid out: after the first frame is
  // painted rather than forced before it (a million-task page paints about 100 ms sooner).
  requestAnimationFrame(() => {
    for (const d of dags) scrollToTarget(d);
    performance.mark("aksnap-drawn");
    document.body.setAttribute("data-ready", "1");
  });
})();
