// The dashboard page: one EventSource, no polling. The server sends the whole state first,
// then, after each committed batch, only the sections that changed ({changes: [...]} and so
// on); each replaces its section here and that section is drawn again. What a stage is
// called, what counts as failing and how a backup reads are decided by the server
// (services/dashboard/view.py); this file only draws. Every element a test looks for has a
// stable data-testid.
"use strict";

// Set once per page load: a test that finds it unchanged knows the page never reloaded.
window.dashboardLoadedAt = Date.now();
window.dashboardMessages = 0;

const state = {};

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "testid") el.dataset.testid = value;
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 0) return "in " + duration(-seconds);
  return duration(seconds) + " ago";
}

function when(iso) {
  return iso ? h("span", { title: new Date(iso).toLocaleString() }, ago(iso)) : "never";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "?";
  if (seconds < 1) return Math.round(seconds * 1000) + " ms";
  if (seconds < 90) return (Math.round(seconds * 10) / 10) + " s";
  if (seconds < 5400) return Math.round(seconds / 60) + " min";
  if (seconds < 172800) return Math.round(seconds / 3600) + " h";
  return Math.round(seconds / 86400) + " d";
}

function bytes(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function values(list) {
  if (!list || !list.length) return "no data";
  return list.map((v) => (v === null ? "null" : +v.toPrecision(4))).join(", ");
}

function fill(testid, nodes, emptyText) {
  const body = document.querySelector(`[data-testid="${testid}"]`);
  body.replaceChildren(...(nodes.length ? nodes : [h("p", { class: "empty" }, emptyText)]));
}

// -- sections ------------------------------------------------------------------------------

function drawHealth(services) {
  fill("health-list", [h("div", { class: "services" }, services.map((s) =>
    h("div", { class: `service grade-${s.grade}`, testid: `health-${s.service}`,
               "data-grade": s.grade },
      h("span", { class: "name" }, s.service),
      h("span", { class: `badge grade-${s.grade}`, testid: `grade-${s.service}` }, s.grade),
      " ", h("span", { class: "muted" }, when(s.graded_at),
             s.checks_total !== null ? ` · ${s.checks_total} checks` : ""),
      s.failing.length
        ? h("ul", { class: "checks", testid: `failing-${s.service}` }, s.failing.map((c) =>
          h("li", {}, h("span", { class: `badge outcome-${c.status === "warn" ? "inconclusive" : "failed"}` },
            c.status), " ", h("b", {}, c.name), c.critical ? " (critical)" : "",
          c.condition ? h("span", { class: "muted mono" }, ` ${c.condition}`) : "",
          c.observed !== null && c.observed !== undefined
            ? h("span", { class: "muted" }, ` observed ${c.observed}${c.unit ? " " + c.unit : ""}`) : "",
          c.message ? h("div", { class: "muted" }, c.message) : "")))
        : null)))].filter(() => services.length), "No health reports yet.");
}

const BEFORE_DEPLOY = ["submitted", "assessed", "review_requested", "approved", "blocked"];
const DEPLOY_BAD = ["failed", "rolled_back", "rolling_back"];

function steps(c) {
  const deploying = !BEFORE_DEPLOY.includes(c.state);
  const migration = c.state === "blocked" ? "bad" : (c.state === "approved" || deploying) ? "done" : "";
  const deploy = DEPLOY_BAD.includes(c.state) ? "bad" : c.state === "completed" ? "done" : "";
  const backup = c.backup ? (c.backup.result === "verified" ? "done" : "bad") : "";
  return h("div", { class: "steps" },
    h("span", { class: `step ${migration}` }, "migration"),
    h("span", { class: `step ${deploy}` }, "deploy"),
    h("span", { class: `step ${backup}`, testid: `backup-step-${c.change_id}` }, "backup"),
    h("span", { class: "step " + (c.infra_ready ? "done" : ""), testid: `ready-${c.change_id}`,
                "data-ready": c.infra_ready ? "yes" : "no" },
      c.infra_ready ? "infra ready" : "health gate"));
}

function drawAnalyses(c) {
  if (!c.analyses.length) return null;
  return h("ul", { class: "analyses", testid: `analyses-${c.change_id}` }, c.analyses.map((a) =>
    h("li", { testid: `analysis-${c.change_id}-${a.metric}` },
      h("span", { class: `badge outcome-${a.outcome}` }, a.outcome), " ",
      h("b", {}, a.metric), a.critical ? " (critical)" : "", " ",
      h("span", { class: "mono" }, `[${values(a.values)}]`),
      a.baseline_values.length ? h("span", { class: "muted mono" }, ` baseline [${values(a.baseline_values)}]`) : "",
      " ", h("span", { class: "muted mono" }, a.condition),
      h("span", { class: "muted" }, ` · ${a.measurements} measured, ${a.failures} failed`,
        a.canary_weight !== null ? ` · at ${a.canary_weight}%` : ""),
      a.error ? h("div", { class: "muted" }, a.error) : "")));
}

function drawOutcome(c) {
  const parts = [];
  if (c.rolled_back && DEPLOY_BAD.includes(c.state)) {
    const r = c.rolled_back;
    parts.push(h("div", { class: "detail", testid: `rollback-${c.change_id}` },
      `Rolled back (${r.trigger.replace(/_/g, " ")}) from ${r.stage}: ${r.reason}`,
      r.restored_version ? `; serving ${r.restored_version}` : "",
      r.breach ? h("span", { class: "mono" },
        ` — ${r.breach.metric} [${values(r.breach.values)}] broke ${r.breach.condition}`) : ""));
  }
  if (c.failed && DEPLOY_BAD.includes(c.state)) {
    parts.push(h("div", { class: "detail" },
      `Failed in ${c.failed.stage} (${c.failed.failure.replace(/_/g, " ")}): ${c.failed.reason}`));
  }
  if (c.state === "blocked" && c.migration) {
    parts.push(h("div", { class: "detail" }, `Blocked: ${(c.migration.reason || "").replace(/_/g, " ")}`,
      c.migration.details && c.migration.details.length ? ` — ${c.migration.details.join("; ")}` : ""));
  }
  if (c.tests) {
    parts.push(h("div", { class: "detail muted" }, `Staging tests ${c.tests.suite}: ${c.tests.outcome}`,
      c.tests.reason ? ` (${c.tests.reason})` : ""));
  }
  if (c.stage_reason && !DEPLOY_BAD.includes(c.state)) {
    parts.push(h("div", { class: "detail muted" }, c.stage_reason));
  }
  return parts;
}

function drawChanges(changes) {
  const rows = changes.map((c) =>
    h("tr", { testid: `change-${c.change_id}`, "data-state": c.state },
      h("td", {}, h("div", { class: "mono" }, c.change_id),
        h("div", { class: "muted" }, c.submitted_by ? `by ${c.submitted_by} · ` : "", when(c.updated_at))),
      h("td", {}, c.service || "?", " ", h("span", { class: "mono" }, c.version || ""),
        c.previous_version ? h("div", { class: "muted" }, `from ${c.previous_version}`) : ""),
      h("td", {}, c.risk ? h("span", { class: "badge " + ({ low: "tone-ok", medium: "tone-warn",
        high: "tone-bad", blocked: "tone-bad" }[c.risk] || ""), testid: `risk-${c.change_id}` }, c.risk) : "",
        c.findings !== null && c.findings !== undefined ? h("div", { class: "muted" }, `${c.findings} findings`) : ""),
      h("td", {}, h("span", { class: `badge tone-${c.tone}`, testid: `stage-${c.change_id}`,
                              "data-state": c.state }, c.label)),
      h("td", {}, steps(c)),
      h("td", {}, drawAnalyses(c), drawOutcome(c))));
  fill("change-list", rows.length ? [h("table", {},
    h("thead", {}, h("tr", {}, ["change", "service", "risk", "stage", "pipeline", "analysis"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows))] : [], "No changes yet.");
}

function drawBackups(backups) {
  const rows = backups.map((b) => {
    const t = b.recovery_test;
    return h("tr", { testid: `backup-${b.service}` },
      h("td", {}, h("b", {}, b.service)),
      h("td", { testid: `last-backup-${b.service}` }, when(b.last_backup_at),
        b.last_backup ? h("div", { class: "muted" }, `${b.last_backup.trigger}, ${b.last_backup.parts.length} parts`) : ""),
      h("td", { testid: `recovery-${b.service}`, "data-result": t ? t.result : "none" },
        t ? h("span", { class: `badge result-${t.result}` }, t.result) : "none",
        t && t.recovery_seconds !== null ? ` in ${duration(t.recovery_seconds)}` : "",
        t && t.reason ? h("div", { class: "muted" }, t.reason) : ""),
      h("td", { testid: `size-${b.service}` }, bytes(b.size_bytes)),
      h("td", { testid: `next-backup-${b.service}` }, b.next_backup_at ? when(b.next_backup_at) : "not scheduled",
        b.last_failure ? h("div", { class: "detail" }, h("span", { class: "badge result-failed" }, "failed"),
          ` ${b.last_failure.phase.replace(/_/g, " ")}: ${b.last_failure.reason}`) : ""));
  });
  fill("backup-list", rows.length ? [h("table", {},
    h("thead", {}, h("tr", {}, ["service", "last backup", "recovery test", "size", "next"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows))] : [], "No backups yet.");
}

function drawIncidents(incidents) {
  fill("incident-list", incidents.map((i) =>
    h("div", { class: "service", testid: `incident-${i.incident_id}`, "data-status": i.status },
      h("span", { class: `badge severity-${i.severity}` }, i.severity), " ",
      h("b", {}, i.service), " ", h("span", { class: "badge tone-" + (i.status === "resolved" ? "ok" : "warn") }, i.status),
      i.count > 1 ? ` ×${i.count}` : "",
      h("div", {}, i.summary || i.incident_id),
      i.last_entry ? h("div", { class: "muted" }, `${i.last_entry.actor}: ${i.last_entry.message} (`, when(i.last_entry.at), ")") : "",
      i.resolved ? h("div", { class: "muted" }, `resolved by ${i.resolved.resolved_by} in ${duration(i.resolved.durations.resolve_seconds)}: ${i.resolved.resolution}`) : "")),
  "No incidents.");
}

function drawReviews(reviews) {
  fill("review-list", reviews.map((r) =>
    h("div", { class: "service", testid: `review-${r.change_id}` },
      h("b", {}, r.service), " ", h("span", { class: "mono" }, r.version), " ",
      h("span", { class: "badge tone-warn" }, `${r.risk} · ${r.review}`),
      h("div", { class: "muted" }, `${r.required_approvals} approval(s), ${r.checklist_items} checklist items, deadline `,
        when(r.deadline)),
      h("div", { class: "mono muted" }, r.change_id))),
  "Nothing waits for review.");
}

function drawAlerts(alerts) {
  fill("alert-list", alerts.map((a) =>
    h("div", { class: "service", testid: `alert-${a.dedup_key}` },
      h("span", { class: `badge severity-${a.severity}` }, a.severity), " ", a.summary,
      h("div", { class: "muted" }, `${a.raised_by}${a.service ? " · " + a.service : ""}`,
        a.count > 1 ? ` · ×${a.count}` : "", " · ", when(a.at)))),
  "No alerts firing.");
}

const DRAW = {
  health: drawHealth, changes: drawChanges, backups: drawBackups,
  incidents: drawIncidents, reviews: drawReviews, alerts: drawAlerts,
};

function apply(update) {
  for (const [section, draw] of Object.entries(DRAW)) {
    if (update[section] !== undefined) {
      state[section] = update[section];
      draw(state[section]);
    }
  }
  if (update.generated_at) {
    state.generated_at = update.generated_at;
    document.querySelector('[data-testid="updated"]').textContent =
      "updated " + new Date(update.generated_at).toLocaleTimeString();
  }
  window.dashboardMessages += 1;
}

function connect() {
  const badge = document.querySelector('[data-testid="connection"]');
  const source = new EventSource("/events");
  source.addEventListener("open", () => { badge.dataset.state = "live"; badge.textContent = "live"; });
  source.addEventListener("error", () => {
    // EventSource reconnects by itself (the server's retry: says when) and the server then
    // sends the whole state again.
    badge.dataset.state = "reconnecting"; badge.textContent = "reconnecting";
  });
  source.addEventListener("state", (event) => apply(JSON.parse(event.data)));
}

connect();
// "3 min ago" ages: redraw from the state in hand once a minute (no request is made).
setInterval(() => apply({ ...state }), 60000);
