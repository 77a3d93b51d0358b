// Saga instances with state, step and deadline, filterable by phase.
import { api, clock, h, link, poll, short, table } from "../dom.js";

const PHASES = [["", "All"], ["running", "Running"], ["compensating", "Compensating"], ["timed-out", "Timed out"], ["ended", "Ended"]];

export async function sagas() {
  let phase = new URLSearchParams(location.search).get("phase") || "";
  const filters = h("div", { class: "chips", role: "group", "aria-label": "Filter by phase" });
  const body = h("div", {});
  const refresh = async () => {
    const found = await api(`/api/sagas${phase ? `?phase=${phase}` : ""}`);
    const total = Object.values(found.counts).reduce((sum, count) => sum + count, 0);
    filters.replaceChildren(
      ...PHASES.map(([value, label]) =>
        h("button", { type: "button", class: "chip", "data-phase": value || "all", "aria-pressed": String(phase === value),
          onclick: () => { phase = value; history.replaceState({}, "", value ? `/sagas?phase=${value}` : "/sagas"); refresh(); } },
          `${label} (${value ? found.counts[value] ?? 0 : total})`)),
    );
    body.replaceChildren(
      found.services.length ? "" : h("p", {}, "The dashboard reads no saga database (DashboardConfig.saga_databases)."),
      table(phase ? `Sagas: ${phase}` : "All sagas, most recently changed first", [
        ["Saga", (saga) => `${saga.saga} (${saga.service})`],
        ["Transaction", (saga) => link(`/transactions/${encodeURIComponent(saga.correlation)}`, short(saga.correlation), { title: saga.correlation, "aria-label": `transaction ${saga.correlation}` })],
        ["State", (saga) => h("code", {}, JSON.stringify(saga.state))],
        ["Status", (saga) => `${saga.status} (${saga.phase})`],
        ["Step", (saga) => saga.step || "–"],
        ["Deadline", (saga) => (saga.deadline ? clock(saga.deadline) : "none")],
        ["Last change", (saga) => clock(saga.updated_at)],
      ], found.sagas.map((saga) => ({ ...saga, __attrs: { "data-saga-phase": saga.phase } })), { "data-table": "sagas" }),
    );
  };
  const polling = poll(3000, refresh);
  await polling.first;
  return { nodes: [h("h1", {}, "Sagas"), filters, body], stop: polling.stop };
}
