"""OCR engines compared: character error rate and seconds per page, Tesseract vs RapidOCR.

Usage::

    .venv/bin/python bench/bench_ocr.py [--dpi 150 300] [--repeat 2]
        [--out bench/results/ocr.md]

The page is real prose: the first ~2,300 characters of the Python tutorial's "Whetting Your
Appetite" (``_sources/tutorial/appetite.rst.txt`` of Debian's python3.11-doc, reST markup
stripped), typeset in 11 pt DejaVu Serif on a US-letter page with one-inch margins and
rendered at each ``--dpi`` (what a scanner or ``pypdfium2`` would hand the engine).

* Tesseract 5 (Debian ``tesseract-ocr`` + ``tesseract-ocr-eng``) through pytesseract, as
  ``ingest.ocr`` calls it (``--oem 1 --psm 3``, LSTM engine, automatic page layout).
* RapidOCR (``rapidocr-onnxruntime``, PP-OCR models shipped in its wheel, onnxruntime on CPU);
  its lines are joined top to bottom with spaces.

CER is the Levenshtein distance between the engine's text and the truth divided by the
truth's length, both with whitespace collapsed to single spaces. Seconds per page is the best
of ``--repeat`` runs after one warm-up (so model loading is not counted), on this machine's
CPUs.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SOURCE = Path("/usr/share/doc/python3.11/html/_sources/tutorial/appetite.rst.txt")
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")
_MARKUP = re.compile(r":\w+:`([^`<]*)(?:<[^>]*>)?`|`+([^`]*)`+_?|\*+([^*]+)\*+")


def page_text(limit: int = 2300) -> str:
    """Return the benchmark's ground truth: the page's prose, reST markup removed."""
    paragraphs: list[str] = []
    for block in SOURCE.read_text(encoding="utf-8").split("\n\n"):
        lines = [line.strip() for line in block.splitlines()]
        if not lines or lines[0].startswith(("..", "*", "=")) or set(lines[-1]) <= set("=-*"):
            continue
        text = _MARKUP.sub(lambda m: next(g for g in m.groups() if g is not None), " ".join(lines))
        paragraphs.append(text)
        if sum(len(p) for p in paragraphs) > limit:
            break
    return "\n\n".join(paragraphs)


def render(text: str, dpi: int) -> Any:
    """Typeset ``text`` in 11 pt serif on a letter page at ``dpi``; return a Pillow image."""
    from PIL import Image, ImageDraw, ImageFont

    width, height, margin = int(8.5 * dpi), int(11 * dpi), dpi
    font = ImageFont.truetype(str(FONT), round(11 * dpi / 72))
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    y, line_height = margin, round(11 * dpi / 72 * 1.4)
    for paragraph in text.split("\n\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) > width - 2 * margin and line:
                draw.text((margin, y), line, font=font, fill=0)
                y, line = y + line_height, word
            else:
                line = trial
        draw.text((margin, y), line, font=font, fill=0)
        y += 2 * line_height
    return image


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between two strings."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(found: str, truth: str) -> float:
    """Character error rate of ``found`` against ``truth``, whitespace collapsed."""
    f, t = " ".join(found.split()), " ".join(truth.split())
    return levenshtein(f, t) / max(1, len(t))


def tesseract_engine() -> Callable[[Any], str]:
    """Return Tesseract as ``ingest.ocr`` runs it."""
    from ingest.ocr import TesseractEngine

    engine = TesseractEngine(timeout_seconds=120)
    return lambda image: engine.read(image).text


def rapidocr_engine() -> Callable[[Any], str]:
    """Return RapidOCR (models from its wheel), lines joined top to bottom."""
    import numpy as np
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()

    def read(image: Any) -> str:
        result, _ = engine(np.asarray(image.convert("RGB")))
        lines = sorted(result or [], key=lambda r: (r[0][0][1], r[0][0][0]))
        return " ".join(str(r[1]) for r in lines)

    return read


def measure(
    name: str, read: Callable[[Any], str], image: Any, truth: str, repeat: int
) -> dict[str, Any]:
    """Warm up once, then time ``repeat`` reads; return the best time and the CER."""
    read(image)
    best, text = float("inf"), ""
    for _ in range(repeat):
        started = time.perf_counter()
        text = read(image)
        best = min(best, time.perf_counter() - started)
    return {"engine": name, "seconds": best, "cer": cer(text, truth), "sample": text[:80]}


def main() -> None:
    """Run the comparison and write the markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dpi", type=int, nargs="+", default=[150, 300])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench/results/ocr.md"))
    args = parser.parse_args()
    truth = page_text()
    engines = {"tesseract": tesseract_engine(), "rapidocr": rapidocr_engine()}
    rows = []
    for dpi in args.dpi:
        image = render(truth, dpi)
        for name, read in engines.items():
            row = measure(name, read, image, truth, args.repeat)
            row["dpi"] = dpi
            rows.append(row)
            print(f"{dpi} dpi {name}: CER {row['cer']:.2%}, {row['seconds']:.2f} s/page")
    lines = [
        "# OCR engines: character error rate and seconds per page",
        "",
        f"Command: `.venv/bin/python bench/bench_ocr.py --dpi {' '.join(map(str, args.dpi))} "
        f"--repeat {args.repeat}`",
        "",
        f"One US-letter page of real prose ({len(truth)} characters, 11 pt DejaVu Serif, from "
        "the Python tutorial), rendered at each dpi; best of the runs after a warm-up.",
        "",
        f"Load average when it ran: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.",
        "",
        "| dpi | engine | CER | seconds/page |",
        "|----:|--------|----:|-------------:|",
    ]
    lines += [f"| {r['dpi']} | {r['engine']} | {r['cer']:.2%} | {r['seconds']:.2f} |" for r in rows]
    lines += ["", "First 80 characters read:", ""]
    lines += [f"- {r['dpi']} dpi {r['engine']}: `{r['sample']}`" for r in rows]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
