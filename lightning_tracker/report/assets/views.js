// lightning-tracker report: hyperparameters vs a metric (parallel coordinates and a scatter),
// gradient histograms and checkpoints. Each view draws the runs LT.plottedRuns() gives.
(function (LT) {
  "use strict";
  const el = (...args) => LT.el(...args);
  const plain = (v) => LT.plain(v);
  const CONFIG = { displaylogo: false, responsive: true };

  // -- parallel coordinates and scatter -------------------------------------------------
  function dimension(runs, label, get) {
    const values = runs.map(get);
    if (values.every((v) => typeof v === "number" || v === null || v === undefined)) {
      const nums = values.map((v) => (v === null || v === undefined ? NaN : v));
      if (!LT.isLogScale(values)) return { label: plain(label), values: nums };
      // parcoords has no log axis: the dimension holds log10 of the values, its ticks the values
      const finite = nums.filter(isFinite);
      return { label: plain(label) + " (log)", values: nums.map(Math.log10),
        ...LT.logTicks(Math.min(...finite), Math.max(...finite)) };
    }
    const cats = [...new Set(values.map((v) => LT.fmt(v)))].sort();
    return { label: plain(label), values: values.map((v) => cats.indexOf(LT.fmt(v))), tickvals: cats.map((_, i) => i),
      ticktext: cats.map(plain) };
  }

  // options in the select; the value kept is the reader's earlier choice when it still exists
  function fillSelect(select, options, chosen, fallback) {
    const value = options.includes(chosen) ? chosen : fallback !== undefined ? fallback : options[0];
    select.replaceChildren(...options.map((o) => el("option", { value: o }, o)));
    if (value !== undefined) select.value = value;
    return value;
  }

  // the scatter's x: a hyperparameter with two values or more among the runs drawn (one that a
  // single run has, or that every run shares, is no axis); it opens on the one with the most
  // distinct values, numbers before text, then by name
  function scatterAxes(runs) {
    const present = (k) => runs.map((r) => r.config[k]).filter((v) => v !== undefined && v !== null);
    const distinct = (k) => new Set(present(k).map((v) => JSON.stringify(v))).size;
    const numeric = (k) => present(k).every((v) => typeof v === "number");
    const all = LT.configKeys(runs);
    const options = all.filter((k) => distinct(k) > 1);
    if (!options.length) return { options: all, best: all[0] };
    const best = [...options].sort((a, b) => numeric(b) - numeric(a) || distinct(b) - distinct(a) ||
      (a < b ? -1 : a > b ? 1 : 0))[0];
    return { options, best };
  }

  function renderParallel() {
    const state = LT.state, runs = LT.plottedRuns();
    const metrics = LT.metricKeys(runs).filter(LT.isScore);
    const metric = fillSelect(LT.$("pc-metric"), metrics, state.pcMetric, LT.mainMetric(metrics));
    const keys = LT.varying(runs, LT.configKeys(runs), (r, k) => r.config[k]);
    const axes = scatterAxes(runs);
    const x = fillSelect(LT.$("scatter-x"), axes.options, state.scatterX, axes.best);
    const layout = { margin: { t: 80, r: 40, b: 50, l: 60 } };
    if (!runs.length || !metric) {
      Plotly.react(LT.$("parallel-chart"), [], { ...layout, title: { text: "no runs selected" } });
      Plotly.react(LT.$("scatter-chart"), [], { ...layout, title: { text: "no runs selected" } });
      return;
    }
    const dims = keys.map((k) => dimension(runs, k, (r) => r.config[k]));
    const metricDim = dimension(runs, metric, (r) => r.summary[metric]);
    Plotly.react(LT.$("parallel-chart"), [{ type: "parcoords", dimensions: [...dims, metricDim],
      line: LT.groupLine(runs) || { color: runs.map((r) => r.summary[metric] ?? NaN), colorscale: "Viridis", showscale: true },
      meta: { kind: "parcoords" } }],
    { ...layout, title: { text: "hyperparameters vs " + plain(metric), font: { size: 14 } } }, CONFIG);
    const xs = runs.map((r) => r.config[x]);
    // names show on hover only: as labels beside the points they overlap as soon as runs cluster
    Plotly.react(LT.$("scatter-chart"), [{ type: "scatter", mode: "markers",
      x: xs.map((v) => (typeof v === "string" ? plain(v) : v ?? null)), y: runs.map((r) => r.summary[metric] ?? null),
      text: runs.map((r) => plain(r.name)), hovertemplate: "%{text}<br>" + plain(x) + "=%{x}<br>" + plain(metric) +
        "=%{y}<extra></extra>", marker: { size: 10, color: runs.map(LT.runColor) }, meta: { kind: "scatter" } }],
    { ...layout, title: { text: plain(metric) + " vs " + plain(x || "—"), font: { size: 14 } }, hovermode: "closest",
      xaxis: { title: { text: plain(x) }, ...(LT.isLogScale(xs) ? { type: "log", dtick: 1, tickformat: "~g" } : {}) }, yaxis: { title: { text: plain(metric) } } },
    CONFIG);
  }

  // -- histograms and checkpoints (drawn only when the payload has them) -----------------
  // steps have their own ranges: every step is re-binned onto one grid for the heatmap
  function heatmap(h) {
    const lo = Math.min(...h.edges.map((e) => e[0])), hi = Math.max(...h.edges.map((e) => e[e.length - 1]));
    const bins = 48, width = (hi - lo) / bins || 1;
    const counts = Array.from({ length: bins }, () => new Array(h.step.length).fill(0));
    // a recorded bin's count is shared among the grid bins it overlaps, in proportion: put
    // whole into the grid bin of its centre, coarse recorded bins would leave empty stripes
    const cell = (v) => Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)));
    h.counts.forEach((row, j) => row.forEach((c, i) => {
      const a = h.edges[j][i], b = h.edges[j][i + 1];
      if (!c) return;
      if (!(b > a)) { counts[cell(a)][j] += c; return; }
      for (let k = cell(a); k <= cell(b); k++) {
        const overlap = Math.min(b, lo + (k + 1) * width) - Math.max(a, lo + k * width);
        if (overlap > 0) counts[k][j] += (c * overlap) / (b - a);
      }
    }));
    counts.forEach((row) => row.forEach((c, j) => { row[j] = Math.round(c * 10) / 10; }));
    // log colours, so a few outliers do not paint everything else the lowest colour; empty bins blank
    const z = counts.map((row) => row.map((c) => (c > 0 ? Math.log1p(c) : null)));
    const top = Math.max(1, ...counts.flat());
    const ticks = [];
    for (let c = 1; c <= top; c *= 10) [1, 2, 5].forEach((m) => { if (c * m <= top) ticks.push(c * m); });
    return { y: counts.map((_, i) => lo + (i + 0.5) * width), z: z, counts: counts,
      colorbar: { title: { text: "count" }, tickvals: ticks.map(Math.log1p), ticktext: ticks.map(String) } };
  }

  function renderHistograms() {
    const all = LT.state.data.histograms || {};
    const runs = LT.plottedRuns().filter((r) => all[r.key]);
    LT.$("histograms-section").hidden = !Object.keys(all).length;
    const names = [...new Set(runs.flatMap((r) => Object.keys(all[r.key])))].sort();
    LT.state.histTensor = fillSelect(LT.$("hist-tensor"), names, LT.state.histTensor);
    const container = LT.$("histogram-charts");
    [...container.children].forEach((c) => { Plotly.purge(c); c.remove(); });
    runs.slice(0, 12).forEach((run) => {
      const h = all[run.key][LT.state.histTensor];
      if (!h) return;
      const m = heatmap(h);
      const div = el("div", { class: "chart", "data-run": run.key });
      container.appendChild(div);
      Plotly.newPlot(div, [{ type: "heatmap", x: h.step, y: m.y, z: m.z, customdata: m.counts, colorscale: "Viridis",
        zmin: 0, colorbar: m.colorbar, hoverongaps: false, meta: { run: run.key, kind: "histogram" },
        hovertemplate: "step %{x}<br>value %{y:.3g}<br>count %{customdata}<extra></extra>" }],
      { title: { text: plain(run.name + " · " + LT.state.histTensor), font: { size: 13 } }, margin: { t: 36, r: 12, b: 40, l: 56 },
        xaxis: { title: { text: "step" } }, yaxis: { title: { text: "value" } }, plot_bgcolor: "rgba(0,0,0,0)" }, CONFIG);
    });
  }

  function checkpointCell(column, value) {
    const td = el("td", { class: column === "size" ? "" : "text" });
    if (column === "size") {
      td.textContent = LT.bytes(value);
      if (typeof value === "number") td.title = value + " bytes";
    } else if (column === "aliases" && Array.isArray(value)) {
      value.forEach((alias) => td.appendChild(el("span", { class: "chip" }, String(alias))));
    } else {
      td.textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : LT.fmt(value);
    }
    return td;
  }

  function renderCheckpoints() {
    const all = LT.state.data.checkpoints || {};
    LT.$("checkpoints-section").hidden = !Object.keys(all).length;
    const box = LT.$("checkpoints");
    box.replaceChildren();
    LT.plottedRuns().forEach((run) => {
      const rows = all[run.key];
      if (!rows || !rows.length) return;
      box.appendChild(el("h3", {}, run.name));
      const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
      const table = el("table", { class: "checkpoints" });
      const head = el("tr");
      cols.forEach((c) => head.appendChild(el("th", { class: c === "size" ? "" : "text" }, c)));
      table.appendChild(head);
      rows.forEach((r) => {
        const tr = el("tr");
        cols.forEach((c) => tr.appendChild(checkpointCell(c, r[c])));
        table.appendChild(tr);
      });
      // a wide table scrolls in its own box, never the page (a phone is 390 px wide)
      box.appendChild(el("div", { class: "table-wrap" })).appendChild(table);
    });
  }

  Object.assign(LT, { renderParallel, renderHistograms, renderCheckpoints });
})(window.LT = window.LT || {});
