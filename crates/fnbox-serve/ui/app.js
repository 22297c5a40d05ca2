// fnbox timeline: plain JavaScript and SVG, nothing fetched but this server's own API.
// Model: the `snapshot` message of /api/events replaces everything; `record`, `instance` and
// `stats` messages update it. Drawing runs at most 4 times a second.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const LABEL_W = 270, LANE_H = 34, AXIS_H = 20, BAR_H = 16, SPARK_N = 120;
const $ = (id) => document.getElementById(id);

const model = {
  records: new Map(),    // id -> record
  instances: new Map(),  // pod -> instance
  stats: new Map(),      // function -> {latest, history: [{t, rate, p99}]}
  functions: [],         // listings from the snapshot
  offset: 0,             // server clock - browser clock, ms
  windowS: 600,
};
let token = sessionStorage.getItem("fnbox-token") || "";
let source = null, selected = null, dirty = true, frozenAt = null;

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token) h["X-Auth-Token"] = token;
  return h;
}
const now = () => (frozenAt !== null ? frozenAt : Date.now() + model.offset);

// ---- token -----------------------------------------------------------------------------------
async function start() {
  const r = await fetch("/api/stats", { headers: headers() });
  if (r.status === 401) {
    $("token-form").hidden = false;
    $("token-error").textContent = token ? "that token was refused" : "";
    $("token").focus();
    return;
  }
  $("token-form").hidden = true;
  connect();
}
$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("fnbox-token", token);
  start();
});

// ---- live stream -----------------------------------------------------------------------------
function connect() {
  if (source) source.close();
  const q = token ? "?token=" + encodeURIComponent(token) : "";
  source = new EventSource("/api/events" + q);
  source.onopen = () => setConn(true);
  source.onerror = () => {
    setConn(false);
    if (source.readyState === EventSource.CLOSED) setTimeout(start, 2000);
  };
  source.onmessage = (e) => {
    for (const m of JSON.parse(e.data)) apply(m);
    dirty = true;
  };
}
function setConn(on) {
  const c = $("conn");
  c.className = "conn " + (on ? "on" : "off");
  c.textContent = on ? "live" : "disconnected, retrying…";
}

function apply(m) {
  switch (m.type) {
    case "snapshot": {
      model.offset = m.now_ms - Date.now();
      model.windowS = m.window_s;
      model.functions = m.functions;
      model.records = new Map(m.records.map((r) => [r.id, r]));
      model.instances = new Map(m.instances.map((i) => [i.pod, i]));
      for (const s of m.stats) pushStats(s, m.now_ms);
      fillFunctions();
      break;
    }
    case "record": {
      const old = model.records.get(m.id);
      const lines = (old ? old.lines : []).concat(m.add_lines);
      const raw = (old ? old.raw : []).concat(m.add_raw);
      delete m.add_lines; delete m.add_raw; delete m.type;
      m.lines = lines; m.raw = raw;
      model.records.set(m.id, m);
      trimRecords();
      if (selected === m.id) showDetail(m.id);
      break;
    }
    case "instance":
      delete m.type;
      model.instances.set(m.pod, m);
      break;
    case "stats":
      pushStats(m, m.now_ms);
      break;
  }
}
function trimRecords() {
  // The server keeps the history; the page keeps what its widest view can show.
  const horizon = now() - model.windowS * 1000;
  for (const [id, r] of model.records) {
    if ((r.end_ms || r.start_ms) >= horizon) break;
    model.records.delete(id);
  }
}
function pushStats(s, t) {
  let e = model.stats.get(s.function);
  if (!e) { e = { history: [] }; model.stats.set(s.function, e); }
  e.latest = s;
  e.history.push({ t, rate: s.per_second, p99: s.p99_ms });
  if (e.history.length > SPARK_N) e.history.shift();
}

