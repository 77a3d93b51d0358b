// Live charts (uPlot): events/s by type and by service from the recorder; lag per group, handler
// latency percentiles, outbox backlog and oldest age from the sampler of /metrics and /health.
import uPlot from "../vendor/uPlot.esm.js";
import { api, h, healthBadge, poll } from "../dom.js";

const PALETTE = ["#0b57d0", "#b3261e", "#146c2e", "#8e3a00", "#6a1b9a", "#00695c", "#ad1457", "#37474f", "#5d4037", "#1565c0", "#827717", "#4e342e"];

class Chart {
  constructor(id, title, unit) {
    this.id = id;
    this.unit = unit;
    this.plot = null;
    this.keys = "";
    this.canvas = h("div", { class: "plot", "aria-hidden": "true" });
    this.latest = h("p", { class: "latest", "data-latest": id });
    this.node = h("figure", { class: "chart", "data-chart": id, "data-samples": "0", "data-total": "0" },
      h("figcaption", {}, h("h2", {}, title)), this.canvas, this.latest);
  }

  update(times, series) {
    const keys = Object.keys(series);
    const width = Math.max(260, Math.min(this.node.clientWidth || 600, 900) - 24);
    const data = [times, ...keys.map((key) => series[key])];
    if (this.plot && (this.keys !== keys.join("\n") || Math.abs(this.plot.width - width) > 40)) {
      this.plot.destroy();
      this.plot = null;
    }
    if (!this.plot) {
      this.keys = keys.join("\n");
      this.canvas.replaceChildren();
      this.plot = new uPlot({
        width,
        height: 200,
        series: [{}, ...keys.map((key, index) => ({ label: key, stroke: PALETTE[index % PALETTE.length], width: 2, spanGaps: true }))],
        axes: [{ stroke: "#333" }, { stroke: "#333", label: this.unit, size: 60 }],
        legend: { live: false },
      }, data, this.canvas);
    } else {
      this.plot.setData(data);
    }
    const last = keys.map((key) => [key, lastValue(series[key])]).filter(([, value]) => value !== null);
    const total = last.reduce((sum, [, value]) => sum + value, 0);
    this.node.dataset.samples = String(times.length);
    this.node.dataset.total = String(Math.round(total * 1000) / 1000);
    this.latest.textContent = last.length
      ? `Latest: ${last.map(([key, value]) => `${key} ${format(value)} ${this.unit}`).join("; ")}`
      : "No data yet.";
  }
}

function lastValue(values) {
  for (let index = values.length - 1; index >= 0; index -= 1) if (values[index] !== null && values[index] !== undefined) return values[index];
  return null;
}

function format(value) {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

export async function charts() {
  const quantile = h("select", { id: "quantile" }, ["p50", "p95", "p99"].map((value) => h("option", { value, selected: value === "p95" }, value)));
  const list = [
    new Chart("rates-type", "Events per second by type", "events/s"),
    new Chart("rates-source", "Events per second by publishing service", "events/s"),
    new Chart("lag", "Lag per consumer group", "messages"),
    new Chart("latency", "Handler latency by service", "ms"),
    new Chart("outbox", "Outbox backlog per service", "rows"),
    new Chart("oldest", "Oldest unsent outbox row per service", "s"),
  ];
  const byId = Object.fromEntries(list.map((chart) => [chart.id, chart]));
  const health = h("ul", { class: "cards", "aria-label": "Service health" });
  const refresh = async () => {
    const { rates, live } = await api("/api/charts?window=120");
    byId["rates-type"].update(rates.times, rates.by_type);
    byId["rates-source"].update(rates.times, rates.by_source);
    byId.lag.update(live.times, live.lag || {});
    byId.latency.update(live.times, live[quantile.value] || {});
    byId.outbox.update(live.times, live.outbox || {});
    byId.oldest.update(live.times, live.oldest || {});
    health.replaceChildren(
      ...Object.entries(live.health || {}).map(([name, report]) =>
        h("li", { class: "card", "data-service": name }, h("strong", {}, name), " ", healthBadge(report.status))),
    );
  };
  quantile.addEventListener("change", refresh);
  const polling = poll(2000, refresh);
  const nodes = [
    h("h1", {}, "Charts"),
    h("section", { "aria-label": "Service health" }, h("h2", {}, "Service health"), health),
    h("p", { class: "field" }, h("label", { for: "quantile" }, "Latency percentile"), quantile),
    h("div", { class: "charts" }, list.map((chart) => chart.node)),
  ];
  return { nodes, stop: polling.stop, ready: polling.first };
}
