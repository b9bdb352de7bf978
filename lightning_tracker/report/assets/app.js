// lightning-tracker report: one page, fed by an embedded payload (report) or api/data (serve).
// The state, the runs table, the config diff and the wiring; format.js, charts.js and views.js
// (loaded before this file) draw the rest through window.LT.
(function (LT) {
  "use strict";
  const state = { data: null, filter: "", sortCol: "start", sortAsc: true, selected: new Set(),
    known: new Set(), xaxis: "step", smoothing: 0, log: false, pcMetric: null, scatterX: null, histTensor: null,
    search: "", open: new Map(), colors: new Map(), mediaStep: new Map(), groupBy: "", band: "minmax" };
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const { fmt, duration } = LT;

  async function load() {
    const node = $("lt-data");
    if (node.dataset.live) {
      const response = await fetch("api/data", { cache: "no-store" });
      if (!response.ok) throw new Error("api/data answered " + response.status);
      return response.json();
    }
    const binary = atob(node.textContent.trim());
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  // -- helpers -------------------------------------------------------------------------
  // grouped, a run takes its group's colour (groups.js), in the table, the scatter and the charts
  const runColor = (run) => LT.groupColor(run) || LT.color(state.colors.get(run.key) ?? 0);
  const configKeys = (runs) => [...new Set(runs.flatMap((r) => Object.keys(r.config)))].sort();
  // in the order they matter (lightning_tracker/format/keys.py, through the payload)
  const metricKeys = (runs) => LT.metricOrder([...new Set(runs.flatMap((r) => Object.keys(r.summary)))]);
  const varying = (runs, keys, get) => keys.filter((k) => runs.length < 2 ||
    new Set(runs.map((r) => JSON.stringify(get(r, k) ?? null))).size > 1);

  // a run as query.js (the twin of lightning_tracker/format/query.py) reads it, the record
  // Store.runs(where=...) builds: the filter box and the CLI's --where share one grammar
  const Q = LightningQuery;
  const queryRecord = (run) => ({ id: run.id, name: run.name, project: run.project, group: run.group,
    status: run.status, tags: run.tags || [], notes: run.notes, params: run.config, summary: run.summary,
    min: run.min, max: run.max });
  let query = Q.parse("");
  // the names of every run on the page: what a bare key names is decided over all of them
  let among = Q.scope([]);

  // a column's value: start and duration, or what a query key names ("config.lr", "val/acc")
  function field(run, key) {
    if (key === "start" || key === "duration" || key === "damage") return run[key];
    const value = Q.resolve(queryRecord(run), key, among);
    return value === Q.MISSING ? undefined : value;
  }

  // "lr<0.01 status=finished adam": an invalid query (or a key no run has) is shown beside the
  // box while the last valid one keeps filtering
  function setFilter(text) {
    let problem = "";
    try {
      const parsed = Q.parse(text);
      const records = state.data ? state.data.runs.map(queryRecord) : [];
      if (records.length) Q.checkKeys(parsed, Q.knownKeys(records));
      query = parsed;
    } catch (err) {
      problem = err.message;
    }
    state.filter = text;
    let note = $("filter-error");
    if (!note) {
      note = el("span", { id: "filter-error", role: "alert" });
      note.style.color = "#b00020";
      $("filter").after(note);
    }
    note.textContent = problem;
    $("filter").setAttribute("aria-invalid", problem ? "true" : "false");
  }

  const shownRuns = () => state.data.runs.filter((r) => query.matches(queryRecord(r), among));
  const plottedRuns = () => shownRuns().filter((r) => state.selected.has(r.key));

  // -- runs table ----------------------------------------------------------------------
  const TEXT_COLS = ["name", "project", "group", "status", "damage", "tags"];
  function renderTable() {
    const runs = state.data.runs;
    const cfg = varying(runs, configKeys(runs), (r, k) => r.config[k]).map((k) => "config." + k);
    const met = metricKeys(runs).filter((k) => !LT.familyOf(k)).map((k) => "summary." + k);
    const damaged = runs.some((r) => r.damage) ? ["damage"] : [];
    const grouped = runs.some((r) => r.group) ? ["group"] : [];
    const cols = ["name", "project", ...grouped, "status", ...damaged, "tags", "start", "duration", ...cfg, ...met];
    const table = $("runs-table");
    table.replaceChildren();
    const head = el("tr");
    head.appendChild(el("th", { class: "text" }, ""));
    cols.forEach((c) => {
      const th = el("th", { "data-col": c, class: TEXT_COLS.includes(c) ? "text" : "" }, LT.label(c));
      if (c === state.sortCol) th.classList.add(state.sortAsc ? "sorted-asc" : "sorted-desc");
      th.addEventListener("click", () => {
        state.sortAsc = state.sortCol === c ? !state.sortAsc : true;
        state.sortCol = c;
        renderAll();
      });
      head.appendChild(th);
    });
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    const shown = shownRuns();
    const key = (r) => (state.sortCol === "duration" ? r.duration : field(r, state.sortCol));
    shown.sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === y) return 0;
      if (x === undefined || x === null) return 1;
      if (y === undefined || y === null) return -1;
      return (x < y ? -1 : 1) * (state.sortAsc ? 1 : -1);
    });
    shown.forEach((run) => {
      const tr = el("tr", { "data-run": run.key });
      if (state.groupBy) tr.dataset.group = LT.groupOf(run);
      const td = el("td", { class: "text" });
      const box = el("input", { type: "checkbox" });
      box.checked = state.selected.has(run.key);
      box.addEventListener("change", () => {
        if (box.checked) state.selected.add(run.key); else state.selected.delete(run.key);
        renderViews();
      });
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = runColor(run);
      td.append(box, swatch);
      tr.appendChild(td);
      cols.forEach((c) => {
        let value = field(run, c);
        if (c === "tags") value = (run.tags || []).join(", ");
        if (c === "start") value = run.start ? new Date(run.start * 1000).toISOString().slice(0, 19).replace("T", " ") : null;
        if (c === "duration") value = duration(run.duration);
        const cell = el("td", { class: TEXT_COLS.includes(c) ? "text" : "" }, fmt(value));
        if (c === "damage") cell.classList.add("damage");
        if (c === "status") cell.classList.add("status-" + run.status);
        if (c === "status" && run.damage) cell.title = run.damage;
        tr.appendChild(cell);
      });
      body.appendChild(tr);
    });
    $("runs-count").textContent = shown.length + " of " + LT.plural(runs.length, "run") + " shown, " + plottedRuns().length + " selected";
  }

  // -- config diff ---------------------------------------------------------------------
  function renderDiff() {
    const runs = plottedRuns();
    const table = $("diff-table");
    table.replaceChildren();
    const keys = varying(runs, configKeys(runs), (r, k) => r.config[k]);
    if (runs.length < 2 || !keys.length) {
      table.appendChild(el("tr")).appendChild(el("td", { class: "empty text" },
        runs.length < 2 ? "Select two or more runs to compare." : "The selected runs share every hyperparameter."));
      return;
    }
    const head = el("tr");
    head.appendChild(el("th", { class: "text" }, "hyperparameter"));
    runs.forEach((r) => head.appendChild(el("th", {}, r.name)));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    keys.forEach((k) => {
      const tr = el("tr", { "data-key": k });
      tr.appendChild(el("td", { class: "text" }, k));
      const ref = JSON.stringify(runs[0].config[k] ?? null);
      runs.forEach((r, i) => {
        const value = r.config[k];
        const cell = el("td", {}, fmt(value));
        if (value === undefined) cell.classList.add("missing");
        if (i > 0 && JSON.stringify(value ?? null) !== ref) cell.classList.add("changed");
        tr.appendChild(cell);
      });
      body.appendChild(tr);
    });
  }

  // -- the view as a link --------------------------------------------------------------
  // the filter, group-by, band, x-axis and the runs selected live in the address's #fragment
  // (the report file keeps it too; the server never sees it), so a link opens the same view
  function writeLink() {
    const p = new URLSearchParams();
    if (state.filter) p.set("filter", state.filter);
    if (state.groupBy !== LT.defaultGroupBy(state.data.runs)) p.set("group", state.groupBy);
    if (state.band !== "minmax") p.set("band", state.band);
    if (state.xaxis !== "step") p.set("x", state.xaxis);
    if (!state.data.runs.every((r) => state.selected.has(r.key))) {
      state.data.runs.filter((r) => state.selected.has(r.key)).forEach((r) => p.append("run", r.key));
      if (!state.selected.size) p.set("run", "");
    }
    const hash = p.toString();
    if (hash !== location.hash.slice(1)) history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }

  function readLink() {
    const p = new URLSearchParams(location.hash.slice(1));
    const filter = p.get("filter") || "";
    $("filter").value = filter;
    setFilter(filter);
    state.groupBy = p.has("group") ? p.get("group") : LT.defaultGroupBy(state.data.runs);
    state.band = p.get("band") === "std" ? "std" : "minmax";
    state.xaxis = ["t", "epoch"].includes(p.get("x")) ? p.get("x") : "step";
    $("xaxis").value = state.xaxis;
    state.selected = new Set(p.has("run") ? p.getAll("run").filter(Boolean) : state.data.runs.map((r) => r.key));
  }

  // -- wiring --------------------------------------------------------------------------
  function renderViews() {
    LT.fillGroupControl();
    renderTable();
    renderDiff();
    LT.renderLines($("metric-charts"));
    LT.renderParallel();
    LT.renderHistograms();
    LT.renderCheckpoints();
    LT.renderMedia();
    writeLink();
  }
  const renderAll = renderViews;

  function adopt(data) {
    data.runs.forEach((r) => {
      if (!state.known.has(r.key)) { state.known.add(r.key); state.selected.add(r.key); }
    });
    state.data = data;
    among = Q.scope(data.runs.map(queryRecord));
    LT.setKeys(data.keys);
    state.colors = LT.colorIndex(data.runs);
    $("xaxis").querySelector("option[value='epoch']").disabled =
      !Object.values(data.series).some((s) => s.epoch);
    const when = new Date(data.generated * 1000).toISOString().slice(0, 19).replace("T", " ");
    $("subtitle").textContent = data.store + " · " + LT.plural(data.runs.length, "run") + " · " +
      ($("lt-data").dataset.live ? "live, updated " : "generated ") + when + " UTC";
  }

  function bind() {
    $("filter").addEventListener("input", (e) => { setFilter(e.target.value); renderViews(); });
    $("select-all").addEventListener("click", () => { shownRuns().forEach((r) => state.selected.add(r.key)); renderViews(); });
    $("select-none").addEventListener("click", () => { state.selected.clear(); renderViews(); });
    $("xaxis").addEventListener("change", (e) => { state.xaxis = e.target.value; renderViews(); });
    $("smoothing").addEventListener("input", (e) => {
      state.smoothing = Number(e.target.value);
      $("smoothing-value").textContent = e.target.value;
      renderViews();
    });
    $("logscale").addEventListener("change", (e) => { state.log = e.target.checked; renderViews(); });
    $("chart-search").addEventListener("input", (e) => { state.search = e.target.value; LT.renderLines($("metric-charts")); });
    $("pc-metric").addEventListener("change", (e) => { state.pcMetric = e.target.value; LT.renderParallel(); });
    $("scatter-x").addEventListener("change", (e) => { state.scatterX = e.target.value; LT.renderParallel(); });
    $("hist-tensor").addEventListener("change", (e) => { state.histTensor = e.target.value; LT.renderHistograms(); });
    LT.bindGroups(renderViews);
    window.addEventListener("hashchange", () => { readLink(); renderViews(); }); // a link pasted into this tab
  }

  async function main() {
    bind();
    adopt(await load());
    readLink();
    renderViews();
    document.body.dataset.ready = "1";
    const interval = Number($("lt-data").dataset.live || 0);
    if (interval > 0) {
      setInterval(async () => {
        try { adopt(await load()); renderViews(); } catch (err) { $("subtitle").textContent = "update failed: " + err; }
      }, interval * 1000);
    }
  }
  Object.assign(LT, { state, $, el, runColor, plottedRuns, metricKeys, configKeys, varying, field });
  main();
})(window.LT = window.LT || {});
