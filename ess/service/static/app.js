// The calculator page of `ess serve`: a form, the table job and the threshold it asks
// for, an SVG chart drawn here (no library), downloads, and the threshold heatmap
// drawn by the server (the code of `ess heatmap`). Every number shown comes from the
// server's JSON, which is the command line's (same store, same computations).
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "ess-token";
// Columns of `ess table --out FILE.csv` (TableResult.to_frame()); checked by the tests.
const CSV_COLUMNS = ["d", "metric", "cov_estimator", "loop", "memory", "n_r", "n_s", "lam",
  "wd", "wd_ci_low", "wd_ci_high", "n_e", "n_e_ci_low", "n_e_ci_high", "n_e_over_n_r",
  "n_e_over_n_r_ci_low", "n_e_over_n_r_ci_high", "verdict", "precision_reached", "converged",
  "chains", "generations", "burn_in", "seed", "rel_precision", "note"];
// Form fields kept in the page's address (the link that reproduces the view).
const URL_FIELDS = ["d", "n_r", "lam", "guidance", "metric", "cov_estimator", "rel_precision",
  "seed", "ns_from", "ns_to", "ns_points"];

const state = { needsToken: false, job: null, aborter: null, cancelled: false, view: null,
  heatmapAborter: null, heatmapCancelled: false, figureUrl: null };

