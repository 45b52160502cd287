"""Debian's Chromium driven by Playwright, and a page that records what went wrong in it.

Playwright's own browser download cannot work on these machines, so the browser is the system
``/usr/bin/chromium`` (``scripts/system_deps.sh test`` installs it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.fakes import EchoGenerator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_KEY = "ui-admin-key"
READER_KEY = "ui-reader-key"
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}


class GatedGenerator(EchoGenerator):
    """EchoGenerator whose stream, when armed, stops after its first piece until released.

    The test sees the first piece on the page while the rest is not yet generated: proof by
    events, not by timing, that the page shows the answer as it streams.
    """

    def __init__(self) -> None:
        super().__init__()
        self.armed = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()

    def stream(self, messages: Sequence[Any], params: Any) -> Iterator[str]:
        for i, piece in enumerate(super().stream(messages, params)):
            yield piece
            if i == 0 and self.armed.is_set():
                self.holding.set()
                self.release.wait(120)


@dataclass
class PageRecord:
    """A page and what it reported: console errors, uncaught exceptions, dialogs."""

    page: Page
    context: BrowserContext
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    confirm_answers: list[bool] = field(default_factory=list)


def open_page(
    browser: Browser,
    url: str,
    key: str | None = ADMIN_KEY,
    collection: str | None = None,
    viewport: dict[str, int] | None = None,
) -> PageRecord:
    """Open the page in a fresh context (its own sessionStorage), optionally holding a key.

    ``confirm_answers`` answers the page's confirm() dialogs in order (an alert or a confirm
    with no answer left is dismissed and still recorded in ``dialogs``).
    """
    context = browser.new_context(viewport=viewport or WIDE)
    stored = {"ragserver.apiKey": key, "ragserver.collection": collection}
    setup = "".join(
        f"sessionStorage.setItem({json.dumps(name)}, {json.dumps(value)});"
        for name, value in stored.items()
        if value
    )
    if setup:
        # Only on the first load of the tab, so a reload shows what the page itself kept.
        context.add_init_script(
            f"if (!sessionStorage.getItem('ui-test-setup')) {{ {setup} "
            "sessionStorage.setItem('ui-test-setup', '1'); }"
        )
    page = context.new_page()
    record = PageRecord(page, context)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            record.console_errors.append(message.text)

    def on_dialog(dialog: Any) -> None:
        record.dialogs.append(f"{dialog.type}: {dialog.message}")
        if dialog.type == "confirm" and record.confirm_answers and record.confirm_answers.pop(0):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: record.page_errors.append(str(error)))
    page.on("dialog", on_dialog)
    page.goto(f"{url}/")
    return record


def screenshot(page: Page, folder: Path, name: str, full_page: bool = False) -> Path:
    """Save a PNG of the page as ``folder/name.png``, reduced to a 256-colour palette."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    reduced.save(path, optimize=True)
    return path
