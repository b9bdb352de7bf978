// lightning-tracker report: the line charts, in one collapsible section per metric prefix.
// A section is drawn only while it is open (gradients/, parameters/ and system/ start closed),
// and the chart search hides what does not match without drawing it.
// Each run's line comes from its rollup (report/data.py): a bucket's mean, with its min-max
// envelope, so a spike in one step shows over any number of steps. A chart zoomed in on a
// range of steps shows the points themselves of the few runs drawn (at most ZOOM_RUNS):
// fetched from the dashboard (api/points) or cut from the report's own "points" (only a
// small report holds them; payload "zoom" says where they are).
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

  // -- zoom: per chart, the step range shown, and the points of the runs drawn in it -------
  const ZOOM_RUNS = 10;
  const zooms = new Map(); // metric -> { x: [lo, hi], y: [lo, hi] | null }
  const fetched = new Map(); // run, metric, range and payload time -> series, or "loading"

  // the series to draw of a run zoomed in on range x; null: its rollup (no points to show)
  function zoomSeries(run, metric, x, redraw) {
    const data = LT.state.data;
    if (data.zoom === "points") {
      const s = ((data.points || {})[run.key] || {})[metric];
      if (!s) return null;
      const at = s.step.map((step, i) => (step >= x[0] && step <= x[1] ? i : -1)).filter((i) => i >= 0);
      return { n: at.length, step: at.map((i) => s.step[i]), t: at.map((i) => s.t[i]), y: at.map((i) => s.y[i]) };
    }
    if (data.zoom !== "server") return null;
    const id = [run.key, metric, x[0], x[1], data.generated].join("\u0000");
    const held = fetched.get(id);
    if (held === "loading") return null;
    if (held) return held;
    fetched.set(id, "loading");
    const query = new URLSearchParams({ run: run.key, key: metric, from: Math.floor(x[0]), to: Math.ceil(x[1]) });
    fetch("api/points?" + query, { cache: "no-store" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("api/points answered " + r.status))))
      .then((s) => { // an older range or refresh of this run and chart is not needed again
        fetched.forEach((_, old) => { if (old.startsWith(run.key + "\u0000" + metric + "\u0000")) fetched.delete(old); });
        fetched.set(id, s);
        redraw();
      })
      .catch(() => fetched.delete(id)); // the rollup stays drawn; the next redraw asks again
    return null;
  }

  function lineTraces(runs, metric, scale, redraw) {
    if (LT.state.groupBy) return LT.groupTraces(runs, metric, scale, xValues); // groups.js: mean and band
    const traces = [];
    const zoom = LT.state.xaxis === "step" && runs.length <= ZOOM_RUNS ? zooms.get(metric) : null;
    if (!zoom) fetched.forEach((_, id) => { if (id.split("\u0000")[1] === metric) fetched.delete(id); });
    runs.forEach((run) => {
      const rollup = (LT.state.data.series[run.key] || {})[metric];
      if (!rollup) return;
      const points = zoom && rollup.lo ? zoomSeries(run, metric, zoom.x, redraw) : null;
      const s = points || rollup;
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
        line: { color: color, width: 1.5 }, meta: { run: run.key, kind: "line", points: s.n, zoomed: !!points } });
    });
    return traces;
  }

  // a reader's zoom (or its reset) on a chart: remembered per metric, and the chart drawn again
  function onRelayout(div, event) {
    const metric = div.dataset.metric;
    const x0 = event["xaxis.range[0]"], x1 = event["xaxis.range[1]"];
    const x = x0 !== undefined ? [x0, x1] : event["xaxis.range"];
    if (event["xaxis.autorange"]) zooms.delete(metric);
    else if (x) {
      const y0 = event["yaxis.range[0]"];
      const y = y0 !== undefined ? [y0, event["yaxis.range[1]"]] : event["yaxis.range"] || null;
      const held = zooms.get(metric);
      if (held && held.x[0] === x[0] && held.x[1] === x[1]) return;
      zooms.set(metric, { x: [Number(x[0]), Number(x[1])], y: y });
    } else return;
    drawChart(div, metric, LT.plottedRuns());
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
    const zoom = LT.state.xaxis === "step" ? zooms.get(metric) : null;
    const layout = { title: { text: LT.plain(metric) + unit.title, font: { size: 14 } },
      margin: { t: 36, r: 12, b: 40, l: 64 }, xaxis: { title: { text: X_TITLES[LT.state.xaxis] } },
      yaxis: { type: LT.state.log ? "log" : "linear", ticksuffix: unit.suffix, hoverformat: unit.scale === 1 ? "" : ".3~f" },
      showlegend: runs.length <= 12, legend: { font: { size: 10 } } };
    if (zoom) {
      layout.xaxis.range = zoom.x;
      if (zoom.y) layout.yaxis.range = zoom.y;
      const why = runs.length > ZOOM_RUNS ? "select at most " + ZOOM_RUNS + " runs to see their points"
        : LT.state.data.zoom === "rollups" ? "this report holds rollups only (too many points to embed)" : "";
      if (why) layout.annotations = [{ text: why, xref: "paper", yref: "paper", x: 1, y: 1, showarrow: false,
        xanchor: "right", yanchor: "bottom", font: { size: 10, color: "#777" } }];
    }
    const redraw = () => { if (div.isConnected) drawChart(div, metric, LT.plottedRuns()); };
    Plotly.react(div, lineTraces(runs, metric, unit.scale, redraw), layout, { displaylogo: false, responsive: true });
    if (!div.dataset.zoomable) { // Plotly adds .on to a div it has drawn
      div.on("plotly_relayout", (event) => onRelayout(div, event));
      div.dataset.zoomable = "1";
    }
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
