// The live stream: newest first by the events' own time, filterable by type, source and text.
import { api, clock, h, link, poll, short, table } from "../dom.js";

// A service's default source is urn:tidings:<service>: the stream shows the service's name.
const publisher = (source) => source.replace(/^urn:tidings:/, "");

export async function stream() {
  const flow = await api("/api/flow");
  const types = [...new Set(flow.map((edge) => edge.type))].sort();
  const sources = [...new Set(flow.map((edge) => edge.source))].sort();
  const select = (id, label, options, shown = (value) => value) =>
    h("p", { class: "field" }, h("label", { for: id }, label), h("select", { id }, h("option", { value: "" }, "any"), options.map((value) => h("option", { value }, shown(value)))));
  const filters = h(
    "form",
    { class: "filters", "aria-label": "Filter the stream" },
    select("f-type", "Type", types),
    select("f-source", "Published by", sources, publisher),
    h("p", { class: "field" }, h("label", { for: "f-text" }, "Contains"), h("input", { id: "f-text", type: "search", placeholder: "subject, id or type" })),
  );
  filters.addEventListener("submit", (event) => event.preventDefault());
  const body = h("div", {});
  const refresh = async () => {
    const params = new URLSearchParams({ limit: "100" });
    const type = filters.querySelector("#f-type").value;
    const source = filters.querySelector("#f-source").value;
    const text = filters.querySelector("#f-text").value.trim();
    if (type) params.set("type", type);
    if (source) params.set("source", source);
    if (text) params.set("q", text);
    const events = await api(`/api/events?${params}`);
    body.replaceChildren(
      table("Newest first by event time", [
        ["Time", (event) => clock(event.time)],
        ["Type", (event) => link(`/events/${encodeURIComponent(event.id)}`, event.type)],
        ["Published by", (event) => publisher(event.source)],
        ["Subject", (event) => (event.subject ? link(`/orders/${encodeURIComponent(event.subject)}`, event.subject) : "–")],
        ["Transaction", (event) => (event.correlation ? link(`/transactions/${encodeURIComponent(event.correlation)}`, short(event.correlation), { title: event.correlation, "aria-label": `transaction ${event.correlation}` }) : "–")],
      ], events, { "data-table": "stream" }),
    );
  };
  filters.addEventListener("input", refresh);
  const polling = poll(1500, refresh);
  await polling.first;
  return { nodes: [h("h1", {}, "Event stream"), filters, body], stop: polling.stop };
}
