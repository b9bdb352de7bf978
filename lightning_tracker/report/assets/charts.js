// lightning-tracker report: the line charts, in one collapsible section per metric prefix.
// A section is drawn only while it is open (gradients/, parameters/ and system/ start closed),
// and the chart search hides what does not match without drawing it.
(function (LT) {
  "use strict";
  const el = (...args) => LT.el(...args);

  // TensorBoard's smoothing: an exponential moving average, debiased so it starts at the data
  function smooth(values, weight) {
    if (!weight) return values;
    let last = 0, debias = 0;
    return values.map((v) => {
      if (v === null) return null;
      last = last * weight + (1 - weight) * v;
      debias = debias * weight + (1 - weight);
      return Number((last / debias).toPrecision(12)); // a constant stays constant, not 50 ± 1e-14
    });
  }

  // x of each point: the step, seconds since the run started, or the run's logged epoch at that
  // step (the last epoch value logged at or before it); null when the run logged no epoch
  function xValues(run, s) {
    if (LT.state.xaxis === "t") return s.t;
    if (LT.state.xaxis !== "epoch") return s.step;
    const e = (LT.state.data.series[run.key] || {}).epoch;
    if (!e || !e.step.length) return null;
    return s.step.map((step) => {
      let lo = 0, hi = e.step.length - 1;
      if (step < e.step[0]) return e.y[0];
      while (lo < hi) { // the last index whose step <= step
        const mid = (lo + hi + 1) >> 1;
        if (e.step[mid] <= step) lo = mid; else hi = mid - 1;
      }
      return e.y[lo];
    });
  }

  const scaled = (values, scale) => (scale === 1 ? values : values.map((v) => (v === null ? null : v / scale)));

  function lineTraces(runs, metric, scale) {
    if (LT.state.groupBy) return LT.groupTraces(runs, metric, scale, xValues); // groups.js: mean and band
    const traces = [];
    runs.forEach((run) => {
      const s = (LT.state.data.series[run.key] || {})[metric];
      if (!s) return;
      const x = xValues(run, s);
      if (!x) return;
      const color = LT.runColor(run), y = scaled(s.y, scale), name = LT.plain(run.name);
      if (s.lo) {
        traces.push({ x: x.concat([...x].reverse()), y: scaled(s.hi, scale).concat([...scaled(s.lo, scale)].reverse()),
          fill: "toself", fillcolor: color, opacity: 0.2, line: { width: 0 }, hoverinfo: "skip", showlegend: false,
          type: "scatter", mode: "lines", meta: { run: run.key, kind: "envelope" } });
      }
      if (LT.state.smoothing) { // the raw line stays, faint, under the smoothed one (as in TensorBoard)
        traces.push({ x: x, y: y, name: name, type: "scatter", mode: "lines", opacity: 0.25, showlegend: false,
          hoverinfo: "skip", line: { color: color, width: 1 }, meta: { run: run.key, kind: "raw" } });
      }
      traces.push({ x: x, y: smooth(y, LT.state.smoothing), name: name, type: "scatter",
        mode: s.y.length <= 60 ? "lines+markers" : "lines", marker: { size: 5, color: color },
        line: { color: color, width: 1.5 }, meta: { run: run.key, kind: "line", points: s.n } });
    });
    return traces;
  }

  // bytes are drawn in one unit per chart (KB, MB, GB), chosen from the largest value shown
  function unitOf(runs, metric) {
    let unit = null, largest = 0;
    runs.forEach((run) => {
      const s = (LT.state.data.series[run.key] || {})[metric];
      if (!s || !s.unit) return;
      unit = s.unit;
      (s.hi || s.y).forEach((v) => { if (v !== null && Math.abs(v) > largest) largest = Math.abs(v); });
    });
    if (!unit) return { scale: 1, suffix: "", title: "" };
    const u = LT.byteUnit(largest);
    const perSecond = unit === "B/s" ? "/s" : "";
    return { scale: u.scale, suffix: " " + u.name + perSecond, title: perSecond ? " (per second)" : "" };
  }

  const X_TITLES = { step: "step", t: "time (s)", epoch: "epoch" };
  function drawChart(div, metric, runs) {
    const unit = unitOf(runs, metric);
    const layout = { title: { text: LT.plain(metric) + unit.title, font: { size: 14 } },
      margin: { t: 36, r: 12, b: 40, l: 64 }, xaxis: { title: { text: X_TITLES[LT.state.xaxis] } },
      yaxis: { type: LT.state.log ? "log" : "linear", ticksuffix: unit.suffix, hoverformat: unit.scale === 1 ? "" : ".3~f" },
      showlegend: runs.length <= 12, legend: { font: { size: 10 } } };
    Plotly.react(div, lineTraces(runs, metric, unit.scale), layout, { displaylogo: false, responsive: true });
    div.dataset.drawn = "1";
  }

  // containers keep their sections and charts by name: no element id is derived from a name, so
  // no two names share a chart ("a/b" and "a_b", "损失" and "精度") and none reaches another element
  const sections = new Map(); // section name -> { details, grid, charts: Map(metric -> div) }

  function section(container, name, collapsed) {
    let s = sections.get(name);
    if (s) return s;
    const details = el("details", { class: "section", "data-section": name });
    const open = !collapsed;
    LT.state.open.set(name, LT.state.open.has(name) ? LT.state.open.get(name) : open);
    details.open = LT.state.open.get(name);
    const summary = details.appendChild(el("summary"));
    summary.append(el("span", { class: "section-name" }, name || "other"), el("span", { class: "section-count" }));
    const grid = details.appendChild(el("div", { class: "charts" }));
    s = { details: details, grid: grid, charts: new Map() };
    sections.set(name, s);
    details.addEventListener("toggle", () => {
      if (LT.state.open.get(name) === details.open) return; // set by us, not by the reader
      LT.state.open.set(name, details.open);
      if (details.open) drawSection(s);
    });
    container.appendChild(details);
    return s;
  }

  function drawSection(s) {
    if (!s.details.open || s.details.hidden) return;
    const runs = LT.plottedRuns();
    s.charts.forEach((div, metric) => { if (!div.hidden) drawChart(div, metric, runs); });
  }

  const matches = (metric) => metric.toLowerCase().includes(LT.state.search.toLowerCase());

  function renderLines(container) {
    const keys = [...new Set(Object.values(LT.state.data.series).flatMap((s) => Object.keys(s)))].filter(LT.isChart);
    const bySection = new Map();
    keys.forEach((k) => {
      const name = LT.sectionOf(k);
      if (!bySection.has(name)) bySection.set(name, []);
      bySection.get(name).push(k);
    });
    sections.forEach((s, name) => { // sections and charts whose metrics are gone
      const wanted = new Set(bySection.get(name) || []);
      s.charts.forEach((div, metric) => {
        if (!wanted.has(metric)) { Plotly.purge(div); div.remove(); s.charts.delete(metric); }
      });
      if (!wanted.size) { s.details.remove(); sections.delete(name); }
    });
    container.querySelectorAll(":scope > p.empty").forEach((p) => p.remove());
    if (!keys.length) container.appendChild(el("p", { class: "empty" }, "No metrics recorded."));
    LT.sectionOrder(bySection).forEach((name) => {
      const s = section(container, name, LT.isCollapsed(bySection.get(name)));
      container.appendChild(s.details); // appending again moves it into its place
      const shown = LT.chartOrder(bySection.get(name)).filter((metric) => {
        let div = s.charts.get(metric);
        if (!div) {
          div = el("div", { class: "chart", "data-metric": metric });
          s.charts.set(metric, div);
        }
        s.grid.appendChild(div);
        div.hidden = !matches(metric);
        return !div.hidden;
      });
      s.details.hidden = !shown.length;
      s.details.querySelector(".section-count").textContent = " (" + shown.length + ")";
      drawSection(s);
    });
    const none = LT.state.search && keys.length && !keys.some(matches);
    LT.$("chart-search-count").textContent = none ? "no chart matches" : "";
  }

  Object.assign(LT, { renderLines, smooth });
})(window.LT = window.LT || {});