// -- talking to the server -----------------------------------------------------------
class ApiError extends Error {
  constructor(status, detail, retryAfter) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

class Cancelled extends Error {}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function call(method, path, body, signal) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  let r;
  try {
    r = await fetch(path, { method, headers, signal,
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    if (e.name === "AbortError") throw new Cancelled();
    throw new ApiError(0, "cannot reach the server (" + e.message + ")", null);
  }
  if (r.ok) return r;
  let detail = r.statusText;
  try { detail = (await r.json()).detail; } catch (e) { /* not JSON: keep the status text */ }
  throw new ApiError(r.status, detail, r.headers.get("Retry-After"));
}

async function json(method, path, body, signal) {
  const r = await call(method, path, body, signal);
  return { status: r.status, body: await r.json() };
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// -- reading the form ----------------------------------------------------------------
// A field's value as typed: a number when it reads as one, else the text itself, so that
// the server's 422 names the field and says what is wrong with it.
function value(id) {
  const text = $(id).value.trim();
  const n = Number(text);
  return text !== "" && Number.isFinite(n) ? n : text;
}

function listValue(id) {
  return $(id).value.split(",").map((s) => s.trim()).filter((s) => s !== "")
    .map((s) => (Number.isFinite(Number(s)) ? Number(s) : s));
}

function bias() { return document.querySelector("input[name=bias]:checked").value; }

function nsGrid() {
  const from = Number($("ns_from").value), to = Number($("ns_to").value);
  const k = Number($("ns_points").value);
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 1 || to <= from) {
    throw new FieldProblem("n_s", "n_s grid: from and to must be whole numbers with " +
      "1 ≤ from < to, got from = " + $("ns_from").value + ", to = " + $("ns_to").value);
  }
  if (!Number.isInteger(k) || k < 2 || k > 40) {
    throw new FieldProblem("n_s", "n_s grid: points must be a whole number from 2 to 40, got " +
      $("ns_points").value);
  }
  const grid = [0];
  for (let i = 0; i < k; i++) {
    const v = Math.round(from * Math.pow(to / from, i / (k - 1)));
    if (v > grid[grid.length - 1]) grid.push(v);
  }
  return grid;
}

class FieldProblem extends Error {
  constructor(field, message) { super(message); this.field = field; }
}

// The request bodies: the model and precision shared by every question.
function common() {
  const c = { d: value("d"), metric: $("metric").value, cov_estimator: $("cov_estimator").value,
    rel_precision: value("rel_precision"), seed: value("seed") };
  if ($("d").value.trim() === "") delete c.d;
  return c;
}

function readForm() {
  const params = { ...common(), n_r: value("n_r"), ns_from: $("ns_from").value.trim(),
    ns_to: $("ns_to").value.trim(), ns_points: $("ns_points").value.trim() };
  params[bias()] = value("bias_value");
  return params;
}

// -- messages ------------------------------------------------------------------------
function clearErrors() {
  document.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
  document.querySelectorAll(".invalid").forEach((e) => e.classList.remove("invalid"));
  for (const id of ["message", "heatmap-message"]) { $(id).hidden = true; $(id).textContent = ""; }
}

function message(id, text) {
  $(id).textContent = text;
  $(id).hidden = false;
}

// Where a refused field's message goes: beside its input.
const ERROR_SLOTS = { d: "d", n_r: "n_r", lam: "lam", guidance: "guidance", metric: "metric",
  cov_estimator: "cov_estimator", rel_precision: "rel_precision", seed: "seed", n_s: "n_s" };
const INPUTS = { lam: "bias_value", guidance: "bias_value", n_s: "ns_from" };

function fieldError(field, text, heatmap) {
  let slot = ERROR_SLOTS[field];
  let input = INPUTS[field] || field;
  if (heatmap && (field === "n_r" || field === "lam" || field === "guidance")) {
    slot = field === "n_r" ? "hm-n_r" : "hm-lam";
    input = field === "n_r" ? "hm_n_r" : "hm_lam";
  }
  const el = slot && $("err-" + slot);
  if (!el) return false;
  if (!el.textContent.includes(text)) el.textContent += (el.textContent ? " " : "") + text;
  if ($(input)) $(input).classList.add("invalid");
  return true;
}

function showProblem(err, where, heatmap) {
  if (err instanceof Cancelled) return;
  if (err instanceof FieldProblem) {
    if (!fieldError(err.field, err.message, heatmap)) message(where, err.message);
    return;
  }
  if (!(err instanceof ApiError)) { message(where, "Unexpected error: " + err.message); return; }
  if (err.status === 422 && Array.isArray(err.detail)) {
    for (const item of err.detail) {
      const field = item.loc && item.loc.length > 1 ? item.loc[1] : null;
      if (!field || !fieldError(field, item.msg, heatmap)) message(where, item.msg);
    }
    return;
  }
  if (err.status === 401 || err.status === 403) {
    sessionStorage.removeItem(TOKEN_KEY);
    askToken(err.status === 403 ? "This token is not one of this server's: check it." :
      "This server needs an access token.");
    message(where, "Enter your access token above, then try again.");
    return;
  }
  if (err.status === 429 || err.status === 503) {
    const wait = err.retryAfter ? " Try again in " + err.retryAfter + " s." : "";
    const what = err.status === 429 ? "The server is busy: " : "The server is stopping: ";
    message(where, what + err.message + "." + wait);
    return;
  }
  message(where, (err.status ? "The server answered " + err.status + ": " : "") + err.message);
}

// -- the token -----------------------------------------------------------------------
function askToken(why) {
  $("token-box").hidden = false;
  $("err-token").textContent = why || "";
  $("token").focus();
}

async function useToken(ev) {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (!t) { $("err-token").textContent = "token: enter the token you were given"; return; }
  sessionStorage.setItem(TOKEN_KEY, t);
  try {
    await call("GET", "v1/version");
    $("token-box").hidden = true;
    $("token").value = "";
    $("status").textContent = "Token accepted.";
    if (state.pending) { state.pending = false; compute(); }
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("err-token").textContent = err.status === 403 ? "This token is not one of this " +
      "server's: check it." : "The token could not be checked: " + err.message;
  }
}

// -- computing -----------------------------------------------------------------------
function busy(on) {
  $("compute").disabled = on;
  $("cancel").disabled = !on;
  $("progress").hidden = !on;
}

async function runTable(body, signal, progress) {
  let { status, body: out } = await json("POST", "v1/table", body, signal);
  if (status === 200) return out;
  state.job = out.id;            // 202: a job computes it; follow it
  while (true) {
    progress(out.done, out.total);
    if (out.status === "done") { state.job = null; return out.result; }
    if (out.status === "cancelled") { state.job = null; throw new Cancelled(); }
    if (out.status === "failed") { state.job = null; throw new Error(out.error); }
    await sleep(300);
    ({ body: out } = await json("GET", "v1/jobs/" + out.id, undefined, signal));
  }
}

async function compute(ev) {
  if (ev) ev.preventDefault();
  clearErrors();
  if (state.needsToken && !token()) {
    state.pending = true;
    askToken("This server needs an access token.");
    return;
  }
  let params, grid;
  try {
    params = readForm();
    grid = nsGrid();
  } catch (err) { showProblem(err, "message"); return; }
  const base = common();
  const b = bias();
  const tableBody = { ...base, n_r: [params.n_r], n_s: grid, [b]: [params[b]] };
  const thresholdBody = { ...base, n_r: params.n_r, [b]: params[b] };
  history.replaceState(null, "", permalink(params));
  state.aborter = new AbortController();
  state.cancelled = false;
  busy(true);
  const cells = grid.length;
  let tableText = "table: starting", thresholdText = "threshold: searching";
  const show = () => { $("status").textContent = "Computing " + tableText + "; " + thresholdText + "…"; };
  show();
  const progress = (done, total) => {
    $("progress").max = total;
    $("progress").value = done;
    tableText = "table: " + done + " of " + total + " cells";
    show();
  };
  progress(0, cells);
  const signal = state.aborter.signal;
  const [table, threshold] = await Promise.allSettled([
    runTable(tableBody, signal, progress).then((t) => { tableText = "table: done"; show(); return t; }),
    json("POST", "v1/threshold", thresholdBody, signal).then((r) => {
      thresholdText = "threshold: done"; show(); return r.body; }),
  ]);
  busy(false);
  state.aborter = null;
  if (state.cancelled) {
    $("status").textContent = "Cancelled. Cells already computed are kept: Compute again " +
      "continues from there.";
    return;
  }
  for (const r of [table, threshold]) if (r.status === "rejected") showProblem(r.reason, "message");
  if (table.status !== "fulfilled") {
    const marked = table.reason instanceof ApiError && table.reason.status === 422;
    $("status").textContent = marked ? "Not computed: correct the fields marked in red." :
      "Not computed.";
    return;
  }
  state.view = { params, table: table.value,
    threshold: threshold.status === "fulfilled" ? threshold.value : null };
  render(state.view);
  const stored = table.value.from_store ? " (every cell from the store)" : "";
  $("status").textContent = "Done" + stored + ".";
}

async function cancel() {
  state.cancelled = true;
  $("status").textContent = "Cancelling…";
  if (state.job) {
    try { await call("DELETE", "v1/jobs/" + state.job); } catch (e) { /* it ended meanwhile */ }
  }
  if (state.aborter) state.aborter.abort();
}

// -- showing the answer ----------------------------------------------------------------
function fmt(v, digits = 4) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(digits - 1);
  return v.toPrecision(digits);      // trailing zeros kept: every number with its digits
}

const interval = (ci) => (ci ? "[" + fmt(ci[0]) + ", " + fmt(ci[1]) + "]" : "–");

function thresholdSentence(t) {
  if (!t) return "The threshold could not be computed (see the message above).";
  const ci = t.n_s_star_ci;
  if (t.n_s_star === null) {
    return "No threshold up to the cap n_s = " + t.cap + ": n_e ≥ n_r for every n_s searched.";
  }
  if (t.n_s_star === 0) return "n_s* = 0: no positive amount of synthetic data keeps n_e ≥ n_r.";
  const hi = ci[1] === null ? "beyond the cap" : ci[1];
  return "Threshold n_s* = " + t.n_s_star + " (95% CI [" + ci[0] + ", " + hi + "]): up to " +
    t.n_s_star + " synthetic samples per generation keep n_e ≥ n_r.";
}

function render(view) {
  const { params, table, threshold } = view;
  $("result").hidden = false;
  const lamText = params.guidance !== undefined ? "guidance w = " + params.guidance +
    " (λ = " + fmt(table.rows[0].lam) + ")" : "λ = " + params.lam;
  $("subtitle").textContent = "d = " + table.d + ", n_r = " + params.n_r + ", " + lamText +
    ", metric " + table.metric + ", " + table.cov_estimator + " covariance, fresh data loop, " +
    "95% CI half-width " + 100 * params.rel_precision + "% on n_e, seed " + params.seed;
  drawChart($("chart"), table.rows, threshold);
  const t = $("threshold");
  t.textContent = "";
  const star = document.createElement("span");
  star.id = "n_s_star";
  star.dataset.value = threshold ? String(threshold.n_s_star) : "";
  star.textContent = thresholdSentence(threshold);
  t.appendChild(star);
  if (threshold && threshold.note) t.append(" " + threshold.note);
  const tbody = $("table").querySelector("tbody");
  tbody.textContent = "";
  for (const r of table.rows) {
    const tr = document.createElement("tr");
    for (const cell of [r.n_s, fmt(r.n_e), interval(r.n_e_ci), fmt(r.n_e_over_n_r),
      r.n_s === 0 ? "exact" : interval(r.n_e_over_n_r_ci), r.verdict]) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  $("commands").textContent = commands(params, table.rows);
  $("permalink").href = permalink(params);
}

function flag(name, v) { return " --" + name.replace(/_/g, "-") + " " + v; }

function commands(p, rows) {
  const b = p.guidance !== undefined ? flag("guidance", p.guidance) : flag("lam", p.lam);
  const model = flag("d", p.d === undefined ? 1 : p.d) + flag("n_r", p.n_r);
  const rest = flag("metric", p.metric) + flag("cov_estimator", p.cov_estimator) +
    flag("rel_precision", p.rel_precision) + flag("seed", p.seed);
  return "ess table" + model + flag("n_s", rows.map((r) => r.n_s).join(",")) + b + rest +
    " --out table.csv\n" + "ess threshold" + model + b + rest + " --json";
}

function permalink(p) {
  const q = new URLSearchParams();
  for (const k of URL_FIELDS) if (p[k] !== undefined && p[k] !== "") q.set(k, p[k]);
  return location.pathname + "?" + q.toString();
}

// -- the chart -----------------------------------------------------------------------
function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceStep(span, target) {
  const raw = span / target, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function drawChart(box, rows, threshold) {
  const W = 760, H = 380, L = 64, R = 150, T = 16, B = 52;
  const pts = rows.filter((r) => r.n_s > 0);
  const star = threshold && threshold.n_s_star > 0 ? threshold : null;
  const xsAll = pts.map((r) => r.n_s);
  if (star) {
    xsAll.push(star.n_s_star_ci[0]);
    if (star.n_s_star_ci[1] !== null) xsAll.push(star.n_s_star_ci[1]);
  }
  const lx0 = Math.log10(Math.min(...xsAll)), lx1 = Math.log10(Math.max(...xsAll));
  const pad = Math.max(0.05, 0.04 * (lx1 - lx0));
  const xa = lx0 - pad, xb = lx1 + pad;
  const highs = pts.map((r) => (r.n_e_over_n_r_ci ? r.n_e_over_n_r_ci[1] : r.n_e_over_n_r))
    .filter((v) => v !== null);
  const ya = 0, yb = Math.max(1.2, ...highs.map((v) => v * 1.08));
  const X = (v) => L + ((Math.log10(v) - xa) / (xb - xa)) * (W - L - R);
  const Y = (v) => T + (1 - (v - ya) / (yb - ya)) * (H - T - B);
  const svg = el("svg", { viewBox: "0 0 " + W + " " + H, width: "100%", role: "img",
    "aria-label": "n_e / n_r against n_s", id: "curve" });
  const grid = el("g", { class: "grid" });
  for (let k = Math.floor(xa); k <= Math.ceil(xb); k++) {
    for (const m of [1, 2, 5]) {
      const v = m * Math.pow(10, k);
      if (Math.log10(v) < xa || Math.log10(v) > xb) continue;
      grid.appendChild(el("line", { x1: X(v), x2: X(v), y1: T, y2: H - B }));
      svg.appendChild(el("text", { x: X(v), y: H - B + 16, class: "tick", "text-anchor": "middle" },
        v >= 1e4 ? v.toExponential(0).replace("+", "") : String(v)));
    }
  }
  const step = niceStep(yb - ya, 6);
  for (let v = ya; v <= yb + 1e-9; v += step) {
    grid.appendChild(el("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
    svg.appendChild(el("text", { x: L - 8, y: Y(v) + 4, class: "tick", "text-anchor": "end" },
      String(Number(v.toPrecision(3)))));
  }
  svg.insertBefore(grid, svg.firstChild);
  svg.appendChild(el("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "frame" }));
  if (star) {     // the threshold's interval, then the threshold
    const [lo, hi] = star.n_s_star_ci;
    const right = hi === null ? W - R : X(hi);
    svg.appendChild(el("rect", { x: X(lo), y: T, width: Math.max(1.5, right - X(lo)),
      height: H - T - B, class: "star-band" }));
    svg.appendChild(el("line", { x1: X(star.n_s_star), x2: X(star.n_s_star), y1: T, y2: H - B,
      class: "star" }));
    svg.appendChild(el("text", { x: X(star.n_s_star) + 5, y: T + 14, class: "star-label" },
      "n_s* = " + star.n_s_star));
  }
  const band = pts.filter((r) => r.n_e_over_n_r_ci && r.n_e_over_n_r_ci[0] !== null &&
    r.n_e_over_n_r_ci[1] !== null);
  if (band.length > 1) {
    const d = band.map((r, i) => (i ? "L" : "M") + X(r.n_s) + "," + Y(r.n_e_over_n_r_ci[1]))
      .concat(band.slice().reverse().map((r) => "L" + X(r.n_s) + "," + Y(r.n_e_over_n_r_ci[0])));
    svg.appendChild(el("path", { d: d.join(" ") + " Z", class: "band" }));
  }
  svg.appendChild(el("line", { x1: L, x2: W - R, y1: Y(1), y2: Y(1), class: "unity" }));
  svg.appendChild(el("text", { x: L + 6, y: Y(1) - 6, class: "zone" }, "↑ synthetic data help"));
  svg.appendChild(el("text", { x: L + 6, y: Y(1) + 15, class: "zone" }, "↓ they hurt"));
  const line = pts.filter((r) => r.n_e_over_n_r !== null);
  svg.appendChild(el("polyline", { points: line.map((r) => X(r.n_s) + "," + Y(r.n_e_over_n_r))
    .join(" "), class: "curve" }));
  for (const r of pts) {
    if (r.n_e_over_n_r === null) {
      const m = el("text", { x: X(r.n_s), y: H - B - 4, class: "below", "text-anchor": "middle" }, "×");
      m.appendChild(el("title", {}, "n_s = " + r.n_s + ": n_e below 2"));
      svg.appendChild(m);
      continue;
    }
    const c = el("circle", { cx: X(r.n_s), cy: Y(r.n_e_over_n_r), r: 3.5, class: "point" });
    c.appendChild(el("title", {}, "n_s = " + r.n_s + ": n_e / n_r = " + fmt(r.n_e_over_n_r) +
      ", 95% CI " + interval(r.n_e_over_n_r_ci) + " (" + r.verdict + ")"));
    svg.appendChild(c);
  }
  svg.appendChild(el("text", { x: (L + W - R) / 2, y: H - 12, "text-anchor": "middle",
    class: "axis" }, "n_s, synthetic samples per generation (log scale)"));
  svg.appendChild(el("text", { x: 16, y: (T + H - B) / 2, "text-anchor": "middle", class: "axis",
    transform: "rotate(-90 16 " + (T + H - B) / 2 + ")" }, "n_e / n_r"));
  const key = [["curve", "n_e / n_r"], ["band", "its 95% band"], ["unity", "n_e = n_r"]];
  if (star) key.push(["star", "threshold n_s*"], ["star-band", "its 95% CI"]);
  else if (threshold && threshold.n_s_star === null) key.push(["none", "no threshold up to"], ["none", "the cap " + threshold.cap]);
  key.forEach(([cls, text], i) => {
    const y = T + 10 + 20 * i, x = W - R + 14;
    if (cls === "band" || cls === "star-band") {
      svg.appendChild(el("rect", { x, y: y - 6, width: 22, height: 12, class: cls }));
    } else if (cls !== "none") {
      svg.appendChild(el("line", { x1: x, x2: x + 22, y1: y, y2: y, class: cls }));
    }
    svg.appendChild(el("text", { x: x + 28, y: y + 4, class: "key" }, text));
  });
  box.textContent = "";
  box.appendChild(svg);
}

// -- downloads -----------------------------------------------------------------------
function csvCell(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "boolean") return v ? "True" : "False";
  const s = String(v);
  return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

function toCsv(rows) {
  const lines = [CSV_COLUMNS.join(",")];
  for (const r of rows) {
    lines.push(CSV_COLUMNS.map((c) => {
      const m = c.match(/^(.*)_ci_(low|high)$/);
      if (m) return csvCell(r[m[1] + "_ci"] ? r[m[1] + "_ci"][m[2] === "low" ? 0 : 1] : null);
      return csvCell(r[c]);
    }).join(","));
  }
  return lines.join("\n") + "\n";
}

function download(name, type, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

// -- the heatmap ---------------------------------------------------------------------
async function heatmap(ev) {
  ev.preventDefault();
  clearErrors();
  if (state.needsToken && !token()) { askToken("This server needs an access token."); return; }
  const b = bias();
  const nr = listValue("hm_n_r"), lams = listValue("hm_lam");
  const base = common();
  if (!nr.length) { fieldError("n_r", "n_r values: give at least one", true); return; }
  if (!lams.length) { fieldError(b, b + " values: give at least one", true); return; }
  state.heatmapAborter = new AbortController();
  state.heatmapCancelled = false;
  $("heatmap-draw").disabled = true;
  $("heatmap-cancel").disabled = false;
  $("heatmap-progress").hidden = false;
  $("heatmap-progress").max = nr.length * lams.length + 1;
  const signal = state.heatmapAborter.signal;
  try {
    let done = 0;
    for (const n of nr) {       // one threshold at a time: progress, and the cells get stored
      for (const l of lams) {
        if (state.heatmapCancelled) throw new Cancelled();
        $("heatmap-status").textContent = "Threshold " + (done + 1) + " of " +
          nr.length * lams.length + " (n_r = " + n + ", " + (b === "lam" ? "λ" : "w") + " = " + l + ")…";
        await json("POST", "v1/threshold", { ...base, n_r: n, [b]: l }, signal);
        $("heatmap-progress").value = ++done;
      }
    }
    $("heatmap-status").textContent = "Drawing…";
    const r = await call("POST", "v1/figures/threshold-heatmap?format=svg",
      { ...base, n_r: nr, [b]: lams }, signal);
    const blob = await r.blob();
    if (state.figureUrl) URL.revokeObjectURL(state.figureUrl);
    state.figureUrl = URL.createObjectURL(blob);
    const fig = $("heatmap-figure");
    fig.textContent = "";
    const img = document.createElement("img");
    img.src = state.figureUrl;
    img.alt = "threshold heatmap over n_r and λ";
    img.id = "heatmap-image";
    const a = document.createElement("a");
    a.href = state.figureUrl;
    a.download = "threshold_heatmap.svg";
    a.textContent = "Download the heatmap (SVG)";
    fig.append(img, a);
    $("heatmap-status").textContent = "Done.";
  } catch (err) {
    if (err instanceof Cancelled) {
      $("heatmap-status").textContent = "Cancelled (thresholds already computed are kept).";
    } else {
      $("heatmap-status").textContent = "Not drawn.";
      showProblem(err, "heatmap-message", true);
    }
  } finally {
    $("heatmap-draw").disabled = false;
    $("heatmap-cancel").disabled = true;
    $("heatmap-progress").hidden = true;
  }
}

function cancelHeatmap() {
  state.heatmapCancelled = true;
  if (state.heatmapAborter) state.heatmapAborter.abort();
}

// -- start ---------------------------------------------------------------------------
function fillFromAddress() {
  const q = new URLSearchParams(location.search);
  let any = false;
  for (const k of URL_FIELDS) {
    if (!q.has(k)) continue;
    any = true;
    if (k === "lam" || k === "guidance") {
      document.querySelector("input[name=bias][value=" + k + "]").checked = true;
      $("bias_value").value = q.get(k);
    } else if ($(k)) {
      $(k).value = q.get(k);
    }
  }
  return any;
}

function biasChanged() {
  $("hm_lam_name").textContent = bias() === "lam" ? "λ" : "guidance w";
}

async function start() {
  $("form").addEventListener("submit", compute);
  $("cancel").addEventListener("click", cancel);
  $("token-form").addEventListener("submit", useToken);
  $("heatmap-form").addEventListener("submit", heatmap);
  $("heatmap-cancel").addEventListener("click", cancelHeatmap);
  document.querySelectorAll("input[name=bias]").forEach((r) => r.addEventListener("change", biasChanged));
  $("download-csv").addEventListener("click", () => download("ess_table.csv", "text/csv",
    toCsv(state.view.table.rows)));
  $("download-json").addEventListener("click", () => download("ess_view.json",
    "application/json", JSON.stringify({ parameters: state.view.params, table: state.view.table,
      threshold: state.view.threshold }, null, 2) + "\n"));
  const fromAddress = fillFromAddress();
  biasChanged();
  try {
    const h = await (await fetch("v1/health")).json();
    state.needsToken = h.tokens;
    $("status").textContent = "Ready: the server computes on " + h.workers + " workers.";
  } catch (e) {
    message("message", "Cannot reach the server: " + e.message);
    return;
  }
  document.body.dataset.ready = "true";
  if (state.needsToken && !token()) {
    state.pending = fromAddress;
    askToken("This server needs an access token.");
    return;
  }
  if (fromAddress) compute();
}

start();
