// switchboard connect log page. Reads the admin API only; builds every piece of the page
// with textContent (never innerHTML), because log entries carry what senders and
// receivers wrote.
"use strict";

const state = {
  token: sessionStorage.getItem("switchboard-token"),
  query: {},
  cursor: null,
  newest: null,
  selected: null,
  window: "1h",
  loading: false,
};

// ---- small helpers -------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

function toast(text, bad = false) {
  const t = $("toast");
  t.textContent = text;
  t.className = bad ? "bad" : "";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 4000);
}

// Times in the browser's zone, with the zone named ("UTC", "CET"): an auditor comparing
// with a dialer's or a CRM's records must know which clock they read.
function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" });
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    login(body.error || "This server needs its API token.");
    throw new Unauthorized(body.error || "not allowed");
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.error || "HTTP " + response.status);
  }
  return response;
}

async function json(path, options) {
  return (await api(path, options)).json();
}

function login(why) {
  const dialog = $("login");
  $("login-why").textContent = why;
  if (!dialog.open) dialog.showModal();
}

$("login-form").addEventListener("submit", () => {
  state.token = $("token").value.trim();
  sessionStorage.setItem("switchboard-token", state.token);
  start();
});

// ---- filters and the list ------------------------------------------------------------

function readFilters() {
  const q = {};
  for (const name of ["search", "endpoint", "workflow", "outcome"]) {
    const v = $(name).value.trim();
    if (v) q[name] = v;
  }
  for (const name of ["since", "until"]) {
    const v = $(name).value;
    if (v) q[name] = new Date(v).toISOString();
  }
  return q;
}

function params(extra = {}) {
  return new URLSearchParams(Object.assign({}, state.query, extra)).toString();
}

function outcomeBadge(outcome) {
  return el("span", { class: "badge " + outcome }, outcome);
}

function status(entry) {
  if (entry.response) return String(entry.response.status);
  if (entry.error) return entry.error.kind;
  return entry.waiting ? "waiting" : "";
}

// The digits of a phone number (7 to 15 of them, with + ( ) - . and spaces around),
// or null: "+1 (555) 000-0003" and "5550000003" are one number.
function phoneDigits(text) {
  const t = String(text).trim();
  if (!/^\+?[\d\s().-]+$/.test(t)) return null;
  const digits = t.replace(/\D/g, "");
  return digits.length >= 7 && digits.length <= 15 ? digits : null;
}

// Whether a key's value is what was searched for (a phone in any spelling: the last ten
// digits agree, as a national number with or without its country code).
function matches(value, search) {
  if (String(value).trim().toLowerCase() === search.trim().toLowerCase()) return true;
  const a = phoneDigits(value), b = phoneDigits(search);
  return a !== null && b !== null && a.slice(-10) === b.slice(-10);
}

// The lead at a glance: its phone (the first key that holds one), else the first key; and
// when a search is active, which key it matched.
function lead(entry) {
  const keys = Object.entries(entry.keys || {});
  const phone = keys.find(([k, v]) => /phone|^ani$/i.test(k) && phoneDigits(v) !== null)
    || keys.find(([, v]) => phoneDigits(v) !== null) || keys[0];
  const parts = [];
  if (phone) parts.push(el("span", { class: "value", title: phone[0] }, phone[1]));
  const search = state.query.search;
  if (search) {
    const hit = keys.find(([, v]) => matches(v, search));
    const why = hit ? hit[0] : search.trim() === entry.event_id ? "event id" : null;
    if (why) parts.push(el("span", { class: "matched" }, "matched " + why));
  }
  return parts;
}

function row(entry, fresh = false) {
  return el(
    "tr",
    { "data-id": entry.id, class: fresh ? "fresh" : undefined, onclick: () => openDetail(entry.id), tabindex: "0",
      onkeydown: (e) => { if (e.key === "Enter") openDetail(entry.id); } },
    el("td", { title: entry.at }, when(entry.at)),
    el("td", {}, outcomeBadge(entry.outcome)),
    el("td", {}, entry.endpoint),
    el("td", {}, entry.workflow),
    el("td", { class: "num" }, entry.attempt),
    el("td", { class: "num" }, status(entry)),
    el("td", { class: "num" }, entry.response ? entry.response.duration_ms : ""),
    el("td", { class: "key" }, lead(entry)),
  );
}

