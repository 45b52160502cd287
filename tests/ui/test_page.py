"""The web page in a real Chromium against a real ``ragserver serve`` with API keys on.

One server and one browser for the module; each test has its own browser context (its own
sessionStorage) and its own collection, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.ingest.files import make_pdf
from tests.integration.live import LiveServer
from tests.ui.browser import (
    NARROW,
    READER_KEY,
    GatedGenerator,
    PageRecord,
    open_page,
    screenshot,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
expect.set_options(timeout=90_000)  # a shared 2-core machine embeds slowly; events decide

FACT = (
    "Orchard Street Library opening hours. The library opens at 9 am and closes at 6 pm. "
    "The secret code of the archive vault is 7421. Only the head librarian knows it."
)
OTHER = "Harbour tides. The harbour gate opens at dawn and closes at dusk every day."
QUESTION = "What is the secret code of the archive vault?"
HOSTILE = (
    '<script>window.__pwned = "script"</script><img src=x onerror="window.__pwned = \'img\'"> '
    "The hostile note says the lighthouse keeper rings the bell at noon."
)
HOSTILE_NAME = "<img src=x onerror=alert(1)>.txt"


def guide_text(version: int = 1) -> str:
    sections = [
        f"# Guide v{version}\n\nThis guide explains how the archive is organised.\n",
        "## Lending\n\n" + "Members may borrow up to five books for three weeks. " * 25,
        "## Returns\n\n" + "Books are returned at the front desk or the night box. " * 25,
    ]
    return "\n".join(sections)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def create_collection(api: httpx.Client, name: str, files: dict[str, str] | None = None) -> None:
    resp = api.post("/collections", json={"name": name})
    assert resp.status_code == 201, resp.text
    if files:
        upload = [("files", (n, text.encode())) for n, text in files.items()]
        resp = api.post(f"/collections/{name}/documents", files=upload)
        assert resp.status_code == 201, resp.text


def outcome(page: Page, filename: str):  # type: ignore[no-untyped-def]
    return page.locator("#upload-results li").filter(
        has=page.locator(".name", has_text=re.compile(f"^{re.escape(filename)}$"))
    )


def assert_clean(record: PageRecord, allowed_statuses: tuple[int, ...] = ()) -> None:
    """No uncaught error, no dialog but the expected ones, and no console error other than
    the browser's own line for a response status the test provoked on purpose."""
    assert record.page_errors == []
    allowed = tuple(
        f"Failed to load resource: the server responded with a status of {s}"
        for s in allowed_statuses
    )
    assert [m for m in record.console_errors if not m.startswith(allowed or ("\0",))] == []


def test_root_leads_to_the_page(server: LiveServer, browser: Browser) -> None:
    record = open_page(browser, server.url)
    assert record.page.url == f"{server.url}/ui/"
    expect(record.page).to_have_title("ragserver")
    expect(record.page.locator("#collection-select")).to_have_value("default")
    assert_clean(record)
    record.context.close()


