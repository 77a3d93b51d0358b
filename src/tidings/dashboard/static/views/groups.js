// Consumer groups and, per group, its dead letters: reason, attempts, headers and body; replay or
// purge one, a selection or all (with the admin token).
import { api, clock, h, link, notice, poll, state, table } from "../dom.js";

export async function groups() {
  const body = h("div", {});
  const refresh = async () => {
    const rows = await api("/api/groups");
    body.replaceChildren(
      table("Every group the broker knows", [
        ["Group", (row) => link(`/groups/${encodeURIComponent(row.group)}`, row.group)],
        ["Lag", (row) => String(row.backlog)],
        ["Dead letters", (row) => String(row.dead_letters)],
      ], rows, { "data-table": "groups" }),
    );
  };
  const polling = poll(3000, refresh);
  await polling.first;
  return { nodes: [h("h1", {}, "Dead letters by group"), body], stop: polling.stop };
}

export async function group(name) {
  const selected = new Set();
  const body = h("div", {});
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const act = async (action, selection) => {
    try {
      const result = await api(`/api/dead-letters/${encodeURIComponent(name)}/${action}`, { method: "POST", body: selection, admin: true });
      const count = result.replayed ?? result.purged ?? 0;
      status.textContent = `${action === "replay" ? "Replayed" : "Purged"} ${count} dead letter${count === 1 ? "" : "s"}.`;
      selected.clear();
      shown = null;
      await refresh();
    } catch (error) {
      status.textContent = error.status === 401 ? "Give the admin token first (top of the page)." : error.message;
    }
  };
  const disabled = state.readOnly;
  const controls = h("div", { class: "actions" },
    h("button", { type: "button", disabled, "data-action": "replay-selected", onclick: () => act("replay", { ids: [...selected] }) }, "Replay selected"),
    h("button", { type: "button", disabled, "data-action": "purge-selected", class: "danger", onclick: () => act("purge", { ids: [...selected] }) }, "Purge selected"),
    h("button", { type: "button", disabled, "data-action": "replay-all", onclick: () => confirm(`Replay every dead letter of ${name}?`) && act("replay", { all: true }) }, "Replay all"),
    h("button", { type: "button", disabled, "data-action": "purge-all", class: "danger", onclick: () => confirm(`Purge every dead letter of ${name}?`) && act("purge", { all: true }) }, "Purge all"),
    disabled ? h("span", { class: "badge", "data-kind": "warn" }, "read-only: no admin token is configured") : null);
  let shown = null;
  const refresh = async () => {
    const letters = await api(`/api/dead-letters/${encodeURIComponent(name)}?limit=200`);
    const key = letters.map((letter) => letter.id).join(",");
    if (key === shown) return; // unchanged: keep open details and focus where they are
    shown = key;
    const checkbox = (letter) => h("input", { type: "checkbox", "aria-label": `select ${letter.type} ${letter.event_id}`, checked: selected.has(letter.id),
      onchange: (event) => (event.target.checked ? selected.add(letter.id) : selected.delete(letter.id)) });
    const details = (letter) => h("details", {}, h("summary", {}, "Headers and body"),
      h("h3", {}, "Headers"), h("pre", {}, JSON.stringify(letter.headers, null, 2)),
      h("h3", {}, "Body"), h("pre", {}, letter.body));
    body.replaceChildren(
      table(`${letters.length} dead letter${letters.length === 1 ? "" : "s"} in ${name}`, [
        ["Select", checkbox],
        ["Type", (letter) => link(`/events/${encodeURIComponent(letter.event_id)}`, letter.type)],
        ["Reason", (letter) => letter.reason],
        ["Attempts", (letter) => String(letter.attempts)],
        ["When", (letter) => clock(letter.dead_lettered_at)],
        ["Detail", details],
        ["One", (letter) => h("button", { type: "button", disabled, "data-replay-one": letter.event_id, onclick: () => act("replay", { ids: [letter.id] }) }, "Replay")],
      ], letters.map((letter) => ({ ...letter, __attrs: { "data-letter": letter.event_id } })), { "data-table": "dead-letters" }),
    );
  };
  const polling = poll(3000, refresh);
  await polling.first;
  notice("");
  return { nodes: [h("h1", {}, `Group ${name}`), controls, status, body], stop: polling.stop };
}