// ---- drawing ---------------------------------------------------------------------------------
function el(name, attrs, parent, text) {
  const n = document.createElementNS(SVG, name);
  for (const k in attrs) n.setAttribute(k, attrs[k]);
  if (text !== undefined) n.textContent = text;
  if (parent) parent.appendChild(n);
  return n;
}
const fmtMs = (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(2) + " ms" : v < 1000 ? v.toFixed(1) + " ms" : (v / 1000).toFixed(2) + " s");
const fmtMb = (v) => (v === null || v === undefined ? "–" : v.toFixed(1) + " MB");

function draw() {
  if (!dirty && frozenAt !== null) return;
  dirty = false;
  drawTimeline();
  drawStats();
}

function drawTimeline() {
  const svg = $("timeline");
  const width = svg.clientWidth || 1000;
  const plotW = Math.max(100, width - LABEL_W - 10);
  const span = Number($("range").value) * 1000;
  const t1 = now(), t0 = t1 - span;
  const x = (t) => LABEL_W + Math.max(0, Math.min(plotW, ((t - t0) / span) * plotW));

  const lanes = [...model.instances.values()]
    .filter((i) => i.died_ms === null || i.died_ms >= t0)
    .sort((a, b) => a.function.localeCompare(b.function) || a.born_ms - b.born_ms);
  const laneOf = new Map(lanes.map((l, i) => [l.pod, i]));
  const height = AXIS_H + Math.max(1, lanes.length) * LANE_H + 4;
  svg.setAttribute("height", height);
  svg.replaceChildren();
  $("empty").hidden = lanes.length > 0;

  const axis = el("g", { class: "axis" }, svg);
  const step = span <= 10000 ? 2000 : span <= 30000 ? 5000 : span <= 60000 ? 10000 : span <= 300000 ? 60000 : 120000;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    el("line", { x1: x(t), x2: x(t), y1: AXIS_H - 4, y2: height }, axis);
    el("text", { x: x(t) + 2, y: 12 }, axis, new Date(t).toLocaleTimeString());
  }

  lanes.forEach((i, n) => {
    const y = AXIS_H + n * LANE_H;
    const dead = i.state === "dead";
    const g = el("g", { class: "lane" + (dead ? " dead" : ""), "data-pod": i.pod, "data-function": i.function, "data-state": i.state }, svg);
    el("rect", { class: "lane-bg", x: 0, y: y + 1, width, height: LANE_H - 2 }, g);
    el("text", { class: "pod", x: 6, y: y + 13 }, g, i.pod);
    el("text", { class: "state", x: 6, y: y + 27 }, g, i.function + " · " + i.state.replace("_", " "));
    // Memory used (last report's peak) against the limit.
    const used = i.memory_used_mb || 0, size = i.memory_size_mb || 1;
    el("rect", { class: "mem-bg", x: 170, y: y + 20, width: 60, height: 6 }, g);
    el("rect", { class: "mem", x: 170, y: y + 20, width: Math.min(60, (60 * used) / size), height: 6 }, g);
    el("text", { class: "state", x: 234, y: y + 27 }, g, Math.round(used) + "/" + size);
    if (i.shutdown_ms !== null) {
      const end = i.died_ms !== null ? i.died_ms : t1;
      if (end >= t0) el("rect", { class: "shutdown", x: x(i.shutdown_ms), y: y + 9, width: Math.max(2, x(end) - x(i.shutdown_ms)), height: BAR_H }, g);
    }
    if (dead && i.died_ms !== null && i.died_ms >= t0) {
      const d = el("line", { class: "died", x1: x(i.died_ms), x2: x(i.died_ms), y1: y + 5, y2: y + LANE_H - 5 }, g);
      el("title", {}, d, "instance gone");
    }
  });

  const bars = el("g", { class: "bars" }, svg);
  for (const r of model.records.values()) {
    const lane = laneOf.get(r.pod);
    if (lane === undefined) continue;
    const end = r.end_ms !== null ? r.end_ms : t1;
    if (end < t0) continue;
    const y = AXIS_H + lane * LANE_H + 9;
    const done = r.runtime_done_ms !== null ? r.runtime_done_ms : end;
    const cls = r.phase === "invoke" ? r.outcome : r.outcome === "success" || r.outcome === "running" ? "init" : r.outcome;
    const bx = x(r.start_ms);
    const bar = el("rect", {
      class: "bar " + cls + (selected === r.id ? " selected" : ""),
      x: bx, y, width: Math.max(3, x(done) - bx), height: BAR_H,
      "data-id": r.id, "data-request-id": r.request_id, "data-outcome": r.outcome, "data-phase": r.phase,
    }, bars);
    el("title", {}, bar, r.phase + " " + r.request_id + " · " + r.outcome + " · " + fmtMs(r.duration_ms));
    bar.addEventListener("click", () => select(r.id));
    if (end > done) el("rect", { class: "bar tail " + cls, x: x(done), y: y + 3, width: Math.max(1, x(end) - x(done)), height: BAR_H - 6 }, bars);
  }
  el("line", { class: "now", x1: x(t1), x2: x(t1), y1: AXIS_H, y2: height }, svg);
}

