/* pyrochar drawing pad: draw a character, watch the model read, score and finish it.
 *
 * Vanilla JS, no external resources. Talks to the JSON API of `pyrochar serve`
 * (api/models, api/read, api/complete, api/sample, api/prompts, api/collect).
 *
 * Coordinates: strokes are kept and sent in Omniglot motor units, x in [0, 105] to the
 * right, y in [-105, 0] (y = -row), t in ms since the drawing's first point.
 *
 * Stable element ids (the browser test relies on them):
 *   #pad              the drawing canvas (pointer events: mouse, pen, touch)
 *   #undo #clear      remove the last stroke / every stroke
 *   #show-heat        checkbox: the next-stroke start density as a heat map
 *   #show-splines     checkbox: the fitted splines over the strokes
 *   #model            select: the model reading the drawing
 *   #compare          toggle button; #compare-panel / #compare-table: every model's NLL
 *                     (rows tr[data-model=NAME], td.nll with data-nll)
 *   #nll              total NLL; data-nll (full precision, absent when there is none) and
 *                     data-strokes (the number of strokes that NLL is for)
 *   #p-end            the probability that the character is finished (data-p-end)
 *   #breakdown        table: NLL per site type;  #per-stroke  table: NLL per stroke
 *   #dropped          which strokes were too short (< 20 px) to be scored
 *   #temperature #temperature-value   temperature slider and its shown value
 *   #n-complete #complete #completions  "finish it": count, button, results
 *   #n-sample #sample #samples          samples: count, button, results
 *       results are figure.completion / figure.sample with data-nll, and data-drawn="true"
 *       once drawn; clicking one loads it onto the pad
 *   #save-json #save-txt   download the drawing (pyrochar JSON / Omniglot .txt)
 *   #collect          collect-mode panel: #prompt-progress #prompt-text #prompt-image
 *                     #participant #submit #next #thanks
 *   #status           what the page waits for;  #error  the last error, one line
 * window.pyrocharPad.strokes() returns a copy of the strokes as sent to the API.
 */
"use strict";

