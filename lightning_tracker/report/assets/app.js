// lightning-tracker report: one page, fed by an embedded payload (report) or api/data (serve).
(function () {
  "use strict";
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];
  const state = { data: null, filter: "", sortCol: "start", sortAsc: true, selected: new Set(),
    known: new Set(), xaxis: "step", smoothing: 0, log: false, pcMetric: null, scatterX: null, histTensor: null };
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  };

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
  const fmt = (v) => {
    if (v === null || v === undefined) return "—";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(4).replace(/\.?0+$/, "");
    return String(v);
  };
  const duration = (s) => {
    if (s === null || s === undefined) return "—";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
  };
  // stored text goes into Plotly (titles, legends, hover, ticks) as text: Plotly reads a
  // subset of HTML there, so "<a href=...>" in a run or metric name would become a link
  const plain = (v) => String(v ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const runColor = (run) => COLORS[state.data.runs.indexOf(run) % COLORS.length];
  const configKeys = (runs) => [...new Set(runs.flatMap((r) => Object.keys(r.config)))].sort();
  const metricKeys = (runs) => [...new Set(runs.flatMap((r) => Object.keys(r.summary)))].sort();
  const varying = (runs, keys, get) => keys.filter((k) => runs.length < 2 ||
    new Set(runs.map((r) => JSON.stringify(get(r, k) ?? null))).size > 1);

  // a run as query.js (the twin of lightning_tracker/format/query.py) reads it, the record
  // Store.runs(where=...) builds: the filter box and the CLI's --where share one grammar
  const Q = LightningQuery;
  const queryRecord = (run) => ({ id: run.id, name: run.name, project: run.project, group: run.group,
    status: run.status, tags: run.tags || [], notes: run.notes, params: run.config, summary: run.summary });
  let query = Q.parse("");

  // a column's value: start and duration, or what a query key names ("config.lr", "val/acc")
  function field(run, key) {
    if (key === "start" || key === "duration" || key === "damage") return run[key];
    const value = Q.resolve(queryRecord(run), key);
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

  const shownRuns = () => state.data.runs.filter((r) => query.matches(queryRecord(r)));
  const plottedRuns = () => shownRuns().filter((r) => state.selected.has(r.key));

  // -- runs table ----------------------------------------------------------------------
  const TEXT_COLS = ["name", "project", "status", "damage", "tags"];
  function renderTable() {
    const runs = state.data.runs;
    const cfg = varying(runs, configKeys(runs), (r, k) => r.config[k]).map((k) => "config." + k);
    const met = metricKeys(runs).filter((k) => !k.startsWith("system/")).map((k) => "summary." + k);
    const damaged = runs.some((r) => r.damage) ? ["damage"] : [];
    const cols = ["name", "project", "status", ...damaged, "tags", "start", "duration", ...cfg, ...met];
    const table = $("runs-table");
    table.replaceChildren();
    const head = el("tr");
    head.appendChild(el("th", { class: "text" }, ""));
    cols.forEach((c) => {
      const label = c.replace(/^(config|summary)\./, "");
      const th = el("th", { "data-col": c, class: TEXT_COLS.includes(c) ? "text" : "" }, label);
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
    $("runs-count").textContent = shown.length + " of " + runs.length + " runs shown, " + plottedRuns().length + " selected";
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

  // -- line charts ---------------------------------------------------------------------
  function smooth(values, weight) {
    if (!weight) return values;
    let last = 0, debias = 0;
    return values.map((v) => {
      if (v === null) return null;
      last = last * weight + (1 - weight) * v;
      debias = debias * weight + (1 - weight);
      return last / debias;
    });
  }

  // each container keeps its charts by metric name: no element id is derived from a name, so
  // no two names share a chart ("a/b" and "a_b", "损失" and "精度") and none reaches another element
  const charts = new Map();
  function chartDiv(container, metric) {
    if (!charts.has(container)) charts.set(container, new Map());
    const byMetric = charts.get(container);
    let div = byMetric.get(metric);
    if (!div) {
      div = el("div", { class: "chart", "data-metric": metric });
      container.appendChild(div);
      byMetric.set(metric, div);
    }
    return div;
  }

  function lineTraces(runs, metric) {
    const traces = [];
    runs.forEach((run) => {
      const s = (state.data.series[run.key] || {})[metric];
      if (!s) return;
      const x = state.xaxis === "t" ? s.t : s.step;
      const color = runColor(run);
      if (s.lo) {
        traces.push({ x: x.concat([...x].reverse()), y: s.hi.concat([...s.lo].reverse()), fill: "toself",
          fillcolor: color, opacity: 0.2, line: { width: 0 }, hoverinfo: "skip", showlegend: false,
          type: "scatter", mode: "lines", meta: { run: run.key, kind: "envelope" } });
      }
      traces.push({ x: x, y: smooth(s.y, state.smoothing), name: plain(run.name), type: "scatter",
        mode: s.y.length <= 60 ? "lines+markers" : "lines", marker: { size: 5, color: color },
        line: { color: color, width: 1.5 }, meta: { run: run.key, kind: "line", points: s.n } });
    });
    return traces;
  }

  function renderLines(container, keys) {
    const runs = plottedRuns();
    const wanted = new Set(keys);
    const byMetric = charts.get(container) || new Map();
    byMetric.forEach((div, metric) => {
      if (!wanted.has(metric)) { Plotly.purge(div); div.remove(); byMetric.delete(metric); }
    });
    container.querySelectorAll(":scope > p.empty").forEach((p) => p.remove());
    if (!keys.length) {
      container.appendChild(el("p", { class: "empty" }, "No metrics recorded."));
      return;
    }
    keys.forEach((metric) => {
      const div = chartDiv(container, metric);
      const layout = { title: { text: plain(metric), font: { size: 14 } }, margin: { t: 36, r: 12, b: 40, l: 56 },
        xaxis: { title: { text: state.xaxis === "t" ? "time (s)" : "step" } },
        yaxis: { type: state.log ? "log" : "linear" }, showlegend: runs.length <= 12, legend: { font: { size: 10 } } };
      Plotly.react(div, lineTraces(runs, metric), layout, { displaylogo: false, responsive: true });
    });
  }

  const seriesKeys = () => [...new Set(Object.values(state.data.series).flatMap((s) => Object.keys(s)))].sort();

  // -- parallel coordinates and scatter -------------------------------------------------
  function dimension(runs, label, get) {
    const values = runs.map(get);
    if (values.every((v) => typeof v === "number" || v === null || v === undefined)) {
      return { label: plain(label), values: values.map((v) => (v === null || v === undefined ? NaN : v)) };
    }
    const cats = [...new Set(values.map((v) => fmt(v)))].sort();
    return { label: plain(label), values: values.map((v) => cats.indexOf(fmt(v))), tickvals: cats.map((_, i) => i),
      ticktext: cats.map(plain) };
  }

  function fillSelect(select, options, current) {
    const value = options.includes(current) ? current : options[0];
    select.replaceChildren(...options.map((o) => el("option", { value: o }, o)));
    if (value !== undefined) select.value = value;
    return value;
  }

  function renderParallel() {
    const runs = plottedRuns();
    const metrics = metricKeys(runs).filter((k) => !k.startsWith("system/"));
    state.pcMetric = fillSelect($("pc-metric"), metrics, state.pcMetric);
    const keys = varying(runs, configKeys(runs), (r, k) => r.config[k]);
    state.scatterX = fillSelect($("scatter-x"), keys.length ? keys : configKeys(runs), state.scatterX);
    const layout = { margin: { t: 80, r: 40, b: 30, l: 60 } };
    if (!runs.length || !state.pcMetric) {
      Plotly.react($("parallel-chart"), [], { ...layout, title: { text: "no runs selected" } });
      Plotly.react($("scatter-chart"), [], { ...layout, title: { text: "no runs selected" } });
      return;
    }
    const m = state.pcMetric;
    const dims = keys.map((k) => dimension(runs, k, (r) => r.config[k]));
    const metricDim = dimension(runs, m, (r) => r.summary[m]);
    Plotly.react($("parallel-chart"), [{ type: "parcoords", dimensions: [...dims, metricDim],
      line: { color: metricDim.values, colorscale: "Viridis", showscale: true }, meta: { kind: "parcoords" } }],
    { ...layout, title: { text: "hyperparameters vs " + plain(m), font: { size: 14 } } }, { displaylogo: false, responsive: true });
    const x = state.scatterX;
    Plotly.react($("scatter-chart"), [{ type: "scatter", mode: "markers+text",
      x: runs.map((r) => (typeof r.config[x] === "string" ? plain(r.config[x]) : r.config[x] ?? null)),
      y: runs.map((r) => r.summary[m] ?? null),
      text: runs.map((r) => plain(r.name)), textposition: "top center", textfont: { size: 9 },
      marker: { size: 10, color: runs.map(runColor) }, meta: { kind: "scatter" } }],
    { ...layout, title: { text: plain(m) + " vs " + plain(x || "—"), font: { size: 14 } },
      xaxis: { title: { text: plain(x) } }, yaxis: { title: { text: plain(m) } } }, { displaylogo: false, responsive: true });
  }

  // -- histograms and checkpoints (drawn only when the payload has them) -----------------
  function renderHistograms() {
    const all = state.data.histograms || {};
    const runs = plottedRuns().filter((r) => all[r.key]);
    $("histograms-section").hidden = !Object.keys(all).length;
    const names = [...new Set(runs.flatMap((r) => Object.keys(all[r.key])))].sort();
    state.histTensor = fillSelect($("hist-tensor"), names, state.histTensor);
    const container = $("histogram-charts");
    [...container.children].forEach((c) => { Plotly.purge(c); c.remove(); });
    runs.slice(0, 12).forEach((run) => {
      const h = all[run.key][state.histTensor];
      if (!h) return;
      // steps have their own ranges: re-bin every step onto one grid for the heatmap
      const lo = Math.min(...h.edges.map((e) => e[0])), hi = Math.max(...h.edges.map((e) => e[e.length - 1]));
      const bins = 48, width = (hi - lo) / bins || 1;
      const z = Array.from({ length: bins }, () => new Array(h.step.length).fill(0));
      h.counts.forEach((counts, j) => counts.forEach((c, i) => {
        const center = (h.edges[j][i] + h.edges[j][i + 1]) / 2;
        z[Math.min(bins - 1, Math.max(0, Math.floor((center - lo) / width)))][j] += c;
      }));
      const div = el("div", { class: "chart", "data-run": run.key });
      container.appendChild(div);
      Plotly.newPlot(div, [{ type: "heatmap", x: h.step, y: z.map((_, i) => lo + (i + 0.5) * width), z: z,
        colorscale: "Viridis", meta: { run: run.key, kind: "histogram" } }],
      { title: { text: plain(run.name + " · " + state.histTensor), font: { size: 13 } }, margin: { t: 36, r: 12, b: 40, l: 56 },
        xaxis: { title: { text: "step" } }, yaxis: { title: { text: "value" } } }, { displaylogo: false, responsive: true });
    });
  }

  function renderCheckpoints() {
    const all = state.data.checkpoints || {};
    $("checkpoints-section").hidden = !Object.keys(all).length;
    const box = $("checkpoints");
    box.replaceChildren();
    plottedRuns().forEach((run) => {
      const rows = all[run.key];
      if (!rows || !rows.length) return;
      box.appendChild(el("h3", {}, run.name));
      const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
      const table = el("table");
      const head = el("tr");
      cols.forEach((c) => head.appendChild(el("th", { class: "text" }, c)));
      table.appendChild(head);
      rows.forEach((r) => {
        const tr = el("tr");
        cols.forEach((c) => tr.appendChild(el("td", { class: "text" },
          typeof r[c] === "object" && r[c] !== null ? JSON.stringify(r[c]) : fmt(r[c]))));
        table.appendChild(tr);
      });
      box.appendChild(table);
    });
  }

  // -- wiring --------------------------------------------------------------------------
  function renderViews() {
    renderTable();
    renderDiff();
    const keys = seriesKeys();
    renderLines($("metric-charts"), keys.filter((k) => !k.startsWith("system/")));
    renderLines($("system-charts"), keys.filter((k) => k.startsWith("system/")));
    renderParallel();
    renderHistograms();
    renderCheckpoints();
  }
  const renderAll = renderViews;

  function adopt(data) {
    data.runs.forEach((r) => {
      if (!state.known.has(r.key)) { state.known.add(r.key); state.selected.add(r.key); }
    });
    state.data = data;
    const when = new Date(data.generated * 1000).toISOString().slice(0, 19).replace("T", " ");
    $("subtitle").textContent = data.store + " · " + data.runs.length + " runs · " +
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
    $("pc-metric").addEventListener("change", (e) => { state.pcMetric = e.target.value; renderParallel(); });
    $("scatter-x").addEventListener("change", (e) => { state.scatterX = e.target.value; renderParallel(); });
    $("hist-tensor").addEventListener("change", (e) => { state.histTensor = e.target.value; renderHistograms(); });
  }

  async function main() {
    bind();
    adopt(await load());
    renderViews();
    document.body.dataset.ready = "1";
    const interval = Number($("lt-data").dataset.live || 0);
    if (interval > 0) {
      setInterval(async () => {
        try { adopt(await load()); renderViews(); } catch (err) { $("subtitle").textContent = "update failed: " + err; }
      }, interval * 1000);
    }
  }
  main();
})();
