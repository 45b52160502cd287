// Wires the page together: the key, the collection, status messages, and the three parts.
import { ApiError, api, explain, setKey } from "./api.js";
import { $, clear, el } from "./dom.js";
import { Documents } from "./documents.js";
import { Uploads } from "./upload.js";
import { Conversation } from "./ask.js";

const COLLECTION_STORAGE = "ragserver.collection";

class Page {
  constructor() {
    this.collection = sessionStorage.getItem(COLLECTION_STORAGE) || "";
    this.shown = null; // the collection whose documents and conversation are on screen
    this.documents = new Documents(this);
    this.uploads = new Uploads(this);
    this.conversation = new Conversation(this);
  }

  status(text) {
    $("status").textContent = text;
  }

  /** Show an error as a sentence; a 401 also asks for a key. */
  fail(error) {
    const text = explain(error);
    const alert = $("alert");
    alert.textContent = text;
    alert.hidden = false;
    if (error instanceof ApiError && error.status === 401) this.askForKey(text);
    return text;
  }

  clearAlert() {
    $("alert").hidden = true;
    $("alert").textContent = "";
  }

  askForKey(reason) {
    $("key-reason").textContent = reason || "Enter the API key you were given for this server.";
    $("key-input").value = "";
    const dialog = $("key-dialog");
    if (!dialog.open) dialog.showModal();
    $("key-input").focus();
  }

  async load() {
    if (await this.loadCollections()) await this.conversation.loadStrategies();
  }

  bind() {
    $("key-button").addEventListener("click", () => this.askForKey());
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      setKey($("key-input").value.trim());
      $("key-dialog").close();
      this.clearAlert();
      this.status("Key saved for this tab.");
      this.load();
    });
    $("key-forget").addEventListener("click", () => {
      setKey("");
      $("key-dialog").close();
      this.status("The key is forgotten.");
    });
    $("key-cancel").addEventListener("click", () => $("key-dialog").close());
    $("collection-select").addEventListener("change", (event) => this.select(event.target.value));
    $("collection-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.createCollection($("collection-new").value.trim());
    });
  }

  async loadCollections() {
    let listed;
    try {
      listed = (await api("GET", "/collections")).body.collections;
    } catch (error) {
      this.fail(error);
      return false;
    }
    this.clearAlert();
    const names = listed.map((c) => c.name);
    const select = clear($("collection-select"));
    for (const c of listed) select.append(el("option", { value: c.name }, `${c.name} (${c.documents})`));
    if (!names.length) {
      this.collection = "";
      this.status("No collection is visible with this key; create one.");
      return true;
    }
    const wanted = names.includes(this.collection) ? this.collection : names.includes("default") ? "default" : names[0];
    select.value = wanted;
    await this.select(wanted);
    return true;
  }

  async select(name) {
    // A new key reloads the same collection: the conversation carries on.
    if (name !== this.shown) this.conversation.reset();
    this.shown = name;
    this.collection = name;
    sessionStorage.setItem(COLLECTION_STORAGE, name);
    $("collection-select").value = name;
    await this.documents.refresh();
  }

  async createCollection(name) {
    if (!name) {
      this.fail(new Error("enter a name for the new collection"));
      return;
    }
    try {
      await api("POST", "/collections", { json: { name } });
    } catch (error) {
      this.fail(error);
      return;
    }
    this.clearAlert();
    $("collection-new").value = "";
    this.collection = name;
    this.status(`Collection ${name} created.`);
    await this.loadCollections();
  }
}

// A module script runs once the document is parsed, so the elements exist already.
const page = new Page();
page.bind();
page.load();