async function search() {
  state.query = readFilters();
  state.cursor = null;
  $("rows").replaceChildren();
  await loadPage();
  state.newest = $("rows").firstElementChild ? $("rows").firstElementChild.dataset.id : null;
}

async function loadPage() {
  if (state.loading) return;
  state.loading = true;
  try {
    const extra = { limit: 50 };
    if (state.cursor) extra.cursor = state.cursor;
    const page = await json("/api/logs?" + params(extra));
    for (const entry of page.entries) $("rows").append(row(entry));
    state.cursor = page.next_cursor;
    $("older").hidden = !state.cursor;
    $("empty").hidden = $("rows").children.length > 0;
  } catch (e) {
    if (!(e instanceof Unauthorized)) toast(e.message, true);
  } finally {
    state.loading = false;
  }
}

async function follow() {
  if (!$("live").checked || state.loading) return;
  try {
    if (!state.newest) {
      if ($("rows").children.length === 0) await search();
      return;
    }
    const fresh = await json("/api/logs?" + params({ after: state.newest, limit: 200 }));
    // Oldest first: each goes on top, so the newest ends up first.
    for (const entry of fresh.entries) {
      $("rows").prepend(row(entry, true));
      state.newest = entry.id;
    }
    if (fresh.entries.length) $("empty").hidden = true;
    $("live-dot").className = "dot on";
  } catch (e) {
    $("live-dot").className = "dot off";
  }
}

$("filters").addEventListener("submit", (e) => { e.preventDefault(); search(); });
$("clear").addEventListener("click", () => { $("filters").reset(); search(); });
$("older").addEventListener("click", loadPage);

$("export").addEventListener("click", async () => {
  try {
    const blob = await (await api("/api/logs/export?" + params({ format: "csv" }))).blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: "connect-log.csv" });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (e) {
    if (!(e instanceof Unauthorized)) toast(e.message, true);
  }
});

// ---- the detail view -----------------------------------------------------------------

function pretty(text, contentType) {
  if (!text) return "";
  const t = text.trim();
  if (t.startsWith("{") || t.startsWith("[")) {
    try { return JSON.stringify(JSON.parse(t), null, 2); } catch (_) { /* not JSON */ }
  }
  if (t.startsWith("<")) return indentXml(t);
  const form = (contentType || "").includes("x-www-form-urlencoded") || /^[^\s=&]+=[^\s]*(&[^\s=&]+=[^\s]*)*$/.test(t);
  if (form && t.includes("=")) {
    return t.split("&").map((pair) => {
      const [k, v = ""] = pair.split("=");
      const decode = (s) => { try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch (_) { return s; } };
      return decode(k) + " = " + decode(v);
    }).join("\n");
  }
  return text;
}

function indentXml(xml) {
  let depth = 0;
  return xml.replace(/>\s*</g, ">\n<").split("\n").map((line) => {
    if (/^<\//.test(line)) depth = Math.max(0, depth - 1);
    const out = "  ".repeat(depth) + line;
    if (/^<[^!?/][^>]*[^/]>(?!.*<\/)/.test(line)) depth += 1;
    return out;
  }).join("\n");
}

function headerTable(headers) {
  const rows = Object.entries(headers || {}).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)));
  return rows.length ? el("table", { class: "headers" }, el("tbody", {}, rows)) : null;
}

function contentType(headers) {
  const hit = Object.entries(headers || {}).find(([k]) => k.toLowerCase() === "content-type");
  return hit ? hit[1] : "";
}

function block(title, ...children) {
  return el("section", { class: "block" }, el("h3", {}, title), ...children);
}

