// bulwark console: renders /api/fleet every two seconds and sends the
// operator's changes with the write token. Every value from the server is
// inserted as text, never as markup.
"use strict";

const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("bulwark-token") || "";
tokenInput.addEventListener("change", () => sessionStorage.setItem("bulwark-token", tokenInput.value));

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function show(text, ok) {
  const m = document.getElementById("msg");
  m.textContent = text;
  m.className = ok ? "done" : "error";
}

async function write(path, body) {
  const resp = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Bulwark-Token": tokenInput.value },
    body: JSON.stringify(body),
  });
  const out = await resp.json().catch(() => ({ error: "bad reply" }));
  if (!resp.ok) {
    show(out.error || ("HTTP " + resp.status), false);
    return null;
  }
  const diff = (out.diff || []).map(c => c.Path + ": " + (c.Old || "(unset)") + " -> " + (c.New || "(unset)")).join("; ");
  show(out.name + ": version " + out.version + (diff ? " (" + diff + ")" : " (no change)"), true);
  refresh();
  return out;
}

function reasonOf(form) {
  const r = form.querySelector("input[name=reason]").value.trim();
  return r || "from the console";
}

function chart(counts) {
  const w = 300, h = 60;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  const max = Math.max(1, ...counts.map(c => c.n));
  const line = (key, color) => {
    if (counts.length === 0) return;
    const pts = counts.map((c, i) => {
      const x = counts.length === 1 ? w / 2 : (i * (w - 4)) / (counts.length - 1) + 2;
      const y = h - 2 - ((c[key] || 0) * (h - 4)) / max;
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    const p = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    p.setAttribute("points", pts.join(" "));
    p.setAttribute("fill", "none");
    p.setAttribute("stroke", color);
    p.setAttribute("stroke-width", "1.5");
    svg.append(p);
    for (const pt of pts) { // a dot per bucket, so one bucket shows too
      const [x, y] = pt.split(",");
      const d = document.createElementNS("http://www.w3.org/2000/svg", "circle");
      d.setAttribute("cx", x);
      d.setAttribute("cy", y);
      d.setAttribute("r", "2.5");
      d.setAttribute("fill", color);
      svg.append(d);
    }
  };
  line("n", "#3461c1");
  line("denied", "#b3261e");
  line("degraded", "#9a6700");
  return svg;
}

function sum(counts, key) { return counts.reduce((a, c) => a + (c[key] || 0), 0); }

function renderReplicas(v) {
  const body = document.querySelector("#replicas tbody");
  body.replaceChildren();
  for (const r of v.replicas) {
    const pols = Object.entries(r.policies || {}).map(([n, p]) => n + " v" + p.version + (p.error ? " (refused v" + p.refused + ")" : "")).join(", ");
    body.append(el("tr", { class: "replica", "data-id": r.id },
      el("td", {}, el("code", {}, r.id)),
      el("td", {}, String(r.version)),
      el("td", { class: r.stale ? "stale" : "ok" }, r.stale ? "stale" : "current"),
      el("td", {}, new Date(r.seen).toLocaleTimeString()),
      el("td", {}, pols)));
  }
  if (v.replicas.length === 0) body.append(el("tr", {}, el("td", { colspan: 5 }, "no live replica")));
}

function renderPolicy(p) {
  const box = el("div", { class: "policy", id: "policy-" + p.name });
  box.append(el("h3", {}, p.name + " ", el("small", {}, "live version " + p.version)));

  const fields = el("table", { class: "fields" }, el("tr", {}, el("th", {}, "field"), el("th", {}, "default"), el("th", {}, "live"), el("th", {}, "")));
  for (const f of p.fields) {
    fields.append(el("tr", {},
      el("td", {}, el("code", {}, f.path)),
      el("td", {}, el("code", {}, f.default || "")),
      el("td", {}, el("code", {}, f.live || "")),
      el("td", {}, f.live ? el("button", { onclick: () => write("/api/set", { name: p.name, fields: [f.path + "="], reason: "reset " + f.path + " to its default" }) }, "use default") : "")));
  }
  const edit = el("form", { class: "edit", onsubmit: e => {
    e.preventDefault();
    const fv = edit.querySelector("input[name=field]").value.trim();
    if (fv) write("/api/set", { name: p.name, fields: fv.split(/\s+/), reason: reasonOf(edit) });
  } },
    el("input", { type: "text", name: "field", placeholder: "ratelimit.limit=50", size: 28 }),
    el("input", { type: "text", name: "reason", placeholder: "reason", size: 22 }),
    el("button", { type: "submit", id: "set-" + p.name }, "set"));
  const left = el("div", {}, fields, edit);

  const right = el("div", {});
  if (p.breaker) {
    const cls = p.breaker.state.startsWith("open") ? "open" : p.breaker.state.startsWith("half") ? "half-open" : "closed";
    const form = el("form", { onsubmit: e => e.preventDefault() },
      "breaker ", el("span", { class: cls + " breaker-state" }, p.breaker.state),
      " (" + p.breaker.calls + " calls, " + p.breaker.failures + " failures in the window)",
      el("input", { type: "text", name: "reason", placeholder: "reason", size: 16 }),
      el("button", { id: "open-" + p.name, onclick: () => write("/api/breaker", { name: p.name, action: "open", reason: reasonOf(form) }) }, "open"),
      el("button", { id: "reset-" + p.name, onclick: () => write("/api/breaker", { name: p.name, action: "reset", reason: reasonOf(form) }) }, "reset"));
    right.append(form);
  }
  if (p.bulkhead) {
    right.append(el("div", { class: "bulkhead" }, "bulkhead: " + p.bulkhead.held + " of " + p.bulkhead.max + " slots held" +
      (p.bulkhead.holders.length ? " by " + p.bulkhead.holders.map(h => h.ID.slice(0, 8)).join(", ") : "")));
  }
  const c = p.counts || [];
  right.append(el("div", {}, "last 5 minutes (10s buckets): " + sum(c, "n") + " decisions, " + sum(c, "denied") + " denied, " + sum(c, "degraded") + " degraded"),
    chart(c),
    el("div", { class: "legend" }, el("span", { class: "l-n" }, "decisions"), el("span", { class: "l-d" }, "denied"), el("span", { class: "l-g" }, "degraded")));
  box.append(el("div", { class: "row" }, left, right));

  const hist = el("table", { class: "history" }, el("tr", {}, el("th", {}, "version"), el("th", {}, "when"), el("th", {}, "who"), el("th", {}, "why"), el("th", {}, "change"), el("th", {}, "")));
  for (const r of p.history) {
    const change = (r.diff || []).map(c => c.Path + ": " + (c.Old || "(unset)") + " -> " + (c.New || "(unset)")).join("; ") +
      ((r.fresh || []).length ? " [fresh state: " + r.fresh.join("; ") + "]" : "");
    hist.append(el("tr", {},
      el("td", {}, String(r.version)), el("td", {}, new Date(r.time).toLocaleString()), el("td", {}, r.who || ""),
      el("td", {}, r.why || ""), el("td", {}, el("code", {}, change)),
      el("td", {}, r.version === p.version ? "current" :
        el("button", { class: "rollback", onclick: () => write("/api/rollback", { name: p.name, version: r.version, reason: "rollback to version " + r.version }) }, "roll back to this"))));
  }
  if (p.history.length) box.append(el("h3", {}, "history"), hist);
  return box;
}

async function refresh() {
  let v;
  try {
    const resp = await fetch("/api/fleet");
    v = await resp.json();
    if (!resp.ok) throw new Error(v.error || resp.status);
  } catch (e) {
    show("cannot read the fleet: " + e.message, false);
    return;
  }
  document.getElementById("prefix").textContent = "prefix " + v.prefix;
  document.getElementById("version").textContent = "config version " + v.version;
  renderReplicas(v);
  const box = document.getElementById("policies");
  box.replaceChildren(...(v.policies || []).map(renderPolicy));
  document.body.dataset.loaded = String(Date.now());
}

refresh();
setInterval(refresh, 2000);
