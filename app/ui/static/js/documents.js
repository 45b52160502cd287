// The documents table of the current collection: list, delete (confirmed), chunks in order.
import { api, collectionPath } from "./api.js";
import { $, clear, el, formatTime } from "./dom.js";

const PAGE_SIZE = 500;

export class Documents {
  constructor(page) {
    this.page = page;
    this.pages = new Map(); // document id + version -> page count (PDFs only)
    $("chunks-close").addEventListener("click", () => this.closeChunks());
  }

  async refresh() {
    const collection = this.page.collection;
    let listed;
    try {
      listed = (await api("GET", collectionPath(collection, "/documents"), { query: { limit: PAGE_SIZE } })).body;
    } catch (error) {
      this.page.fail(error);
      return;
    }
    if (collection !== this.page.collection) return; // another collection was picked meanwhile
    const body = clear($("documents-body"));
    for (const doc of listed.documents) body.append(this.row(doc));
    $("documents-empty").hidden = listed.documents.length > 0;
    const shown = listed.documents.length;
    $("documents-caption").textContent =
      listed.total > shown
        ? `Documents in ${collection}: the first ${shown} of ${listed.total}`
        : `Documents in ${collection} (${listed.total})`;
    const option = [...$("collection-select").options].find((o) => o.value === collection);
    if (option) option.textContent = `${collection} (${listed.total})`;
    this.fillPages(collection, listed.documents);
  }

  row(doc) {
    const name = doc.filename;
    const pages = el("td", { class: "num", "data-label": "Pages" }, "—");
    pages.dataset.pagesFor = doc.id;
    return el(
      "tr",
      { "data-testid": "document-row", "data-document-id": doc.id },
      el("td", { class: "name" }, name),
      el("td", { class: "num", "data-label": "Chunks" }, String(doc.chunks)),
      pages,
      el("td", { class: "updated", "data-label": "Updated" }, formatTime(doc.updated_at)),
      el(
        "td",
        { class: "actions" },
        el("button", { type: "button", "aria-label": `Show the chunks of ${name}`, onclick: () => this.showChunks(doc) }, "Chunks"),
        el("button", { type: "button", "aria-label": `Delete ${name}`, onclick: () => this.remove(doc) }, "Delete"),
      ),
    );
  }

  /** Pages are known for PDFs only: the highest page number among the chunks. */
  async fillPages(collection, docs) {
    for (const doc of docs) {
      if (!/\.pdf$/i.test(doc.filename)) continue;
      const cacheKey = `${collection}/${doc.id}/${doc.content_hash}`;
      if (!this.pages.has(cacheKey)) {
        try {
          const chunks = await this.chunks(collection, doc.id);
          this.pages.set(cacheKey, Math.max(0, ...chunks.map((c) => c.page || 0)));
        } catch {
          continue; // the document went away meanwhile; the next refresh drops its row
        }
      }
      const cell = document.querySelector(`td[data-pages-for="${CSS.escape(doc.id)}"]`);
      const count = this.pages.get(cacheKey);
      if (cell && count) cell.textContent = String(count);
    }
  }

  async chunks(collection, documentId) {
    const path = collectionPath(collection, `/documents/${encodeURIComponent(documentId)}/chunks`);
    return (await api("GET", path)).body.chunks;
  }

  async remove(doc) {
    const noun = doc.chunks === 1 ? "chunk" : "chunks";
    if (!window.confirm(`Delete ${doc.filename} and its ${doc.chunks} ${noun} from ${this.page.collection}?`)) return;
    try {
      await api("DELETE", collectionPath(this.page.collection, `/documents/${encodeURIComponent(doc.id)}`));
    } catch (error) {
      this.page.fail(error);
      return;
    }
    this.page.status(`${doc.filename} deleted.`);
    if ($("chunks-view").dataset.documentId === doc.id) this.closeChunks();
    await this.refresh();
  }

  async showChunks(doc) {
    let chunks;
    try {
      chunks = await this.chunks(this.page.collection, doc.id);
    } catch (error) {
      this.page.fail(error);
      return;
    }
    const view = $("chunks-view");
    view.dataset.documentId = doc.id;
    $("chunks-heading").textContent = `Chunks of ${doc.filename} (${chunks.length})`;
    const list = clear($("chunks-list"));
    for (const chunk of chunks) {
      const where = [`chunk ${chunk.position + 1}`];
      if (chunk.page) where.push(`page ${chunk.page}`);
      if (chunk.heading_path) where.push(chunk.heading_path);
      list.append(el("li", { class: "chunk" }, el("p", { class: "muted" }, where.join(" · ")), el("div", { class: "chunk-text" }, chunk.text)));
    }
    view.hidden = false;
    $("chunks-close").focus();
  }

  closeChunks() {
    $("chunks-view").hidden = true;
    delete $("chunks-view").dataset.documentId;
  }
}