function renderEntry(entry) {
  const parts = [];
  parts.push(el("dl", { class: "facts" },
    el("dt", {}, "outcome"), el("dd", {}, outcomeBadge(entry.outcome), " attempt ", entry.attempt),
    el("dt", {}, "at"), el("dd", { title: entry.at }, when(entry.at)),
    el("dt", {}, "event"), el("dd", {}, entry.event_id, " (", entry.event_type, ")"),
    el("dt", {}, "route"), el("dd", {}, entry.workflow, " → ", entry.endpoint),
    el("dt", {}, "delivery"), el("dd", { class: "mono" }, entry.delivery_id),
    Object.keys(entry.keys || {}).length ? [el("dt", {}, "keys"), el("dd", {}, Object.entries(entry.keys).map(([k, v]) => k + "=" + v).join(", "))] : null,
    entry.next_attempt_at ? [el("dt", {}, "next try"), el("dd", { title: entry.next_attempt_at }, when(entry.next_attempt_at))] : null,
  ));
  if (entry.error) {
    parts.push(el("div", { class: "error" }, el("strong", {}, entry.error.kind), " ", entry.error.message));
  }
  if (entry.waiting) {
    parts.push(el("div", { class: "waiting" }, el("strong", {}, "waiting"), " ", entry.waiting));
  }
  if (entry.request) {
    const r = entry.request;
    parts.push(block("Request",
      el("p", { class: "mono request-line" }, r.method + " " + r.url),
      headerTable(r.headers),
      r.body ? el("pre", { class: "body" }, pretty(r.body, contentType(r.headers))) : null));
  }
  if (entry.response) {
    const r = entry.response;
    parts.push(block("Response",
      el("p", { class: "mono" }, "HTTP " + r.status + " in " + r.duration_ms + " ms"),
      headerTable(r.headers),
      r.body ? el("pre", { class: "body" }, pretty(r.body, contentType(r.headers))) : null));
  } else if (entry.request) {
    parts.push(block("Response", el("p", { class: "muted" }, "No response came back.")));
  }
  if (Object.keys(entry.captured || {}).length) {
    parts.push(block("Captured", el("pre", {}, JSON.stringify(entry.captured, null, 2))));
  }
  if ((entry.warnings || []).length) {
    parts.push(block("Warnings", el("ul", {}, entry.warnings.map((w) => el("li", {}, w)))));
  }
  return parts;
}

function renderTimeline(delivery, attempts, selectedId) {
  const items = attempts.map((a) => el("li", { class: a.id === selectedId ? "current" : undefined },
    el("button", { type: "button", class: "link", onclick: () => openDetail(a.id) },
      el("span", { class: "when", title: a.at }, when(a.at)), " ",
      outcomeBadge(a.outcome), " ",
      "attempt " + a.attempt + " · " + (a.response ? "HTTP " + a.response.status : a.error ? a.error.kind : a.waiting ? "waiting for its window" : ""))));
  if (delivery.state === "pending" && delivery.due_at) {
    items.push(el("li", { class: "due" }, el("span", { class: "when", title: delivery.due_at }, when(delivery.due_at)), " next attempt due"));
  } else if (delivery.state === "pending" && delivery.behind) {
    items.push(el("li", { class: "due" }, "waiting behind delivery " + delivery.behind + " (order_by " + (delivery.order || "") + ")"));
  } else if (delivery.state === "pending" && delivery.leader) {
    items.push(el("li", { class: "due" }, "waiting for step " + (delivery.after || "") + " (delivery " + delivery.leader + ")"));
  }
  return block("Attempts of this delivery",
    el("p", {}, "State: ", el("strong", { class: "state" }, delivery.state), " · ", delivery.attempts + " attempt(s)"),
    el("ol", { class: "timeline" }, items),
    el("button", { type: "button", id: "replay", onclick: () => replay(delivery.id) }, "Replay this delivery"));
}

async function openDetail(id) {
  state.selected = id;
  for (const tr of $("rows").children) tr.classList.toggle("selected", tr.dataset.id === id);
  try {
    const entry = await json("/api/logs/" + encodeURIComponent(id));
    const { delivery, attempts } = await json("/api/deliveries/" + encodeURIComponent(entry.delivery_id));
    $("detail-title").textContent = "Entry " + entry.id;
    $("detail-body").replaceChildren(...renderEntry(entry), renderTimeline(delivery, attempts, entry.id));
    $("detail").hidden = false;
  } catch (e) {
    if (!(e instanceof Unauthorized)) toast(e.message, true);
  }
}

async function refreshTimeline() {
  if (!state.selected || $("detail").hidden) return;
  await openDetail(state.selected);
}

async function replay(deliveryId) {
  if (!window.confirm("Send delivery " + deliveryId + " again? Its receiver gets the request once more.")) return;
  try {
    await api("/api/deliveries/" + encodeURIComponent(deliveryId) + "/replay", { method: "POST" });
    toast("Replay queued");
    setTimeout(refreshTimeline, 700);
  } catch (e) {
    if (!(e instanceof Unauthorized)) toast(e.message, true);
  }
}

