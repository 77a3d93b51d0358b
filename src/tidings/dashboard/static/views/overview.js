// The first view: recent business transactions, every group with its lag and dead letters, and
// each service's health, so nothing is empty before something is clicked.
import { api, clock, h, healthBadge, link, ms, poll, short, table } from "../dom.js";

export async function overview() {
  const transactions = h("section", { "aria-labelledby": "recent-h" });
  const groupsBox = h("section", { "aria-labelledby": "groups-h" });
  const healthBox = h("section", { "aria-labelledby": "health-h" });
  const refresh = async () => {
    const [recent, groups, charts] = await Promise.all([api("/api/transactions?limit=15"), api("/api/groups"), api("/api/charts?window=60")]);
    transactions.replaceChildren(
      h("h2", { id: "recent-h" }, "Recent business transactions"),
      table("Newest first", [
        ["Subject", (row) => (row.subject ? link(`/orders/${encodeURIComponent(row.subject)}`, row.subject) : "–")],
        ["Transaction", (row) => link(`/transactions/${encodeURIComponent(row.correlation)}`, short(row.correlation), { title: row.correlation, "aria-label": `transaction ${row.correlation}` })],
        ["Events", (row) => String(row.count)],
        ["Started", (row) => clock(row.started)],
        ["Took", (row) => ms((new Date(row.ended) - new Date(row.started)))],
      ], recent),
    );
    groupsBox.replaceChildren(
      h("h2", { id: "groups-h" }, "Consumer groups"),
      table("Lag and dead letters per group", [
        ["Group", (row) => link(`/groups/${encodeURIComponent(row.group)}`, row.group)],
        ["Lag", (row) => String(row.backlog)],
        ["Dead letters", (row) => (row.dead_letters ? h("strong", { class: "bad" }, String(row.dead_letters)) : "0")],
      ], groups),
    );
    const health = Object.entries(charts.live.health || {});
    healthBox.replaceChildren(
      h("h2", { id: "health-h" }, "Services"),
      health.length
        ? h("ul", { class: "cards" }, health.map(([name, report]) => h("li", { class: "card", "data-service": name }, h("strong", {}, name), " ", healthBadge(report.status))))
        : h("p", {}, "No /metrics endpoints configured: run the services with a metrics port to see their health."),
    );
  };
  const polling = poll(3000, refresh);
  await polling.first;
  return {
    nodes: [h("h1", {}, "Overview"), h("div", { class: "grid" }, transactions, groupsBox, healthBox)],
    stop: polling.stop,
  };
}
