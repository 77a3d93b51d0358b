// One business transaction as a journey: services as lanes, each step in the lane of the service
// that published it with the time of its hop, who handled it, dead letters and replays on the way,
// and the saga's state and history. Reached by order id, correlation id or event id.
import { api, clock, h, link, ms, poll, short } from "../dom.js";

async function load(kind, key) {
  if (kind === "order") return { journey: await api(`/api/orders/${encodeURIComponent(key)}`), focus: null };
  if (kind === "event") {
    const found = await api(`/api/events/${encodeURIComponent(key)}`);
    if (!found.journey) throw new Error(`event ${key} has no correlation id`);
    return { journey: found.journey, focus: key };
  }
  return { journey: await api(`/api/journeys/${encodeURIComponent(key)}`), focus: null };
}

function lanes(journey, focus) {
  const count = journey.lanes.length;
  const grid = h("div", { class: "lanes", role: "img", "aria-label": `Sequence of ${journey.steps.length} events across ${count} services`, "data-lanes": journey.lanes.join(",") });
  grid.style.setProperty("--lanes", String(count));
  grid.append(h("div", { class: "lane-head offset" }, "+time"), ...journey.lanes.map((lane) => h("div", { class: "lane-head" }, lane)));
  for (const step of journey.steps) {
    grid.append(h("div", { class: "offset" }, step.offset_ms === null ? "–" : `+${ms(step.offset_ms)}`));
    for (let lane = 0; lane < count; lane += 1) {
      if (lane !== step.lane) {
        const between = step.cause_lane !== null && lane > Math.min(step.lane, step.cause_lane) && lane < Math.max(step.lane, step.cause_lane);
        grid.append(h("div", { class: between ? "cell pass" : "cell" }));
        continue;
      }
      const from = step.cause_lane === null ? "" : step.cause_lane < lane ? "from-left" : step.cause_lane > lane ? "from-right" : "from-same";
      const failed = step.dead_letters.length > 0;
      grid.append(
        h("div", { class: `cell event ${from} ${failed ? "failed" : ""} ${focus === step.id ? "focus" : ""}` },
          h("span", { class: "event-type" }, step.type),
          step.hop_ms !== null ? h("span", { class: "hop" }, `hop ${ms(step.hop_ms)}`) : null),
      );
    }
  }
  return h("div", { class: "lanes-wrap", tabindex: "0", "aria-label": "Journey by service (scrolls sideways)" }, grid);
}

function stepItem(step, journey, focus) {
  const cause = step.cause === null ? null : journey.steps[step.cause];
  const handled = step.handled_by.length
    ? step.handled_by.map((handler) => `${handler.service} (group ${handler.group})`).join(", ")
    : "no recorded reaction";
  return h(
    "li",
    { class: focus === step.id ? "step focus" : "step", "data-step": step.index, "data-type": step.type, "data-source": step.service, "data-hop": step.hop_ms ?? "" },
    h("p", { class: "step-head" },
      h("strong", {}, step.type), " published by ", h("span", { class: "service", title: step.source }, step.service),
      " at ", h("time", { datetime: step.time }, clock(step.time)),
      step.offset_ms !== null ? ` (+${ms(step.offset_ms)})` : ""),
    h("dl", { class: "facts" },
      h("dt", {}, "Hop"), h("dd", { class: "hop" }, step.hop_ms === null ? "first event" : `${ms(step.hop_ms)} after ${cause.type}`),
      h("dt", {}, "Handled by"), h("dd", {}, handled),
      h("dt", {}, "Data"), h("dd", {}, h("code", { class: "data" }, JSON.stringify(step.data))),
      h("dt", {}, "Event"), h("dd", {}, link(`/events/${encodeURIComponent(step.id)}`, short(step.id), { title: step.id, "aria-label": `event ${step.id}` })),
      step.dead_letters.map((letter) => [
        h("dt", { class: "bad" }, "Dead-lettered"),
        h("dd", { class: "bad", "data-dead-letter": letter.group }, `in group `, link(`/groups/${encodeURIComponent(letter.group)}`, letter.group), ` after ${letter.attempts} attempt${letter.attempts === 1 ? "" : "s"}: ${letter.reason}`),
      ]),
      step.replays.map((replay) => [
        h("dt", {}, replay.action === "replayed" ? "Replayed" : "Purged"),
        h("dd", { "data-replay": replay.group }, `from group ${replay.group} at ${clock(replay.at)} (had failed ${replay.attempts ?? "?"} time${replay.attempts === 1 ? "" : "s"}: ${replay.reason ?? "?"})`),
      ]),
    ),
  );
}

function sagaBox(saga) {
  return h("section", { class: "saga", "aria-label": `saga ${saga.saga}`, "data-saga": saga.saga },
    h("h3", {}, `Saga ${saga.saga} in ${saga.service}`),
    h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", { "data-saga-status": saga.status }, `${saga.status} (${saga.phase})`),
      h("dt", {}, "Deadline"), h("dd", {}, saga.deadline ? clock(saga.deadline) : "none"),
      h("dt", {}, "Started"), h("dd", {}, clock(saga.started_at)),
      h("dt", {}, "Last change"), h("dd", {}, clock(saga.updated_at)),
      h("dt", {}, "State"), h("dd", {}, h("code", {}, JSON.stringify(saga.state)))),
    h("h4", {}, "History"),
    h("ol", { class: "history" }, saga.history.map((entry) => h("li", {}, `${clock(entry.time)} ${entry.role} ${entry.type}`))),
  );
}

export async function journeyView(kind, key) {
  const body = h("div", { "data-journey": key });
  const heading = h("h1", {}, kind === "order" ? `Order ${key}` : kind === "event" ? `Event ${short(key)}` : `Transaction ${short(key)}`);
  const refresh = async () => {
    const { journey, focus } = await load(kind, key);
    const last = journey.steps[journey.steps.length - 1];
    body.dataset.duration = journey.duration_ms ?? "";
    body.replaceChildren(
      h("p", { class: "summary" },
        h("span", {}, `${journey.steps.length} events across ${journey.lanes.length} services, `),
        h("strong", { "data-end-to-end": journey.duration_ms ?? "" }, `${ms(journey.duration_ms)} end to end`),
        last ? ` · last: ${last.type}` : "",
        journey.subject ? [" · subject ", link(`/orders/${encodeURIComponent(journey.subject)}`, journey.subject)] : "",
        " · transaction ", h("code", { class: "id" }, journey.correlation)),
      h("h2", {}, "Journey by service"),
      lanes(journey, focus),
      h("h2", {}, "Steps"),
      h("ol", { class: "steps" }, journey.steps.map((step) => stepItem(step, journey, focus))),
      h("h2", {}, "Saga"),
      ...(journey.sagas.length
        ? journey.sagas.map(sagaBox)
        : [h("p", {}, "No saga instance for this transaction in the databases the dashboard reads.")]),
    );
  };
  const polling = poll(3000, refresh);
  await polling.first;
  if (!body.childElementCount) throw new Error(`nothing recorded for ${kind} ${key}`);
  return { nodes: [heading, body], stop: polling.stop };
}
