// Building the DOM from data: text always goes in as text nodes, never as HTML.

/** Create an element; attrs are set as attributes (or properties for on*), children as nodes or text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) {
      // Handlers only as functions: an on* attribute string would be markup that runs.
      if (typeof value === "function") node.addEventListener(name.slice(2), value);
    } else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

const STOPWORDS = new Set(
  "the and for are was were what which who whom whose when where why how with from that this these those into onto about does did has have had not but you your they their them its can could would should will shall may might must than then there here also just only very".split(" "),
);

/** The words of a question worth highlighting: 3+ letters, not stop words, lower-cased. */
export function questionWords(question) {
  const words = String(question || "").toLowerCase().match(/[\p{L}\p{N}]{3,}/gu) || [];
  return [...new Set(words.filter((w) => !STOPWORDS.has(w)))];
}

/** A fragment of ``text`` with each whole-word match of ``words`` in a <mark>. */
export function highlighted(text, words) {
  const fragment = document.createDocumentFragment();
  if (!words.length) {
    fragment.append(document.createTextNode(text));
    return fragment;
  }
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}])(${escaped.join("|")})(?![\\p{L}\\p{N}])`, "giu");
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) fragment.append(document.createTextNode(text.slice(last, match.index)));
    fragment.append(el("mark", {}, match[0]));
    last = match.index + match[0].length;
  }
  if (last < text.length) fragment.append(document.createTextNode(text.slice(last)));
  return fragment;
}

export function formatTime(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}
