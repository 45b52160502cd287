// Questions and answers: the question box, the options, the streamed answer with [n] links
// to its citations, and the conversation so far sent as history with follow-up questions.
import { api, streamQuery } from "./api.js";
import { $, clear, el } from "./dom.js";
import { citationList, Evidence } from "./evidence.js";
import { bindPreview, previewPrompt, showUsage } from "./budget.js";

const ABSTAINED =
  "The documents do not say: none of the passages answers this question. The closest passages are listed below.";

export class Conversation {
  constructor(page) {
    this.page = page;
    this.history = [];
    this.turns = 0;
    this.busy = false;
    this.evidence = new Evidence(page);
    bindPreview();
    const input = $("question-input");
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("ask-form").requestSubmit();
      }
    });
    $("ask-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.ask();
    });
    $("preview-button").addEventListener("click", () => this.preview());
    $("new-conversation").addEventListener("click", () => {
      this.reset();
      input.focus();
    });
  }

  async loadStrategies() {
    let prompts;
    try {
      prompts = (await api("GET", "/prompts")).body.prompts;
    } catch (error) {
      this.page.fail(error);
      return;
    }
    const select = $("strategy");
    const chosen = select.value;
    clear(select).append(el("option", { value: "" }, "server default"));
    for (const prompt of prompts) {
      select.append(el("option", { value: prompt.name, title: prompt.description }, prompt.name.replaceAll("_", " ")));
    }
    select.value = chosen;
  }

  reset() {
    this.history = [];
    clear($("conversation"));
    this.evidence.close();
    $("usage").hidden = true;
  }

  /** The request body from the form: question, options and the earlier turns. */
  request(question) {
    const body = { question, history: this.history.slice() };
    const strategy = $("strategy").value;
    const role = $("role").value.trim();
    const topK = $("top-k").value;
    const mode = $("mode").value;
    const answerMode = $("answer-mode").value;
    if (strategy) body.strategy = strategy;
    if (role) body.role = role;
    if (topK) body.top_k = Number(topK);
    if (mode) body.mode = mode;
    if (answerMode) body.answer_mode = answerMode;
    return body;
  }

  async ask() {
    const input = $("question-input");
    const question = input.value.trim();
    if (!question || this.busy) return;
    if (!this.page.collection) {
      this.page.fail(new Error("pick or create a collection first"));
      return;
    }
    this.busy = true;
    $("ask-button").disabled = true;
    this.page.clearAlert();
    const turn = ++this.turns;
    const answer = el("div", { class: "answer", "data-testid": "answer", "aria-busy": "true", id: `answer-${turn}` });
    const item = el("li", { class: "turn" }, el("p", { class: "question" }, question), answer);
    $("conversation").append(item);
    const body = this.request(question);
    this.page.status("Answering…");
    let text = "";
    try {
      const result = await streamQuery(this.page.collection, body, (delta) => {
        text += delta;
        answer.textContent = text;
      });
      this.finish(item, answer, turn, question, result);
      input.value = "";
      this.history.push({ role: "user", content: question }, { role: "assistant", content: result.answer });
      this.page.status("Answered.");
    } catch (error) {
      answer.classList.add("error");
      answer.textContent = this.page.fail(error);
      this.page.status("");
    } finally {
      answer.setAttribute("aria-busy", "false");
      this.busy = false;
      $("ask-button").disabled = false;
    }
  }

  finish(item, answer, turn, question, result) {
    clear(answer).append(withCitationLinks(result.answer, turn));
    if (result.reasoning) {
      item.append(el("details", { class: "reasoning" }, el("summary", {}, "Reasoning"), el("div", {}, result.reasoning)));
    }
    if (result.abstained) {
      item.append(el("p", { class: "abstained", "data-testid": "abstained", role: "note" }, ABSTAINED));
    }
    item.append(citationList(result.citations, turn, question, this.evidence, result.evidence || []));
    const t = result.timings || {};
    const confidence = typeof result.confidence === "number" ? ` · confidence ${result.confidence.toFixed(2)}` : "";
    item.append(
      el(
        "p",
        { class: "meta" },
        el("span", { "data-testid": "answer-mode" }, `${result.answer_mode || "generative"} answer`),
        `${confidence} · ${result.model} · ${result.usage.completion_tokens} tokens · ${Math.round(t.total_ms || 0)} ms`,
      ),
    );
    showUsage(result.usage);
  }

  async preview() {
    const question = $("question-input").value.trim();
    if (!question) {
      this.page.fail(new Error("write a question first: the preview shows the prompt it would make"));
      return;
    }
    try {
      const preview = (await api("POST", "/prompts/preview", { json: { ...this.request(question), collection: this.page.collection } })).body;
      this.page.clearAlert();
      previewPrompt(preview);
    } catch (error) {
      this.page.fail(error);
    }
  }
}

/** The answer's text with each [n] turned into a link to citation n of this turn. */
function withCitationLinks(text, turn) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(/\[(\d{1,3})\]/g)) {
    if (match.index > last) fragment.append(text.slice(last, match.index));
    const id = `citation-${turn}-${match[1]}`;
    fragment.append(
      el("a", {
        class: "cite-ref",
        href: `#${id}`,
        "aria-label": `source ${match[1]}`,
        onclick: (event) => {
          event.preventDefault();
          const citation = document.getElementById(id);
          if (!citation) return;
          citation.scrollIntoView({ block: "nearest" });
          citation.classList.add("flash");
          setTimeout(() => citation.classList.remove("flash"), 1500);
          citation.querySelector("button").focus();
        },
      }, match[0]),
    );
    last = match.index + match[0].length;
  }
  if (last < text.length) fragment.append(text.slice(last));
  return fragment;
}