def test_upload_shows_each_files_outcome_and_lists_the_documents(
    server: LiveServer, browser: Browser, api: httpx.Client, tmp_path: Path, shots: Path
) -> None:
    files = tmp_path / "files"
    paths = [
        write(files, "guide.md", guide_text()),
        write(files, "notes.txt", OTHER),
        write(files, "page.html", "<html><body><h1>Opening</h1><p>Open daily.</p></body></html>"),
        write(files, "report.pdf", make_pdf(["First page about maps.", "Second page, atlases."])),
        write(files, "broken.pdf", b"%PDF-1.4 this is not really a pdf"),
    ]
    record = open_page(browser, server.url)
    page = record.page
    page.get_by_label("New collection name").fill("ui-upload")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#collection-select")).to_have_value("ui-upload")

    page.get_by_test_id("upload-input").set_input_files(paths)
    for name in ("guide.md", "notes.txt", "page.html", "report.pdf"):
        expect(outcome(page, name)).to_have_attribute("data-status", "created")
    failed = outcome(page, "broken.pdf")
    expect(failed).to_have_attribute("data-status", "failed")
    # The reason is the server's own: the same file uploaded through the API says the same.
    create_collection(api, "ui-upload-check")
    check = api.post(
        "/collections/ui-upload-check/documents",
        files=[("files", ("broken.pdf", paths[-1].read_bytes()))],
    )
    expect(failed.locator(".reason")).to_have_text(check.json()["error"]["message"])

    rows = page.get_by_test_id("document-row")
    expect(rows).to_have_count(4)
    listed = api.get("/collections/ui-upload/documents").json()["documents"]
    for doc in listed:
        row = rows.filter(has=page.locator("td.name", has_text=doc["filename"]))
        expect(row.locator("td").nth(1)).to_have_text(str(doc["chunks"]))
    pdf_row = rows.filter(has=page.locator("td.name", has_text="report.pdf"))
    expect(pdf_row.locator("td").nth(2)).to_have_text("2")
    expect(
        rows.filter(has=page.locator("td.name", has_text="notes.txt")).locator("td").nth(2)
    ).to_have_text("—")
    screenshot(page, shots, "ui-documents")

    # The same file again is unchanged; an edited one replaces the stored version.
    write(files, "guide.md", guide_text(version=2))
    page.get_by_test_id("upload-input").set_input_files([files / "notes.txt", files / "guide.md"])
    expect(outcome(page, "notes.txt")).to_have_attribute("data-status", "unchanged")
    expect(outcome(page, "guide.md")).to_have_attribute("data-status", "replaced")

    # Drag and drop.
    transfer = page.evaluate_handle(
        """() => { const dt = new DataTransfer();
        dt.items.add(new File(["Dropped notes about tides and boats."], "dropped.txt",
                              {type: "text/plain"}));
        return dt; }"""
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    expect(outcome(page, "dropped.txt")).to_have_attribute("data-status", "created")
    expect(rows).to_have_count(5)

    # In the background: the job's progress until it is done, then each file's outcome.
    page.get_by_label("Upload in the background").check()
    page.get_by_test_id("upload-input").set_input_files([write(files, "later.txt", FACT)])
    expect(page.locator("#job")).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#job-text")).to_contain_text("1 of 1 files")
    expect(page.locator("#job-progress")).to_have_js_property("value", 1)
    expect(outcome(page, "later.txt")).to_have_attribute("data-status", "created")
    expect(rows).to_have_count(6)
    assert_clean(record)
    record.context.close()


def test_a_file_that_fails_alone_shows_the_servers_reason(
    server: LiveServer, browser: Browser, api: httpx.Client, tmp_path: Path
) -> None:
    create_collection(api, "ui-failed")
    bad = write(tmp_path, "scan.xyz", "not a supported type")
    record = open_page(browser, server.url, collection="ui-failed")
    page = record.page
    expect(page.locator("#collection-select")).to_have_value("ui-failed")
    page.get_by_test_id("upload-input").set_input_files([bad])
    failed = outcome(page, "scan.xyz")
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed.locator(".reason")).to_contain_text("files of type '.xyz' are not supported")
    expect(page.get_by_role("alert")).to_contain_text("are not supported")
    expect(page.get_by_test_id("document-row")).to_have_count(0)
    assert_clean(record, allowed_statuses=(415,))
    record.context.close()


