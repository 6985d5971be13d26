/* Sync page: upload and meter-config status, and the buttons that act on them. */
"use strict";
(function () {
  const { api, el, fmtCount, since, ago, duration, clock } = window.MeterIT;
  const POLL_MS = Number(document.currentScript.dataset.pollMs) || 5000;
  const errorBox = document.getElementById("action-error");
  const infoBox = document.getElementById("action-info");
  const meterSyncBtn = document.getElementById("btn-meter-sync");
  const meterSyncResult = document.getElementById("meter-sync-result");
  let fastUntil = 0;
  let clicking = false; // a click's own polling owns the button until its run finishes

  function say(box, text) {
    box.textContent = text;
    box.hidden = !text;
  }

  function fact(label, ...value) {
    return [el("dt", { text: label }), el("dd", {}, ...value)];
  }

  function pill(text, kind) {
    return el("span", { class: "pill " + kind, text });
  }

  function renderSync(s) {
    const now = s.now;
    const c = s.connectivity;
    const connBadge = document.getElementById("conn-badge");
    const label = !s.enrolled ? "Not enrolled" : c.state === "online" ? "Central online" : c.state === "offline" ? "Central offline" : "Central not contacted yet";
    connBadge.className = "badge conn-" + (s.enrolled ? c.state : "unknown");
    connBadge.dataset.state = s.enrolled ? c.state : "not-enrolled";
    connBadge.textContent = label;

    document.getElementById("upload-facts").replaceChildren(
      ...fact("Central", s.central_url || "not set (appliance not enrolled)"),
      ...fact("Connectivity", c.state === "unknown" ? "not contacted yet" : el("span", {}, c.state + " since ", since(c.since, now)),
        c.consecutive_failures ? " · " + c.consecutive_failures + " failure(s) in a row" : ""),
      ...(c.last_error ? fact("Last central error", el("span", { class: "error", text: c.last_error }), " (" + ago(c.last_error_at, now) + ")") : []),
      ...fact("Backlog", el("span", { id: "backlog", "data-backlog": String(s.backlog), text: fmtCount(s.backlog) + " readings" }),
        s.in_flight ? " (" + fmtCount(s.in_flight) + " being sent)" : ""),
      ...fact("Oldest unsynced", s.oldest_unsynced_ts ? duration(s.oldest_unsynced_age_s) + " old" : "none: everything is synced"),
      ...fact("Last successful sync", el("span", { id: "last-sync" }, s.last_sync_at ? since(s.last_sync_at, now) : "never")),
      ...fact("Synced", el("span", { id: "synced-counts", text: fmtCount(s.synced.last_hour) + " in the last hour · " + fmtCount(s.synced.last_day) + " in the last day" })),
      ...fact("Upload", s.upload_paused ? pill("paused", "warn") : pill("running", "ok")),
      ...fact("Collection", s.collection_paused ? pill("paused", "warn") : pill("running", "ok")),
      ...fact("Dropped readings", s.dropped_total ? el("span", { class: "error", text: fmtCount(s.dropped_total) + " (buffer budget exceeded)" }) : "none"),
      ...fact("Quarantined", fmtCount(s.quarantined)),
    );
    document.getElementById("btn-pause-upload").hidden = s.upload_paused;
    document.getElementById("btn-resume-upload").hidden = !s.upload_paused;
    document.getElementById("btn-pause-collection").hidden = s.collection_paused;
    document.getElementById("btn-resume-collection").hidden = !s.collection_paused;

    document.getElementById("sync-errors").replaceChildren(
      ...(s.recent_errors.length
        ? [table(["When", "Readings", "Error"], s.recent_errors.map((e) => [clock(e.at), fmtCount(e.row_count), e.error]))]
        : [el("p", { class: "muted", text: "No upload errors." })]),
    );
    document.getElementById("quarantine").replaceChildren(
      ...(s.quarantine.length
        ? [table(["Meter", "Point", "Time", "Value", "Reason"], s.quarantine.map((q) => [q.external_id || q.meter_id, q.point || "?", clock(q.ts), String(q.value), q.reason]))]
        : [el("p", { class: "muted", text: "Nothing quarantined." })]),
    );
  }

  function table(head, rows) {
    return el("div", { class: "tablewrap" },
      el("table", {},
        el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))),
        el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", { text: c })))))));
  }

  function runText(run) {
    if (!run) return "never";
    return run.result + " · " + clock(run.finished_at || run.started_at);
  }

  function renderMeterSync(m) {
    const run = m.last_run;
    document.getElementById("meter-sync-facts").replaceChildren(
      ...fact("Site", m.site_name ? m.site_name + " (id " + m.site_id + ")" : "not known yet"),
      ...fact("Active meters", el("span", { id: "active-meters", text: String(m.active_meters) }), m.inactive_meters ? " (" + m.inactive_meters + " deactivated)" : ""),
      ...fact("Last run", el("span", { id: "meter-sync-last" }, runText(run))),
      ...(run ? fact("Changes", run.inserted + " inserted · " + run.updated + " updated · " + run.deactivated + " deactivated") : []),
      ...(run && run.error ? fact("Error", el("span", { class: "error", text: run.error })) : []),
    );
    if (!clicking) setBusy(m.running);
  }

  function setBusy(busy) {
    meterSyncBtn.disabled = busy;
    meterSyncBtn.classList.toggle("loading", busy);
    meterSyncBtn.textContent = busy ? "Syncing meters…" : "Sync meters now";
  }

  function showMeterSyncResult(run, m) {
    let text, kind;
    if (run.result === "ok") {
      text = "Meters synced: " + run.inserted + " inserted, " + run.updated + " updated, " + run.deactivated + " deactivated. " + m.active_meters + " active meters.";
      kind = "info";
    } else if (run.result === "unchanged") {
      text = "Central's meter list is unchanged: " + m.active_meters + " active meters.";
      kind = "info";
    } else if (run.result === "refused") {
      text = "Not started: " + (run.error || "another meter sync is running") + ".";
      kind = "error";
    } else {
      text = "Meter sync failed: " + (run.error || "unknown error");
      kind = "error";
    }
    meterSyncResult.className = "flash " + kind;
    meterSyncResult.dataset.result = run.result;
    say(meterSyncResult, text);
  }

  meterSyncBtn.addEventListener("click", async () => {
    clicking = true;
    try {
      await meterSync();
    } finally {
      clicking = false;
    }
  });

  async function meterSync() {
    setBusy(true);
    say(meterSyncResult, "");
    const res = await api("/api/local/meter-sync-trigger", { method: "POST", json: {} });
    if (!res.ok) {
      setBusy(false);
      meterSyncResult.className = "flash error";
      meterSyncResult.dataset.result = "error";
      say(meterSyncResult, res.body.error || "HTTP " + res.status);
      return;
    }
    const afterId = res.body.after_id;
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      const st = await api("/api/local/meter-sync-status");
      if (!st.ok) continue;
      renderMeterSync(st.body);
      const run = st.body.last_attempt;
      if (run && run.id > afterId && run.result !== "running") {
        setBusy(false);
        showMeterSyncResult(run, st.body);
        return;
      }
    }
    setBusy(false);
    meterSyncResult.className = "flash error";
    meterSyncResult.dataset.result = "timeout";
    say(meterSyncResult, "The meter sync did not finish within 60 s. Is meterit-worker running? (journalctl -u meterit-worker)");
  }

  document.getElementById("upload-buttons").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = event.submitter;
    const action = button.value;
    button.disabled = true;
    button.classList.add("loading");
    say(errorBox, "");
    const res = await api("/api/local/sync-trigger", { method: "POST", json: { action } });
    button.disabled = false;
    button.classList.remove("loading");
    if (!res.ok) {
      say(errorBox, res.body.error || "HTTP " + res.status);
      return;
    }
    renderSync(res.body.status);
    const messages = {
      sync_now: res.body.status.upload_paused
        ? "Upload is paused: resume it first, then the run drains the backlog."
        : "Upload run queued: the backlog drains in the background.",
      pause_upload: "Upload paused: readings stay on the appliance until you resume.",
      resume_upload: "Upload resumed.",
      pause_collection: "Collection paused: the meters are not polled until you resume.",
      resume_collection: "Collection resumed.",
    };
    say(infoBox, messages[action]);
    fastUntil = Date.now() + 30000;
  });

  async function poll() {
    const [s, m] = await Promise.all([api("/api/local/sync-status"), api("/api/local/meter-sync-status")]);
    if (s.ok) renderSync(s.body);
    if (m.ok) renderMeterSync(m.body);
    setTimeout(poll, Date.now() < fastUntil ? 1000 : POLL_MS);
  }

  const initial = JSON.parse(document.getElementById("initial").textContent);
  renderSync(initial.sync);
  renderMeterSync(initial.meter_sync);
  setTimeout(poll, POLL_MS);
})();
