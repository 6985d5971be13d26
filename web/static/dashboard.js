/* Dashboard: every meter's connectivity, newest values and a 24 h chart, kept current by
   polling /api/local/meters; charts load when scrolled into view and refresh every minute. */
"use strict";
(function () {
  const { api, el, fmtValue, since, ago, badge, chart } = window.MeterIT;
  const script = document.currentScript;
  const POLL_MS = Number(script.dataset.pollMs) || 5000;
  const CHART_REFRESH_MS = 60000;
  const meterUrl = (id) => script.dataset.meterUrl.replace("__ID__", encodeURIComponent(id));
  const grid = document.getElementById("meters");
  const filter = document.getElementById("filter");
  const cards = new Map();

  const PREFERRED = ["power_kw", "energy_kwh"];

  function defaultPoint(meter) {
    const names = meter.values.map((v) => v.point);
    return PREFERRED.find((p) => names.includes(p)) || names[0] || "";
  }

  function makeCard(meter) {
    const refs = {};
    refs.badge = el("span");
    refs.status = el("p", { class: "status small" });
    refs.error = el("p", { class: "error small" });
    refs.values = el("dl", { class: "values" });
    refs.select = el("select", { "aria-label": "Chart data point" });
    refs.chartNode = el("div", { class: "chart small" });
    const root = el(
      "article",
      { class: "meter card", "data-meter": meter.external_id },
      el(
        "header",
        {},
        el("div", { class: "title" },
          el("a", { href: meterUrl(meter.external_id), class: "name", text: meter.name || meter.external_id }),
          el("span", { class: "ext muted small", text: meter.external_id })),
        refs.badge,
      ),
      refs.status,
      refs.error,
      refs.values,
      el("div", { class: "chartbox" },
        el("div", { class: "charthead small" }, el("span", { class: "muted", text: "Last 24 h" }), refs.select),
        refs.chartNode),
    );
    const card = { root, refs, plot: chart(refs.chartNode, 130), point: defaultPoint(meter), loadedAt: 0, visible: false, points: "" };
    refs.select.addEventListener("change", () => {
      card.point = refs.select.value;
      loadChart(card, meter.external_id);
    });
    visibility.observe(root);
    root._card = card;
    return card;
  }

  async function loadChart(card, externalId) {
    if (!card.point) return;
    card.loadedAt = Date.now();
    const q = new URLSearchParams({ meter: externalId, point: card.point, hours: "24", buckets: "144" });
    const res = await api("/api/local/series?" + q);
    if (res.ok) card.plot.show(res.body);
  }

  const visibility = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const card = entry.target._card;
      card.visible = entry.isIntersecting;
      if (card.visible && Date.now() - card.loadedAt > CHART_REFRESH_MS) {
        loadChart(card, entry.target.dataset.meter);
      }
    }
  }, { rootMargin: "200px" });

  function update(card, meter, now) {
    const { refs } = card;
    card.root.className = "meter card state-" + meter.state;
    refs.badge.replaceWith((refs.badge = badge(meter.state)));
    refs.status.replaceChildren(
      meter.state === "unknown" ? "waiting for the first poll" : "since ", 
      meter.state === "unknown" ? "" : since(meter.state_since, now),
      meter.last_reading_at ? " · last reading " + ago(meter.last_reading_at, now) : "",
    );
    refs.error.hidden = !meter.last_error || meter.state === "reachable" && !Object.keys(meter.point_errors).length;
    const pointErrors = Object.entries(meter.point_errors || {});
    refs.error.textContent = meter.last_error
      ? "Last error (" + ago(meter.last_error_at, now) + "): " + meter.last_error
      : pointErrors.length ? pointErrors.length + " point(s) failing: " + pointErrors.map(([p, e]) => p + " – " + e).join("; ") : "";
    refs.error.hidden = !refs.error.textContent;

    const staleAfter = Date.parse(now) - 3 * 60000;
    refs.values.replaceChildren(
      ...meter.values.map((v) =>
        el("div", { class: "value" + (v.ts && Date.parse(v.ts) < staleAfter ? " old" : ""), "data-point": v.point,
                    title: v.ts ? "read " + ago(v.ts, now) : "no reading yet" },
          el("dt", { text: v.point }),
          el("dd", {}, el("span", { class: "v", text: fmtValue(v.value) }), " ", el("span", { class: "u", text: v.unit }))),
      ),
    );
    const names = meter.values.map((v) => v.point).join(",");
    if (names !== card.points) {
      card.points = names;
      if (!meter.values.some((v) => v.point === card.point)) card.point = defaultPoint(meter);
      refs.select.replaceChildren(...meter.values.map((v) => el("option", { value: v.point, text: v.point, selected: v.point === card.point })));
    }
    if (card.visible && Date.now() - card.loadedAt > CHART_REFRESH_MS) loadChart(card, meter.external_id);
  }

  function render(data) {
    const seen = new Set();
    const counts = { reachable: 0, "no-values": 0, unreachable: 0, unknown: 0 };
    data.meters.forEach((meter, index) => {
      seen.add(meter.meter_id);
      counts[meter.state] = (counts[meter.state] || 0) + 1;
      let card = cards.get(meter.meter_id);
      if (!card) {
        card = makeCard(meter);
        cards.set(meter.meter_id, card);
      }
      if (grid.children[index] !== card.root) grid.insertBefore(card.root, grid.children[index] || null);
      update(card, meter, data.now);
    });
    for (const [id, card] of cards) {
      if (!seen.has(id)) { card.root.remove(); cards.delete(id); }
    }
    document.getElementById("empty").hidden = data.meters.length > 0;
    const summary = document.getElementById("summary");
    summary.replaceChildren(
      ...Object.entries(counts).filter(([, n]) => n > 0).map(([state, n]) => {
        const b = badge(state);
        b.textContent = n + " " + b.textContent.toLowerCase();
        return b;
      }),
    );
    applyFilter();
  }

  function applyFilter() {
    const needle = filter.value.trim().toLowerCase();
    for (const card of cards.values()) {
      card.root.hidden = needle && !card.root.textContent.toLowerCase().includes(needle);
    }
  }
  filter.addEventListener("input", applyFilter);

  const updated = document.getElementById("updated");
  async function poll() {
    const res = await api("/api/local/meters");
    if (res.ok) {
      render(res.body);
      updated.textContent = "Updated " + new Date().toLocaleTimeString();
      updated.classList.remove("error");
    } else {
      updated.textContent = "Cannot refresh: " + (res.body.error || "HTTP " + res.status) + " – retrying";
      updated.classList.add("error");
    }
    setTimeout(poll, POLL_MS);
  }

  /* What a technician must not miss while looking at meters: paused collection or upload, or
     central unreachable; refreshed more slowly than the meters, it is a rarer question. */
  const banners = document.getElementById("banners");
  async function pollSync() {
    const res = await api("/api/local/sync-status");
    if (res.ok) {
      const s = res.body, items = [];
      const link = () => el("a", { href: banners.dataset.syncUrl, text: "Sync page" });
      if (s.collection_paused) items.push(["warn", "Collection is paused: meters are not being read. ", link()]);
      if (s.upload_paused) items.push(["warn", "Upload is paused: readings are kept on the appliance. ", link()]);
      if (s.enrolled && s.connectivity.state === "offline") {
        items.push(["error", "Central is unreachable since " + window.MeterIT.clock(s.connectivity.since) + "; " +
          window.MeterIT.fmtCount(s.backlog) + " readings wait on the appliance. ", link()]);
      }
      banners.replaceChildren(...items.map(([kind, text, a]) => el("div", { class: "flash " + kind, role: "status" }, text, a)));
    }
    setTimeout(pollSync, Math.max(POLL_MS * 3, 15000));
  }
  pollSync();

  render(JSON.parse(document.getElementById("initial").textContent));
  updated.textContent = "Updated " + new Date().toLocaleTimeString();
  setTimeout(poll, POLL_MS);
})();