function drawStats() {
  const box = $("stats");
  const names = model.functions.map((f) => f.name);
  for (const name of names) {
    let card = box.querySelector('.fn-stats[data-function="' + CSS.escape(name) + '"]');
    if (!card) {
      card = document.createElement("div");
      card.className = "fn-stats";
      card.dataset.function = name;
      box.appendChild(card);
    }
    const f = model.functions.find((x) => x.name === name);
    const e = model.stats.get(name) || { latest: null, history: [] };
    const s = e.latest || {};
    const v = (x) => (x === undefined || x === null ? "–" : x);
    const subs = (s.telemetry || []).map((t) => `${t.pod} → ${t.uri}: ${t.delivered} delivered, ${t.dropped} dropped`).join("<br>") || "no telemetry subscriber";
    card.innerHTML = `<h2>${esc(name)} <span class="muted">${esc(f.dialect)} · ${esc(f.runtime)} · ${f.memory_size} MB</span></h2>
      <table><tr><td>inv/s</td><td class="stat-rate">${(s.per_second || 0).toFixed(1)}</td>
      <td>p50</td><td class="stat-p50">${fmtMs(s.p50_ms)}</td><td>p99</td><td class="stat-p99">${fmtMs(s.p99_ms)}</td></tr>
      <tr><td>invocations</td><td class="stat-invocations">${v(s.invocations)}</td><td>errors</td><td class="stat-errors">${v(s.errors)}</td>
      <td>cold starts</td><td class="stat-cold">${v(s.cold_starts)}</td></tr>
      <tr><td>refused</td><td class="stat-refusals">${v(s.refusals)}</td><td colspan="4"></td></tr></table>
      <div class="sub stat-telemetry">${subs}</div>`;
    card.appendChild(spark(e.history));
  }
}

