// lightning-tracker report: pure helpers (colours, numbers, bytes, axes, which metric is which).
// Nothing here touches the page; charts.js, views.js and app.js build on it through window.LT.
(function (LT) {
  "use strict";
  // 24 colours, each at least ΔE 27 (CIE76) from every other: tab10 first, then the colours of
  // Kelly's and Plotly's Dark24 lists farthest from those already taken (and readable on white)
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#511cfb", "#fb00d1", "#fc0080", "#6c7c32", "#ff9896", "#b68100", "#008856",
    "#750d86", "#c5b0d5", "#da16ff", "#c2b280", "#b3446c", "#66cdaa", "#00bfff"];

  // a run keeps its colour across reloads and while runs are added: it follows the run's place
  // among all runs ordered by start time, then key (a new run starts last, so takes a new colour)
  function colorIndex(runs) {
    const order = [...runs].sort((a, b) => (a.start ?? Infinity) - (b.start ?? Infinity) ||
      (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return new Map(order.map((r, i) => [r.key, i]));
  }
  function color(i) {
    if (i < PALETTE.length) return PALETTE[i];
    const hue = Math.round((i * 137.508) % 360); // golden angle: far from the hues just before
    return "hsl(" + hue + ", 70%, " + (i % 2 ? 38 : 52) + "%)";
  }

  const fmt = (v) => {
    if (v === null || v === undefined) return "—";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      const s = v.toPrecision(4); // "1200", "0.5000", "1.235e+5": only a decimal fraction loses its trailing zeros
      return s.includes(".") && !s.includes("e") ? s.replace(/\.?0+$/, "") : s;
    }
    return String(v);
  };
  const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s"); // "1 run", "2 runs"
  const duration = (s) => {
    if (s === null || s === undefined) return "—";
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
  };
  // stored text goes into Plotly (titles, legends, hover, ticks) as text: Plotly reads a
  // subset of HTML there, so "<a href=...>" in a run or metric name would become a link
  const plain = (v) => String(v ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

  // bytes in decimal units (1 KB = 1000 B): one unit per chart, chosen from its largest value
  const BYTE_UNITS = [["B", 1], ["KB", 1e3], ["MB", 1e6], ["GB", 1e9], ["TB", 1e12]];
  function byteUnit(largest) {
    let unit = BYTE_UNITS[0];
    for (const u of BYTE_UNITS) if (Math.abs(largest) >= u[1]) unit = u;
    return { name: unit[0], scale: unit[1] };
  }
  function bytes(n) {
    if (typeof n !== "number" || !isFinite(n)) return fmt(n);
    const u = byteUnit(n);
    return (n / u.scale).toFixed(u.scale === 1 ? 0 : 1) + " " + u.name;
  }

  // a numeric hyperparameter spanning more than a decade (lr 1e-4 .. 1e-1) is drawn on a log axis
  function isLogScale(values) {
    const nums = values.filter((v) => typeof v === "number" && isFinite(v));
    if (nums.length < 2 || nums.length !== values.filter((v) => v !== null && v !== undefined).length) return false;
    const lo = Math.min(...nums), hi = Math.max(...nums);
    return lo > 0 && hi / lo > 10;
  }
  const tickText = (v) => (v >= 1e-4 && v < 1e5 ? String(Number(v.toPrecision(3))) : v.toExponential(0).replace("e+", "e"));
  // ticks for a log10-transformed axis: the powers of ten in range (and 2x, 5x when few)
  function logTicks(lo, hi) {
    const vals = [];
    const few = Math.log10(hi / lo) <= 2;
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      (few ? [1, 2, 5] : [1]).forEach((m) => {
        const v = m * Math.pow(10, e);
        if (v >= lo * 0.999 && v <= hi * 1.001) vals.push(v);
      });
    }
    return { tickvals: vals.map(Math.log10), ticktext: vals.map(tickText) };
  }

  // -- which metric is which ----------------------------------------------------------------
  // lightning_tracker/format/keys.py decides, and the payload's ``keys`` carry it (see
  // report/data.py): ``order`` (every metric in the order it matters: monitored, val, train,
  // test, others, epoch, the families), ``families`` ({metric: family}: gradients, parameters,
  // system, also under a logger prefix), ``scores`` (the metrics runs may be judged by) and
  // ``labels`` (a column's header). Nothing here
  // decides those again; a metric the payload does not name yet sorts last, by name.
  let keyRules = { order: [], families: {}, scores: [], labels: {} };
  let rankOf = new Map();
  let scoreSet = new Set();
  function setKeys(rules) {
    keyRules = { order: [], families: {}, scores: [], labels: {}, ...(rules || {}) };
    rankOf = new Map(keyRules.order.map((k, i) => [k, i]));
    scoreSet = new Set(keyRules.scores);
  }
  const rank = (key) => (rankOf.has(key) ? rankOf.get(key) : Infinity);
  const byRank = (a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
  const familyOf = (key) => keyRules.families[key];
  // a column's header ("config.lr" is "lr"; the metric "lr" beside it is "summary.lr")
  const label = (column) => keyRules.labels[column] ?? column.replace(/^(config|summary)\./, "");

  // charts are grouped in sections by the part before the first "/"; "train_loss" is in
  // section train too (Lightning's other habit); this grouping is the page's own
  const SPLITS = ["train", "val", "test"];
  function sectionOf(key) {
    const slash = key.indexOf("/");
    if (slash > 0) return key.slice(0, slash);
    const split = SPLITS.find((s) => key.startsWith(s + "_") || key.startsWith(s + "-"));
    return split || "";
  }
  const isChart = (key) => key !== "epoch"; // epoch is an x-axis, not a metric to look at
  // what the parallel coordinates and the scatter may compare runs by: the owner's list
  const isScore = (key) => scoreSet.has(key);
  // a section of family metrics (many charts, rarely looked at) starts closed: drawn when opened
  const isCollapsed = (keys) => keys.length > 0 && keys.every(familyOf);

  // the metric runs are judged by: the first score in the owner's order
  const mainMetric = (keys) => [...keys].filter(isScore).sort(byRank)[0];
  // sections in the order of their first metric; charts in a section in the owner's order
  function sectionOrder(bySection) {
    const first = (name) => [...bySection.get(name)].sort(byRank)[0];
    return [...bySection.keys()].sort((a, b) => byRank(first(a), first(b)) || (a < b ? -1 : a > b ? 1 : 0));
  }
  const chartOrder = (keys) => [...keys].sort(byRank);
  const metricOrder = chartOrder;

  Object.assign(LT, { PALETTE, colorIndex, color, fmt, plural, duration, plain, byteUnit, bytes, isLogScale, logTicks,
    setKeys, familyOf, label, sectionOf, isChart, isScore, isCollapsed, mainMetric, sectionOrder, chartOrder,
    metricOrder });
})(window.LT = window.LT || {});
