/* MeterIT operator UI behaviour: charts, copy buttons, confirmations, point rows.
   Pages put their chart data in <script type="application/json" id="chart-data"> (the
   Content-Security-Policy allows no inline script), and mark canvases with data-chart. */
(function () {
  "use strict";

  var palette = ["#0f6cbd", "#e8590c", "#2f9e44", "#9c36b5", "#d6336c", "#1098ad",
                 "#f59f00", "#5c7cfa", "#495057", "#a61e4d", "#087f5b", "#862e9c"];
  var stateColours = { online: "#2da44e", late: "#d4a72c", offline: "#cf222e",
                       never: "#8c959f", inactive: "#d0d7de" };

  function chartData() {
    var el = document.getElementById("chart-data");
    return el ? JSON.parse(el.textContent) : {};
  }

  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function fmtTime(ms, withDate) {
    var d = new Date(ms);
    var t = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    return withDate ? (d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + t) : t;
  }
  var HOUR = 3600 * 1000;
  // Ticks a round step apart, as many as fit the chart's width with their labels apart: nine
  // on a laptop, three or four on a phone (a fixed count drew them over each other there).
  function timeAxis(span, min, max) {
    var longRange = span > 36 * HOUR;
    var steps = [HOUR / 12, HOUR / 4, HOUR / 2, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, 24 * HOUR, 48 * HOUR, 168 * HOUR, 336 * HOUR];
    var step = steps[steps.length - 1];
    return {
      type: "linear", min: min, max: max,
      afterBuildTicks: function (axis) {
        var room = axis.chart.width - 60; // less the y axis
        step = steps.find(function (s) {
          // px a label needs with a gap: "12-01" (a day or more), "12-01 10:00", "10:00"
          var label = s >= 24 * HOUR ? 50 : longRange ? 105 : 58;
          return span / s <= Math.max(2, Math.min(9, Math.floor(room / label)));
        }) || steps[steps.length - 1];
        var ticks = [];
        for (var v = Math.ceil(axis.min / step) * step; v <= axis.max; v += step) { ticks.push({ value: v }); }
        axis.ticks = ticks;
      },
      ticks: {
        autoSkip: false, maxRotation: 0,
        callback: function (v) {
          var full = fmtTime(v, true);
          if (step >= 24 * HOUR) { return full.slice(5, 10); }
          return longRange ? full.slice(5) : full.slice(11);
        }
      },
      grid: { display: false }
    };
  }
  function baseOptions() {
    return {
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "nearest", intersect: false },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { title: function (items) {
          return items.length && typeof items[0].parsed.x === "number" && items[0].chart.options.scales.x.type === "linear"
            ? fmtTime(items[0].parsed.x, true) + " UTC" : (items.length ? items[0].label : "");
        } } }
      }
    };
  }
  function points(x, y) {
    var out = [];
    for (var i = 0; i < x.length; i++) { out.push({ x: x[i], y: y[i] }); }
    return out;
  }
  function empty(canvas, text) {
    var div = document.createElement("div");
    div.className = "empty-chart";
    div.textContent = text;
    canvas.replaceWith(div);
  }

  var builders = {
    power: function (canvas, data) {
      var s = data.power;
      if (!s || !s.x.length) { return empty(canvas, "No power readings in the last 24 h"); }
      var opts = baseOptions();
      opts.scales = { x: timeAxis(s.to - s.from, s.from, s.to),
                      y: { beginAtZero: true, title: { display: true, text: "kW" } } };
      new Chart(canvas, { type: "line", options: opts, data: { datasets: [{
        label: "Fleet power (kW, hourly mean)", data: points(s.x, s.y), borderColor: palette[0],
        backgroundColor: "rgba(15,108,189,0.12)", fill: true, tension: 0.25,
        pointRadius: s.x.length < 3 ? 3 : 0 }] } });  // a site's first hour: a dot, not nothing
    },
    energyBySite: function (canvas, data) {
      var s = data.energy_by_site;
      if (!s || !s.values.length) { return empty(canvas, "No energy recorded today"); }
      var opts = baseOptions();
      opts.indexAxis = "y";
      canvas.parentNode.style.height = (60 + 30 * s.values.length) + "px";
      opts.scales = { x: { beginAtZero: true, title: { display: true, text: "kWh today" } },
                      y: { grid: { display: false }, ticks: { callback: function (v) {
                        // a long site name would push the bars off a phone: cut, the tooltip has it
                        var name = this.getLabelForValue(v), room = Math.floor(this.chart.width / 18);
                        return name.length > room ? name.slice(0, room - 1) + "…" : name;
                      } } } };
      new Chart(canvas, { type: "bar", options: opts, data: { labels: s.labels, datasets: [{
        label: "kWh today", data: s.values, backgroundColor: "#2f9e44", borderRadius: 3,
        maxBarThickness: 22 }] } });
    },
    states: function (canvas, data) {
      var s = data.states || {};
      var labels = Object.keys(s);
      if (!labels.length) { return empty(canvas, "No sites yet"); }
      var opts = baseOptions();
      opts.plugins.legend = { display: true, position: "right" };
      opts.cutout = "62%";
      new Chart(canvas, { type: "doughnut", options: opts, data: { labels: labels, datasets: [{
        data: labels.map(function (k) { return s[k]; }),
        backgroundColor: labels.map(function (k) { return stateColours[k] || "#999"; }) }] } });
    },
    heartbeats: function (canvas, data) {
      var s = data;
      if (!s.x || !s.x.length) { return empty(canvas, "No heartbeat received yet"); }
      var opts = baseOptions();
      opts.plugins.legend = { display: true, position: "top" };
      opts.scales = { x: timeAxis(s.x[s.x.length - 1] - s.x[0], s.x[0], s.x[s.x.length - 1]),
                      y: { beginAtZero: true, title: { display: true, text: "readings waiting" } },
                      y2: { beginAtZero: true, position: "right", grid: { display: false },
                            ticks: { precision: 0 }, title: { display: true, text: "unreachable meters" } } };
      new Chart(canvas, { type: "line", options: opts, data: { datasets: [
        { label: "Backlog", data: points(s.x, s.backlog), borderColor: palette[0], pointRadius: 2, tension: 0.2 },
        { label: "Unreachable meters", data: points(s.x, s.unreachable), borderColor: "#cf222e",
          pointRadius: 2, stepped: true, yAxisID: "y2" }] } });
    },
    explorer: function (canvas, data) {
      var series = data.series || [];
      var any = series.some(function (s) { return s.x.length; });
      if (!any) { return empty(canvas, "No readings in this range"); }
      var units = [];
      series.forEach(function (s) { if (units.indexOf(s.unit) < 0) { units.push(s.unit); } });
      var lo = Infinity, hi = -Infinity;
      series.forEach(function (s) { if (s.x.length) { lo = Math.min(lo, s.x[0]); hi = Math.max(hi, s.x[s.x.length - 1]); } });
      var opts = baseOptions();
      opts.plugins.legend = { display: true, position: "top" };
      opts.scales = { x: timeAxis((data.to - data.from) || (hi - lo), data.from || lo, data.to || hi) };
      units.forEach(function (u, i) {
        opts.scales["y" + i] = { position: i % 2 ? "right" : "left", grid: { display: i === 0 },
                                 title: { display: true, text: u || "(no unit)" } };
      });
      new Chart(canvas, { type: "line", options: opts, data: { datasets: series.map(function (s, i) {
        return { label: s.label, data: points(s.x, s.y), borderColor: palette[i % palette.length],
                 backgroundColor: palette[i % palette.length], pointRadius: s.x.length > 200 ? 0 : 2,
                 borderWidth: 1.6, tension: 0.15, yAxisID: "y" + units.indexOf(s.unit) };
      }) } });
    }
  };

  function drawCharts() {
    if (typeof Chart === "undefined") { return; }
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#5f6b7a";
    var data = chartData();
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var build = builders[canvas.getAttribute("data-chart")];
      if (build) { build(canvas, data); }
    });
  }

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var target = document.getElementById(btn.getAttribute("data-copy"));
        var text = target.textContent.trim();
        var done = function () { btn.textContent = "Copied ✓"; setTimeout(function () { btn.textContent = "Copy"; }, 2500); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { selectAndCopy(target); done(); });
        } else { selectAndCopy(target); done(); }
      });
    });
  }
  function selectAndCopy(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try { document.execCommand("copy"); } catch (e) { /* the key stays selected for Ctrl+C */ }
  }

  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { ev.preventDefault(); }
      });
    });
  }

  function pointRows() {
    var add = document.getElementById("add-point");
    if (!add) { return; }
    add.addEventListener("click", function () {
      var body = document.querySelector("table.points tbody");
      var last = body.querySelector("tr:last-child");
      var row = last.cloneNode(true);
      row.querySelectorAll("input").forEach(function (i) { i.value = ""; });
      body.appendChild(row);
      row.querySelector("input").focus();
    });
    document.querySelector("table.points").addEventListener("click", function (ev) {
      if (ev.target.matches("[data-clear-row]")) {
        ev.target.closest("tr").querySelectorAll("input").forEach(function (i) { i.value = ""; });
      }
    });
  }

  function rangeInputs() {
    var range = document.getElementById("range");
    if (!range) { return; }
    var custom = document.getElementById("custom-range");
    var sync = function () { custom.hidden = range.value !== "custom"; };
    range.addEventListener("change", sync);
    sync();
    var site = document.getElementById("site");
    site.addEventListener("change", function () { site.form.submit(); });
  }

  // report forms: offer the browser's own time zone instead of UTC
  function localZones() {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    if (!zone) { return; }
    document.querySelectorAll("input[data-local-zone]").forEach(function (input) {
      if (input.value === "UTC") { input.value = zone; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(); copyButtons(); confirmations(); pointRows(); rangeInputs(); localZones();
  });
})();

// The rule form: only the chosen kind's parameters are shown (all are shown without script).
(function () {
  var kind = document.getElementById("kind");
  if (!kind) { return; }
  function show() {
    document.querySelectorAll("fieldset.params").forEach(function (set) {
      set.hidden = set.getAttribute("data-kind") !== kind.value;
    });
  }
  kind.addEventListener("change", show);
  show();
})();