$("close").addEventListener("click", () => { $("detail").hidden = true; state.selected = null; });

// ---- per-endpoint chart --------------------------------------------------------------

const SERIES = [["delivered", "#2e7d32"], ["retrying", "#c77700"], ["failed", "#c62828"], ["skipped", "#9e9e9e"]];

function chart(stats) {
  const rows = Object.entries(stats.endpoints || {});
  if (!rows.length) return el("p", { class: "muted" }, "No attempts in this window.");
  const max = Math.max(1, ...rows.map(([, c]) => SERIES.reduce((s, [k]) => s + c[k], 0)));
  const svgNs = "http://www.w3.org/2000/svg";
  const barH = 22, gap = 10, labelW = 170, width = 760;
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${rows.length * (barH + gap)}`);
  svg.setAttribute("role", "img");
  rows.forEach(([endpoint, counts], i) => {
    const y = i * (barH + gap);
    const label = document.createElementNS(svgNs, "text");
    label.setAttribute("x", 0); label.setAttribute("y", y + barH * 0.72);
    label.textContent = endpoint;
    svg.append(label);
    let x = labelW;
    for (const [key, color] of SERIES) {
      const w = (counts[key] / max) * (width - labelW - 280);
      if (w > 0) {
        const rect = document.createElementNS(svgNs, "rect");
        rect.setAttribute("x", x); rect.setAttribute("y", y); rect.setAttribute("width", w); rect.setAttribute("height", barH);
        rect.setAttribute("fill", color);
        const tip = document.createElementNS(svgNs, "title");
        tip.textContent = `${endpoint}: ${counts[key]} ${key}`;
        rect.append(tip);
        svg.append(rect);
        x += w;
      }
    }
    const total = document.createElementNS(svgNs, "text");
    total.setAttribute("x", x + 8); total.setAttribute("y", y + barH * 0.72); total.setAttribute("class", "counts");
    total.textContent = SERIES.filter(([k]) => counts[k]).map(([k]) => counts[k] + " " + k).join(" · ");
    svg.append(total);
  });
  const legend = el("p", { class: "legend" }, SERIES.map(([k, c]) => el("span", {}, el("i", { style: "background:" + c }), k)));
  return el("div", {}, svg, legend);
}

async function loadStats() {
  try {
    const stats = await json("/api/stats?window=" + state.window);
    $("chart").replaceChildren(chart(stats));
  } catch (_) { /* the list reports errors */ }
}

for (const button of document.querySelectorAll("[data-window]")) {
  button.addEventListener("click", () => {
    state.window = button.dataset.window;
    for (const b of document.querySelectorAll("[data-window]")) b.classList.toggle("active", b === button);
    loadStats();
  });
}

// ---- nodes ---------------------------------------------------------------------------

async function loadCluster() {
  try {
    const cluster = await json("/api/cluster");
    $("nodes").replaceChildren(...cluster.nodes.map((n) => el("tr", { class: n.alive ? "" : "dead", "data-node": n.name },
      el("td", {}, n.name + (n.name === cluster.node ? " (this one)" : "")),
      el("td", {}, n.address),
      el("td", {}, when(n.started)),
      el("td", {}, n.alive ? when(n.last_seen) : "not seen since " + when(n.last_seen)),
      el("td", { class: n.config_differs ? "differs" : "" }, n.config_hash + (n.config_differs ? " — differs from the others" : "")),
      el("td", {}, String(n.in_flight)))));
  } catch (_) { /* the list reports errors */ }
}

// ---- start ---------------------------------------------------------------------------

async function loadMeta() {
  const meta = await json("/api/meta");
  for (const [id, names] of [["endpoint", meta.endpoints], ["workflow", meta.workflows]]) {
    const select = $(id);
    select.replaceChildren(select.firstElementChild, ...names.map((n) => el("option", { value: n }, n)));
  }
  $("notices").replaceChildren(...(meta.notices || []).map((text) => el("p", { class: "notice" }, text)));
}

async function start() {
  try {
    await loadMeta();
    await search();
    await loadStats();
    await loadCluster();
  } catch (e) {
    if (!(e instanceof Unauthorized)) toast(e.message, true);
  }
}

start();
setInterval(follow, 2000);
setInterval(loadStats, 10000);
setInterval(loadCluster, 10000);
setInterval(refreshTimeline, 5000);
