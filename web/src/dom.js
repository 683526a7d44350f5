// DOM building without innerHTML: every text a user or the server supplies goes in as text.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2).toLowerCase(), value);
    else if (name === "class") element.className = value;
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** Announce a message to screen readers and show it in the status line. */
export function announce(text, kind = "info") {
  const status = document.getElementById("status");
  status.className = `status ${kind}`;
  status.textContent = text;
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

/** The words of a query, for highlighting (two letters or more). */
export function queryTerms(query) {
  return [...new Set(query.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) || [])];
}

/** The text with each query word wrapped in <mark>; whether any word was found. */
export function highlight(text, terms) {
  if (!terms.length) return { node: document.createTextNode(text), found: false };
  const escaped = terms.map((term) => term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`(${escaped.join("|")})`, "giu");
  const fragment = document.createDocumentFragment();
  let found = false;
  text.split(pattern).forEach((part, index) => {
    if (index % 2 === 1) {
      fragment.append(h("mark", {}, part));
      found = true;
    } else if (part) fragment.append(document.createTextNode(part));
  });
  return { node: fragment, found };
}

export function formatDate(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
