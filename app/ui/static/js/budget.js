// The token budget: a bar of the context window split into its parts, the chunks used, cut and
// dropped; and the prompt preview's exact messages.
import { $, clear, el } from "./dom.js";

const PARTS = [
  ["system", "System"],
  ["examples", "Examples"],
  ["history", "History"],
  ["context", "Context"],
  ["question", "Question"],
];

/** Show a budget report (the usage of an answer or a preview). */
export function showUsage(usage) {
  const window_ = Math.max(1, usage.window);
  const byPart = usage.tokens_by_part || {};
  const segments = PARTS.map(([key, label]) => [key, label, byPart[key] || 0]);
  segments.push(["reserve", "Answer reserve", usage.reserve || 0]);
  segments.push(["unused", "Unused", Math.max(0, usage.unused_tokens || 0)]);
  const bar = clear($("budget-bar"));
  const legend = clear($("budget-legend"));
  for (const [key, label, tokens] of segments) {
    const span = el("span", { class: `part-${key}`, title: `${label}: ${tokens} tokens` });
    span.style.width = `${(100 * tokens) / window_}%`;
    bar.append(span);
    legend.append(el("li", { "data-part": key }, el("span", { class: `swatch part-${key}`, "aria-hidden": "true" }), `${label} ${tokens}`));
  }
  const estimated = usage.estimated ? " (estimated)" : "";
  bar.setAttribute(
    "aria-label",
    `Context window of ${usage.window} tokens${estimated}: ` + segments.map(([, label, tokens]) => `${label.toLowerCase()} ${tokens}`).join(", "),
  );
  const used = (usage.chunks_used || []).length;
  const cut = (usage.chunks_truncated || []).length;
  const dropped = (usage.chunks_dropped || []).length;
  $("budget-chunks").textContent =
    `Window ${usage.window} tokens${estimated}, prompt ${usage.prompt_tokens}. ` +
    `Chunks: ${used} used, ${cut} cut, ${dropped} dropped. ` +
    `History: ${usage.history_used || 0} kept, ${usage.history_dropped || 0} dropped.`;
  $("usage").hidden = false;
}

/** Show the messages a question would send, and its budget, in the preview dialog. */
export function previewPrompt(preview) {
  $("preview-meta").textContent = `Template ${preview.template}; ${preview.messages.length} messages, ${preview.usage.prompt_tokens} tokens; no model was called.`;
  const box = clear($("preview-messages"));
  for (const message of preview.messages) {
    box.append(el("section", { class: "message" }, el("h3", {}, message.role), el("div", { class: "chunk-text" }, message.content)));
  }
  showUsage(preview.usage);
  const dialog = $("preview-dialog");
  if (!dialog.open) dialog.showModal();
  $("preview-close").focus();
}

export function bindPreview() {
  $("preview-close").addEventListener("click", () => $("preview-dialog").close());
}
