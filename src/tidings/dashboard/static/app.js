// The dashboard page: a URL per view, rendered from the JSON API; no inline script (CSP).
import { api, h, notice, state, token } from "./dom.js";
import { overview } from "./views/overview.js";
import { stream } from "./views/stream.js";
import { journeyView } from "./views/journey.js";
import { charts } from "./views/charts.js";
import { sagas } from "./views/sagas.js";
import { groups, group } from "./views/groups.js";

const routes = [
  [/^\/$/, () => overview()],
  [/^\/stream$/, () => stream()],
  [/^\/charts$/, () => charts()],
  [/^\/sagas$/, () => sagas()],
  [/^\/groups$/, () => groups()],
  [/^\/groups\/(.+)$/, (name) => group(name)],
  [/^\/orders\/(.+)$/, (key) => journeyView("order", key)],
  [/^\/transactions\/(.+)$/, (key) => journeyView("transaction", key)],
  [/^\/events\/(.+)$/, (key) => journeyView("event", key)],
];

let current = null; // the running view: { stop() } to end its polling


async function render() {
  if (current && current.stop) current.stop();
  current = null;
  const main = document.getElementById("view");
  const path = location.pathname;
  for (const [pattern, view] of routes) {
    const match = pattern.exec(path);
    if (!match) continue;
    main.replaceChildren(h("p", {}, "Loading…"));
    try {
      current = await view(...match.slice(1).map(decodeURIComponent));
      main.replaceChildren(...current.nodes);
    } catch (error) {
      main.replaceChildren(h("h1", {}, "Not found"), h("p", { class: "error" }, error.message));
    }
    for (const anchor of document.querySelectorAll("nav a")) {
      anchor.toggleAttribute("aria-current", anchor.getAttribute("href") === path);
      if (anchor.hasAttribute("aria-current")) anchor.setAttribute("aria-current", "page");
    }
    document.title = `${main.querySelector("h1")?.textContent || "Tidings"} · Tidings dashboard`;
    return;
  }
  main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, `No view at ${path}.`));
}

function go(path) {
  history.pushState({}, "", path);
  render();
}

document.addEventListener("click", (event) => {
  const anchor = event.target.closest("a[data-nav]");
  if (!anchor || event.ctrlKey || event.metaKey || event.shiftKey || anchor.target) return;
  event.preventDefault();
  go(anchor.getAttribute("href"));
});
window.addEventListener("popstate", render);

document.getElementById("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const term = document.getElementById("q").value.trim();
  if (!term) return;
  try {
    const found = await api(`/api/search?q=${encodeURIComponent(term)}`);
    notice("");
    go(found.path);
  } catch (error) {
    notice(error.message, "error");
  }
});

function showMode() {
  const mode = document.getElementById("mode");
  if (state.readOnly) mode.textContent = "read-only";
  else mode.textContent = token.get() ? "admin token set" : "no token given";
  mode.dataset.kind = state.readOnly ? "warn" : token.get() ? "ok" : "info";
}

document.getElementById("token").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("admin-token");
  token.set(input.value.trim());
  input.value = "";
  showMode();
  notice(token.get() ? "Admin token kept for this tab." : "Admin token cleared.");
});

// the mode first: the dead-letter view enables its buttons only when the dashboard takes a token
api("/api/config")
  .then((config) => {
    state.readOnly = config.read_only;
  })
  .catch(() => {})
  .finally(() => {
    showMode();
    render();
  });
