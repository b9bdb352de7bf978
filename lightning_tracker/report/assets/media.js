// lightning-tracker report: the media panel. One block per key: the selected runs side by side
// at one step (a slider over the steps the runs have), images with their captions under them,
// texts and tables as sortable tables. Stored text goes into the page as text only (textContent).
(function (LT) {
  "use strict";
  const el = (...args) => LT.el(...args);
  const live = () => Boolean(LT.$("lt-data").dataset.live);
  const blocks = new Map(); // key -> { root, slider, label, runs, columns: Map(run key -> { node, sig }) }
  const fetched = new Map(); // table URL (dashboard) -> Promise of { columns, rows, total }
  const sorts = new Map(); // key + "\n" + run key -> { col, asc }
  const BOX = 128; // previews are drawn this large (longest side), small images scaled up

  // -- where an object is: embedded (report) or served (dashboard) ---------------------------
  const objectUrl = (route, run, name) => route + encodeURIComponent(run.project) + "/" +
    encodeURIComponent(run.id) + "/" + encodeURIComponent(name);
  const preview = (run, item) => (live() ? objectUrl("media/", run, item.thumb) : LT.state.data.files[item.thumb]);
  const fullSize = (run, item) => (live() ? objectUrl("media/", run, item.object) : preview(run, item));
  function tableOf(run, item) {
    if (item.table) return Promise.resolve(item.table);
    if (!live()) return Promise.reject(new Error(item.missing || "not embedded"));
    const url = objectUrl("api/table/", run, item.object);
    if (!fetched.has(url)) {
      fetched.set(url, fetch(url).then((r) => {
        if (!r.ok) { fetched.delete(url); throw new Error("the server answered " + r.status); }
        return r.json();
      }));
    }
    return fetched.get(url);
  }

  // -- sortable tables: numbers (and numeric text) numerically, empty cells last ------------
  const number = (v) => (typeof v === "number" ? v
    : typeof v === "string" && v.trim() !== "" && isFinite(Number(v)) ? Number(v) : null);
  function compare(a, b) {
    const x = number(a), y = number(b);
    if (x !== null && y !== null) return x - y;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }
  function sortedRows(rows, sort) {
    if (!sort) return rows;
    const empty = (v) => v === null || v === undefined || v === "";
    return [...rows].sort((r, s) => {
      const a = r[sort.col], b = s[sort.col];
      if (empty(a) || empty(b)) return empty(a) - empty(b);
      return compare(a, b) * (sort.asc ? 1 : -1);
    });
  }
  function drawTable(box, table, sortKey) {
    const sort = sorts.get(sortKey);
    const node = el("table", { class: "media-table" });
    const head = node.appendChild(el("thead")).appendChild(el("tr"));
    table.columns.forEach((c, i) => {
      const th = head.appendChild(el("th", { class: "text", "data-col": String(i) }, c));
      if (sort && sort.col === i) th.classList.add(sort.asc ? "sorted-asc" : "sorted-desc");
      th.addEventListener("click", () => {
        sorts.set(sortKey, { col: i, asc: sort && sort.col === i ? !sort.asc : true });
        drawTable(box, table, sortKey);
      });
    });
    const body = node.appendChild(el("tbody"));
    sortedRows(table.rows, sort).forEach((row) => {
      const tr = body.appendChild(el("tr"));
      row.forEach((v) => {
        // a number as the rest of the page writes it (4 significant digits), the whole value on hover
        const cell = tr.appendChild(el("td", { class: typeof v === "number" ? "" : "text" },
          v === null || v === undefined ? "" : typeof v === "number" ? LT.fmt(v) : String(v)));
        if (typeof v === "number" && LT.fmt(v) !== String(v)) cell.title = String(v);
      });
    });
    box.replaceChildren(el("div", { class: "table-wrap" }));
    box.firstChild.appendChild(node);
    if (table.total > table.rows.length) {
      box.appendChild(el("p", { class: "hint media-rows" }, table.rows.length + " of " + table.total + " rows " +
        (live() ? "shown" : "embedded; lightning-tracker serve shows more")));
    }
  }

  // -- the lightbox: a preview (report) or the full-size image (dashboard) -------------------
  function lightbox() {
    let box = LT.$("lightbox");
    if (box) return box;
    box = el("div", { id: "lightbox", role: "dialog", "aria-modal": "true" });
    box.hidden = true;
    const fig = box.appendChild(el("figure"));
    fig.append(el("img", { id: "lightbox-img", alt: "" }), el("figcaption", { id: "lightbox-caption" }));
    box.appendChild(el("p", { id: "lightbox-note", class: "hint" }));
    const open = box.appendChild(el("a", { id: "lightbox-open", target: "_blank", rel: "noopener" }, "open in a new tab"));
    open.hidden = true;
    const close = () => { box.hidden = true; LT.$("lightbox-img").removeAttribute("src"); };
    box.addEventListener("click", close);
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
    document.body.appendChild(box);
    return box;
  }
  function zoom(run, item, key, step) {
    const box = lightbox();
    const img = LT.$("lightbox-img");
    img.src = fullSize(run, item);
    img.style.imageRendering = Math.max(item.width, item.height) < 256 ? "pixelated" : "auto";
    LT.$("lightbox-caption").textContent = [run.name, key, "step " + step, item.caption].filter(Boolean).join(" · ");
    LT.$("lightbox-note").textContent = live() ? item.width + " × " + item.height + " px"
      : "a preview of the " + item.width + " × " + item.height + " px image; lightning-tracker serve shows it at full size";
    const open = LT.$("lightbox-open");
    open.hidden = !live(); // a data: URI cannot be opened in a new tab
    if (live()) open.href = fullSize(run, item);
    box.hidden = false;
  }

  function figure(run, item, key, step) {
    const fig = el("figure", { class: "media-item", "data-index": String(item.index) });
    const src = preview(run, item);
    if (item.missing || !src) {
      fig.appendChild(el("div", { class: "media-missing" }, item.missing || "missing"));
    } else {
      const scale = BOX / Math.max(item.width, item.height);
      const img = fig.appendChild(el("img", { src: src, alt: item.caption || key, title: "click to enlarge" }));
      img.style.width = Math.round(item.width * scale) + "px";
      img.style.height = Math.round(item.height * scale) + "px";
      if (scale > 1) img.style.imageRendering = "pixelated"; // small images (MNIST) keep sharp pixels
      img.addEventListener("click", () => zoom(run, item, key, step));
    }
    if (item.caption) fig.appendChild(el("figcaption", {}, item.caption));
    return fig;
  }

  // an item whose object is a table: loaded (embedded or from the server), then drawn sortable
  function tableBox(body, run, item, key, step, column, sig) {
    const box = body.appendChild(el("div", { class: "media-table-box" }, "loading…"));
    if (item.caption) body.appendChild(el("p", { class: "hint" }, item.caption));
    const sortKey = key + "\n" + run.key;
    tableOf(run, item).then((t) => { if (column.sig === sig) drawTable(box, t, sortKey); },
      (err) => { box.textContent = "cannot show this table: " + err.message; });
  }

  // renderer name (an item's ``renderer``: its kind's MediaKind.renderer, keyed in RENDERERS of
  // report/media.py too) -> how it is drawn
  const RENDERERS = {
    image: (body, run, item, key, step) => body.appendChild(figure(run, item, key, step)),
    table: tableBox,
  };

  // the run's items at the last step it has at or before ``step`` (null when it has none)
  function itemsAt(panel, step) {
    let at = -1;
    panel.steps.forEach((s, i) => { if (s <= step) at = i; });
    return at < 0 ? null : { step: panel.steps[at], items: panel.items[at] };
  }

  function drawColumn(column, run, panel, key, step) {
    const found = itemsAt(panel, step);
    const sig = JSON.stringify([run.name, LT.runColor(run), found, Boolean(found) && found.step !== step]);
    if (column.sig === sig) return; // unchanged since the last refresh: no flicker, no reload
    column.sig = sig;
    const node = column.node;
    node.style.borderTopColor = LT.runColor(run);
    const head = el("div", { class: "media-run-head" });
    const swatch = head.appendChild(el("span", { class: "swatch" }));
    swatch.style.background = LT.runColor(run);
    head.appendChild(el("span", { class: "media-run-name" }, run.name));
    const body = el("div", { class: "media-items" });
    if (!found) {
      body.appendChild(el("p", { class: "empty" }, "—"));
    } else {
      if (found.step !== step) head.appendChild(el("span", { class: "media-at hint" }, " step " + found.step));
      found.items.forEach((item) => {
        // null (or a name this page lacks): a kind this version does not know, said so, never drawn as another
        const render = Object.prototype.hasOwnProperty.call(RENDERERS, item.renderer) ? RENDERERS[item.renderer] : null;
        if (render) { render(body, run, item, key, found.step, column, sig); return; }
        body.appendChild(el("div", { class: "media-missing" },
          "a " + item.kind + " cannot be shown by this version of lightning-tracker"));
      });
    }
    const left = [];
    if (panel.steps.length < panel.total_steps) left.push(panel.steps.length + " of " + panel.total_steps + " steps embedded");
    const items = panel.items.reduce((n, step) => n + step.length, 0);
    const what = panel.items.flat().every((item) => item.renderer === "image") ? " images" : " items";
    if (items < panel.total_items) left.push((panel.total_items - items) + " of " + panel.total_items + what + " left out");
    node.replaceChildren(head, body);
    if (left.length) node.appendChild(el("p", { class: "hint media-left" }, left.join("; ")));
  }

  function block(container, key) {
    let b = blocks.get(key);
    if (b) return b;
    const root = el("div", { class: "media-key", "data-key": key });
    root.appendChild(el("h3", {}, key));
    const controls = root.appendChild(el("div", { class: "controls" }));
    const label = el("label", {}, "step ");
    const slider = label.appendChild(el("input", { type: "range", class: "media-slider", min: "0", step: "1",
      "aria-label": "step of " + key }));
    controls.append(label, el("span", { class: "media-step" }));
    b = { root: root, slider: slider, runs: root.appendChild(el("div", { class: "media-runs" })), columns: new Map() };
    slider.addEventListener("input", () => {
      const steps = b.steps, i = Number(slider.value);
      // at the last step the slider follows new steps as they arrive (dashboard)
      LT.state.mediaStep.set(key, i >= steps.length - 1 ? null : steps[i]);
      draw(b, key);
    });
    blocks.set(key, b);
    return b;
  }

  function draw(b, key) {
    const all = LT.state.data.media;
    const runs = LT.plottedRuns().filter((r) => all[r.key] && all[r.key][key]);
    const steps = [...new Set(runs.flatMap((r) => all[r.key][key].steps))].sort((x, y) => x - y);
    b.steps = steps;
    const chosen = LT.state.mediaStep.get(key);
    let i = steps.length - 1;
    if (chosen !== null && chosen !== undefined) while (i > 0 && steps[i] > chosen) i--;
    b.slider.max = String(Math.max(0, steps.length - 1));
    b.slider.value = String(i);
    b.slider.disabled = steps.length < 2;
    b.root.querySelector(".media-step").textContent = "step " + steps[i] + " (" + (i + 1) + " of " + steps.length + ")";
    const wanted = new Set(runs.map((r) => r.key));
    b.columns.forEach((c, runKey) => { if (!wanted.has(runKey)) { c.node.remove(); b.columns.delete(runKey); } });
    runs.forEach((run) => {
      let c = b.columns.get(run.key);
      if (!c) {
        c = { node: el("div", { class: "media-run", "data-run": run.key }), sig: null };
        b.columns.set(run.key, c);
      }
      b.runs.appendChild(c.node); // appending again keeps the runs' order
      drawColumn(c, run, all[run.key][key], key, steps[i]);
    });
  }

  function renderMedia() {
    const all = LT.state.data.media || {};
    const runs = LT.plottedRuns().filter((r) => all[r.key]);
    const keys = [...new Set(runs.flatMap((r) => Object.keys(all[r.key])))].sort();
    LT.$("media-section").hidden = !keys.length;
    const container = LT.$("media-panels");
    blocks.forEach((b, key) => { if (!keys.includes(key)) { b.root.remove(); blocks.delete(key); } });
    const limits = LT.state.data.media_limits || {};
    LT.$("media-note").textContent = live()
      ? "Every step and every image: click one to open it at full size. Texts and tables show their first " +
        limits.rows + " rows; click a column to sort."
      : "This report embeds previews (at most 128 px) of at most " + limits.steps + " steps (evenly spread, " +
        "the first and last among them) × " + limits.images + " images per key and run, and the first " +
        limits.rows + " rows of each text or table, and at most " + Math.round(limits.bytes / 1e6) +
        " MB of previews in all (past that, every key keeps fewer steps, evenly); lightning-tracker serve shows " +
        "all at full size. " +
        "Click an image to enlarge it, a column to sort.";
    keys.forEach((key) => {
      const b = block(container, key);
      container.appendChild(b.root);
      draw(b, key);
    });
  }

  Object.assign(LT, { renderMedia });
})(window.LT = window.LT || {});
