// Evidence: each citation's source, page, heading path, score and quote; opening one shows the
// whole chunk with the question's words highlighted.
import { api, collectionPath } from "./api.js";
import { $, clear, el, highlighted, questionWords } from "./dom.js";

function where(citation) {
  const parts = [];
  if (citation.page) parts.push(`page ${citation.page}`);
  if (citation.heading_path) parts.push(citation.heading_path);
  parts.push(`score ${Number(citation.score).toFixed(3)}`);
  return parts.join(" · ");
}

/** The list of an answer's citations (the chunks that were in its prompt). */
export function citationList(citations, turn, question, evidence) {
  const list = el("ol", { class: "citations", "aria-label": "Sources" });
  for (const citation of citations) {
    const id = `citation-${turn}-${citation.number}`;
    list.append(
      el(
        "li",
        { class: "citation", id, "data-testid": "citation", "data-cited": citation.cited ? "true" : "false" },
        el(
          "button",
          { type: "button", "aria-label": `Open source ${citation.number}: ${citation.filename}`, onclick: () => evidence.open(citation, question) },
          el("span", { class: "source" }, `[${citation.number}] ${citation.filename}`, citation.cited ? " (cited)" : ""),
          el("span", { class: "where" }, ` ${where(citation)}`),
          el("blockquote", {}, citation.quote),
        ),
      ),
    );
  }
  return list;
}

export class Evidence {
  constructor(page) {
    this.page = page;
    this.cache = new Map(); // collection/document -> chunks
    $("detail-close").addEventListener("click", () => this.close());
  }

  async chunkText(citation) {
    const collection = this.page.collection;
    const key = `${collection}/${citation.document_id}`;
    if (!this.cache.has(key)) {
      const path = collectionPath(collection, `/documents/${encodeURIComponent(citation.document_id)}/chunks`);
      this.cache.set(key, (await api("GET", path)).body.chunks);
    }
    const chunk = this.cache.get(key).find((c) => c.id === citation.chunk_id);
    return chunk ? chunk.text : null;
  }

  async open(citation, question) {
    let text;
    try {
      text = await this.chunkText(citation);
    } catch (error) {
      this.page.fail(error);
      return;
    }
    const detail = $("citation-detail");
    $("detail-heading").textContent = `Source ${citation.number}: ${citation.filename}`;
    $("detail-meta").textContent =
      text === null ? `${where(citation)} · this chunk is no longer stored; the quote is shown` : where(citation);
    clear($("detail-text")).append(highlighted(text === null ? citation.quote : text, questionWords(question)));
    detail.hidden = false;
    detail.focus();
  }

  close() {
    $("citation-detail").hidden = true;
    this.cache.clear();
  }
}
