// The MapReduce view: renders /mapreduce/runs/<dag>/<run> and refreshes it while the run
// goes on. Every string from the run (file names, counter names, URIs) is set as text,
// never as HTML.
"use strict";

const REFRESH_MS = 3000;
const PARTS_SHOWN = 50;
const params = new URLSearchParams(window.location.search);
const dagId = params.get("dag_id");
const runId = params.get("run_id");
const focusTask = params.get("task_id");
const focusIndex = params.get("map_index");
const selectedPhase = {}; // job name -> "map" | "reduce"

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n), unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
function fmtSeconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60), rest = Math.round(s % 60);
  if (m < 60) return `${m} min ${rest} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
const stateDot = (state) => h("span", { class: `dot s-${state}`, "aria-hidden": "true" });
const badge = (state, text) =>
  h("span", { class: "badge", "data-state": state }, stateDot(state), text || state.replaceAll("_", " "));

function stepsStrip(job) {
  const items = [];
  job.steps.forEach((step, i) => {
    if (i) items.push(h("span", { class: "arrow" }, "→"));
    items.push(h("span", { "data-testid": `step-${step.name}` }, badge(step.state, step.name)));
  });
  return h("div", { class: "steps" }, items);
}

function phaseCard(phase) {
  const total = phase.total;
  const waiting = total === null ? 0 : Math.max(0, total - phase.done - phase.running - phase.failed - phase.retrying);
  const width = (n) => (total ? `${(100 * n) / total}%` : "0");
  const segments = [
    ["success", phase.done, "done"], ["running", phase.running, "running"],
    ["up_for_retry", phase.retrying, "retrying"], ["failed", phase.failed, "failed"],
  ];
  return h("section", { class: "card", "data-testid": `phase-${phase.name}` },
    h("div", { class: "card-head" },
      h("h3", {}, phase.name === "map" ? "Map" : "Reduce"),
      badge(phase.state)),
    h("div", { class: "big", "data-testid": `progress-${phase.name}` },
      `${fmtInt(phase.done)} / ${total === null ? "?" : fmtInt(total)} tasks done`),
    h("div", { class: "bar", role: "img", "aria-label": `${phase.done} of ${total} done` },
      segments.map(([state, n]) => h("span", { class: `s-${state}`, style: `width:${width(n)}` }))),
    h("div", { class: "legend" },
      segments.map(([state, n, label]) => h("span", {}, stateDot(state), ` ${fmtInt(n)} ${label}`)),
      h("span", {}, stateDot("none"), ` ${fmtInt(waiting)} waiting`)),
    h("dl", { class: "stats" },
      h("dt", {}, "Records in / out"),
      h("dd", { "data-testid": `records-${phase.name}` }, `${fmtInt(phase.records_in)} / ${fmtInt(phase.records_out)}`),
      h("dt", {}, "Bytes in / out"), h("dd", {}, `${fmtBytes(phase.bytes_in)} / ${fmtBytes(phase.bytes_out)}`),
      h("dt", {}, "Wall time"), h("dd", {}, fmtSeconds(phase.seconds)),
      h("dt", {}, "Largest peak memory"), h("dd", {}, phase.peak_memory_bytes ? fmtBytes(phase.peak_memory_bytes) : "–"),
      h("dt", {}, "Bad records"), h("dd", {}, fmtInt(phase.bad_records))));
}

function countersCard(counters) {
  const rows = [];
  for (const group of Object.keys(counters).sort()) {
    for (const name of Object.keys(counters[group]).sort()) {
      rows.push(h("tr", { "data-testid": "counter", "data-group": group, "data-name": name },
        h("td", {}, group), h("td", {}, name), h("td", { class: "num" }, fmtInt(counters[group][name]))));
    }
  }
  return h("section", { class: "card" }, h("h3", {}, "Counters"),
    rows.length
      ? h("div", { class: "table-wrap" }, h("table", {},
          h("thead", {}, h("tr", {}, h("th", {}, "Group"), h("th", {}, "Name"), h("th", { class: "num" }, "Value"))),
          h("tbody", {}, rows)))
      : h("p", { class: "muted" }, "No counters yet."));
}

function partitionsCard(partitions) {
  const card = h("section", { class: "card chart", "data-testid": "partitions" }, h("h3", {}, "Partition sizes (records)"));
  if (!partitions.length) {
    card.append(h("p", { class: "muted" }, "No partitions yet."));
    return card;
  }
  const records = partitions.map((p) => p.records);
  const max = Math.max(1, ...records);
  const mean = records.reduce((a, b) => a + b, 0) / records.length;
  const skew = mean ? max / mean : 0;
  const W = 600, H = 170, left = 44, bottom = 20, plotH = H - bottom - 8;
  const step = (W - left) / partitions.length;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "records per partition");
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  partitions.forEach((p, i) => {
    const barH = (plotH * p.records) / max;
    const rect = add("rect", {
      x: left + i * step + step * 0.12, y: 8 + plotH - barH, width: Math.max(1, step * 0.76), height: barH,
      class: p.records > 1.5 * mean ? "hot" : "",
    });
    const title = document.createElementNS(ns, "title");
    title.textContent = `partition ${p.partition}: ${fmtInt(p.records)} records, ${fmtBytes(p.bytes)}`;
    rect.appendChild(title);
    if (partitions.length <= 32) add("text", { x: left + i * step + step / 2, y: H - 5, "text-anchor": "middle" }, p.partition);
  });
  const meanY = 8 + plotH - (plotH * mean) / max;
  add("line", { x1: left, x2: W, y1: meanY, y2: meanY, class: "mean" });
  add("text", { x: 2, y: 14 }, fmtInt(max));
  if (Math.abs(meanY - 10) > 12) add("text", { x: 2, y: meanY + 4 }, "mean");
  card.append(svg, h("p", { class: "foot muted", "data-testid": "skew" },
    `${partitions.length} partitions · largest ${fmtInt(max)} records · mean ${fmtInt(Math.round(mean))} · skew (largest / mean) ${skew.toFixed(2)}×`));
  return card;
}

function tasksCard(job) {
  if (!job.phases.length) return null;
  const phaseName = selectedPhase[job.name]
    || (focusTask && focusTask.endsWith("reduce") && job.phases.some((p) => p.name === "reduce") ? "reduce" : "map");
  const phase = job.phases.find((p) => p.name === phaseName) || job.phases[0];
  const focusPhase = focusTask && focusTask.startsWith(job.prefix) ? focusTask.slice(job.prefix.length) : null;
  const tabs = h("div", { class: "tabs", role: "tablist" }, job.phases.map((p) =>
    h("button", {
      role: "tab", "aria-selected": p.name === phase.name ? "true" : "false",
      onclick: () => { selectedPhase[job.name] = p.name; refresh(); },
    }, `${p.name === "map" ? "Map" : "Reduce"} tasks`)));
  const head = ["#", "Reads", "State", "Try", "Records in", "Records out", "Bytes in", "Bytes out", "Duration", "Peak memory", "Bad"];
  const numeric = new Set([0, 3, 4, 5, 6, 7, 8, 9, 10]);
  const rows = phase.tasks.map((t) => {
    const focused = focusPhase !== null && String(t.index) === focusIndex &&
      (focusPhase === phase.name || (phase.name === "map" && focusPhase === "run_map_queue"));
    return h("tr", { class: focused ? "highlight" : null, "data-testid": `task-${phase.name}-${t.index}` },
      h("td", { class: "num" }, t.index), h("td", { class: "mono" }, t.label), h("td", {}, badge(t.state)),
      h("td", { class: "num" }, t.try_number ?? "–"), h("td", { class: "num" }, fmtInt(t.records_in)),
      h("td", { class: "num" }, fmtInt(t.records_out)), h("td", { class: "num" }, fmtBytes(t.bytes_in)),
      h("td", { class: "num" }, fmtBytes(t.bytes_out)), h("td", { class: "num" }, fmtSeconds(t.seconds)),
      h("td", { class: "num" }, t.peak_memory_bytes ? fmtBytes(t.peak_memory_bytes) : "–"),
      h("td", { class: "num" }, t.bad_records ? fmtInt(t.bad_records) : ""));
  });
  return h("section", { class: "card" }, tabs,
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, head.map((c, i) => h("th", { class: numeric.has(i) ? "num" : null }, c)))),
      h("tbody", {}, rows))),
    phase.more_tasks ? h("p", { class: "foot muted" }, `… and ${fmtInt(phase.more_tasks)} more tasks (totals above count them all).`) : null);
}

function badRecordsCard(job) {
  if (!job.bad_records.length) return null;
  const preview = h("pre", { class: "preview mono", hidden: true });
  const show = async (task) => {
    const url = `runs/${encodeURIComponent(dagId)}/${encodeURIComponent(runId)}/bad-records?job=${encodeURIComponent(job.name)}&task=${task}`;
    const answer = await fetch(url, { credentials: "same-origin" });
    preview.hidden = false;
    preview.textContent = answer.ok ? await answer.text() : `Could not read it (HTTP ${answer.status}).`;
  };
  return h("section", { class: "card", "data-testid": "bad-records" },
    h("h3", {}, "Bad records (skipped into dead-letter files)"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Map task"), h("th", { class: "num" }, "Records"), h("th", {}, "File"), h("th", {}, ""))),
      h("tbody", {}, job.bad_records.map((b) => h("tr", {},
        h("td", {}, b.task), h("td", { class: "num" }, fmtInt(b.count)), h("td", { class: "mono" }, b.uri),
        h("td", {}, h("button", { class: "small", onclick: () => show(b.task) }, "Preview")))))),
    preview);
}

function outputCard(output) {
  if (!output) return null;
  const link = output.manifest_link && /^https?:\/\//.test(output.manifest_link)
    ? h("a", { href: output.manifest_link, target: "_blank", rel: "noopener" }, output.manifest_uri)
    : h("span", { class: "mono" }, output.manifest_uri || "–");
  const parts = output.parts.slice(0, PARTS_SHOWN).map((p) => h("tr", {},
    h("td", { class: "mono", title: p.uri }, p.uri.split("/").pop()),
    h("td", { class: "num" }, fmtInt(p.records)), h("td", { class: "num" }, fmtBytes(p.bytes))));
  return h("section", { class: "card", "data-testid": "output" },
    h("div", { class: "card-head" }, h("h3", {}, "Output"),
      badge(output.committed ? "success" : "none", output.committed ? "committed" : "not committed yet")),
    h("dl", { class: "stats" },
      h("dt", {}, "Folder"), h("dd", { class: "mono" }, output.uri),
      h("dt", {}, "Manifest"), h("dd", {}, link),
      h("dt", {}, "Records"), h("dd", { "data-testid": "output-records" }, fmtInt(output.records)),
      h("dt", {}, "Bytes"), h("dd", {}, fmtBytes(output.bytes))),
    parts.length ? h("div", { class: "table-wrap", style: "margin-top:10px" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Part"), h("th", { class: "num" }, "Records"), h("th", { class: "num" }, "Bytes"))),
      h("tbody", {}, parts))) : null,
    output.parts.length > PARTS_SHOWN ? h("p", { class: "foot muted" }, `… and ${output.parts.length - PARTS_SHOWN} more parts.`) : null);
}

function jobSection(job) {
  return h("article", { class: "job", "data-testid": "job", "data-job": job.name },
    h("div", { class: "job-head" }, h("h2", {}, `MapReduce · ${job.name}`), badge(job.state)),
    h("p", { class: "paths muted mono" },
      job.input_uri ? `${job.input_uri} (${fmtBytes(job.input_bytes)})` : "", job.output ? ` → ${job.output.uri}` : ""),
    job.problems.length ? h("div", { class: "problems" }, job.problems.map((p) => h("div", {}, p))) : null,
    stepsStrip(job),
    h("div", { class: "cards" }, job.phases.map(phaseCard)),
    h("div", { class: "two" }, countersCard(job.counters), partitionsCard(job.partitions)),
    tasksCard(job), badRecordsCard(job), outputCard(job.output));
}

let timer = null;
let last = null;

function render(view) {
  const root = document.getElementById("root");
  const body = view.jobs.length
    ? view.jobs.map(jobSection)
    : [h("p", { class: "muted" }, "This run has no MapReduce job (no plan task has run yet).")];
  const stamp = h("p", { class: "foot muted", "data-testid": "refreshed" },
    `Updated ${new Date(view.refreshed_at * 1000).toLocaleTimeString()}`,
    view.finished ? " · run finished" : ` · refreshing every ${REFRESH_MS / 1000} s`, " ",
    h("button", { class: "small", onclick: () => refresh() }, "Refresh"));
  root.replaceChildren(...body, stamp);
}

async function refresh() {
  clearTimeout(timer);
  try {
    const answer = await fetch(`runs/${encodeURIComponent(dagId)}/${encodeURIComponent(runId)}`, { credentials: "same-origin" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    last = await answer.json();
    render(last);
  } catch (error) {
    if (last) render(last);
    document.getElementById("root").prepend(h("div", { class: "problems" }, `Could not refresh: ${error.message}`));
  }
  if (!last || !last.finished) timer = setTimeout(refresh, REFRESH_MS);
}

function followAirflowTheme() {
  // Same origin as Airflow's UI: use its colour mode (Chakra's class on <html>).
  let dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  try {
    const parent = window.parent.document.documentElement;
    if (parent !== document.documentElement) dark = parent.classList.contains("dark");
  } catch (_) { /* not embedded, or another origin */ }
  document.documentElement.classList.toggle("dark", dark);
}

followAirflowTheme();
if (!dagId || !runId) {
  document.getElementById("root").replaceChildren(h("p", { class: "muted" }, "Open this view from a DAG run's MapReduce tab."));
} else {
  refresh();
}