def test_chunks_in_order_and_delete_after_confirming(
    server: LiveServer, browser: Browser, api: httpx.Client
) -> None:
    create_collection(api, "ui-delete", {"guide.md": guide_text(), "notes.txt": OTHER})
    record = open_page(browser, server.url, collection="ui-delete")
    page = record.page
    rows = page.get_by_test_id("document-row")
    expect(rows).to_have_count(2)

    page.get_by_role("button", name="Show the chunks of guide.md").click()
    doc_id = api.get("/collections/ui-delete/documents").json()["documents"]
    guide = next(d for d in doc_id if d["filename"] == "guide.md")
    stored = api.get(f"/collections/ui-delete/documents/{guide['id']}/chunks").json()["chunks"]
    assert len(stored) > 1
    shown = page.locator("#chunks-list .chunk-text")
    expect(shown).to_have_count(len(stored))
    assert shown.all_text_contents() == [c["text"] for c in stored]
    expect(page.locator("#chunks-list")).to_contain_text("Lending")

    record.confirm_answers.append(False)
    page.get_by_role("button", name="Delete guide.md").click()
    assert record.dialogs
    assert record.dialogs[-1].startswith("confirm: Delete guide.md")
    expect(rows).to_have_count(2)
    assert api.get(f"/collections/ui-delete/documents/{guide['id']}").status_code == 200

    record.confirm_answers.append(True)
    page.get_by_role("button", name="Delete guide.md").click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td.name")).to_have_text("notes.txt")
    expect(page.locator("#chunks-view")).to_be_hidden()
    assert api.get(f"/collections/ui-delete/documents/{guide['id']}").status_code == 404
    assert_clean(record)
    record.context.close()


def ask(page: Page, question: str) -> None:
    box = page.get_by_test_id("question-input")
    box.fill(question)
    box.press("Enter")


def ask_page(
    server: LiveServer, browser: Browser, api: httpx.Client, collection: str
) -> tuple[PageRecord, list[dict[str, object]]]:
    """A collection of the two small files, the page open on it, and the query bodies it sends."""
    create_collection(api, collection, {"library.txt": FACT, "harbour.txt": OTHER})
    record = open_page(browser, server.url, collection=collection)
    expect(record.page.get_by_test_id("document-row")).to_have_count(2)
    queries: list[dict[str, object]] = []
    record.page.on(
        "request",
        lambda r: queries.append(r.post_data_json) if r.url.endswith("/query") else None,
    )
    return record, queries


