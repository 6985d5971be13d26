/* Shared helpers of the local UI pages: JSON calls with the CSRF token, formatting, charts. */
"use strict";

window.MeterIT = (function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  async function api(url, options = {}) {
    const opts = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
    if (opts.method && opts.method !== "GET") {
      opts.headers["X-CSRFToken"] = csrf;
      if (opts.json !== undefined) {
        opts.headers["Content-Type"] = "application/json";
        opts.body = JSON.stringify(opts.json);
      }
    }
    let response;
    try {
      response = await fetch(url, opts);
    } catch (err) {
      return { ok: false, status: 0, body: { error: "the appliance does not answer (" + err.message + ")" } };
    }
    if (response.status === 401) {
      window.location = "/login?next=" + encodeURIComponent(location.pathname);
      return { ok: false, status: 401, body: { error: "logged out" } };
    }
    let body = {};
    try { body = await response.json(); } catch (err) { body = { error: "HTTP " + response.status }; }
    return { ok: response.ok, status: response.status, body };
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fmtValue(value) {
    if (value === null || value === undefined) return "–";
    const abs = Math.abs(value);
    const digits = abs >= 10000 ? 0 : abs >= 100 ? 1 : abs >= 1 ? 2 : 3;
    return value.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
  }

  function fmtCount(n) {
    return n === null || n === undefined ? "–" : Number(n).toLocaleString();
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    if (seconds < 86400) {
      const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
      return h + " h" + (m ? " " + m + " min" : "");
    }
    const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
    return d + " d" + (h ? " " + h + " h" : "");
  }

  function ago(iso, nowIso) {
    if (!iso) return "never";
    const now = nowIso ? Date.parse(nowIso) : Date.now();
    return duration((now - Date.parse(iso)) / 1000) + " ago";
  }

  function clock(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString() : d.toLocaleString();
  }

  /* "since 14:02:11 (5 min ago)" with the full date in the tooltip */
  function since(iso, nowIso) {
    if (!iso) return el("span", { text: "–" });
    return el("time", { dateTime: iso, title: new Date(iso).toString(), text: clock(iso) + " (" + ago(iso, nowIso) + ")" });
  }

  const STATE_LABEL = { reachable: "Reachable", "no-values": "Answers, no values", unreachable: "Unreachable", unknown: "Not polled yet" };

  function badge(state) {
    return el("span", { class: "badge state-" + state, "data-state": state, text: STATE_LABEL[state] || state });
  }

  /* A uPlot chart of one downsampled series (average line, min–max band) that follows its
     container's width. */
  function chart(container, height) {
    let plot = null;
    let unit = "";
    let window_ = [null, null]; // the asked-for range: a chart of a new meter still spans 24 h
    const observer = new ResizeObserver(() => {
      if (plot) plot.setSize({ width: container.clientWidth, height });
    });
    observer.observe(container);
    function options(series) {
      unit = series.unit;
      const fmt = (u, v) => (v === null || v === undefined ? "–" : fmtValue(v) + (unit ? " " + unit : ""));
      return {
        width: container.clientWidth || 300,
        height,
        legend: { show: height > 200 },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true, range: (u, min, max) => [window_[0] ?? min, window_[1] ?? max] } },
        axes: [
          { stroke: "#667085", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#eef0f3" } },
          { stroke: "#667085", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#eef0f3" }, size: 60,
            values: (u, vals) => vals.map((v) => fmtValue(v)) },
        ],
        series: [
          {},
          { label: "min", stroke: "rgba(37,99,235,0.25)", width: 1, value: fmt },
          { label: "max", stroke: "rgba(37,99,235,0.25)", width: 1, value: fmt },
          { label: "average", stroke: "#2563eb", width: 2, value: fmt },
        ],
        bands: [{ series: [2, 1], fill: "rgba(37,99,235,0.10)" }],
      };
    }
    return {
      show(series) {
        window_ = [Date.parse(series.start) / 1000, Date.parse(series.end) / 1000];
        const data = [series.t, series.min, series.max, series.avg];
        container.classList.toggle("nodata", series.t.length === 0);
        if (plot && unit === series.unit) {
          plot.setData(data);
          return;
        }
        if (plot) plot.destroy();
        container.textContent = "";
        plot = new uPlot(options(series), data, container);
        container.uplot = plot; // for the console, and the browser tests' axis-label check
      },
    };
  }

  return { api, el, fmtValue, fmtCount, duration, ago, clock, since, badge, chart, STATE_LABEL };
})();
