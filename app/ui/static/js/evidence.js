// Evidence: each citation's source, page, heading path, score and quote (its best evidence
// sentence when the answer has one); opening one shows the whole chunk with the answer's
// evidence sentences marked at the server's offsets and the question's words highlighted.
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
export function citationList(citations, turn, question, evidence, spans = []) {
  const list = el("ol", { class: "citations", "aria-label": "Sources" });
  for (const citation of citations) {
    const id = `citation-${turn}-${citation.number}`;
    const own = spans.filter((s) => s.citation === citation.number); // best first
    const quote = own.length ? own[0].text : citation.quote;
    list.append(
      el(
        "li",
        { class: "citation", id, "data-testid": "citation", "data-cited": citation.cited ? "true" : "false" },
        el(
          "button",
          { type: "button", "aria-label": `Open source ${citation.number}: ${citation.filename}`, onclick: () => evidence.open(citation, question, own) },
          el("span", { class: "source" }, `[${citation.number}] ${citation.filename}`, citation.cited ? " (cited)" : ""),
          el("span", { class: "where" }, ` ${where(citation)}`),
          el("blockquote", { class: own.length ? "best" : undefined }, quote),
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

  async open(citation, question, spans = []) {
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
    // The quote is the chunk's text too, so the offsets hold for either.
    clear($("detail-text")).append(withEvidence(text === null ? citation.quote : text, spans, questionWords(question)));
    detail.hidden = false;
    detail.focus();
  }

  close() {
    $("citation-detail").hidden = true;
    this.cache.clear();
  }
}

/** ``text`` with each evidence span in a <mark class="evidence">, question words marked inside
 * and out. The server's offsets count code points, so the text is split into code points. */
function withEvidence(text, spans, words) {
  const chars = Array.from(text);
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    const start = Math.max(span.start, last);
    const end = Math.min(span.end, chars.length);
    if (end <= start) continue;
    if (start > last) fragment.append(highlighted(chars.slice(last, start).join(""), words));
    const title = `Evidence for the answer (score ${Number(span.score).toFixed(3)})`;
    fragment.append(el("mark", { class: "evidence", title }, highlighted(chars.slice(start, end).join(""), words)));
    last = end;
  }
  if (last < chars.length) fragment.append(highlighted(chars.slice(last).join(""), words));
  return fragment;
}