def test_ask_streams_the_answer_with_citations_evidence_and_budget(
    server: LiveServer,
    browser: Browser,
    api: httpx.Client,
    generator: GatedGenerator,
    shots: Path,
) -> None:
    record, queries = ask_page(server, browser, api, "ui-ask")
    page = record.page

    # Shift+Enter is a new line, not a question.
    box = page.get_by_test_id("question-input")
    box.fill("What is the secret code")
    box.press("Shift+Enter")
    box.press_sequentially("of the archive vault?")
    expect(box).to_have_value("What is the secret code\nof the archive vault?")
    assert queries == []

    # The first piece is on the page while the model holds the rest back.
    generator.holding.clear()
    generator.release.clear()
    generator.armed.set()
    try:
        ask(page, QUESTION)
        assert generator.holding.wait(120), "the generator was never asked"
        answer = page.get_by_test_id("answer")
        expect(answer).to_have_text("Orchard")
        expect(answer).to_have_attribute("aria-busy", "true")
        expect(page.get_by_test_id("citation")).to_have_count(0)
    finally:
        generator.armed.clear()
        generator.release.set()
    expect(answer).to_have_attribute("aria-busy", "false")
    expect(answer).to_have_text("Orchard Street Library opening hours. [1]")
    assert queries[0]["stream"] is True
    assert queries[0]["history"] == []

    citations = page.get_by_test_id("citation")
    expect(citations.first).to_contain_text("[1] library.txt")
    expect(citations.first).to_contain_text("(cited)")
    expect(citations.first.locator("blockquote")).to_contain_text("7421")
    expect(citations.first).to_contain_text("score ")

    usage = page.get_by_test_id("usage")
    expect(usage).to_be_visible()
    expect(usage).to_contain_text(f"Chunks: {citations.count()} used, 0 cut, 0 dropped")
    expect(page.locator("#budget-bar span")).to_have_count(7)
    context_tokens = page.locator("#budget-legend li[data-part=context]").text_content() or ""
    assert int(context_tokens.split()[-1]) > 0

    # [1] leads to its citation; the keyboard opens it; the whole chunk, question words marked.
    answer.get_by_role("link", name="source 1").click()
    opener = citations.first.get_by_role("button")
    expect(opener).to_be_focused()
    page.keyboard.press("Enter")
    detail = page.get_by_test_id("citation-detail")
    expect(detail).to_be_visible()
    expect(detail).to_be_focused()
    library = next(
        d
        for d in api.get("/collections/ui-ask/documents").json()["documents"]
        if d["filename"] == "library.txt"
    )
    chunk = api.get(f"/collections/ui-ask/documents/{library['id']}/chunks").json()["chunks"][0]
    expect(page.locator("#detail-text")).to_have_text(chunk["text"])
    words = page.locator("#detail-text mark:not(.evidence)").all_text_contents()
    assert {m.lower() for m in words} == {"secret", "code", "archive", "vault"}
    expect(page.get_by_test_id("answer-mode")).to_have_text("generative answer")
    screenshot(page, shots, "ui-answer", full_page=True)

    # The prompt preview shows the exact messages and calls no model.
    calls = len(generator.calls)
    box.fill("When does the library open?")
    page.get_by_role("button", name="Preview prompt").click()
    dialog = page.locator("#preview-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".message h3").first).to_have_text("system")
    expect(dialog.locator(".message").last).to_contain_text("When does the library open?")
    expect(dialog.locator(".message").last).to_contain_text("7421")
    screenshot(page, shots, "ui-preview")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert len(generator.calls) == calls

    # A follow-up with options sends the conversation so far and the chosen settings.
    page.get_by_label("Strategy").select_option("few_shot")
    page.get_by_label("Role").fill("a librarian")
    page.get_by_label("Chunks (top_k)").fill("1")
    page.get_by_label("Retrieval").select_option("bm25")
    box.press("Enter")
    expect(page.get_by_test_id("answer")).to_have_count(2)
    expect(page.get_by_test_id("answer").last).to_have_attribute("aria-busy", "false")
    follow_up = queries[-1]
    assert follow_up["history"] == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "Orchard Street Library opening hours. [1]"},
    ]
    assert (follow_up["strategy"], follow_up["role"], follow_up["top_k"], follow_up["mode"]) == (
        "few_shot",
        "a librarian",
        1,
        "bm25",
    )
    sent = "\n".join(m["content"] for m in generator.calls[-1])
    assert QUESTION in sent
    assert "a librarian" in sent
    expect(usage).to_contain_text("Chunks: 1 used")
    expect(usage).to_contain_text("History: 2 kept")
    examples = page.locator("#budget-legend li[data-part=examples]").text_content() or ""
    assert int(examples.split()[-1]) > 0
    assert_clean(record)
    record.context.close()


def test_a_hostile_document_is_shown_as_text_and_runs_nothing(
    server: LiveServer, browser: Browser, api: httpx.Client, tmp_path: Path
) -> None:
    create_collection(api, "ui-hostile")
    record = open_page(browser, server.url, collection="ui-hostile")
    page = record.page
    expect(page.locator("#collection-select")).to_have_value("ui-hostile")
    page.get_by_test_id("upload-input").set_input_files(
        [
            write(tmp_path, HOSTILE_NAME, HOSTILE),
            write(tmp_path, "hostile.md", "# <b>bold</b>\n\n" + HOSTILE),
        ]
    )
    row = page.get_by_test_id("document-row")
    expect(row).to_have_count(2)
    expect(row.locator("td.name", has_text=HOSTILE_NAME)).to_have_count(1)
    page.get_by_role("button", name=f"Show the chunks of {HOSTILE_NAME}").click()
    expect(page.locator("#chunks-list")).to_contain_text(
        '<script>window.__pwned = "script"</script>'
    )

    ask(page, "When does the lighthouse keeper ring the bell?")
    answer = page.get_by_test_id("answer")
    expect(answer).to_have_attribute("aria-busy", "false")
    expect(answer).to_contain_text("<img src=x onerror=")
    expect(page.get_by_test_id("citation").first.locator("blockquote")).to_contain_text("<script>")
    page.get_by_test_id("citation").first.get_by_role("button").click()
    expect(page.get_by_test_id("citation-detail")).to_contain_text("<img src=x onerror=")

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.body.querySelectorAll('script, img, b').length") == 0
    assert record.dialogs == []
    assert_clean(record)
    record.context.close()