function spark(h) {
  const w = 280, ht = 40;
  const svg = el("svg", { class: "spark", width: w, height: ht, viewBox: `0 0 ${w} ${ht}` });
  el("rect", { x: 0, y: 0, width: w, height: ht, fill: "#f5f6f9" }, svg);
  const line = (key, color) => {
    const vals = h.map((p) => p[key] || 0);
    const max = Math.max(1e-9, ...vals);
    const pts = vals.map((v, i) => `${(i * w) / (SPARK_N - 1)},${ht - 3 - (v / max) * (ht - 8)}`).join(" ");
    if (vals.length > 1) el("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 1.5 }, svg);
    return max;
  };
  const mr = line("rate", "#3a7bd5"), mp = line("p99", "#e08a1e");
  el("text", { x: 4, y: 10, "font-size": 9, fill: "#3a7bd5" }, svg, `inv/s (max ${mr.toFixed(1)})`);
  el("text", { x: 120, y: 10, "font-size": 9, fill: "#e08a1e" }, svg, `p99 (max ${fmtMs(mp)})`);
  return svg;
}

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

// ---- detail panel ----------------------------------------------------------------------------
function select(id) {
  selected = id;
  dirty = true;
  showDetail(id);
}
function showDetail(id) {
  const r = model.records.get(id);
  if (!r) return;
  const d = $("detail");
  d.hidden = false;
  d.dataset.requestId = r.request_id;
  d.dataset.outcome = r.outcome;
  $("detail-request-id").textContent = r.request_id;
  $("detail-where").textContent = r.function + " / " + r.pod;
  $("detail-phase").textContent = r.phase;
  $("detail-outcome").innerHTML = `<span class="outcome ${r.outcome}">${r.outcome}</span>` +
    (r.status ? ` status ${esc(r.status)}` : "") + (r.error_type ? ` · ${esc(r.error_type)}` : "");
  $("detail-duration").textContent = fmtMs(r.duration_ms);
  $("detail-billed").textContent = r.billed_duration_ms === null ? "–" : r.billed_duration_ms + " ms";
  $("detail-memory").textContent = r.memory_used_mb === null ? "–" : fmtMb(r.memory_used_mb) + " of " + r.memory_size_mb + " MB";
  $("detail-start").textContent = new Date(r.start_ms).toISOString();
  $("detail-lines").textContent = r.lines.map((l) => l.line).join("\n") || "(none)";
  $("detail-raw").textContent = r.raw.map((x) => { try { return JSON.stringify(JSON.parse(x)); } catch (_) { return x; } }).join("\n") || "(none)";
  $("detail-raw").textContent += r.events_dropped ? `\n(+${r.events_dropped} events not kept)` : "";
}
$("detail-close").addEventListener("click", () => { selected = null; $("detail").hidden = true; dirty = true; });

// ---- invoke form -----------------------------------------------------------------------------
function fillFunctions() {
  const sel = $("invoke-function");
  const keep = sel.value;
  sel.replaceChildren(...model.functions.map((f) => {
    const o = document.createElement("option");
    o.value = f.name; o.textContent = f.name; o.dataset.urn = f.urn;
    return o;
  }));
  if (keep) sel.value = keep;
}
function b64text(s) {
  const bin = atob(s);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}
$("invoke-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const out = $("invoke-result");
  const fn = model.functions.find((f) => f.name === $("invoke-function").value);
  const body = $("invoke-event").value;
  out.hidden = false;
  out.dataset.requestId = "";
  $("invoke-request-id").textContent = "";
  $("invoke-summary").textContent = "";
  $("invoke-log").textContent = "";
  try { JSON.parse(body); } catch (err) {
    $("invoke-status").textContent = "the event is not JSON: " + err.message;
    $("invoke-body").textContent = "";
    return;
  }
  const async = $("invoke-async").checked;
  const path = `/v2/local/fgs/functions/${encodeURIComponent(fn.urn)}/invocations${async ? "-async" : ""}`;
  $("invoke-status").textContent = "invoking…";
  const r = await fetch(path, { method: "POST", body, headers: headers({ "Content-Type": "application/json", "X-Cff-Log-Type": "tail" }) });
  const text = await r.text();
  let id = r.headers.get("X-Cff-Request-Id") || "";
  if (async) { try { id = JSON.parse(text).request_id || id; } catch (_) { /* shown as is */ } }
  out.dataset.requestId = id;
  out.dataset.status = r.status;
  $("invoke-status").textContent = r.status + " " + r.statusText + (async ? " (async: its bars appear when it runs)" : "");
  $("invoke-request-id").textContent = id;
  $("invoke-summary").textContent = r.headers.get("X-Cff-Invoke-Summary") || "";
  $("invoke-body").textContent = text;
  const log = r.headers.get("X-Cff-Function-Log");
  $("invoke-log").textContent = log ? b64text(log) : async ? "(async: see the invocation's lines in the timeline)" : "(none)";
  if (r.status === 401) start();
});
$("invoke-request-id").addEventListener("click", (e) => {
  e.preventDefault();
  const id = $("invoke-result").dataset.requestId;
  for (const r of model.records.values()) if (r.request_id === id && r.phase === "invoke") select(r.id);
});

// ---- controls --------------------------------------------------------------------------------
$("range").addEventListener("change", () => { dirty = true; draw(); });
$("pause").addEventListener("change", (e) => { frozenAt = e.target.checked ? now() : null; dirty = true; draw(); });
window.addEventListener("resize", () => { dirty = true; });
setInterval(draw, 250);
start();
