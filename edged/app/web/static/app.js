// edged's status page: plain JavaScript, no build step, nothing from the internet.
// It reads /api/state and /api/stats every second, follows /api/events (server-sent events), shows
// /stream.mjpg (falling back to /snapshot.jpg), and sends commands as JSON POSTs with the CSRF token.
"use strict";

const $ = (id) => document.getElementById(id);
const session = { csrf: null, canWrite: false, auth: "none" };
let commands = [];
let paused = false;
let hosted = false;  // a [hosting] table is configured: Install / Roll back make sense

function text(id, value) {
  const node = $(id);
  if (node) node.textContent = value === null || value === undefined ? "–" : String(value);
}

function ms(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(1);
}

function duration(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function showState(state) {
  text("device", state.device_id);
  text("version", `edged ${state.edged_version}`);
  const model = state.model;
  text("model", model ? `${model.name} ${model.version} (${model.sha256.slice(0, 12)})` : "loading");
  text("task", state.task);
  text("accelerator", state.accelerator);
  text("source", `${state.source.id} (${state.source.type}): ${state.source.state}`);
  text("uptime", duration(state.uptime_s));
  paused = state.paused;
  $("paused-badge").hidden = !paused;
  const health = $("health");
  const ok = state.health.status === "ok";
  health.textContent = ok ? (state.health.reason === "paused" ? "healthy" : state.health.reason)
    : `unhealthy: ${state.health.reason}`;
  health.className = `badge ${ok ? "ok" : "bad"}`;
  const publisher = state.publisher;
  if (publisher.link) {
    text("broker", `${publisher.type}: ${publisher.link.connected ? "connected" : "disconnected"}, ` +
      `${publisher.link.connects} connect(s), ${publisher.link.delivered} delivered`);
    text("buffer", `${publisher.link.buffered} (in flight ${publisher.link.in_flight})`);
  } else {
    text("broker", publisher.type);
    text("buffer", "–");
  }
  const hosting = state.hosting;
  text("hosting", hosting ? hosting.state : "not configured");
  text("version-current", hosting ? hosting.current_version : model && model.version);
  text("version-available", hosting ? hosting.available_version : null);
  text("last-check", hosting ? hosting.last_check_at : null);
  text("last-error", hosting ? hosting.last_error : null);
  commands = state.commands;
  hosted = Boolean(hosting);
  updateButtons();
}

function showStats(stats) {
  text("fps-in", stats.input_fps.toFixed(1));
  text("fps-out", stats.output_fps.toFixed(1));
  text("dropped", stats.dropped);
  text("skipped", stats.skipped);
  text("totals", `${stats.totals.inferred} inferred, ${stats.totals.dropped} dropped, ${stats.totals.skipped} skipped`);
  text("inf-p50", ms(stats.inference_ms.p50));
  text("inf-p95", ms(stats.inference_ms.p95));
  text("lat-p50", ms(stats.latency_ms.p50));
  text("lat-p99", ms(stats.latency_ms.p99));
}

function describeResult(result) {
  const found = result.task === "detection" ? result.objects : result.labels;
  const what = found.length
    ? found.slice(0, 4).map((item) => `${item.label} ${(item.score * 100).toFixed(0)}%`).join(", ")
    : "nothing";
  return `#${result.seq} ${result.captured_at.slice(11, 23)}: ${what}`;
}

function addLine(listId, line, keep) {
  const list = $(listId);
  const item = document.createElement("li");
  item.textContent = line;
  list.prepend(item);
  while (list.children.length > keep) list.lastElementChild.remove();
}

async function refresh() {
  try {
    const [state, stats] = await Promise.all([getJson("/api/state"), getJson("/api/stats")]);
    showState(state);
    showStats(stats);
  } catch (error) {
    const health = $("health");
    health.textContent = `no answer from edged (${error.message})`;
    health.className = "badge bad";
  }
}

async function loadRecent() {
  const recent = await getJson("/api/results/recent?limit=10");
  for (const result of recent.results) addLine("results", describeResult(result), 10);
}

function followEvents() {
  const source = new EventSource("/api/events");
  source.addEventListener("result", (message) => addLine("results", describeResult(JSON.parse(message.data)), 10));
  source.addEventListener("edged", (message) => {
    const event = JSON.parse(message.data);
    const detail = event.state ? `: ${event.state}${event.detail ? ` (${event.detail})` : ""}` : "";
    addLine("events", `${event.at.slice(11, 19)} ${event.event}${detail}`, 20);
    if (["paused", "resumed", "source_state", "model_changed"].includes(event.event)) refresh();
  });
}

function startLiveView() {
  const image = $("live");
  let fallback = null;
  image.addEventListener("error", () => {
    if (fallback) return;  // the stream failed (too many viewers, a proxy that buffers): poll snapshots instead
    text("live-mode", "snapshots, one a second (the live stream is unavailable)");
    fallback = setInterval(() => { image.src = `/snapshot.jpg?t=${Date.now()}`; }, 1000);
  });
  image.src = "/stream.mjpg";
}

function updateButtons() {
  for (const button of document.querySelectorAll("button[data-command]")) {
    const name = button.dataset.command;
    let known = commands.includes(name);
    if (name === "install_update" || name === "rollback") {
      known = known && hosted;
      button.hidden = !known;
    }
    let enabled = session.canWrite && known;
    if (name === "pause") enabled = enabled && !paused;
    if (name === "resume") enabled = enabled && paused;
    button.disabled = !enabled;
  }
}

async function send(name) {
  const message = $("message");
  message.className = "";
  message.textContent = `${name}…`;
  const response = await fetch(`/api/command/${name}`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Edged-CSRF": session.csrf || "" },
    body: "{}",
  });
  const reply = await response.json();
  message.className = reply.ok ? "" : "bad";
  message.textContent = reply.ok ? `${name}: done ${JSON.stringify(reply.result)}` : `${name}: ${reply.error}`;
  await refresh();
}

async function loadSession() {
  const answer = await getJson("/api/session");
  session.csrf = answer.csrf;
  session.canWrite = answer.can_write;
  session.auth = answer.auth;
  text("stream-fps", answer.stream_fps);
  $("login").hidden = answer.auth !== "token" || answer.authenticated;
  const locked = $("locked");
  locked.hidden = answer.can_write;
  locked.textContent = answer.can_write ? "" : answer.reason;
  updateButtons();
  return answer;
}

async function login(event) {
  event.preventDefault();
  const response = await fetch("/api/login", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: $("token").value }),
  });
  $("token").value = "";
  const message = $("message");
  if (!response.ok) {
    message.className = "bad";
    message.textContent = (await response.json()).error;
    return;
  }
  message.className = "";
  message.textContent = "controls unlocked";
  const answer = await loadSession();
  if (answer.can_read) start();
}

let started = false;
function start() {
  if (started) return;
  started = true;
  startLiveView();
  refresh();
  setInterval(refresh, 1000);
  loadRecent().then(followEvents);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login").addEventListener("submit", login);
  for (const button of document.querySelectorAll("button[data-command]")) {
    button.addEventListener("click", () => send(button.dataset.command));
  }
  const answer = await loadSession();
  if (answer.can_read) start();
});