(() => {
  const FRAME = 105; // the Omniglot canvas, motor units
  // The project's input limits (pyrochar/data/drawing.py).
  const MAX_STROKES = 100;
  const MAX_POINTS_PER_STROKE = 10000;
  const MAX_POINTS = 20000;
  const COORD_LIMIT = 1000;
  const MIN_STEP = 0.25; // motor units: closer points add nothing but size
  const STROKE_MS = 350; // animation time of one completed stroke
  const PALETTE = ["#1f5fbf", "#d1495b", "#2a9d3f", "#8e44ad", "#e07b00", "#00838f",
                   "#6d4c41", "#c2185b", "#455a64", "#7cb342"];
  const SITE_LABELS = {
    loc: "start locations",
    offset: "stroke shapes",
    stroke_end: "stroke ends",
    char_end: "character end",
  };

  const $ = (id) => document.getElementById(id);
  const pad = $("pad");
  const padCtx = pad.getContext("2d");

  const state = {
    strokes: [], // [[[x, y, t], ...], ...]
    current: null, // the stroke being drawn, or null
    pointerId: null,
    t0: null, // event time (ms) of the drawing's first point
    reading: null, // the last /api/read answer shown
    heat: null, // an offscreen canvas of the reading's next-start density
    readSeq: 0,
    compareSeq: 0,
    completeSeq: 0,
    sampleSeq: 0,
    compareRows: null,
    animation: 0, // generation of the completion animation
    renderQueued: false,
    models: [],
    model: null,
    collect: false,
    prompts: [],
    promptIndex: 0,
    locked: false, // collect mode: the drawing is submitted, wait for "next"
  };

  // ------------------------------------------------------------------ messages

  /** Show one line of error text (the first line of `message`). */
  function showError(message) {
    const el = $("error");
    el.textContent = String(message).split("\n")[0];
    el.title = el.textContent;
    el.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  let pending = 0;
  /** Run `promise` while #status says `label`; resolves to its value. */
  async function withStatus(label, promise) {
    pending += 1;
    $("status").textContent = label;
    document.body.dataset.busy = "true";
    try {
      return await promise;
    } finally {
      pending -= 1;
      if (pending === 0) {
        $("status").textContent = "";
        delete document.body.dataset.busy;
      }
    }
  }

  // ---------------------------------------------------------------------- API

  /** GET (no body) or POST JSON to `path`; the answer's JSON, or an Error with the
   * server's one-line message. */
  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body),
    };
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new Error(`cannot reach the server (${err.message}); is \`pyrochar serve\` still running?`);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      let message = `${path}: the server answered ${response.status} ${response.statusText}`;
      if (data && typeof data.error === "string") message = data.error;
      else if (data && typeof data.detail === "string") message = data.detail;
      throw new Error(message);
    }
    if (data === null) throw new Error(`${path}: the server's answer is not JSON`);
    return data;
  }

  /** A deep copy of the strokes, as the API takes them. */
  function strokesCopy() {
    return state.strokes.map((s) => s.map((p) => p.slice()));
  }

  function pointCount() {
    return state.strokes.reduce((n, s) => n + s.length, 0) + (state.current ? state.current.length : 0);
  }

  // ------------------------------------------------------------------ drawing

  /** Draw a polyline of [x, y, ...] motor points (its first `count`) on a context whose
   * transform maps motor x and -y to the canvas; a single point is drawn as a dot. */
  function drawPolyline(ctx, pts, count, color, width) {
    if (count <= 0) return;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = width;
    if (count === 1) {
      ctx.beginPath();
      ctx.arc(pts[0][0], -pts[0][1], width * 0.8, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(pts[0][0], -pts[0][1]);
    for (let i = 1; i < count; i++) ctx.lineTo(pts[i][0], -pts[i][1]);
    ctx.stroke();
  }

  /** Scale a context so that one motor unit is `canvas.width / FRAME` pixels. */
  function motorTransform(ctx) {
    const s = ctx.canvas.width / FRAME;
    ctx.setTransform(s, 0, 0, s, 0, 0);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    return s;
  }

  /** An offscreen G x G canvas coloring a density (rows top to bottom) by value/max. */
  function heatCanvas(next) {
    const g = next.size;
    const grid = next.density;
    const max = next.max > 0 ? next.max : 0;
    if (!(g > 0) || !Array.isArray(grid) || !(max > 0)) return null;
    const off = document.createElement("canvas");
    off.width = g;
    off.height = g;
    const ctx = off.getContext("2d");
    const img = ctx.createImageData(g, g);
    for (let r = 0; r < g; r++) {
      const row = grid[r] || [];
      for (let c = 0; c < g; c++) {
        const v = Number(row[c]);
        const u = Number.isFinite(v) && v > 0 ? Math.min(1, Math.sqrt(v / max)) : 0;
        const k = 4 * (r * g + c);
        img.data[k] = 255; // yellow to red as the density rises
        img.data[k + 1] = Math.round(215 - 175 * u);
        img.data[k + 2] = Math.round(80 - 50 * u);
        img.data[k + 3] = Math.round(190 * u);
      }
    }
    ctx.putImageData(img, 0, 0);
    return off;
  }

  /** Redraw the pad: heat map, frame, fitted splines, strokes. */
  function render() {
    state.renderQueued = false;
    const ctx = padCtx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    const s = motorTransform(ctx);
    const next = state.reading && state.reading.next_start;
    if (state.heat && next && $("show-heat").checked && !state.collect) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(state.heat, next.x0, -next.y0, next.x1 - next.x0, next.y0 - next.y1);
    }
    const unit = 1 / s; // one device pixel in motor units
    ctx.strokeStyle = "#eee";
    ctx.lineWidth = unit;
    for (let v = 15; v < FRAME; v += 15) {
      ctx.beginPath();
      ctx.moveTo(v, 0); ctx.lineTo(v, FRAME);
      ctx.moveTo(0, v); ctx.lineTo(FRAME, v);
      ctx.stroke();
    }
    const ink = 2.8 * unit * (window.devicePixelRatio || 1);
    state.strokes.forEach((st, i) => drawPolyline(ctx, st, st.length, PALETTE[i % PALETTE.length], ink));
    if (state.current) {
      const i = state.strokes.length;
      drawPolyline(ctx, state.current, state.current.length, PALETTE[i % PALETTE.length], ink);
    }
    const splines = state.reading && state.reading.splines;
    if (Array.isArray(splines) && $("show-splines").checked && !state.collect) {
      ctx.setLineDash([2.5, 1.5]);
      for (const sp of splines) {
        if (Array.isArray(sp) && sp.length) drawPolyline(ctx, sp, sp.length, "#000", ink * 0.45);
      }
      ctx.setLineDash([]);
    }
  }

  function scheduleRender() {
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(render);
  }

  /** Match the canvas's pixel size to its CSS size (sharp lines on any screen). */
  function fitCanvas() {
    const dpr = window.devicePixelRatio || 1;
    const px = Math.max(105, Math.round(pad.clientWidth * dpr));
    if (pad.width !== px) {
      pad.width = px;
      pad.height = px;
    }
    render();
  }

  // ------------------------------------------------------------------ pointer

  /** The motor point [x, y, t] of a pointer event, clamped to the frame. */
  function motorPoint(ev) {
    const rect = pad.getBoundingClientRect();
    const left = rect.left + pad.clientLeft;
    const top = rect.top + pad.clientTop;
    const clamp = (v) => Math.min(FRAME, Math.max(0, v));
    const x = clamp(((ev.clientX - left) / pad.clientWidth) * FRAME);
    const row = clamp(((ev.clientY - top) / pad.clientHeight) * FRAME);
    const stamp = ev.timeStamp || performance.now();
    const t = Math.max(0, Math.round(stamp - state.t0));
    return [Math.round(x * 100) / 100, Math.round(-row * 100) / 100 || 0, t];
  }

  /** Append an event's point to the current stroke (skipping sub-step moves). */
  function addPoint(ev) {
    const stroke = state.current;
    if (stroke.length >= MAX_POINTS_PER_STROKE || pointCount() >= MAX_POINTS) return;
    const p = motorPoint(ev);
    const last = stroke[stroke.length - 1];
    if (last) {
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) < MIN_STEP) return;
      p[2] = Math.max(p[2], last[2]);
    }
    stroke.push(p);
  }

  function onPointerDown(ev) {
    if (state.pointerId !== null || !ev.isPrimary || state.locked) return;
    if (ev.pointerType === "mouse" && ev.button !== 0) return;
    ev.preventDefault();
    if (state.strokes.length >= MAX_STROKES) {
      showError(`at most ${MAX_STROKES} strokes per drawing; undo or clear to go on`);
      return;
    }
    if (pointCount() >= MAX_POINTS) {
      showError(`at most ${MAX_POINTS} points per drawing; undo or clear to go on`);
      return;
    }
    try {
      pad.setPointerCapture(ev.pointerId); // keep the stroke when the pointer leaves the pad
    } catch (_) {
      // the pointer is already gone: the stroke ends at its next up/cancel event
    }
    state.pointerId = ev.pointerId;
    if (state.t0 === null) state.t0 = ev.timeStamp || performance.now();
    state.current = [];
    addPoint(ev);
    scheduleRender();
  }

  function onPointerMove(ev) {
    if (ev.pointerId !== state.pointerId || !state.current) return;
    const events = typeof ev.getCoalescedEvents === "function" ? ev.getCoalescedEvents() : [];
    for (const e of events.length ? events : [ev]) addPoint(e);
    scheduleRender();
  }

  function onPointerUp(ev) {
    if (ev.pointerId !== state.pointerId) return;
    state.pointerId = null;
    const stroke = state.current;
    state.current = null;
    if (stroke && stroke.length) {
      state.strokes.push(stroke);
      drawingChanged();
    } else {
      scheduleRender();
    }
  }

  // ------------------------------------------------------------------ reading

  const fmt = (v, digits = 2) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "–");

  /** Fill a table from a header row and body rows (cells are text). */
  function fillTable(table, head, rows) {
    table.replaceChildren();
    if (!rows.length) return;
    const tr = table.insertRow();
    for (const h of head) {
      const th = document.createElement("th");
      th.textContent = h;
      tr.appendChild(th);
    }
    for (const cells of rows) {
      const row = table.insertRow();
      for (const c of cells) row.insertCell().textContent = c;
    }
  }

  /** Show a /api/read answer for a drawing of `n` strokes. */
  function showReading(data, n) {
    state.reading = data;
    state.heat = data && data.next_start ? heatCanvas(data.next_start) : null;
    const nll = $("nll");
    nll.dataset.strokes = String(n);
    if (data && typeof data.nll === "number") {
      nll.textContent = fmt(data.nll);
      nll.dataset.nll = String(data.nll);
    } else {
      nll.textContent = "–";
      delete nll.dataset.nll;
    }
    const pEnd = $("p-end");
    if (data && typeof data.p_end === "number") {
      pEnd.textContent = `${(100 * data.p_end).toFixed(1)}%`;
      pEnd.dataset.pEnd = String(data.p_end);
    } else {
      pEnd.textContent = "–";
      delete pEnd.dataset.pEnd;
    }
    const breakdown = (data && data.breakdown) || {};
    fillTable($("breakdown"), ["site type", "NLL"],
      Object.keys(breakdown).map((k) => [SITE_LABELS[k] || k, fmt(breakdown[k])]));
    const perStroke = (data && Array.isArray(data.per_stroke)) ? data.per_stroke : [];
    // per_stroke[j] is input stroke kept[j]: strokes under 20 px are not scored
    const kept = (data && Array.isArray(data.kept)) ? data.kept : perStroke.map((_, j) => j);
    const keys = perStroke.length ? Object.keys(perStroke[0]).filter((k) => k !== "nll") : [];
    fillTable($("per-stroke"), ["stroke", "NLL", ...keys.map((k) => SITE_LABELS[k] || k)],
      perStroke.map((s, j) => [`${kept[j] + 1}`, fmt(s.nll), ...keys.map((k) => fmt(s[k]))]));
    // colour each stroke's row like its ink
    Array.from($("per-stroke").rows).slice(1).forEach((row, j) => {
      row.cells[0].style.color = PALETTE[kept[j] % PALETTE.length];
      row.cells[0].style.fontWeight = "600";
    });
    $("dropped").textContent = droppedNote(n, data ? kept : null);
    scheduleRender();
  }

  /** Which of `n` strokes the model did not score (shorter than 20 px), as a sentence. */
  function droppedNote(n, kept) {
    if (!kept || !n) return "";
    const dropped = [];
    for (let i = 0; i < n; i++) if (!kept.includes(i)) dropped.push(i + 1);
    if (!dropped.length) return "";
    const which = dropped.length === 1 ? `stroke ${dropped[0]} is` : `strokes ${dropped.join(", ")} are`;
    return `${which} shorter than 20 px and not scored (as in training).`;
  }

  /** Ask the selected model to read the drawing; stale answers are dropped. */
  async function read() {
    if (state.collect || !state.model) return;
    const seq = ++state.readSeq;
    const strokes = strokesCopy();
    try {
      const data = await withStatus("reading…", api("api/read", {model: state.model, strokes}));
      if (seq !== state.readSeq) return;
      clearError();
      showReading(data, strokes.length);
    } catch (err) {
      if (seq !== state.readSeq) return;
      showReading(null, strokes.length);
      showError(err.message);
    }
  }

  /** Everything that follows a change of the strokes. */
  function drawingChanged() {
    scheduleRender();
    if (state.collect) return;
    read();
    if (compareOn()) compareModels();
  }

  // ------------------------------------------------------------------ compare

  const compareOn = () => $("compare").getAttribute("aria-pressed") === "true";

  /** Score the drawing with every model, one after another, into #compare-table. */
  async function compareModels() {
    const seq = ++state.compareSeq;
    const strokes = strokesCopy();
    const rows = [];
    try {
      for (const m of state.models) {
        const data = await withStatus(`comparing (${m.label})…`,
          api("api/read", {model: m.name, strokes}));
        if (seq !== state.compareSeq) return;
        rows.push({model: m, data});
      }
    } catch (err) {
      if (seq === state.compareSeq) showError(err.message);
      return;
    }
    state.compareRows = rows;
    showCompare();
  }

  function showCompare() {
    const table = $("compare-table");
    const rows = state.compareRows || [];
    const keys = [];
    for (const r of rows) {
      for (const k of Object.keys(r.data.breakdown || {})) if (!keys.includes(k)) keys.push(k);
    }
    fillTable(table, ["model", "NLL", ...keys.map((k) => SITE_LABELS[k] || k), "finished?"],
      rows.map((r) => [
        r.model.label + (r.model.name === state.model ? " (selected)" : ""),
        fmt(r.data.nll),
        ...keys.map((k) => fmt((r.data.breakdown || {})[k])),
        typeof r.data.p_end === "number" ? `${(100 * r.data.p_end).toFixed(1)}%` : "–",
      ]));
    const nlls = rows.map((r) => (typeof r.data.nll === "number" ? r.data.nll : Infinity));
    const best = Math.min(...nlls);
    Array.from(table.rows).slice(1).forEach((tr, i) => {
      tr.dataset.model = rows[i].model.name;
      tr.cells[1].classList.add("nll");
      if (typeof rows[i].data.nll === "number") tr.cells[1].dataset.nll = String(rows[i].data.nll);
      if (Number.isFinite(best) && nlls[i] === best) tr.classList.add("best");
    });
  }

  function toggleCompare() {
    const on = !compareOn();
    $("compare").setAttribute("aria-pressed", String(on));
    $("compare-panel").hidden = !on;
    if (on) compareModels();
  }

  // ------------------------------------------------------- completions, samples

  /** The value of a number input, checked against [lo, hi]; throws a one-line Error. */
  function intInput(id, lo, hi, what) {
    const v = Number($(id).value);
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new Error(`the number of ${what} must be a whole number from ${lo} to ${hi}, got ${JSON.stringify($(id).value)}`);
    }
    return v;
  }

  const temperature = () => Number($("temperature").value);

  /** Draw one result on its thumbnail: the first `given` strokes grey, the rest in
   * colour, up to `progress` strokes (fractional: part of a stroke). */
  function drawThumb(canvas, strokes, given, progress) {
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const s = motorTransform(ctx);
    const width = 2.2 / s;
    strokes.forEach((st, i) => {
      if (!Array.isArray(st) || !st.length || i >= progress) return;
      const part = i + 1 <= progress ? st.length : Math.max(1, Math.ceil(st.length * (progress - i)));
      const color = i < given ? "#9a9aa0" : PALETTE[i % PALETTE.length];
      drawPolyline(ctx, st, part, color, width);
    });
  }

  /** Draw every figure of a grid, animating the strokes after the given ones stroke
   * by stroke; each figure gets data-drawn="true" when complete. */
  function animateGrid(figures, animate) {
    const generation = ++state.animation;
    const start = performance.now();
    const step = (now) => {
      if (generation !== state.animation) return;
      let running = false;
      for (const f of figures) {
        const total = f.strokes.length;
        const progress = animate ? f.given + (now - start) / STROKE_MS : total;
        drawThumb(f.canvas, f.strokes, f.given, Math.min(progress, total));
        if (progress >= total) f.figure.dataset.drawn = "true";
        else running = true;
      }
      if (running) requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }

  /** Replace a grid's content by results {strokes, nll}, `given` strokes each being the
   * user's. Clicking a result loads it onto the pad. */
  function showResults(container, kind, results, givenOf, animate) {
    container.replaceChildren();
    const dpr = window.devicePixelRatio || 1;
    const figures = results.map((r, i) => {
      const figure = document.createElement("figure");
      figure.className = kind;
      figure.title = "click to draw on this one";
      if (typeof r.nll === "number") figure.dataset.nll = String(r.nll);
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = Math.round(120 * dpr);
      const caption = document.createElement("figcaption");
      caption.textContent = `#${i + 1}  NLL ${fmt(r.nll, 1)}`;
      figure.append(canvas, caption);
      const strokes = Array.isArray(r.strokes) ? r.strokes : [];
      figure.addEventListener("click", () => loadStrokes(strokes));
      container.appendChild(figure);
      return {figure, canvas, strokes, given: Math.min(givenOf(r), strokes.length)};
    });
    animateGrid(figures, animate);
  }

  async function completeDrawing() {
    const seq = ++state.completeSeq;
    try {
      if (!state.strokes.length) throw new Error("draw at least one stroke first: the model finishes what you started");
      const n = intInput("n-complete", 1, 16, "completions");
      const data = await withStatus("finishing…", api("api/complete", {
        model: state.model, strokes: strokesCopy(), n, temperature: temperature(), seed: null,
      }));
      if (seq !== state.completeSeq) return; // a newer request is on its way
      clearError();
      showResults($("completions"), "completion", data.completions || [], (c) => c.n_given || 0, true);
    } catch (err) {
      showError(err.message);
    }
  }

  async function sampleCharacters() {
    const seq = ++state.sampleSeq;
    try {
      const n = intInput("n-sample", 1, 36, "samples");
      const data = await withStatus("sampling…", api("api/sample", {
        model: state.model, n, temperature: temperature(), seed: null,
      }));
      if (seq !== state.sampleSeq) return; // a newer request is on its way
      clearError();
      showResults($("samples"), "sample", data.samples || [], () => 0, false);
    } catch (err) {
      showError(err.message);
    }
  }

  /** Put polylines [[x, y], ...] on the pad as the user's strokes (t = 0), within the
   * input limits, and read them. */
  function loadStrokes(polylines) {
    if (state.locked) return;
    const clip = (v) => Math.min(COORD_LIMIT, Math.max(-COORD_LIMIT, v));
    const round = (v) => Math.round(clip(Number(v)) * 100) / 100 || 0;
    let budget = MAX_POINTS;
    const strokes = [];
    for (const line of polylines.slice(0, MAX_STROKES)) {
      const pts = line.slice(0, Math.min(MAX_POINTS_PER_STROKE, budget))
        .filter((p) => Number.isFinite(Number(p[0])) && Number.isFinite(Number(p[1])))
        .map((p) => [round(p[0]), round(p[1]), 0]);
      if (pts.length) {
        strokes.push(pts);
        budget -= pts.length;
      }
    }
    state.strokes = strokes;
    state.t0 = null;
    drawingChanged();
  }

  // --------------------------------------------------------------------- save

  /** Offer `text` as a file download named `name`. */
  function download(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], {type}));
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  /** The drawing in the project's JSON format (pyrochar/data/jsonio.py), a stroke a line. */
  function drawingJson(strokes) {
    const lines = strokes.map((s) => "    " + JSON.stringify(s));
    return '{\n  "format": "pyrochar-drawing",\n  "version": 1,\n  "strokes": [\n' +
      lines.join(",\n") + "\n  ]\n}\n";
  }

  /** The drawing as an Omniglot stroke file: START, then x,y,t lines, BREAK after each stroke. */
  function omniglotText(strokes) {
    const out = ["START"];
    for (const s of strokes) {
      for (const [x, y, t] of s) out.push(`${x},${y},${t}`);
      out.push("BREAK");
    }
    return out.join("\n") + "\n";
  }

  function save(kind) {
    if (!state.strokes.length) {
      showError("nothing to save: draw a character first");
      return;
    }
    clearError();
    if (kind === "json") download("pyrochar-drawing.json", drawingJson(strokesCopy()), "application/json");
    else download("pyrochar-drawing.txt", omniglotText(strokesCopy()), "text/plain");
  }

  // ------------------------------------------------------------------ collect

  /** Show the current prompt (or the end of the session). */
  function showPrompt() {
    const done = state.promptIndex >= state.prompts.length;
    const prompt = state.prompts[state.promptIndex];
    $("prompt-progress").textContent = done ? "" : `${state.promptIndex + 1} of ${state.prompts.length}`;
    $("prompt-text").textContent = done
      ? (state.prompts.length ? "All done: thank you for taking part!" : "There are no prompts on this server.")
      : prompt.text || (prompt.kind === "invent" ? "Invent a new character and draw it." : "Copy this character.");
    const img = $("prompt-image");
    img.hidden = done || !prompt.image;
    if (!done && prompt.image) img.src = prompt.image;
    else img.removeAttribute("src");
    $("submit").hidden = done;
    $("next").hidden = true;
    $("thanks").hidden = true;
    state.locked = done;
  }

  async function submitDrawing() {
    try {
      const prompt = state.prompts[state.promptIndex];
      if (!prompt) throw new Error("no prompt to answer");
      if (!state.strokes.length) throw new Error("draw the character before submitting it");
      const participant = $("participant").value.trim();
      if (!participant) throw new Error("type your participant id first");
      localStorage.setItem("pyrochar-participant", participant);
      const data = await withStatus("saving…", api("api/collect", {
        prompt_id: prompt.id, strokes: strokesCopy(), participant,
      }));
      clearError();
      state.locked = true;
      $("thanks").textContent = `Thank you! Your drawing is saved (${data.count} so far).`;
      $("thanks").dataset.saved = String(data.saved);
      $("thanks").hidden = false;
      $("submit").hidden = true;
      $("next").hidden = false;
    } catch (err) {
      showError(err.message);
    }
  }

  function nextPrompt() {
    state.promptIndex += 1;
    state.strokes = [];
    state.t0 = null;
    showPrompt();
    scheduleRender();
  }

  async function startCollect() {
    document.body.classList.add("collect-mode");
    $("collect").hidden = false;
    let stored = null;
    try {
      stored = localStorage.getItem("pyrochar-participant");
    } catch (_) {
      stored = null;
    }
    $("participant").value = stored || `p-${Math.random().toString(16).slice(2, 8)}`;
    const data = await api("api/prompts");
    state.prompts = Array.isArray(data.prompts) ? data.prompts : [];
    state.promptIndex = 0;
    showPrompt();
  }

  // --------------------------------------------------------------------- setup

  function undo() {
    if (state.locked || !state.strokes.length) return;
    state.strokes.pop();
    if (!state.strokes.length) state.t0 = null;
    drawingChanged();
  }

  function clearPad() {
    if (state.locked) return;
    state.strokes = [];
    state.t0 = null;
    drawingChanged();
  }

  function wire() {
    pad.addEventListener("pointerdown", onPointerDown);
    pad.addEventListener("pointermove", onPointerMove);
    pad.addEventListener("pointerup", onPointerUp);
    pad.addEventListener("pointercancel", onPointerUp);
    pad.addEventListener("lostpointercapture", onPointerUp);
    $("undo").addEventListener("click", undo);
    $("clear").addEventListener("click", clearPad);
    $("show-heat").addEventListener("change", scheduleRender);
    $("show-splines").addEventListener("change", scheduleRender);
    $("model").addEventListener("change", () => {
      state.model = $("model").value;
      state.completeSeq += 1; // answers of the previous model are dropped
      state.sampleSeq += 1;
      $("completions").replaceChildren();
      $("samples").replaceChildren();
      read();
      if (compareOn() && state.compareRows) showCompare();
    });
    $("compare").addEventListener("click", toggleCompare);
    $("temperature").addEventListener("input", () => {
      $("temperature-value").textContent = temperature().toFixed(2);
    });
    $("complete").addEventListener("click", completeDrawing);
    $("sample").addEventListener("click", sampleCharacters);
    $("save-json").addEventListener("click", () => save("json"));
    $("save-txt").addEventListener("click", () => save("txt"));
    $("submit").addEventListener("click", submitDrawing);
    $("next").addEventListener("click", nextPrompt);
    document.addEventListener("keydown", (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && ev.key === "z" && ev.target.tagName !== "INPUT") {
        ev.preventDefault();
        undo();
      }
    });
    window.addEventListener("beforeunload", (ev) => {
      // collect mode: ask before a drawing that was not submitted is lost
      if (state.collect && !state.locked && state.strokes.length) {
        ev.preventDefault();
        ev.returnValue = "";
      }
    });
    if (typeof ResizeObserver === "function") new ResizeObserver(fitCanvas).observe(pad);
    window.addEventListener("resize", fitCanvas);
  }

  async function init() {
    wire();
    fitCanvas();
    try {
      const info = await withStatus("loading…", api("api/models"));
      state.models = Array.isArray(info.models) ? info.models : [];
      const select = $("model");
      for (const m of state.models) select.add(new Option(m.label || m.name, m.name));
      state.model = info.default || (state.models[0] && state.models[0].name) || null;
      if (state.model) select.value = state.model;
      state.collect = Boolean(info.collect);
      if (state.collect) await startCollect();
      else await read();
    } catch (err) {
      showError(err.message);
    }
    document.body.dataset.ready = "true";
  }

  window.pyrocharPad = {strokes: strokesCopy, reading: () => state.reading};
  init();
})();
