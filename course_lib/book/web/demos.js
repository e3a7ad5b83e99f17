/* The chapters' trained models in the page, with ONNX Runtime Web (see course_lib/book/demos.py).
 *
 * CourseDemos.start(element, config) wires one demo: "dates" (chapter 1, greedy decoding looped
 * here over the exported encoder and decoder step) or "fill-mask" (chapter 8, WordPiece here,
 * then the exported BERT). The runtime and the model load on demand (first click in the box,
 * first keystroke, or the "run the model" button). Tokenisation and the input checks follow
 * course_lib exactly (CharVocab.encode; tokenizers' BertWordPieceTokenizer), and each result is
 * kept in CourseDemos.results[kind] at full precision for the parity tests.
 */
(function () {
  "use strict";
  if (window.CourseDemos) return;
  var CD = (window.CourseDemos = { results: {}, runtime: null });
  var ORT_DIR = "_static/course-assets/onnxruntime-web/";

  function siteUrl(path) {
    var root = document.documentElement.dataset.content_root;
    if (root === undefined) root = "../"; // chapters live one folder below the site root
    return new URL(root + path, document.baseURI).href;
  }

  // ------------------------------------------------------------------ loading on demand

  /* Bytes fetched for the demo so far, and the total of the files being fetched (from their
   * Content-Length), shown as "1.2 of 3.7 MB" while the runtime and the model load. */
  var progress = { loaded: 0, total: 0, listeners: [] };
  function notify() { progress.listeners.forEach(function (f) { f(progress); }); }

  function fetchBytes(url) {
    return fetch(url).then(function (r) {
      if (!r.ok) throw new Error(r.status + " for " + url + " (was the chapter executed by this build?)");
      var size = +r.headers.get("Content-Length") || 0;
      progress.total += size;
      notify();
      if (!r.body || !r.body.getReader) return r.arrayBuffer().then(function (b) { progress.loaded += b.byteLength; notify(); return b; });
      var reader = r.body.getReader(), chunks = [], got = 0;
      function pump() {
        return reader.read().then(function (step) {
          if (step.done) {
            var out = new Uint8Array(got), at = 0;
            chunks.forEach(function (c) { out.set(c, at); at += c.byteLength; });
            if (!size) { progress.total += got; notify(); }
            return out.buffer;
          }
          chunks.push(step.value);
          got += step.value.byteLength;
          progress.loaded += step.value.byteLength;
          notify();
          return pump();
        });
      }
      return pump();
    });
  }

  /* The WebAssembly runtime, 14.2 MB raw, is served gzip-compressed (3.7 MB; course_lib/book/assets.py
   * writes the .gz) because many servers, python's http.server among them, compress nothing: fetch the
   * .gz, inflate it here, and hand the bytes to ONNX Runtime Web. Without DecompressionStream, null:
   * ONNX Runtime fetches the uncompressed .wasm itself. */
  function fetchWasm() {
    if (typeof DecompressionStream === "undefined") return Promise.resolve(null);
    return fetchBytes(siteUrl(ORT_DIR + "ort-wasm-simd-threaded.wasm.gz")).then(function (gz) {
      var inflated = new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip"));
      return new Response(inflated).arrayBuffer();
    });
  }

  function loadRuntime() {
    if (CD.runtime) return CD.runtime;
    var wasm = fetchWasm(); // in parallel with the script
    var script = new Promise(function (resolve, reject) {
      if (window.ort && window.ort.InferenceSession) return resolve(window.ort);
      var tag = document.createElement("script");
      tag.src = siteUrl(ORT_DIR + "ort.wasm.min.js");
      // hide require.js (widget pages load it): ort's UMD header would call an anonymous define()
      var define = window.define;
      window.define = undefined;
      tag.onload = function () {
        window.define = define;
        if (!window.ort) return reject(new Error("ort.wasm.min.js loaded but defined no `ort`"));
        resolve(window.ort);
      };
      tag.onerror = function () {
        window.define = define;
        reject(new Error("could not load ONNX Runtime Web from " + tag.src));
      };
      document.head.appendChild(tag);
    });
    CD.runtime = Promise.all([script, wasm]).then(function (got) {
      var ort = got[0];
      ort.env.wasm.wasmPaths = siteUrl(ORT_DIR);
      if (got[1]) ort.env.wasm.wasmBinary = got[1];
      ort.env.wasm.numThreads = 1; // no SharedArrayBuffer needed (no cross-origin isolation on static hosts)
      ort.env.wasm.proxy = false;
      ort.env.logLevel = "error";
      return ort;
    });
    CD.runtime.catch(function () { CD.runtime = null; });
    return CD.runtime;
  }

  function fetchJson(url) {
    return fetch(url).then(function (r) {
      if (!r.ok) throw new Error(r.status + " for " + url + " (was the chapter executed by this build?)");
      return r.json();
    });
  }

  // the model's bytes are fetched at once, in parallel with the runtime
  function session(runtime, url) {
    return Promise.all([runtime, fetchBytes(url)]).then(function (got) {
      CD.modelBytes = (CD.modelBytes || 0) + got[1].byteLength;
      return got[0].InferenceSession.create(new Uint8Array(got[1]), { executionProviders: ["wasm"] });
    });
  }

  // ------------------------------------------------------------------ small helpers

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // The colour scale of both heatmaps: a fixed 0 to 1 (attention weights are probabilities),
  // the same for every input, layer and head, never rescaled to the map's own maximum.
  var SCALE = { lo: 0, hi: 1, ticks: [0, 0.25, 0.5, 0.75, 1] };
  var LIGHT = [247, 251, 255], DARK = [8, 48, 107]; // white -> dark blue, the ends of matplotlib's "Blues"

  function colour(w) {
    var t = Math.max(0, Math.min(1, (w - SCALE.lo) / (SCALE.hi - SCALE.lo)));
    return "rgb(" + LIGHT.map(function (x, i) { return Math.round(x + (DARK[i] - x) * t); }).join(",") + ")";
  }

  function tickText(v) { return String(+v.toFixed(2)); }

  /* The colour bar under a heatmap: colour() along a horizontal bar (a linear gradient with a stop
   * at every tick; colour() is itself a linear blend, so the bar equals it everywhere), its ends
   * labelled SCALE.lo and SCALE.hi, and a line of text saying what the scale is. */
  function colourBar(what, largest) {
    var barX = 12, barW = 200, barY = 4, barH = 14, width = barX + barW + 16, height = barY + barH + 20;
    var id = "course-demo-scale-" + (colourBar.count = (colourBar.count || 0) + 1);
    var stops = SCALE.ticks.map(function (v) {
      return '<stop offset="' + (v - SCALE.lo) / (SCALE.hi - SCALE.lo) + '" stop-color="' + colour(v) + '"/>';
    });
    var parts = ['<svg xmlns="http://www.w3.org/2000/svg" class="course-demo-colourbar-scale" role="img" width="' + width +
      '" height="' + height + '" aria-label="colour scale: ' + esc(what) + " from " + tickText(SCALE.lo) + " (white) to " +
      tickText(SCALE.hi) + ' (dark blue)"><defs><linearGradient id="' + id + '" x1="0" x2="1" y1="0" y2="0">' + stops.join("") +
      "</linearGradient></defs>",
      '<rect class="course-demo-colourbar-bar" x="' + barX + '" y="' + barY + '" width="' + barW + '" height="' + barH +
      '" fill="url(#' + id + ')" stroke="#888" stroke-width="0.5" data-lo="' + SCALE.lo + '" data-hi="' + SCALE.hi + '"/>'];
    SCALE.ticks.forEach(function (v) {
      var x = barX + (barW * (v - SCALE.lo)) / (SCALE.hi - SCALE.lo);
      parts.push('<line x1="' + x + '" x2="' + x + '" y1="' + (barY + barH) + '" y2="' + (barY + barH + 4) + '" stroke="#555"/>');
      parts.push('<text class="course-demo-colourbar-tick" x="' + x + '" y="' + (barY + barH + 15) +
        '" text-anchor="middle" font-size="11" data-value="' + v + '">' + tickText(v) + "</text>");
    });
    parts.push("</svg>");
    var bar = el("div", { class: "course-demo-colourbar" });
    bar.innerHTML = parts.join("");
    bar.appendChild(el("p", { class: "course-demo-colourbar-label" },
      "colour = " + what + ", on a fixed scale from " + tickText(SCALE.lo) + " to " + tickText(SCALE.hi) +
      " for every input (not rescaled per input; the largest weight in this map is " + largest.toFixed(2) + ")"));
    return bar;
  }

  /* rows x cols weights (arrays of numbers) -> an SVG heatmap with labels */
  function heatmap(weights, rowLabels, colLabels, caption) {
    var cell = 18, left = 10 + 9 * Math.max.apply(null, rowLabels.map(function (s) { return s.length; }).concat([1]));
    var top = 10 + 8 * Math.max.apply(null, colLabels.map(function (s) { return s.length; }).concat([1]));
    var width = left + cell * colLabels.length + 4, height = top + cell * rowLabels.length + 4;
    // a viewBox: on a narrow screen the map shrinks to the column (tap a cell to read its weight)
    var parts = ['<svg xmlns="http://www.w3.org/2000/svg" class="course-demo-heatmap" role="img" width="' + width +
      '" height="' + height + '" viewBox="0 0 ' + width + " " + height + '" aria-label="' + esc(caption) + '">'];
    colLabels.forEach(function (c, j) {
      var x = left + cell * j + cell / 2;
      parts.push('<text x="' + x + '" y="' + (top - 4) + '" transform="rotate(-60 ' + x + " " + (top - 4) + ')" font-size="11">' + esc(c) + "</text>");
    });
    rowLabels.forEach(function (r, i) {
      var y = top + cell * i;
      parts.push('<text x="' + (left - 4) + '" y="' + (y + cell * 0.7) + '" text-anchor="end" font-size="11">' + esc(r) + "</text>");
      weights[i].forEach(function (w, j) {
        parts.push('<rect x="' + (left + cell * j) + '" y="' + y + '" width="' + cell + '" height="' + cell + '" fill="' + colour(w) +
          '" data-w="' + w.toFixed(6) + '"><title>' + esc(r) + " \u2190 " + esc(colLabels[j]) + ": " + w.toFixed(3) + "</title></rect>");
      });
    });
    parts.push("</svg>");
    var figure = el("figure", { class: "course-demo-figure" });
    figure.innerHTML = parts.join("");
    // what hovering shows (a cell's <title>), also on a tap or a click, in a line under the map
    var readout = el("p", { class: "course-demo-readout", "aria-live": "polite" }, "tap or hover over a cell to read its weight");
    figure.addEventListener("click", function (ev) {
      var cell = ev.target.closest && ev.target.closest("rect[data-w]");
      if (!cell) return;
      figure.querySelectorAll("rect.course-demo-picked").forEach(function (r) { r.classList.remove("course-demo-picked"); });
      cell.classList.add("course-demo-picked");
      readout.textContent = cell.querySelector("title").textContent;
    });
    figure.appendChild(readout);
    var largest = Math.max.apply(null, weights.map(function (row) { return Math.max.apply(null, row); }));
    figure.appendChild(colourBar("attention weight", largest));
    figure.appendChild(el("figcaption", {}, caption));
    return figure;
  }

  function codePoints(s) { return Array.from(s); }

  // Python's str.isprintable(): not in categories C* or Z*, except the space itself
  function printable(ch) { return ch === " " || !/^[\p{C}\p{Z}]$/u.test(ch); }

  // ------------------------------------------------------------------ chapter 1: dates

  function prepareDate(text, meta) {
    // course_lib.book.demos.prepare_date_input, line by line
    var ws = new Set(codePoints(meta.whitespace));
    var cps = codePoints(text);
    var a = 0, b = cps.length;
    while (a < b && ws.has(cps[a])) a++;
    while (b > a && ws.has(cps[b - 1])) b--;
    cps = cps.slice(a, b);
    if (!cps.length) return { text: "", ids: [], messages: [meta.rules.empty] };
    var messages = [];
    if (cps.length > meta.max_chars) {
      messages.push("too long: " + cps.length + " characters; the model reads the first " + meta.max_chars);
      cps = cps.slice(0, meta.max_chars);
    }
    var unknown = Array.from(new Set(cps.filter(function (c) { return !meta.stoi.has(c); })));
    unknown.sort(function (x, y) { return x.codePointAt(0) - y.codePointAt(0); });
    var reasons = dateReasons(cps.join(""), meta.rules);
    if (unknown.length || reasons.length) messages.push(meta.rules.not_trained);
    if (unknown.length) {
      var shown = unknown.map(function (c) {
        return printable(c) ? c : "U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
      }).join(" ");
      messages.push("characters the model never saw, read as <unk>: " + shown + " (it knows a-z, A-Z, 0-9, space and , . - /)");
    }
    messages.push.apply(messages, reasons);
    var ids = cps.map(function (c) { return meta.stoi.has(c) ? meta.stoi.get(c) : meta.unk_id; });
    return { text: cps.join(""), chars: cps, ids: ids, messages: messages };
  }

  /* course_lib.ood, line by line: is the text one of the training sources? The rules (templates of the
   * 17 formats, month and weekday names, year ranges) come from the model's meta.json. */
  var NUMBER = { d: "[0-9]{1,2}", dd: "[0-9]{2}", m: "[0-9]{1,2}", mm: "[0-9]{2}", yyyy: "[0-9]{4}", yy: "[0-9]{2}",
    dth: "[0-9]{1,2}(?:st|nd|rd|th)" };
  var FIELD = /\{(\w+)\}/g;

  function title(s) { return s.charAt(0).toUpperCase() + s.slice(1).toLowerCase(); }
  function inCase(s, c) { return c === "upper" ? s.toUpperCase() : c === "title" ? title(s) : s.toLowerCase(); }
  function three(names) { return names.map(function (n) { return n.slice(0, 3); }); }

  function nameField(field, rules) {
    var key = field.toLowerCase();
    var names = { month: rules.months, mon: three(rules.months), weekday: rules.weekdays, wkd: three(rules.weekdays) }[key];
    if (!names) return null;
    var c = /[A-Z]/.test(field) && field === field.toUpperCase() ? "upper" : /[A-Z]/.test(field.charAt(0)) ? "title" : "lower";
    return { key: key, names: names, case: c };
  }

  function fieldsOf(template) { return Array.from(template.matchAll(FIELD), function (m) { return m[1]; }); }

  function templatePattern(template, rules) {
    if (!rules.patterns) rules.patterns = {};
    if (rules.patterns[template]) return rules.patterns[template];
    var parts = [], at = 0;
    Array.from(template.matchAll(FIELD)).forEach(function (m) {
      parts.push(template.slice(at, m.index).replace(/[.*+?^${}()|[\]\\\/-]/g, "\\$&"));
      var named = nameField(m[1], rules);
      parts.push("(" + (named ? named.names.map(function (n) { return inCase(n, named.case); }).join("|") : NUMBER[m[1]]) + ")");
      at = m.index + m[0].length;
    });
    parts.push(template.slice(at).replace(/[.*+?^${}()|[\]\\\/-]/g, "\\$&"));
    return (rules.patterns[template] = new RegExp("^(?:" + parts.join("") + ")$"));
  }

  function pad(n, width) { return String(n).padStart(width, "0"); }
  function ordinal(n) { return n + (n % 100 >= 11 && n % 100 <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" })[n % 10] || "th"); }
  function leap(y) { return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0); }
  function daysInMonth(y, m) { return [31, leap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]; }
  function weekdayOf(y, m, d) { // proleptic Gregorian (Sakamoto), 0 = Monday like Python's date.weekday()
    var t = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4], yy = m < 3 ? y - 1 : y;
    var sunday0 = (yy + Math.floor(yy / 4) - Math.floor(yy / 100) + Math.floor(yy / 400) + t[m - 1] + d) % 7;
    return (sunday0 + 6) % 7;
  }
  function isoDate(y, m, d) { return pad(y, 4) + "-" + pad(m, 2) + "-" + pad(d, 2); }

  function renderTemplate(template, rules, y, m, d, wd) {
    var values = { d: String(d), dd: pad(d, 2), m: String(m), mm: pad(m, 2), yyyy: pad(y, 4), yy: pad(y % 100, 2), dth: ordinal(d) };
    return template.replace(FIELD, function (_, field) {
      var named = nameField(field, rules);
      if (!named) return values[field];
      return inCase(named.names[named.key === "weekday" || named.key === "wkd" ? wd : m - 1], named.case);
    });
  }

  function dateReasons(text, rules) {
    var lo = rules.years_yy[0], hi = rules.years_yy[1];
    for (var i = 0; i < rules.templates.length; i++) {
      var name = rules.templates[i][0], template = rules.templates[i][1];
      var match = templatePattern(template, rules).exec(text);
      if (!match) continue;
      var y = 0, m = 0, d = 0, wd = null;
      fieldsOf(template).forEach(function (field, j) {
        var value = match[j + 1], key = field.toLowerCase();
        if (key === "yyyy") y = parseInt(value, 10);
        else if (key === "yy") { var v = parseInt(value, 10); y = v >= lo % 100 ? Math.floor(lo / 100) * 100 + v : Math.floor(hi / 100) * 100 + v; }
        else if (key === "m" || key === "mm") m = parseInt(value, 10);
        else if (key === "d" || key === "dd") d = parseInt(value, 10);
        else if (key === "dth") d = parseInt(value.slice(0, -2), 10);
        else if (key === "month" || key === "mon") m = nameField(field, rules).names.indexOf(value.toLowerCase()) + 1;
        else wd = nameField(field, rules).names.indexOf(value.toLowerCase());
      });
      var twoDigit = rules.two_digit.indexOf(name) >= 0;
      if (!(m >= 1 && m <= 12)) return ["there is no month " + m + ": it is not a real date"];
      var days = daysInMonth(y, m);
      if (!(d >= 1 && d <= days)) return [title(rules.months[m - 1]) + " " + y + " has " + days + " days, not " + d + ": it is not a real date"];
      if (!twoDigit && !(y >= rules.years[0] && y <= rules.years[1]))
        return ["the year " + y + " is outside the years it was trained on (" + rules.years[0] + "-" + rules.years[1] + ")"];
      var actual = weekdayOf(y, m, d), written = renderTemplate(template, rules, y, m, d, actual);
      if (written === text) return [];
      if (wd !== null && wd !== actual)
        return [isoDate(y, m, d) + " was a " + title(rules.weekdays[actual]) + ", not a " + title(rules.weekdays[wd]) +
          ": in training the weekday always matched the date"];
      return ["it looks like the format \u201c" + name + "\u201d but is written differently: the model saw '" + written + "'"];
    }
    if (/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(text))
      return ["it is already written in the ISO format the model writes (YYYY-MM-DD), which it never read as input"];
    return ["it is not written in any of the " + rules.templates.length + " formats the model was trained on " +
      "(such as september 27, 1994 or 27.09.1994 or 9/27/94)"];
  }

  // course_lib.ood.date_output_problem
  function dateOutputProblem(answer) {
    var match = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/.exec(answer);
    if (!match) return "the model's answer '" + answer + "' is not a date written YYYY-MM-DD: do not trust it";
    var y = +match[1], m = +match[2], d = +match[3];
    if (y < 1 || !(m >= 1 && m <= 12) || !(d >= 1 && d <= daysInMonth(y, m)))
      return "the model's answer " + answer + " is not a real calendar date: do not trust it";
    return null;
  }

  /* The reasons not to trust an answer, next to it: a title line and a list. */
  function warning(title, items) {
    var box = el("div", { class: "course-demo-ood", role: "note" });
    if (title) box.appendChild(el("p", { class: "course-demo-ood-title" }, title));
    var list = el("ul");
    items.forEach(function (m) { list.appendChild(el("li", { class: "course-demo-message" }, m)); });
    box.appendChild(list);
    return box;
  }

  /* messages -> [plain messages, reasons after the "never trained" line] */
  function splitMessages(messages, header) {
    var i = messages.indexOf(header);
    return i < 0 ? [messages, null] : [messages.slice(0, i), messages.slice(i + 1)];
  }

  function argmax(xs) {
    var best = 0;
    for (var i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
    return best;
  }

  var dates = {
    load: function (demo) {
      var base = siteUrl(demo.config.model);
      var runtime = loadRuntime();
      return Promise.all([runtime, fetchJson(base + "meta.json"), session(runtime, base + "encoder.onnx"),
        session(runtime, base + "decoder_step.onnx")]).then(function (got) {
        var meta = got[1];
        meta.stoi = new Map();
        meta.src_itos.forEach(function (s, i) { if (i >= 4) meta.stoi.set(s, i); });
        return { ort: got[0], meta: meta, encoder: got[2], step: got[3] };
      });
    },
    run: async function (model, typed) {
      var meta = model.meta, ort = model.ort;
      var input = prepareDate(typed, meta);
      var result = { typed: typed, text: input.text, messages: input.messages, decoded: null, steps: [], weights: [] };
      if (!input.ids.length) return result;
      var src = new ort.Tensor("int64", BigInt64Array.from(input.ids.map(BigInt)), [1, input.ids.length]);
      var enc = await model.encoder.run({ src: src });
      var hs = enc.hs, state = new ort.Tensor("float32", enc.h_last.data, [1, 1, enc.h_last.dims[1]]);
      var token = meta.bos_id, out = [];
      for (var t = 0; t < meta.max_steps; t++) {
        var o = await model.step.run({ token: new ort.Tensor("int64", BigInt64Array.from([BigInt(token)]), [1, 1]), state: state, hs: hs });
        token = argmax(o.logits.data);
        state = o.new_state;
        result.steps.push(token);
        result.weights.push(Array.from(o.weights.data));
        if (token === meta.eos_id) break;
      }
      // CharVocab.decode: stop at <eos>, skip <pad>/<bos>, <unk> as "?"
      for (var i = 0; i < result.steps.length; i++) {
        var id = result.steps[i];
        if (id === meta.eos_id) break;
        if (id === meta.pad_id || id === meta.bos_id) continue;
        out.push(id === meta.unk_id ? "?" : meta.tgt_itos[id]);
      }
      result.decoded = out.join("");
      result.outputProblem = dateOutputProblem(result.decoded);
      result.source = input.chars;
      return result;
    },
    render: function (demo, r) {
      var box = demo.output, header = demo.model.meta.rules.not_trained;
      box.textContent = "";
      var parts = splitMessages(r.messages, header);
      parts[0].forEach(function (m) { box.appendChild(el("p", { class: "course-demo-message" }, m)); });
      if (r.decoded === null) { if (parts[1]) box.appendChild(warning(header, parts[1])); return; }
      var answer = el("p", { class: "course-demo-answer" });
      answer.appendChild(el("span", { class: "course-demo-typed" }, r.text));
      answer.appendChild(document.createTextNode("  \u2192  "));
      answer.appendChild(el("span", { class: "course-demo-decoded" }, r.decoded));
      box.appendChild(answer);
      var reasons = (parts[1] || []).concat(r.outputProblem ? [r.outputProblem] : []);
      if (reasons.length) box.appendChild(warning(parts[1] ? header : null, reasons));
      var rows = r.steps.map(function (id) { return id === demo.model.meta.eos_id ? "<eos>" : demo.model.meta.tgt_itos[id]; });
      var cols = r.source.map(function (c) { return c === " " ? "\u2423" : c; });
      box.appendChild(heatmap(r.weights, rows, cols,
        "attention weights: each output character (row) over the source characters (columns); each row sums to 1; " +
        "darker blue = more weight, read the values off the colour bar (or hover over a cell, or tap it)"));
    },
  };

  // ------------------------------------------------------------------ chapter 8: fill-mask

  var CJK = [[0x4e00, 0x9fff], [0x3400, 0x4dbf], [0x20000, 0x2a6df], [0x2a700, 0x2b73f], [0x2b740, 0x2b81f],
    [0x2b820, 0x2ceaf], [0xf900, 0xfaff], [0x2f800, 0x2fa1f]];
  function isCjk(cp) { return CJK.some(function (r) { return cp >= r[0] && cp <= r[1]; }); }
  // tokenizers' BertNormalizer and BertPreTokenizer (Rust): whitespace = \t \n \r or Unicode White_Space
  function isWhitespace(c) { return /^[\t\n\r]$/.test(c) || /^\p{White_Space}$/u.test(c); }
  function isControl(c) { return !/^[\t\n\r]$/.test(c) && /^\p{C}$/u.test(c); }
  function isPunct(c) { return /^[!-\/:-@\[-`{-~]$/.test(c) || /^\p{P}$/u.test(c); }

  function normalize(text) {
    var out = [];
    codePoints(text).forEach(function (c) {
      var cp = c.codePointAt(0);
      if (cp === 0 || cp === 0xfffd || isControl(c)) return; // clean_text
      if (isWhitespace(c)) c = " ";
      if (isCjk(cp)) out.push(" ", c, " "); // handle_chinese_chars
      else out.push(c);
    });
    var s = out.join("").normalize("NFD").replace(/\p{Mn}/gu, ""); // strip_accents (follows lowercase)
    return codePoints(s).map(function (c) { return c.toLowerCase(); }).join(""); // per character, like Rust
  }

  function preTokenize(text) {
    var words = [], cur = [];
    codePoints(text).forEach(function (c) {
      if (isWhitespace(c)) { if (cur.length) words.push(cur.join("")); cur = []; }
      else if (isPunct(c)) { if (cur.length) words.push(cur.join("")); cur = []; words.push(c); }
      else cur.push(c);
    });
    if (cur.length) words.push(cur.join(""));
    return words;
  }

  function wordPiece(word, meta) {
    var cps = codePoints(word);
    if (cps.length > meta.max_input_chars_per_word) return [meta.unk_id];
    var pieces = [], start = 0;
    while (start < cps.length) {
      var end = cps.length, found = -1;
      while (start < end) {
        var sub = cps.slice(start, end).join("");
        if (start > 0) sub = meta.continuing_prefix + sub;
        if (meta.stoi.has(sub)) { found = meta.stoi.get(sub); break; }
        end--;
      }
      if (found < 0) return [meta.unk_id];
      pieces.push(found);
      start = end;
    }
    return pieces;
  }

  function tokenize(text, meta) {
    // special tokens are matched first, on the raw text (case-sensitive, leftmost, longest)
    var ids = [], rest = text;
    while (rest.length) {
      var at = -1, which = null;
      meta.special_tokens.forEach(function (s) {
        var i = rest.indexOf(s);
        if (i >= 0 && (at < 0 || i < at || (i === at && s.length > which.length))) { at = i; which = s; }
      });
      var plain = at < 0 ? rest : rest.slice(0, at);
      preTokenize(normalize(plain)).forEach(function (w) { ids.push.apply(ids, wordPiece(w, meta)); });
      if (at < 0) break;
      ids.push(meta.stoi.get(which));
      rest = rest.slice(at + which.length);
    }
    return ids;
  }

  function fillMaskInput(text, meta) {
    // course_lib.book.demos.fill_mask_input, line by line
    var ids = [meta.cls_id].concat(tokenize(text, meta), [meta.sep_id]);
    var tokens = ids.map(function (i) { return meta.vocab[i]; });
    if (ids.length === 2) return { ids: [], tokens: [], error: "type a sentence with [MASK] where a word should be predicted", notes: [] };
    if (ids.indexOf(meta.mask_id) < 0)
      return { ids: [], tokens: tokens, error: "no [MASK] in the sentence: write [MASK] (capitals, in brackets) where a word should be predicted", notes: [] };
    if (ids.length > meta.max_len)
      return { ids: [], tokens: tokens, error: "too long: " + ids.length + " tokens with [CLS] and [SEP]; the model has positions for " + meta.max_len, notes: [] };
    var nUnk = ids.filter(function (i) { return i === meta.unk_id; }).length;
    var pieces = splitWords(tokens, meta.continuing_prefix);
    var notes = nUnk || pieces.length ? [meta.not_trained] : [];
    if (nUnk) notes.push(nUnk + " word(s) outside the vocabulary read as [UNK]");
    if (pieces.length) notes.push("words the training stories never contain, which the model knows only as pieces: " + pieces.join(", "));
    return { ids: ids, tokens: tokens, error: null, notes: notes };
  }

  // course_lib.demo_inputs.split_words: words cut into pieces, as "zebra (z ##eb ##ra)"
  function splitWords(tokens, prefix) {
    var groups = [];
    tokens.forEach(function (t) {
      if (t.startsWith(prefix) && groups.length) groups[groups.length - 1].push(t);
      else groups.push([t]);
    });
    return groups.filter(function (g) { return g.length > 1; }).map(function (g) {
      return g.map(function (p) { return p.startsWith(prefix) ? p.slice(prefix.length) : p; }).join("") + " (" + g.join(" ") + ")";
    });
  }

  var fillMask = {
    load: function (demo) {
      var base = siteUrl(demo.config.model);
      var runtime = loadRuntime();
      return Promise.all([runtime, fetchJson(base + "meta.json"), session(runtime, base + "bert_mlm.onnx")]).then(function (got) {
        var meta = got[1];
        meta.stoi = new Map();
        meta.vocab.forEach(function (s, i) { meta.stoi.set(s, i); });
        return { ort: got[0], meta: meta, bert: got[2] };
      });
    },
    run: async function (model, typed) {
      var meta = model.meta, ort = model.ort;
      var input = fillMaskInput(typed, meta);
      var result = { typed: typed, ids: input.ids, tokens: input.tokens, error: input.error, notes: input.notes, masks: [], attentions: null };
      if (input.error) return result;
      var T = input.ids.length, V = meta.vocab.length;
      var out = await model.bert.run({ input_ids: new ort.Tensor("int64", BigInt64Array.from(input.ids.map(BigInt)), [1, T]) });
      var probs = out.probs.data;
      input.ids.forEach(function (id, t) {
        if (id !== meta.mask_id) return;
        var row = probs.subarray(t * V, (t + 1) * V);
        var order = Array.from(row.keys()).sort(function (a, b) { return row[b] - row[a] || a - b; }).slice(0, meta.k);
        result.masks.push({ position: t, top: order.map(function (i) { return [meta.vocab[i], row[i]]; }) });
      });
      result.attentions = { data: Array.from(out.attentions.data), dims: out.attentions.dims.slice() }; // (1, L, H, T, T)
      return result;
    },
    render: function (demo, r) {
      var box = demo.output, meta = demo.model.meta;
      box.textContent = "";
      if (r.tokens.length) box.appendChild(el("p", { class: "course-demo-tokens" }, "tokens: " + r.tokens.join(" ")));
      if (r.error) { box.appendChild(el("p", { class: "course-demo-message" }, r.error)); return; }
      var parts = splitMessages(r.notes, meta.not_trained);
      parts[0].forEach(function (m) { box.appendChild(el("p", { class: "course-demo-message" }, m)); });
      if (parts[1]) box.appendChild(warning(meta.not_trained, parts[1]));
      r.masks.forEach(function (m, n) {
        var table = el("table", { class: "course-demo-topk" });
        table.appendChild(el("caption", {}, "[MASK] " + (n + 1) + " (token " + m.position + "): the " + meta.k + " likeliest tokens"));
        m.top.forEach(function (tp, i) {
          var tr = el("tr");
          tr.appendChild(el("td", {}, String(i + 1)));
          tr.appendChild(el("td", { class: "course-demo-token" }, tp[0]));
          tr.appendChild(el("td", { class: "course-demo-prob" }, tp[1].toFixed(4)));
          var bar = el("td");
          bar.appendChild(el("span", { class: "course-demo-bar", style: "width:" + (100 * tp[1]).toFixed(1) + "px" }));
          tr.appendChild(bar);
          table.appendChild(tr);
        });
        box.appendChild(table);
      });
      fillMask.drawAttention(demo, r);
    },
    drawAttention: function (demo, r) {
      var old = demo.output.querySelector(".course-demo-figure");
      if (old) old.remove();
      if (!r || r.error) return;
      var dims = r.attentions.dims, L = dims[1], H = dims[2], T = dims[3];
      var layer = +demo.root.querySelector(".course-demo-layer").value, head = +demo.root.querySelector(".course-demo-head").value;
      var w = [];
      for (var i = 0; i < T; i++) {
        var start = (((layer * H) + head) * T + i) * T;
        w.push(r.attentions.data.slice(start, start + T));
      }
      demo.output.appendChild(heatmap(w, r.tokens, r.tokens,
        "attention weights of layer " + layer + ", head " + head + " (of " + L + " layers and " + H + " heads, numbered from 0): each query token (row) over the key tokens (columns); " +
        "each row sums to 1; darker blue = more weight, read the values off the colour bar (or hover over a cell, or tap it)"));
      demo.root.dataset.attentionShown = layer + "," + head;
    },
  };

  // ------------------------------------------------------------------ wiring

  var KINDS = { dates: dates, "fill-mask": fillMask };

  CD.start = function (root, config) {
    var kind = root.dataset.demo, impl = KINDS[kind];
    var demo = { root: root, config: config, impl: impl, model: null, loading: null, busy: false, pending: null,
      status: root.querySelector(".course-demo-status"), output: root.querySelector(".course-demo-output") };
    var input = root.querySelector(".course-demo-input"), button = root.querySelector(".course-demo-run");
    root.courseDemo = demo;
    function status(text, cls) { demo.status.textContent = text; demo.status.className = "course-demo-status " + (cls || ""); }

    if (location.protocol === "file:") {
      status("This demo runs the chapter's trained model in your browser, which needs the book served over http, not opened " +
        "from disk: in a terminal, run `python -m http.server` in the book's _build/html folder, then open " +
        "http://localhost:8000/ and this chapter.", "course-demo-error");
      input.disabled = true; button.disabled = true;
      return;
    }
    var size = config.download_bytes ? ", " + mb(config.download_bytes) + " MB" : "";
    status("The model runs in your browser: it loads (ONNX Runtime Web and the chapter's trained weights" + size + ", once) " +
      "when you click in the box or on \u201crun the model\u201d.");

    function mb(bytes) { return (bytes / 1e6).toFixed(1); }
    progress.listeners.push(function (p) {
      if (!demo.model && demo.loading && p.total)
        status("loading ONNX Runtime Web and the model: " + mb(p.loaded) + " of " + mb(Math.max(p.total, p.loaded)) + " MB\u2026");
    });

    function load() {
      if (!demo.loading) {
        status("loading ONNX Runtime Web and the model\u2026");
        var t0 = performance.now();
        demo.loading = impl.load(demo).then(function (model) {
          demo.model = model;
          demo.loadMs = performance.now() - t0;
          root.dataset.loaded = "1";
          status("model loaded in " + Math.round(demo.loadMs) + " ms; it runs again at every keystroke.");
          return model;
        }, function (err) {
          demo.loading = null;
          status("could not load the model: " + err.message, "course-demo-error");
          throw err;
        });
      }
      return demo.loading;
    }

    async function pump() {
      if (demo.busy) return;
      demo.busy = true;
      try {
        while (demo.pending) {
          var job = demo.pending;
          demo.pending = null;
          try {
            await load();
          } catch (err) {
            demo.pending = null;
            break;
          }
          try {
            var t1 = performance.now();
            var result = await impl.run(demo.model, job.text);
            impl.render(demo, result);
            var done = performance.now();
            result.computeMs = done - t1;
            result.latencyMs = done - job.t0;
            CD.results[kind] = result;
            demo.last = result;
            root.dataset.latency = result.latencyMs.toFixed(3);
            root.dataset.renderedFor = job.text;
            root.dataset.runs = String((+root.dataset.runs || 0) + 1);
            requestAnimationFrame(function () { result.frameMs = performance.now() - job.t0; root.dataset.frameLatency = result.frameMs.toFixed(3); });
          } catch (err) {
            status("the model failed on this input: " + err.message, "course-demo-error");
            root.dataset.renderedFor = job.text;
          }
        }
      } finally {
        demo.busy = false;
      }
    }

    function request(t0) {
      demo.pending = { text: input.value, t0: t0 };
      pump();
    }

    input.addEventListener("focus", function () { load().catch(function () {}); });
    input.addEventListener("input", function (ev) { request(ev.timeStamp || performance.now()); });
    input.addEventListener("keydown", function (ev) { if (ev.key === "Enter") request(performance.now()); });
    button.addEventListener("click", function () { request(performance.now()); });
    var layer = root.querySelector(".course-demo-layer"), head = root.querySelector(".course-demo-head");
    [layer, head].forEach(function (sel) {
      if (sel) sel.addEventListener("change", function () { if (demo.last) fillMask.drawAttention(demo, demo.last); });
    });
  };

  // for tests (node): the tokenisers without the page
  CD._internals = { prepareDate: prepareDate, tokenize: tokenize, fillMaskInput: fillMaskInput, normalize: normalize,
    dateReasons: dateReasons, dateOutputProblem: dateOutputProblem, renderTemplate: renderTemplate, weekdayOf: weekdayOf };
})();
