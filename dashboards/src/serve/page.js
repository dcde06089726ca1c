// culla live dashboard: fetches the named queries of the panels from this server's
// /api/query/<name>, draws them as inline SVG, and polls /api/status every 5 s so data
// committed by ingest shows up without a reload (`?refresh=0` draws once and stops:
// for printing, screenshots and headless browsers). No external resources.
"use strict";
(function () {
  const D = window.CULLA_DASH, T = window.CULLA_T, LANG = window.CULLA_LANG;
  const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8C6D00"];
  const SEQ = ["#fde725", "#5ec962", "#21918c", "#3b528b", "#440154"];
  const DASH = ["none", "6 3", "2 3", "8 3 2 3", "1 2"];
  const MIN = window.CULLA_MIN_COUNT;
  const SECONDARY = "c";
  const LIVE = new URLSearchParams(window.location.search).get("refresh") !== "0";
  const nf = (d) => new Intl.NumberFormat(LANG === "it" ? "it-IT" : "en-GB",
    { minimumFractionDigits: d, maximumFractionDigits: d, useGrouping: "always" });
  const errors = [];
  function fail(msg) {
    errors.push(String(msg));
    document.body.setAttribute("data-errors", errors.join(" | "));
    console.error(msg);
  }
  window.addEventListener("error", (e) => fail(e.message));
  window.addEventListener("unhandledrejection", (e) => fail(e.reason));

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function t(id) { return T[id] || id; }
  function label(col, v) {
    if (v === null || v === undefined) return "–";
    const s = String(v);
    const pre = { category: "cat", reason: "reason", flag: "flag", channel: "channel", comune: "comune" }[col];
    if (pre && T[pre + "." + s]) return T[pre + "." + s];
    if (s === "unknown") return t("word.unknown");
    if (col === "month" && /^\d{4}-\d{2}$/.test(s)) return T.months[parseInt(s.slice(5), 10) - 1] + " " + s.slice(0, 4);
    if (col === "weekday") return T.weekdays[parseInt(s, 10) - 1] || s;
    if (col === "hour") return s.padStart(2, "0");
    if (col === "municipio") return "Municipio " + s;
    return s;
  }
  function fmt(v, format, isCount) {
    if (v === null || v === undefined) return isCount ? "<" + MIN : "–";
    if (typeof v !== "number") return String(v);
    if (isCount && v > 0 && v < MIN) return "<" + MIN;
    if (format === "pct") return nf(1).format(v * 100) + "%";
    if (format === "num") return nf(1).format(v);
    return nf(0).format(v);
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p * 1.000001) return m * p;
    return 10 * p;
  }
  function col(res, name) { return res.columns.indexOf(name); }
  // Whether disclosure control hid column `name` of row `r` as the partner of a small
  // cell (its value may be large: written "c", not "<5").
  function partner(res, r, name) {
    const i = col(res, "suppressed_secondary");
    return i >= 0 && typeof r[i] === "string" && r[i].split(",").indexOf(name) >= 0;
  }
  function distinct(res, name) {
    const i = col(res, name), seen = [];
    if (i < 0) return seen;
    for (const r of res.rows) if (!seen.some((x) => x === r[i])) seen.push(r[i]);
    return seen;
  }
  function svgOpen(id, w, h, title, desc) {
    return '<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ' + w + " " + h +
      '" role="img" aria-labelledby="' + id + "-t " + id + '-d" font-size="12"><title id="' + id + '-t">' +
      esc(title) + '</title><desc id="' + id + '-d">' + esc(desc) + "</desc>";
  }
  // Striped: a small hidden count ("<5"); checked: one withheld as its partner ("c").
  function hatch(id) {
    return '<defs><pattern id="' + id + '" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
      '<rect width="6" height="6" fill="#eeeeee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#6b6b6b" stroke-width="2"/></pattern>' +
      '<pattern id="' + id + '-c" width="8" height="8" patternUnits="userSpaceOnUse"><rect width="8" height="8" fill="#eeeeee"/>' +
      '<rect width="4" height="4" fill="#6b6b6b"/><rect x="4" y="4" width="4" height="4" fill="#6b6b6b"/></pattern></defs>';
  }
  // Why a row's value is hidden: "small" when one of its counts is a hidden small one,
  // else "partner" when one was withheld as a partner, else null (missing, not hidden).
  function hiddenKind(res, r) {
    const si = col(res, "suppressed");
    if (si < 0 || typeof r[si] !== "string") return null;
    const counts = r[si].split(",").filter((c) => res.counts.indexOf(c) >= 0);
    if (counts.some((c) => !partner(res, r, c))) return "small";
    return counts.length ? "partner" : null;
  }

  // Series for line and bar charts: one per `series` value, or one per y column.
  function seriesOf(p, res) {
    const xs = distinct(res, p.x).filter((x) => x !== null);
    const xi = col(res, p.x);
    const out = [];
    // Counts add up over the rows of one x (lines, channels); a rate is the mean of
    // the rows' rates weighted by the count it is a rate of (its denominator, from the
    // panel's `weights`), which is the rate of the summed counts.
    const agg = (rows, yi, y) => {
      const wi = p.weights && p.weights[y] ? col(res, p.weights[y]) : -1;
      let sum = 0, den = 0;
      for (const r of rows) {
        const v = r[yi];
        if (typeof v !== "number") continue;
        const w = p.format === "count" ? 1 : wi >= 0 ? r[wi] : 1;
        if (typeof w !== "number") continue;
        sum += p.format === "count" ? v : v * w;
        den += w;
      }
      if (den === 0) return null;
      return p.format === "count" ? sum : sum / den;
    };
    if (p.series) {
      const si = col(res, p.series), yi = col(res, p.y[0]);
      // Series in a fixed (sorted) order, so a line's colour does not move when data arrives.
      for (const s of distinct(res, p.series).filter((v) => v !== null).sort()) {
        out.push({ name: label(p.series, s), values: xs.map((x) => agg(res.rows.filter((r) => r[xi] === x && r[si] === s), yi, p.y[0])) });
      }
    } else {
      for (const y of p.y) {
        const yi = col(res, y);
        out.push({ name: t("col." + y) !== "col." + y ? t("col." + y) : y, values: xs.map((x) => agg(res.rows.filter((r) => r[xi] === x), yi, y)) });
      }
    }
    return { xs, out };
  }

  function yAxis(left, top, pw, ph, max, format) {
    let o = "";
    for (let i = 0; i <= 4; i++) {
      const v = max * i / 4, y = top + ph - ph * i / 4;
      o += '<line x1="' + left + '" x2="' + (left + pw) + '" y1="' + y + '" y2="' + y + '" stroke="#d0d0d0"/>' +
        '<text x="' + (left - 6) + '" y="' + (y + 4) + '" text-anchor="end" fill="#1a1a1a">' + esc(fmt(v, format, false)) + "</text>";
    }
    return o;
  }
  function legend(series, lines) {
    let o = "", x = 64;
    series.forEach((s, i) => {
      const c = PALETTE[i % 5];
      o += lines
        ? '<line x1="' + x + '" x2="' + (x + 18) + '" y1="12" y2="12" stroke="' + c + '" stroke-width="3" stroke-dasharray="' + DASH[i % 5] + '"/>'
        : '<rect x="' + x + '" y="6" width="12" height="12" fill="' + c + '"/>';
      o += '<text x="' + (x + 22) + '" y="16" fill="#1a1a1a">' + esc(s.name) + "</text>";
      x += 34 + 7 * s.name.length;
    });
    return o;
  }

  function xyChart(p, res, kind) {
    const { xs, out } = seriesOf(p, res);
    // Long category labels (needs) are slanted so neighbours do not overlap.
    const longest = Math.max(0, ...xs.map((x) => String(label(p.x, x)).length));
    const slant = longest * 6.5 > (720 - 76) / Math.max(xs.length, 1);
    const w = 720, h = slant ? 300 + Math.min(longest, 24) * 4.5 : 300, top = 28, ph = 232;
    const left = slant ? Math.max(64, Math.min(longest, 24) * 5.4 - 8) : 64, pw = w - left - 12;
    let max = 0;
    out.forEach((s) => s.values.forEach((v) => { if (v !== null && v > max) max = v; }));
    if (p.target) max = Math.max(max, p.target);
    max = p.format === "pct" ? 1 : niceMax(max);
    const step = pw / Math.max(xs.length, 1);
    let best = null;
    out.forEach((s) => s.values.forEach((v, i) => { if (v !== null && (!best || v > best.v)) best = { v, x: xs[i], s: s.name }; }));
    const desc = (kind === "bar" ? t("dash.desc_bar") : t("dash.desc_line")) + " " +
      (best ? t("dash.desc_max") + " " + label(p.x, best.x) + " (" + best.s + "): " + fmt(best.v, p.format, p.format === "count") + "." : t("word.nodata"));
    let o = svgOpen("svg-" + p.id, w, h, p.title, desc) + yAxis(left, top, pw, ph, max, p.format);
    const every = Math.ceil(xs.length / 12);
    xs.forEach((x, i) => {
      if (i % every !== 0) return;
      const lx = left + step * (i + 0.5), ly = top + ph + 16;
      o += slant
        ? '<text x="' + lx + '" y="' + ly + '" text-anchor="end" transform="rotate(-35 ' + lx + " " + (ly - 4) + ')" fill="#1a1a1a">' + esc(label(p.x, x)) + "</text>"
        : '<text x="' + lx + '" y="' + ly + '" text-anchor="middle" fill="#1a1a1a">' + esc(label(p.x, x)) + "</text>";
    });
    if (kind === "bar") {
      const bw = Math.max(step * 0.8 / Math.max(out.length, 1), 1);
      out.forEach((s, si) => s.values.forEach((v, i) => {
        if (v === null) return;
        const bh = ph * v / max;
        o += '<rect class="bar" x="' + (left + step * i + step * 0.1 + bw * si) + '" y="' + (top + ph - bh) + '" width="' + bw + '" height="' + bh +
          '" fill="' + PALETTE[si % 5] + '"><title>' + esc(label(p.x, xs[i]) + " · " + s.name + ": " + fmt(v, p.format, p.format === "count")) + "</title></rect>";
      }));
    } else {
      const yOf = (v) => top + ph - ph * Math.min(Math.max(v / max, 0), 1);
      if (p.target) {
        o += '<line class="target" x1="' + left + '" x2="' + (left + pw) + '" y1="' + yOf(p.target) + '" y2="' + yOf(p.target) +
          '" stroke="#1a1a1a" stroke-width="1.5" stroke-dasharray="5 4"/><text x="' + (left + pw - 4) + '" y="' + (yOf(p.target) - 5) +
          '" text-anchor="end" font-weight="bold" fill="#1a1a1a">' + esc(t("word.target") + " " + fmt(p.target, p.format, false)) + "</text>";
      }
      out.forEach((s, si) => {
        let d = "", pen = false;
        s.values.forEach((v, i) => {
          if (v === null) { pen = false; return; }
          d += (pen ? "L" : "M") + (left + step * (i + 0.5)).toFixed(1) + "," + yOf(v).toFixed(1);
          pen = true;
        });
        if (d) o += '<path class="series" d="' + d + '" fill="none" stroke="' + PALETTE[si % 5] + '" stroke-width="2.5" stroke-dasharray="' + DASH[si % 5] + '"/>';
        s.values.forEach((v, i) => {
          if (v === null) return;
          o += '<circle cx="' + (left + step * (i + 0.5)) + '" cy="' + yOf(v) + '" r="3.5" fill="' + PALETTE[si % 5] + '"><title>' +
            esc(label(p.x, xs[i]) + " · " + s.name + ": " + fmt(v, p.format, false)) + "</title></circle>";
        });
      });
    }
    o += '<line x1="' + left + '" x2="' + (left + pw) + '" y1="' + (top + ph) + '" y2="' + (top + ph) + '" stroke="#1a1a1a"/>';
    return o + legend(out, kind === "line") + "</svg>";
  }

  function heatmap(p, res) {
    const num = (a, b) => Number(a) - Number(b);
    const xs = distinct(res, p.x).filter((x) => x !== null).sort(num);
    const ys = distinct(res, p.series).filter((x) => x !== null).sort(num);
    const xi = col(res, p.x), si = col(res, p.series), vi = col(res, p.y[0]);
    const cw = 27, chh = 26, left = 48, top = 30;
    const w = left + cw * xs.length + 10, h = top + chh * ys.length + 72;
    // A cell is a number, or "small" / "partner" when hidden. A sum with a hidden part
    // is "small" only when every other part is 0 (else its value may be large).
    const grid = ys.map((y) => xs.map((x) => {
      const rows = res.rows.filter((r) => r[xi] === x && r[si] === y);
      const hidden = rows.filter((r) => typeof r[vi] !== "number");
      const sum = rows.reduce((a, r) => a + (typeof r[vi] === "number" ? r[vi] : 0), 0);
      if (!hidden.length) return sum;
      if (hidden.length === 1 && sum === 0 && !partner(res, hidden[0], p.y[0])) return "small";
      return "partner";
    }));
    const isNum = (v) => typeof v === "number";
    let max = 1, best = null;
    grid.forEach((row, i) => row.forEach((v, j) => { if (isNum(v) && v > max) max = v; if (isNum(v) && (!best || v > best.v)) best = { v, y: ys[i], x: xs[j] }; }));
    const desc = t("dash.desc_heat") + (best ? " " + t("dash.desc_max") + " " + label(p.series, best.y) + " " + label(p.x, best.x) + ": " + fmt(best.v, "count", true) + "." : "");
    let o = svgOpen("svg-" + p.id, w, h, p.title, desc) + hatch("h-" + p.id);
    xs.forEach((x, j) => { o += '<text x="' + (left + cw * (j + 0.5)) + '" y="' + (top - 6) + '" text-anchor="middle" font-size="10" fill="#1a1a1a">' + esc(label(p.x, x)) + "</text>"; });
    ys.forEach((y, i) => {
      o += '<text x="' + (left - 6) + '" y="' + (top + chh * i + chh / 2 + 4) + '" text-anchor="end" fill="#1a1a1a">' + esc(label(p.series, y)) + "</text>";
      xs.forEach((x, j) => {
        const v = grid[i][j];
        const fill = v === "small" ? "url(#h-" + p.id + ")" : v === "partner" ? "url(#h-" + p.id + "-c)" : SEQ[Math.min(Math.floor(v / max * 5), 4)];
        const text = v === "small" ? t("word.suppressed") : v === "partner" ? t("word.secondary") : fmt(v, "count", true);
        o += '<rect class="cell" x="' + (left + cw * j) + '" y="' + (top + chh * i) + '" width="' + cw + '" height="' + chh + '" fill="' + fill +
          '" stroke="#ffffff"><title>' + esc(label(p.series, y) + " " + label(p.x, x) + ": " + text) + "</title></rect>";
      });
    });
    const ly = top + chh * ys.length + 18;
    SEQ.forEach((c, k) => {
      o += '<rect x="' + (left + 96 * k) + '" y="' + ly + '" width="14" height="14" fill="' + c + '" stroke="#1a1a1a" stroke-width="0.5"/>' +
        '<text x="' + (left + 96 * k + 18) + '" y="' + (ly + 11) + '" fill="#1a1a1a">≥ ' + esc(fmt(max * k / 5, "count", false)) + "</text>";
    });
    [["", "word.suppressed"], ["-c", "word.secondary"]].forEach(([suffix, id], k) => {
      o += '<rect x="' + (left + 192 * k) + '" y="' + (ly + 22) + '" width="14" height="14" fill="url(#h-' + p.id + suffix + ')" stroke="#1a1a1a" stroke-width="0.5"/>' +
        '<text x="' + (left + 192 * k + 18) + '" y="' + (ly + 33) + '" fill="#1a1a1a">' + esc(t(id)) + "</text>";
    });
    return o + "</svg>";
  }

  let shapes = null;
  function map(p, res) {
    if (!shapes) return "<p>" + esc(t("word.nodata")) + "</p>";
    const ni = col(res, "nil"), vi = col(res, p.y[0]);
    const byNil = {};
    res.rows.forEach((r) => { byNil[String(r[ni])] = r; });
    let max = 0;
    res.rows.forEach((r) => { if (typeof r[vi] === "number" && r[vi] > max) max = r[vi]; });
    max = niceMax(max);
    let suppressed = 0, shown = 0, paths = "";
    shapes.shapes.forEach((s) => {
      const r = byNil[String(s.nil)];
      let fill = "#f2f2f2", what = t("word.nodata");
      const why = r && r[vi] === null ? hiddenKind(res, r) : null;
      if (why === "small") { fill = "url(#h-" + p.id + ")"; what = t("word.suppressed"); suppressed++; }
      else if (why === "partner") { fill = "url(#h-" + p.id + "-c)"; what = t("word.secondary"); suppressed++; }
      else if (r && typeof r[vi] === "number") { fill = SEQ[Math.min(Math.floor(r[vi] / max * 5), 4)]; what = fmt(r[vi], p.format, false); shown++; }
      paths += '<path class="nil" data-nil="' + s.nil + '" d="' + s.d + '" fill="' + fill + '" stroke="#5a5a5a" stroke-width="0.6"><title>' +
        esc(s.name + " (NIL " + s.nil + "): " + what) + "</title></path>";
    });
    const desc = t("dash.desc_map") + " " + shown + " NIL; " + t("dash.hidden") + ": " + suppressed + ".";
    // The legend is drawn large (font 17 in map units): the map is scaled down to fit.
    const lx = shapes.width + 16, row = 30, box = 22;
    let o = svgOpen("svg-" + p.id, shapes.width + 250, Math.max(shapes.height, 32 + row * 8), p.title, desc) + hatch("h-" + p.id) + "<g>" + paths + '</g><g font-size="17">';
    const item = (k, fill, text) => '<rect x="' + lx + '" y="' + (24 + row * k) + '" width="' + box + '" height="' + box + '" fill="' + fill +
      '" stroke="#1a1a1a" stroke-width="0.5"/><text x="' + (lx + box + 8) + '" y="' + (24 + row * k + 17) + '" fill="#1a1a1a">' + esc(text) + "</text>";
    SEQ.forEach((c, k) => { o += item(k, c, fmt(max * k / 5, p.format, false) + "–" + fmt(max * (k + 1) / 5, p.format, false)); });
    [["url(#h-" + p.id + ")", "word.suppressed"], ["url(#h-" + p.id + "-c)", "word.secondary"], ["#f2f2f2", "word.nodata"]].forEach(([fill, id], k) => {
      o += item(5 + k, fill, t(id));
    });
    o += "</g>";
    return o + "</svg>";
  }

  function table(p, res, cols) {
    const names = cols && cols.length ? cols.filter((c) => col(res, c) >= 0)
      : res.columns.filter((c) => c !== "suppressed" && c !== "suppressed_secondary");
    // A table panel's caption repeats its figure's caption: kept for screen readers only.
    let o = "<table><caption" + (p.chart === "table" ? ' class="vh"' : "") + ">" + esc(p.title) + "</caption><thead><tr>";
    names.forEach((c, i) => { o += '<th scope="col"' + (i ? ' class="n"' : "") + ">" + esc(T["col." + c] || c) + "</th>"; });
    o += "</tr></thead><tbody>";
    if (!res.rows.length) o += '<tr><td colspan="' + names.length + '">' + esc(t("word.nodata")) + "</td></tr>";
    res.rows.forEach((r) => {
      o += "<tr>";
      names.forEach((c, i) => {
        const v = r[col(res, c)];
        const isCount = res.counts.indexOf(c) >= 0;
        const shareLike = /(_rate|_share|^share|service_level)$/.test(c);
        // Keys (hour, weekday, NIL, Municipio, year) are labels, not quantities.
        const isKey = /^(hour|weekday|nil|municipio|month|year|births_year)$/.test(c);
        const text = v === null ? (isCount && partner(res, r, c) ? SECONDARY : fmt(null, "num", isCount))
          : isKey || typeof v !== "number" ? label(c, v)
          : fmt(v, isCount ? "count" : shareLike ? "pct" : Number.isInteger(v) ? "count" : "num", isCount);
        o += i ? '<td class="n">' + esc(text) + "</td>" : '<th scope="row">' + esc(text) + "</th>";
      });
      o += "</tr>";
    });
    return o + "</tbody></table>";
  }

  function draw(p, res) {
    const fig = document.getElementById("p-" + p.id);
    const chart = fig.querySelector(".chart-area"), data = fig.querySelector(".data-area");
    let svg = "";
    if (p.chart === "line" || p.chart === "bar") svg = xyChart(p, res, p.chart);
    else if (p.chart === "heatmap") svg = heatmap(p, res);
    else if (p.chart === "map") svg = map(p, res);
    chart.innerHTML = svg;
    const cols = p.chart === "table" ? p.y : [p.series, p.x, "nil_name", "source", ...p.y].filter((c, i, a) => c && a.indexOf(c) === i);
    const html = table(p, res, p.chart === "table" ? cols : cols.filter((c) => col(res, c) >= 0));
    if (p.chart === "table") { chart.innerHTML = html; data.closest("details").hidden = true; } else data.innerHTML = html;
    const note = fig.querySelector(".note");
    note.textContent = res.municipio_filter === "not_applicable" ? t("dash.no_municipio") : "";
  }

  const sel = (id) => document.getElementById(id);
  let lastSeq = -1, lastKey = "";
  function query() {
    const q = new URLSearchParams();
    if (sel("f-year").value) q.set("year", sel("f-year").value);
    if (sel("f-source").value) q.set("source", sel("f-source").value);
    if (sel("f-municipio").value) q.set("municipio", sel("f-municipio").value);
    return q.toString();
  }
  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }
  async function refresh() {
    const q = query();
    // One request at a time: the server answers one at a time anyway, and a burst of
    // parallel fetches could leave one stalled behind idle keep-alive connections.
    for (const p of D.panels) {
      try { draw(p, await getJSON("/api/query/" + encodeURIComponent(p.query) + "?" + q)); }
      catch (e) { fail(e.message || e); }
    }
    document.body.setAttribute("data-loaded", String(lastSeq));
    sel("status").textContent = t("dash.updated") + ": " + new Date().toLocaleTimeString(LANG === "it" ? "it-IT" : "en-GB") + " · " + t(LIVE ? "dash.live" : "dash.static");
  }
  // withAll: an "all" option first. Years have none: public tables by territory, need
  // or family characteristic are released per calendar year.
  function fillSelect(id, values, current, labelOf, withAll = true) {
    const s = sel(id), keep = current !== undefined ? current : s.value;
    s.innerHTML = (withAll ? '<option value="">' + esc(t("dash.all")) + "</option>" : "") +
      values.map((v) => '<option value="' + esc(v) + '">' + esc(labelOf ? labelOf(v) : v) + "</option>").join("");
    s.value = values.map(String).indexOf(String(keep)) >= 0 ? keep : "";
  }
  async function poll() {
    try {
      const st = await getJSON("/api/status");
      const first = lastSeq < 0;
      if (first || st.seq !== lastSeq) {
        const y = sel("f-year").value;
        const newest = st.years.length ? st.years[st.years.length - 1] : "";
        fillSelect("f-year", st.years, first || st.years.map(String).indexOf(String(y)) < 0 ? newest : y, undefined, false);
        fillSelect("f-source", st.sources);
      }
      if (first) fillSelect("f-municipio", [1, 2, 3, 4, 5, 6, 7, 8, 9], "", (m) => "Municipio " + m);
      const key = query();
      if (st.seq !== lastSeq || key !== lastKey) {
        lastSeq = st.seq; lastKey = key;
        await refresh();
      }
    } catch (e) { fail(e.message || e); }
  }
  async function start() {
    if (D.panels.some((p) => p.chart === "map")) {
      try { shapes = await getJSON("/api/nil-shapes"); } catch (e) { fail(e.message || e); }
    }
    ["f-year", "f-source", "f-municipio"].forEach((id) => sel(id).addEventListener("change", () => { lastKey = ""; poll(); }));
    await poll();
    if (LIVE) setInterval(poll, 5000);
  }
  start();
})();
