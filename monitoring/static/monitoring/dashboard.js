// MCP Hub dashboard: live updates over /ws/status/ applied to the server-rendered page.
// Frames: {type: "snapshot"} (whole state), {type: "batch", events: [...]} (one per 100 ms
// window at most), {type: "critical", event} (a server went down or came back, sent at once).
(function () {
  "use strict";

  const TAIL_LENGTH = 20;
  const TIMELINE_LENGTH = 12;
  const TRANSPORTS = { stdio: "stdio", streamable_http: "HTTP", sse: "SSE" };
  const DASH = "\u2013";
  const live = document.getElementById("live");
  const cardsBox = document.getElementById("cards");
  if (!cardsBox) return;

  // Same formats as monitoring/templatetags/dashboard_format.py.
  const fmt = {
    ms(v) {
      if (v === null || v === undefined) return DASH;
      if (v >= 1000) return (v / 1000).toFixed(2) + " s";
      return v < 100 ? v.toFixed(1) + " ms" : v.toFixed(0) + " ms";
    },
    percent(v) { return v === null || v === undefined ? DASH : (v * 100).toFixed(1) + " %"; },
    rate(v) {
      if (v === null || v === undefined) return DASH;
      if (v >= 1000) return (v / 1000).toFixed(1) + "k";
      return v.toFixed(1).replace(/\.0$/, "");
    },
    clock(iso) { return iso ? iso.slice(11, 19) : DASH; },
  };

  function sparkPoints(values, width = 120, height = 28) {
    if (!values || !values.length) return "";
    const top = Math.max(...values) || 1;
    const step = width / Math.max(values.length - 1, 1);
    return values.map((v, i) => (i * step).toFixed(1) + "," + (height - 1 - (v / top) * (height - 2)).toFixed(1)).join(" ");
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const cardOf = (id) => cardsBox.querySelector(`.card[data-server-id="${id}"]`);
  const field = (card, name) => card.querySelector(`[data-field="${name}"]`);

  function setStatus(card, status, changedAt) {
    card.dataset.status = status;
    field(card, "status").textContent = status;
    if (changedAt) card.dataset.changedAt = changedAt;
  }

  function applyFigures(row) {
    const card = cardOf(row.id);
    if (!card) return;
    // A status older than the one shown (an event that crossed a snapshot) is ignored.
    if (!card.dataset.changedAt || !row.status_changed_at || row.status_changed_at >= card.dataset.changedAt) {
      setStatus(card, row.status, row.status_changed_at);
    }
    field(card, "transport").textContent = TRANSPORTS[row.transport] || row.transport;
    field(card, "tools").textContent = row.tools;
    field(card, "latency_ms").textContent = fmt.ms(row.latency_ms);
    field(card, "calls_per_minute").textContent = fmt.rate(row.calls_per_minute);
    field(card, "error_rate").textContent = fmt.percent(row.error_rate);
    field(card, "p95_ms").textContent = fmt.ms(row.p95_ms);
    field(card, "instance_count").textContent = row.instance_count;
    const error = field(card, "last_error");
    error.textContent = row.last_error || "";
    error.title = row.last_error || "";
    if (row.spark) field(card, "spark").setAttribute("points", sparkPoints(row.spark));
    card.dataset.cpm = row.calls_per_minute;
    card.dataset.errorRate = row.error_rate === null ? "" : row.error_rate;
  }

  function applyStatus(event, critical) {
    const card = cardOf(event.server_id);
    if (card) {
      if (card.dataset.changedAt && event.changed_at < card.dataset.changedAt) return;
      setStatus(card, event.new, event.changed_at);
      const error = field(card, "last_error");
      error.textContent = event.new === "up" ? "" : event.reason || "";
      if (critical) {
        card.classList.add("flash");
        setTimeout(() => card.classList.remove("flash"), 2500);
      }
    }
    addChange(event);
  }

  function changeItem(change) {
    const li = el("li");
    li.append(el("span", { class: "mono when" }, fmt.clock(change.changed_at)), " ",
      el("a", { href: `/servers/${change.slug}/` }, change.slug), " ",
      el("span", { class: `pill status-${change.old}` }, change.old), " \u2192 ",
      el("span", { class: `pill status-${change.new}` }, change.new),
      el("span", { class: "reason" }, change.reason || ""));
    return li;
  }

  function addChange(change) {
    const list = document.getElementById("timeline");
    list.querySelectorAll(".placeholder").forEach((n) => n.remove());
    list.prepend(changeItem(change));
    while (list.children.length > TIMELINE_LENGTH) list.lastElementChild.remove();
  }

  function callRow(call, fresh) {
    const tr = el("tr", { class: `outcome-${call.outcome}${fresh ? " new" : ""}` });
    tr.append(el("td", { class: "mono" }, fmt.clock(call.at)), el("td", {}, call.server),
      el("td", { class: "mono" }, call.tool));
    const outcome = el("td");
    outcome.append(el("span", { class: "pill" }, call.outcome));
    tr.append(outcome, el("td", { class: "num" }, fmt.ms(call.latency_ms)));
    return tr;
  }

  function addCalls(calls, replace) {
    const tbody = document.getElementById("tail");
    if (replace) tbody.replaceChildren();
    tbody.querySelectorAll(".placeholder").forEach((n) => n.remove());
    // Events arrive oldest first; the table is newest first.
    const rows = calls.slice(-TAIL_LENGTH).reverse().map((c) => callRow(c, !replace));
    tbody.prepend(...rows);
    while (tbody.children.length > TAIL_LENGTH) tbody.lastElementChild.remove();
  }

  function refreshTotals() {
    const counts = { up: 0, degraded: 0, down: 0, unknown: 0 };
    let calls = 0;
    let errors = 0;
    let known = false;
    cardsBox.querySelectorAll(".card").forEach((card) => {
      counts[card.dataset.status] = (counts[card.dataset.status] || 0) + 1;
      if (card.dataset.cpm !== undefined) {
        known = true;
        const cpm = Number(card.dataset.cpm) || 0;
        calls += cpm;
        errors += cpm * (Number(card.dataset.errorRate) || 0);
      }
    });
    const set = (name, text) => { const n = document.querySelector(`[data-total="${name}"]`); if (n) n.textContent = text; };
    for (const [status, count] of Object.entries(counts)) set(status, count);
    set("servers", cardsBox.querySelectorAll(".card").length);
    if (known) {
      set("calls_per_minute", fmt.rate(calls));
      set("error_rate", calls ? fmt.percent(errors / calls) : DASH);
    }
  }

  function applySnapshot(frame) {
    const known = new Set([...cardsBox.querySelectorAll(".card")].map((c) => c.dataset.serverId));
    const current = new Set(frame.servers.map((s) => String(s.id)));
    if (known.size !== current.size || [...current].some((id) => !known.has(id))) {
      // Servers were added or removed: the server-rendered page has the new cards.
      if (frame.reason !== "connect" || !sessionStorage.getItem("mcphub-reloaded")) {
        sessionStorage.setItem("mcphub-reloaded", "1");
        location.reload();
        return;
      }
    }
    sessionStorage.removeItem("mcphub-reloaded");
    frame.servers.forEach(applyFigures);
    addCalls(frame.calls.slice().reverse(), true); // snapshots list calls newest first
    const list = document.getElementById("timeline");
    list.replaceChildren(...frame.timeline.map(changeItem));
    refreshTotals();
  }

  function handle(frame) {
    if (frame.type === "snapshot") {
      applySnapshot(frame);
    } else if (frame.type === "critical") {
      applyStatus(frame.event, true);
      refreshTotals();
    } else if (frame.type === "batch") {
      const calls = [];
      for (const event of frame.events) {
        if (event.kind === "status") applyStatus(event, false);
        else if (event.kind === "server") applyFigures(event);
        else if (event.kind === "call") calls.push(event);
      }
      if (calls.length) addCalls(calls, false);
      refreshTotals();
    }
  }

  let delay = 1000;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/status/`);
    socket.addEventListener("open", () => {
      delay = 1000;
      live.dataset.state = "live";
      live.textContent = "live";
    });
    socket.addEventListener("message", (message) => handle(JSON.parse(message.data)));
    socket.addEventListener("close", (event) => {
      live.dataset.state = "offline";
      if (event.code === 4401 || event.code === 4403) {
        live.textContent = "signed out";
        return;
      }
      live.textContent = "reconnecting";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    });
  }
  connect();
})();