def test_the_key_is_asked_once_and_refusals_are_sentences(
    server: LiveServer, browser: Browser, tmp_path: Path, shots: Path
) -> None:
    record = open_page(browser, server.url, key=None)
    page = record.page
    sent_keys: list[str | None] = []
    page.on(
        "request",
        lambda r: sent_keys.append(r.headers.get("authorization")) if "/v1/" in r.url else None,
    )
    dialog = page.get_by_role("dialog", name="API key")
    expect(dialog).to_be_visible()
    expect(page.locator("#key-reason")).to_have_text(
        "This server needs an API key. Enter your key to continue."
    )
    screenshot(page, shots, "ui-key")

    page.get_by_role("textbox", name="API key").fill("not-a-key")
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#key-reason")).to_have_text(
        "The server did not accept this API key. Check it and enter it again."
    )
    expect(dialog).to_be_visible()

    page.get_by_role("textbox", name="API key").fill(READER_KEY)
    page.get_by_role("button", name="Use this key").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#collection-select")).to_have_value("default")
    assert page.evaluate("sessionStorage.getItem('ragserver.apiKey')") == READER_KEY
    assert f"Bearer {READER_KEY}" in sent_keys

    page.reload()  # asked once: the tab keeps the key
    expect(page.locator("#collection-select")).to_have_value("default")
    expect(dialog).to_be_hidden()

    page.get_by_test_id("upload-input").set_input_files([write(tmp_path, "a.txt", OTHER)])
    expect(page.get_by_role("alert")).to_have_text(
        "Your API key does not allow this: This API key is read-only; it cannot create, "
        "upload, change or delete."
    )
    expect(page.get_by_test_id("document-row")).to_have_count(0)
    assert_clean(record, allowed_statuses=(401, 403))
    assert len(record.console_errors) == 3  # the two 401s and the 403, nothing else
    record.context.close()


