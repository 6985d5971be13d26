/* One meter: facts, every point's newest value, a chart over a chosen range, recent errors. */
"use strict";
(function () {
  const { api, el, fmtValue, fmtCount, since, ago, badge, chart } = window.MeterIT;
  const script = document.currentScript;
  const POLL_MS = Number(script.dataset.pollMs) || 5000;
  const externalId = script.dataset.meter;
  const pointSelect = document.getElementById("point");
  const rangeSelect = document.getElementById("range");
  const note = document.getElementById("chart-note");
  const plot = chart(document.getElementById("chart"), 300);
  let pointsKey = "";
  let chartLoadedAt = 0;

  function fact(label, ...value) {
    return [el("dt", { text: label }), el("dd", {}, ...value)];
  }

  function render(data) {
    const m = data.meter, now = data.now;
    document.getElementById("meter-state").replaceWith(Object.assign(badge(m.state), { id: "meter-state" }));
    document.getElementById("meter-facts").replaceChildren(
      el("dl", { class: "facts" },
        ...fact("Connectivity", m.state === "unknown" ? "not polled yet" : el("span", {}, m.state + " since ", since(m.state_since, now))),
        ...fact("Last reading", m.last_reading_at ? since(m.last_reading_at, now) : "none yet"),
        ...fact("External id", m.external_id),
        ...fact("Address", m.address || "–", m.device_instance !== null ? " · device " + m.device_instance : ""),
        ...fact("Configured by", m.source === "central" ? "central" : "local meters file", m.active ? "" : " (deactivated)"),
        ...fact("Points", String(m.points)),
        ...fact("Failed polls in a row", String(m.consecutive_failures)),
        ...fact("Waiting for upload", fmtCount(m.backlog) + " readings"),
      ),
    );
    const tbody = document.querySelector("#points tbody");
    tbody.replaceChildren(
      ...m.values.map((v) =>
        el("tr", { "data-point": v.point, class: m.point_errors[v.point] ? "failing" : "" },
          el("td", { text: v.point }),
          el("td", { class: "num v", text: fmtValue(v.value) }),
          el("td", { text: v.unit }),
          el("td", { class: "muted small", text: v.ts ? ago(v.ts, now) : "never" })),
      ),
    );
    const errors = [];
    if (m.last_error) {
      errors.push(el("div", { class: "errline" }, el("b", { text: ago(m.last_error_at, now) + ": " }), m.last_error));
    }
    for (const [point, text] of Object.entries(m.point_errors || {})) {
      errors.push(el("div", { class: "errline" }, el("b", { text: point + ": " }), text));
    }
    document.getElementById("errors").replaceChildren(
      ...(errors.length ? errors : [el("p", { class: "muted", text: "No errors: every point answered on the last poll." })]),
    );
    const key = m.values.map((v) => v.point).join(",");
    if (key !== pointsKey) {
      const current = pointSelect.value;
      pointsKey = key;
      pointSelect.replaceChildren(...m.values.map((v) => el("option", { value: v.point, text: v.point + (v.unit ? " (" + v.unit + ")" : "") })));
      const wanted = current || (m.values.find((v) => v.point === "power_kw") || m.values[0] || {}).point;
      if (wanted) pointSelect.value = wanted;
      loadChart();
    }
  }

  async function loadChart() {
    if (!pointSelect.value) return;
    chartLoadedAt = Date.now();
    const q = new URLSearchParams({ meter: externalId, point: pointSelect.value, hours: rangeSelect.value, buckets: "400" });
    const res = await api("/api/local/series?" + q);
    if (!res.ok) { note.textContent = res.body.error; return; }
    plot.show(res.body);
    const bucket = res.body.bucket_s;
    note.textContent = res.body.t.length
      ? "Average per " + (bucket < 60 ? bucket + " s" : bucket / 60 + " min") + ", shaded band from minimum to maximum. Times are local."
      : "No readings in this range.";
  }
  pointSelect.addEventListener("change", loadChart);
  rangeSelect.addEventListener("change", loadChart);

  async function poll() {
    const res = await api("/api/local/meters/" + encodeURIComponent(externalId));
    if (res.ok) render(res.body);
    if (Date.now() - chartLoadedAt > 60000) loadChart();
    setTimeout(poll, POLL_MS);
  }
  render(JSON.parse(document.getElementById("initial").textContent));
  setTimeout(poll, POLL_MS);
})();
