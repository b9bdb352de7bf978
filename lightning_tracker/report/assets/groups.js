// lightning-tracker report: runs in groups. The "group by" control (the runs' group by default,
// when they have one), a colour per group for the runs table, the scatter and the parallel
// coordinates, and the grouped line charts: each group's mean line over the runs selected, with
// a min–max or ± std band, and the runs behind it on hover. A group is the value of one key (a
// field or hyperparameter, as the filter box resolves it): the page's twin of `runs --group-by`.
(function (LT) {
  "use strict";
  const BANDS = { minmax: "min–max", std: "± std" };
  const MISSING = "—"; // the group of the runs without the key

  const grouping = () => Boolean(LT.state.groupBy);
  // a run's group under the current key, as text ("—" without it); null when not grouping
  const groupOf = (run) => (grouping() ? LT.fmt(LT.field(run, LT.state.groupBy)) : null);

  // groups in key order: numbers by value, text by name, the runs without the key last
  function order(names, values) {
    const numeric = [...values.entries()].every(([n, v]) => n === MISSING || typeof v === "number");
    return [...names].sort((a, b) => (a === MISSING) - (b === MISSING) ||
      (numeric ? values.get(a) - values.get(b) : a < b ? -1 : a > b ? 1 : 0));
  }
  function groupsOf(runs) {
    const members = new Map(), values = new Map();
    runs.forEach((run) => {
      const name = groupOf(run);
      if (!members.has(name)) { members.set(name, []); values.set(name, LT.field(run, LT.state.groupBy)); }
      members.get(name).push(run);
    });
    return order(members.keys(), values).map((name) => ({ name, runs: members.get(name) }));
  }

  // a group keeps its colour whatever is selected or filtered: its place among every run's groups
  let palette = { data: null, key: null, index: new Map() };
  function paletteIndex() {
    const state = LT.state;
    if (palette.data !== state.data || palette.key !== state.groupBy) {
      const names = groupsOf(state.data.runs).map((g) => g.name);
      palette = { data: state.data, key: state.groupBy, index: new Map(names.map((n, i) => [n, i])) };
    }
    return palette.index;
  }
  const groupIndex = (name) => paletteIndex().get(name) ?? 0;
  const groupColor = (run) => (grouping() ? LT.color(groupIndex(groupOf(run))) : null);

  // the parallel coordinates coloured by group: one flat colour per group index
  function groupLine(runs) {
    if (!grouping()) return null;
    const count = Math.max(1, paletteIndex().size);
    const scale = [];
    for (let i = 0; i < count; i++) scale.push([i / count, LT.color(i)], [(i + 1) / count, LT.color(i)]);
    return { color: runs.map((r) => groupIndex(groupOf(r))), colorscale: scale, cmin: -0.5, cmax: count - 0.5,
      showscale: false };
  }

  // a run's value at x, linearly between its points; null outside the steps it logged
  function valueAt(points, x) {
    if (!points.length || x < points[0][0] || x > points[points.length - 1][0]) return null;
    let lo = 0, hi = points.length - 1;
    while (lo < hi) { // the last index whose x <= x
      const mid = (lo + hi + 1) >> 1;
      if (points[mid][0] <= x) lo = mid; else hi = mid - 1;
    }
    const [x0, y0] = points[lo];
    if (x0 === x || lo === points.length - 1) return y0;
    const [x1, y1] = points[lo + 1];
    return y0 + ((y1 - y0) * (x - x0)) / (x1 - x0);
  }

  function stats(values, band) {
    const n = values.length, mean = values.reduce((a, b) => a + b, 0) / n;
    if (band === "std") {
      const sd = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
      return { mean, lo: mean - sd, hi: mean + sd };
    }
    return { mean, lo: Math.min(...values), hi: Math.max(...values) };
  }

  // the traces of one chart: per group, its band (under) and its mean line, on the x of every
  // point any of its runs logged; smoothing applies to the mean
  function groupTraces(runs, metric, scale, xOf) {
    const traces = [], band = LT.state.band;
    groupsOf(runs).forEach((group) => {
      const lines = [];
      group.runs.forEach((run) => {
        const s = (LT.state.data.series[run.key] || {})[metric];
        const x = s && xOf(run, s);
        if (!x) return;
        const points = x.map((v, i) => [v, s.y[i]]).filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b))
          .sort((p, q) => p[0] - q[0]);
        if (points.length) lines.push({ run, points });
      });
      if (!lines.length) return;
      const grid = [...new Set(lines.flatMap((l) => l.points.map((p) => p[0])))].sort((a, b) => a - b);
      const rows = grid.map((x) => stats(lines.map((l) => valueAt(l.points, x)).filter((v) => v !== null), band));
      const y = (k) => rows.map((r) => r[k] / scale);
      const color = LT.color(groupIndex(group.name));
      const key = LT.state.groupBy;
      const label = LT.plain(key === "group" ? group.name : LT.label(key) + "=" + group.name);
      const names = lines.map((l) => LT.plain(l.run.name)).join(", ");
      const meta = { group: group.name, runs: lines.map((l) => l.run.key) };
      traces.push({ x: grid.concat([...grid].reverse()), y: y("hi").concat(y("lo").reverse()), fill: "toself",
        fillcolor: color, opacity: 0.2, line: { width: 0 }, hoverinfo: "skip", showlegend: false, type: "scatter",
        mode: "lines", meta: { ...meta, kind: "group-band", band } });
      traces.push({ x: grid, y: LT.smooth(y("mean"), LT.state.smoothing), name: label + " (" + lines.length + ")",
        type: "scatter", mode: grid.length <= 60 ? "lines+markers" : "lines", line: { color, width: 2 },
        marker: { size: 5, color }, customdata: rows.map((r) => [r.lo / scale, r.hi / scale]),
        hovertemplate: "<b>" + label + "</b><br>mean %{y:.4g} (" + BANDS[band] + " %{customdata[0]:.4g} … " +
          "%{customdata[1]:.4g})<br>" + LT.plural(lines.length, "run") + ": " + names + "<extra></extra>",
        meta: { ...meta, kind: "group-mean" } });
    });
    return traces;
  }

  // the keys to group by: the runs' group, their status, and the hyperparameters that differ
  function groupOptions(runs) {
    const params = LT.varying(runs, LT.configKeys(runs), (r, k) => r.config[k]).map((k) => LT.label("config." + k));
    return ["", ...(runs.some((r) => r.group) ? ["group"] : []), "status", ...params];
  }

  function fillGroupControl() {
    const select = LT.$("group-by"), runs = LT.state.data.runs;
    const options = groupOptions(runs);
    if (LT.state.groupBy && !options.includes(LT.state.groupBy)) options.push(LT.state.groupBy);
    select.replaceChildren(...options.map((o) => LT.el("option", { value: o }, o || "none")));
    select.value = LT.state.groupBy;
    LT.$("group-band").value = LT.state.band;
    LT.$("group-band-label").hidden = !grouping();
  }

  // the default: the runs' group, when one of them has one
  const defaultGroupBy = (runs) => (runs.some((r) => r.group) ? "group" : "");

  function bindGroups(render) {
    LT.$("group-by").addEventListener("change", (e) => { LT.state.groupBy = e.target.value; render(); });
    LT.$("group-band").addEventListener("change", (e) => { LT.state.band = e.target.value; render(); });
  }

  Object.assign(LT, { groupOf, groupsOf, groupColor, groupLine, groupTraces, fillGroupControl, defaultGroupBy,
    bindGroups });
})(window.LT = window.LT || {});