def test_narrow_width_is_readable_and_every_control_is_labelled(
    server: LiveServer, browser: Browser, api: httpx.Client, shots: Path
) -> None:
    create_collection(
        api,
        "ui-narrow",
        {"library.txt": FACT, "a-rather-long-file-name-about-harbour-tides.txt": OTHER},
    )
    record = open_page(browser, server.url, collection="ui-narrow", viewport=NARROW)
    page = record.page
    expect(page.get_by_test_id("document-row")).to_have_count(2)
    ask(page, QUESTION)
    expect(page.get_by_test_id("answer")).to_have_attribute("aria-busy", "false")
    page.get_by_test_id("citation").first.get_by_role("button").click()
    expect(page.get_by_test_id("citation-detail")).to_be_visible()

    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    for testid in (
        "upload-input",
        "document-row",
        "question-input",
        "ask-button",
        "answer",
        "citation",
        "citation-detail",
        "usage",
    ):
        box = page.get_by_test_id(testid).first.bounding_box()
        assert box is not None, testid
        assert box["x"] >= 0, (testid, box)
        assert box["x"] + box["width"] <= NARROW["width"], (testid, box)
    screenshot(page, shots, "ui-narrow", full_page=True)

    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
          .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
          .map((el) => el.outerHTML)"""
    )
    assert unlabelled == []

    # The keyboard alone reaches the upload, the question and the button that sends it.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("body").focus()
    reached = []
    for _ in range(60):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate("document.activeElement.dataset.testid || document.activeElement.id")
        )
        if reached[-1] == "ask-button":
            break
    assert {"upload-input", "question-input", "ask-button"} <= set(reached), reached
    assert_clean(record)
    record.context.close()


def test_a_refused_question_says_why_in_a_sentence(
    server: LiveServer, browser: Browser, api: httpx.Client
) -> None:
    create_collection(api, "ui-refused", {"library.txt": FACT})
    record = open_page(browser, server.url, collection="ui-refused")
    page = record.page
    expect(page.get_by_test_id("document-row")).to_have_count(1)
    ask(page, "why " * 1001)  # 4003 characters once trimmed: over MAX_QUESTION_CHARS (4000)
    answer = page.get_by_test_id("answer")
    expect(answer).to_have_text(
        "The question is 4003 characters; at most 4000 are accepted "
        "(RAG_SECURITY__MAX_QUESTION_CHARS)."
    )
    expect(page.get_by_role("alert")).to_have_text(answer.text_content() or "")
    expect(page.get_by_test_id("ask-button")).to_be_enabled()
    assert_clean(record, allowed_statuses=(422,))
    record.context.close()


def evidence_of(api: httpx.Client, collection: str, question: str) -> dict[str, object]:
    resp = api.post(
        f"/collections/{collection}/query",
        json={"question": question, "answer_mode": "extractive"},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_evidence_spans_are_marked_and_an_unanswered_question_abstains(
    server: LiveServer, browser: Browser, api: httpx.Client, generator: GatedGenerator
) -> None:
    record, queries = ask_page(server, browser, api, "ui-evidence")
    page = record.page
    calls = len(generator.calls)
    page.get_by_label("Answer mode").select_option("extractive")
    ask(page, QUESTION)
    answer = page.get_by_test_id("answer")
    expect(answer).to_have_attribute("aria-busy", "false")
    assert queries[-1]["answer_mode"] == "extractive"
    expect(page.get_by_test_id("answer-mode")).to_have_text("extractive answer")
    expect(page.get_by_test_id("abstained")).to_have_count(0)
    assert len(generator.calls) == calls  # extractive: no model call

    # The same question through the API: the page marks exactly its evidence, at its offsets.
    body = evidence_of(api, "ui-evidence", QUESTION)
    assert not body["abstained"]
    evidence = body["evidence"]
    assert isinstance(evidence, list)
    assert evidence
    best = evidence[0]
    own = [e for e in evidence if e["citation"] == best["citation"]]
    spans = sorted(own, key=lambda e: e["start"])
    citation = page.locator(f"#citation-1-{best['citation']}")
    expect(citation.locator("blockquote")).to_have_text(best["text"])
    citation.get_by_role("button").click()
    expect(page.get_by_test_id("citation-detail")).to_be_visible()
    marks = page.locator("#detail-text mark.evidence")
    expect(marks).to_have_count(len(spans))
    assert marks.all_text_contents() == [e["text"] for e in spans]
    chunk = next(c for c in body["citations"] if c["number"] == best["citation"])["quote"]
    assert [chunk[e["start"] : e["end"]] for e in spans] == [e["text"] for e in spans]
    # Question words stay marked, inside the evidence too.
    inside = page.locator("#detail-text mark.evidence mark").all_text_contents()
    assert "vault" in {m.lower() for m in inside}

    # A question the documents do not answer: a plain sentence, the closest passages listed.
    unanswered = "Which bakery sells the best sourdough bread in Lisbon?"
    assert evidence_of(api, "ui-evidence", unanswered)["abstained"] is True
    ask(page, unanswered)
    expect(answer).to_have_count(2)
    expect(answer.last).to_have_attribute("aria-busy", "false")
    expect(page.get_by_test_id("abstained")).to_have_count(1)
    expect(page.get_by_test_id("abstained")).to_contain_text("The documents do not say")
    turn = page.locator(".turn").last
    expect(turn.get_by_test_id("answer-mode")).to_have_text("extractive answer")
    assert turn.get_by_test_id("citation").count() > 0
    assert len(generator.calls) == calls
    assert_clean(record)
    record.context.close()
