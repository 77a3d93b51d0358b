// Small helpers shared by the views: safe element building (text only, never innerHTML),
// the JSON API with the admin token, and formatting.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function link(path, text, attrs = {}) {
  return h("a", { href: path, "data-nav": true, ...attrs }, text);
}

export const token = {
  get: () => sessionStorage.getItem("tidings-admin-token") || "",
  set: (value) => sessionStorage.setItem("tidings-admin-token", value),
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.admin && token.get()) headers.Authorization = `Bearer ${token.get()}`;
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: "same-origin",
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof payload.detail === "string" ? payload.detail : JSON.stringify(payload.detail || payload);
    throw new ApiError(response.status, detail);
  }
  return payload;
}

export function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 10000) return `${(value / 1000).toFixed(1)} s`;
  return `${Math.round(value)} ms`;
}

export function clock(iso) {
  if (!iso) return "–";
  const date = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  return date.toLocaleTimeString([], { hour12: false }) + "." + String(date.getMilliseconds()).padStart(3, "0");
}

export function short(id) {
  return id ? id.slice(0, 8) : "–";
}

export function notice(text, kind = "info") {
  const element = document.getElementById("notice");
  element.textContent = text;
  element.dataset.kind = kind;
}

export function table(caption, columns, rows, attrs = {}) {
  // columns: [label, cell(row) -> node|string]; every cell carries its label for the phone layout
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      attrs,
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", { scope: "col" }, label)))),
      h(
        "tbody",
        {},
        rows.length
          ? rows.map((row) => h("tr", row.__attrs || {}, columns.map(([label, cell]) => h("td", { "data-label": label }, cell(row)))))
          : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, "Nothing yet.")),
      ),
    ),
  );
}

export const state = { readOnly: true };

// Run `refresh` now and every `interval` ms until the view stops; errors show, polling goes on.
export function poll(interval, refresh) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    try {
      await refresh();
    } catch (error) {
      notice(error.message, "error");
    }
    if (!stopped) timer = setTimeout(tick, interval);
  };
  const first = tick();
  return { first, stop: () => { stopped = true; clearTimeout(timer); } };
}

export function healthBadge(status) {
  const kind = status === "up" ? "ok" : status === "unreachable" || status === "failed" ? "error" : "warn";
  return h("span", { class: "badge", "data-kind": kind }, status);
}
