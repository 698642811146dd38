// aksnap serve: what the served page adds to the report's page. Drill-downs asked of the server
// (a node clicked, an id searched: `aksnap lineage` and `aksnap task` on the same bundle), a
// slider over a recorded series' states, and, for a live session, the watch engine's state
// pushed by Server-Sent Events and drawn in place. Every string from the server reaches the DOM
// through textContent (no innerHTML, insertAdjacentHTML, document.write or eval here), as in
// report.js; the page fetches from its own origin only (CSP connect-src 'self').
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("data").textContent);
  const SERVE = DATA.serve || {};
  const TOKEN = new URLSearchParams(location.search).get("token");
  const main = document.getElementById("main"), detail = document.getElementById("detail");
  const body = document.body;

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
  function fmtN(n) {
    if (n === null || n === undefined || n === "") return "";
    const v = Number(n);
    if (!isFinite(v)) return String(n);
    return Number.isInteger(v) ? v.toLocaleString("en") : v.toLocaleString("en", {maximumFractionDigits: 2});
  }
  function fmtS(s) {
    if (s === null || s === undefined || s === "") return "";
    s = Number(s);
    if (!isFinite(s)) return "";
    if (s < 1e-3) return (s * 1e6).toFixed(0) + " µs";
    if (s < 0.99995) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + " ms";
    if (s < 59.95) return s.toFixed(s < 9.995 ? 2 : 1) + " s";
    const r = Math.round(s);
    if (r < 3600) return `${Math.floor(r / 60)} min` + (r % 60 ? ` ${r % 60} s` : "");
    const m = Math.round(s / 60);
    if (m < 1440) return `${Math.floor(m / 60)} h` + (m % 60 ? ` ${m % 60} min` : "");
    const h = Math.round(s / 3600);
    return `${Math.floor(h / 24)} d` + (h % 24 ? ` ${h % 24} h` : "");
  }
  function fmtT(t) {
    if (t === null || t === undefined || t === "") return "";
    const ms = typeof t === "number" ? t : Date.parse(t);
    if (!isFinite(ms)) return String(t);
    return new Date(ms).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  function fmtCounts(obj) {
    if (!obj) return "";
    return Object.entries(obj).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${fmtN(v)}`).join(" · ");
  }
  function plural(n, word) { return `${fmtN(n)} ${word}${Number(n) === 1 ? "" : "s"}`; }

  // -- asking the server (same origin; the token, when the server has one, as a header) -------
  let AT = null;  // a series: the recorded state the drill-downs answer at (the slider's)
  function api(path, params) {
    const u = new URL(path, location.origin);
    if (AT && path !== "api/events") u.searchParams.set("at", AT);
    for (const k in params) u.searchParams.set(k, params[k]);
    const headers = TOKEN ? {"X-Aksnap-Token": TOKEN} : {};
    return fetch(u.toString(), {headers, cache: "no-store", credentials: "same-origin"}).then((r) =>
      r.json().catch(() => ({error: `the server answered ${r.status} without JSON`})).then((j) => {
        if (!r.ok) throw new Error(j.error || `the server answered ${r.status}`);
        return j;
      }));
  }

  // -- drill-downs -------------------------------------------------------------------------------
  function idLink(kind, id) {
    const a = el("a", "idlink", id);
    a.addEventListener("click", (ev) => { ev.preventDefault(); openDrill(kind, id); });
    return a;
  }
  function dl(rows) {
    const d = el("dl");
    for (const [k, v] of rows) {
      if (v === null || v === undefined || v === "") continue;
      d.appendChild(el("dt", "", k));
      d.appendChild(el("dd", "", typeof v === "number" ? fmtN(v) : v));
    }
    return d;
  }
  // A table of rows (objects); cols: [key, label, kind] with kind "id:task", "id:result", "s", "t", "n".
  function table(rows, cols) {
    const wrap = el("div", "tablewrap"), t = el("table"), head = el("tr");
    for (const [k, label, kind] of cols) head.appendChild(el("th", kind === "n" || kind === "s" ? "num" : "", label || k));
    t.appendChild(head);
    for (const r of rows) {
      const tr = el("tr");
      for (const [k, , kind] of cols) {
        let v = r[k];
        const td = el("td", kind && kind.startsWith("id") ? "id" : (kind === "n" || kind === "s") ? "num" : "");
        if (kind && kind.startsWith("id") && v) {
          const which = kind === "id:any" ? (r.kind === "task" ? "task" : "result") : kind.slice(3);
          td.appendChild(idLink(which, v));
        } else {
          if (kind === "s") v = fmtS(v);
          else if (kind === "t") v = fmtT(v);
          else if (typeof v === "number") v = fmtN(v);
          else if (v && typeof v === "object") v = Array.isArray(v) ? v.join(" | ") : fmtCounts(v);
          td.textContent = vis(v);
        }
        tr.appendChild(td);
      }
      t.appendChild(tr);
    }
    wrap.appendChild(t);
    return wrap;
  }
  function openPanel() {
    detail.textContent = "";
    const close = el("button", "close", "×");
    close.setAttribute("aria-label", "close");
    close.addEventListener("click", () => {
      detail.hidden = true; body.classList.remove("detail-open");
      window.dispatchEvent(new Event("resize"));  // report.js draws its charts to the new width
    });
    detail.appendChild(close);
    if (detail.hidden) {
      detail.hidden = false; body.classList.add("detail-open");
      window.dispatchEvent(new Event("resize"));
    }
  }
  function openDrill(kind, id) {
    openPanel();
    detail.appendChild(el("h4", "", `${kind} ${id}`));
    const box = el("div", "drill");
    detail.appendChild(box);
    drill(kind, id, box);
  }
  function drill(kind, id, box) {
    if (kind !== "task" && kind !== "result") return;
    box.setAttribute("data-drill", kind);
    box.textContent = "";
    box.appendChild(el("p", "note", `asking the server: aksnap ${kind === "task" ? "task" : "lineage"} ${id} …`));
    api(kind === "task" ? "api/task" : "api/lineage", {id}).then((d) => {
      box.textContent = "";
      if (kind === "task") drawTask(d, box); else drawLineage(d, box);
      box.setAttribute("data-done", "1");
    }).catch((e) => {
      box.textContent = "";
      box.appendChild(el("p", "error", e.message));
      box.setAttribute("data-done", "1");
    });
  }
  function drawLineage(d, box) {
    const up = d.upstream || {};
    box.appendChild(el("h5", "", "lineage (from the server: aksnap lineage)"));
    box.appendChild(el("p", "summary", d.summary));
    box.appendChild(dl([["result", d.result_id], ["status", d.status], ["session", d.session_id],
      ["producer", d.producer ? `${d.producer.task_id} (${d.producer.status})` : "the client"],
      ["upstream tasks", `${fmtN(up.tasks)} · ${fmtCounts(up.tasks_by_status)}`],
      ["upstream results", `${fmtN(up.results)} · ${fmtCounts(up.results_by_status)}`],
      ["complete", up.percent_complete !== undefined ? `${up.percent_complete} %` : null],
      ["frontier", `${plural(d.frontier_total, "node")}` + (d.frontier_total ? ` · ${fmtCounts(d.frontier_by_status)}` : "")],
      ["snapshot", fmtT(d.snapshot_time)]]));
    if (d.frontier && d.frontier.length) {
      box.appendChild(el("div", "", `blocking frontier (${d.frontier.length < d.frontier_total ? `the ${d.frontier.length} longest waiting of ` : ""}${fmtN(d.frontier_total)})`));
      box.appendChild(table(d.frontier, [["kind"], ["id", "id", "id:any"], ["status"], ["in_status_s", "in status", "s"], ["waiting_for", "waiting for"]]));
    }
    if (d.root_causes && d.root_causes.length) {
      box.appendChild(el("div", "", "root causes"));
      box.appendChild(table(d.root_causes, [["kind"], ["id", "id", "id:any"], ["status"], ["explains", "explains", "n"], ["message"]]));
    }
    if (d.owner_chain && d.owner_chain.length) {
      box.appendChild(el("div", "", "owners"));
      box.appendChild(table(d.owner_chain, [["task_id", "task", "id:task"], ["status"], ["role"]]));
    }
  }
  function drawTask(d, box) {
    box.appendChild(el("h5", "", "task (from the server: aksnap task)"));
    box.appendChild(dl([["task", d.task_id], ["status", d.status], ["session", d.session_id],
      ["partition", d.partition_id], ["pod", d.pod_hostname], ["attempt", `${d.attempt} (at most ${fmtN((d.max_retries || 0) + 1)})`],
      ["created by", d.created_by], ["inputs", `${fmtN(d.inputs_total)} · ${fmtCounts(d.inputs_by_status)}`],
      ["outputs", `${fmtN(d.outputs_total)} · ${fmtCounts(d.outputs_by_status)}`], ["message", d.message]]));
    if (d.attempts && d.attempts.length > 1) {
      box.appendChild(el("div", "", "attempts"));
      box.appendChild(table(d.attempts, [["task_id", "task", "id:task"], ["status"], ["attempt", "attempt", "n"], ["message"]]));
    }
    if (d.inputs && d.inputs.length) {
      box.appendChild(el("div", "", "inputs"));
      box.appendChild(table(d.inputs, [["kind"], ["result_id", "result", "id:result"], ["status"], ["producer"]]));
    }
    if (d.outputs && d.outputs.length) {
      box.appendChild(el("div", "", "outputs"));
      box.appendChild(table(d.outputs, [["result_id", "result", "id:result"], ["status"], ["owner_task_id", "owner", "id:task"]]));
    }
    if (d.timeline && d.timeline.length) {
      box.appendChild(el("div", "", "timeline"));
      box.appendChild(table(d.timeline, [["event"], ["at", "at", "t"], ["step_s", "step", "s"]]));
    }
  }
  // A node clicked in a lineage DAG (report.js says which): its drill-down below its detail.
  document.addEventListener("aksnap:select", (e) => {
    const box = el("div", "drill");
    detail.appendChild(box);
    drill(e.detail.kind, e.detail.id, box);
  });

  // -- the search box: ids of the whole bundle, asked of the server ---------------------------
  const input = document.getElementById("search"), hits = document.getElementById("hits");
  let asked = 0, timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (!q) return;
    const mine = ++asked;
    timer = setTimeout(() => {
      api("api/search", {q}).then((r) => {
        if (mine !== asked || input.value.trim() !== q) return;  // a later key was typed
        for (const d of [...hits.querySelectorAll(".serve-head, .serve-hit")]) d.remove();
        for (const d of [...hits.children]) if (d.textContent.startsWith("no id starts")) d.remove();
        // the page's own hits (above) go to the node in the page; these ask the server
        if (!r.hits.length) { hits.appendChild(el("div", "serve-head", "no id of the bundle starts with that")); return; }
        hits.appendChild(el("div", "serve-head", `in the bundle (the server${r.more ? ", the first " + r.hits.length : ""}): click for its lineage or detail`));
        for (const h of r.hits) {
          const d = el("div", "serve-hit", `${h.id}  ·  ${h.kind} ${h.status}`);
          d.setAttribute("data-server-id", h.id);
          d.addEventListener("click", () => { hits.textContent = ""; if (h.kind !== "session") openDrill(h.kind, h.id); });
          hits.appendChild(d);
        }
      }).catch((e) => { if (mine === asked) { hits.appendChild(el("div", "serve-head", e.message)); } });
    }, 120);
  });

  // -- a recorded series: a slider over its states ----------------------------------------------
  if (SERVE.mode === "series" && DATA.replay && DATA.replay.rows.length) {
    const rp = DATA.replay, rows = rp.rows, sec = document.getElementById("replay");
    const box = el("div", "serve-slider");
    const slider = el("input");
    slider.type = "range"; slider.min = "0"; slider.max = String(rows.length - 1); slider.value = String(rows.length - 1);
    slider.id = "replay-slider";
    slider.setAttribute("aria-label", "recorded state");
    const label = el("span", "note");
    box.appendChild(el("span", "", "state"));
    box.appendChild(slider);
    box.appendChild(label);
    const shown = el("div", "tablewrap");
    function pick() {
      const k = Number(slider.value), r = rows[k];
      label.textContent = vis(`${k + 1} of ${rows.length}: ${fmtT(r.at) || "?"}` +
        (r.elapsed_s !== null && r.elapsed_s !== undefined ? ` (+${fmtS(r.elapsed_s)})` : "") +
        ` · ${r.percent_complete} % complete · ${plural(r.tasks, "task")}`);
      shown.textContent = "";
      const counts = {};
      for (const s of rp.statuses) if (r[s]) counts[s] = r[s];
      const t = table([counts], rp.statuses.filter((s) => r[s]).map((s) => [s, s, "n"]));
      t.querySelector("table").setAttribute("data-state", String(k));
      shown.appendChild(t);
      AT = (k === rows.length - 1 || r.kept === false) ? null : r.bundle;
      shown.appendChild(el("p", "note", r.kept === false
        ? "its bundle was pruned by --keep (its line in states.jsonl remains); drill-downs answer at the latest state"
        : `its bundle: ${r.bundle}; drill-downs (a click on a node, the search) answer at this state`));
    }
    slider.addEventListener("input", pick);
    pick();
    const at = sec ? sec.querySelector("h2") : null;
    if (at) { at.after(box); box.after(shown); }
  }

  // -- a live session: the watch engine's state, pushed, drawn in place -------------------------
  if (SERVE.mode !== "endpoint") return;
  const live = el("section", "live");
  live.id = "live";
  const health = el("div", "health"), ended = el("div", "ended");
  health.id = "live-health";
  const parts = {};
  for (const k of ["findings", "progress", "frontier", "lineage", "failures"]) {
    parts[k] = el("div", "block");
    parts[k].id = "live-" + k;
  }
  live.appendChild(el("h2", "", SERVE.result_id ? `Live: result ${SERVE.result_id}` : `Live: session ${SERVE.session_id}`));
  live.appendChild(health);
  live.appendChild(ended);
  for (const k in parts) live.appendChild(parts[k]);
  main.insertBefore(live, main.firstChild);
  let state = null, connected = false;
  const bits = {server: el("span"), cluster: el("span"), fresh: el("span"), events: el("span")};
  for (const k in bits) { bits[k].appendChild(el("span", "dot")); bits[k].appendChild(el("span", "t")); health.appendChild(bits[k]); }
  function bit(k, cls, text) { bits[k].className = cls; bits[k].lastChild.textContent = vis(text); }
  function drawHealth() {
    bit("server", connected ? "good" : "bad", connected ? "following aksnap serve" : "connection to aksnap serve lost; reconnecting…");
    if (!state) { bit("cluster", "", "waiting for the first state"); return; }
    const age = state.reconciled_at ? (Date.now() / 1000 - state.reconciled_at) : null;
    const late = age !== null && age > 3 * (state.interval || 5) + (state.last_reconcile_s || 0) + 5;
    if (state.ended) bit("cluster", state.ended.code === 0 ? "good" : "warn", "the watch ended");
    else if (state.error) bit("cluster", "bad", `the cluster: last refresh failed: ${state.error}`);
    else if (!state.reconciles) bit("cluster", "warn", "the first reconcile is running (a full export of the session)");
    else bit("cluster", late ? "warn" : "good", "the cluster answers");
    bit("fresh", late ? "bad" : "", state.reconciles
      ? `data of reconcile ${fmtN(state.reconciles)}, ${fmtS(Math.max(0, age))} ago (it took ${fmtS(state.last_reconcile_s)}` +
        `, cluster clock ${fmtT((state.analysis || {}).snapshot_time) || "?"}); events since`
      : "no reconcile yet");
    const ev = state.events || {};
    bit("events", "", ev.received !== undefined ? `events ${fmtN(ev.received)} (${fmtN(ev.per_s)}/s, ${fmtN(ev.drops)} stream drops)` : "events: not subscribed yet");
  }
  setInterval(drawHealth, 1000);
  function block(k, title) { const b = parts[k]; b.textContent = ""; if (title) b.appendChild(el("h3", "", title)); return b; }
  const metaLine = document.getElementById("meta");
  function draw(st) {
    state = st;
    const a = st.analysis || {};
    metaLine.textContent = vis(`live: ${st.result_id ? "result " + st.result_id + " in " : ""}session ${st.session_id} at ` +
      `${SERVE.endpoint} · ${plural(st.tasks || 0, "task")}, ${plural(st.results || 0, "result")} · ` +
      `reconcile ${fmtN(st.reconciles || 0)} every ${fmtS(st.interval)} · ${DATA.meta.generator}`);
    ended.textContent = st.ended ? vis(st.ended.sentence) : "";
    // the findings first: what is wrong, as it appears
    const f = block("findings", "Findings");
    if (st.findings && st.findings.length) {
      const ol = el("ol", "findings");
      for (const x of st.findings) {
        const li = el("li", "finding sev-" + (["error", "warning", "info"].includes(x.severity) ? x.severity : "info"));
        li.appendChild(el("span", "sev", x.severity));
        li.appendChild(el("span", "claim", x.claim));
        li.appendChild(el("span", "note", ` · since +${fmtS(x.seen_at)}`));
        if (x.new) li.appendChild(el("span", "newbadge", "new"));
        ol.appendChild(li);
      }
      f.appendChild(ol);
    } else f.appendChild(el("p", "note", st.reconciles ? "nothing wrong found at the last reconcile" : "after the first reconcile"));
    const p = block("progress", "Progress");
    const pct = st.result_id ? a.lineage_percent_complete : st.percent_complete;
    p.appendChild(el("p", "", (st.result_id ? `result ${st.result_id} (${st.result_status || "unknown yet"}), its upstream ` : `session ${st.session_id}: `) +
      `${pct !== undefined && pct !== null ? pct : "?"} % complete`));
    const bar = el("div", "pbar"), fill = el("div");
    fill.style.width = Math.max(0, Math.min(100, Number(pct) || 0)) + "%";
    bar.appendChild(fill);
    p.appendChild(bar);
    const cards = el("div", "cards");
    for (const [k, v] of [["tasks", fmtN(st.tasks)], ["open", fmtN(st.open_tasks)], ["failed", fmtN(st.failed_tasks)],
      ["retried", fmtN(st.retried_tasks)], ["cancelled", fmtN(st.cancelled_tasks)], ["results", fmtN(st.results)],
      ["throughput", `${fmtN(st.throughput_tasks_per_s)} tasks/s`], ["ETA", st.eta_s === null || st.eta_s === undefined ? "unknown" : fmtS(st.eta_s)]]) {
      const c = el("div", "card");
      c.setAttribute("data-card", k);
      c.appendChild(el("div", "k", k));
      c.appendChild(el("div", "v", v));
      cards.appendChild(c);
    }
    p.appendChild(cards);
    const byT = st.tasks_by_status || {}, byR = st.results_by_status || {};
    const tt = table([byT], Object.keys(byT).map((k) => [k, k, "n"]));
    tt.querySelectorAll("td").forEach((td, i) => td.setAttribute("data-status", Object.keys(byT)[i]));
    p.appendChild(el("div", "", "tasks by status"));
    p.appendChild(tt);
    p.appendChild(el("p", "note", `results by status: ${fmtCounts(byR)} · ETA basis: ${st.eta_basis || ""}`));
    const fr = block("frontier", `Blocking frontier (${plural(a.frontier_total || 0, "node")}, longest waiting first)`);
    if (a.frontier && a.frontier.length)
      fr.appendChild(table(a.frontier, [["kind"], ["id", "id", "id:any"], ["status"], ["waiting_s", "waiting", "s"], ["waiting_for", "waiting for"]].concat(
        st.result_id ? [] : [["holds_results", "holds results", "n"]])));
    else fr.appendChild(el("p", "note", st.reconciles ? "nothing blocks" : "after the first reconcile"));
    const ln = block("lineage", st.result_id ? `Lineage of result ${st.result_id}` : "Root causes of the failures");
    if (st.result_id) ln.appendChild(el("p", "", `${st.result_status || "unknown yet"}; upstream ${a.lineage_percent_complete !== undefined ? a.lineage_percent_complete + " %" : "?"} complete at the last reconcile; owner ${st.result_owner || "?"}`));
    if (st.result_id && st.reconciles) {
      const more = el("a", "idlink", "its lineage in full (aksnap lineage on the last reconcile's bundle)");
      more.id = "live-lineage-full";
      more.addEventListener("click", () => openDrill("result", st.result_id));
      ln.appendChild(more);
    }
    if (a.root_causes && a.root_causes.length)
      ln.appendChild(table(a.root_causes, [["kind"], ["id", "id", "id:any"], ["status"], ["explains", "explains", "n"], ["message"]]));
    else ln.appendChild(el("p", "note", "no failure upstream"));
    if (a.error) ln.appendChild(el("p", "error", a.error));
    const nf = block("failures", st.new_failures && st.new_failures.length ? "New failures" : "");
    if (st.new_failures && st.new_failures.length)
      nf.appendChild(table(st.new_failures, [["task_id", "task", "id:task"], ["status"], ["seen_at", "seen at (s into the watch)", "n"]]));
    drawHealth();
    const prev = body.getAttribute("data-reconciles");
    if (prev !== null && String(st.reconciles || 0) !== prev && st.reconciled_at) {
      // how long after the server took this reconcile it is on the page (bench/bench_serve.py);
      // not for the state the page opened on (that reconcile may be older than the page)
      body.setAttribute("data-lag-ms", String(Math.round(Date.now() - 1000 * st.reconciled_at)));
    }
    body.setAttribute("data-reconciles", String(st.reconciles || 0));
    body.setAttribute("data-shown-at", String(Date.now()));
    body.setAttribute("data-states", String(Number(body.getAttribute("data-states") || 0) + 1));
    if (st.ended) body.setAttribute("data-ended", String(st.ended.code));
  }
  const u = new URL("api/events", location.origin);
  if (TOKEN) u.searchParams.set("token", TOKEN);  // an EventSource sends no header of ours
  const es = new EventSource(u.toString());
  es.addEventListener("open", () => { connected = true; drawHealth(); });
  es.addEventListener("error", () => { connected = false; drawHealth(); });
  es.addEventListener("state", (e) => { connected = true; draw(JSON.parse(e.data)); });
  drawHealth();
})();
