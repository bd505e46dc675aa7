"""Reading PDFs back as people see them: text (pdftotext) and pixels (pdftoppm), from poppler-utils."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                                   reason="pdftoppm/pdftotext (poppler-utils) not installed")


def pdf_text(content: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=content, check=True,
                          capture_output=True).stdout.decode()


def page_size_mm(content: bytes) -> tuple[float, float]:
    """The first page's width and height in millimetres (pdfinfo answers in points)."""
    out = subprocess.run(["pdfinfo", "-"], input=content, check=True, capture_output=True).stdout.decode()
    line = next(x for x in out.splitlines() if x.startswith("Page size:"))
    w, _x, h = line.split(":", 1)[1].split()[:3]
    return float(w) * 25.4 / 72, float(h) * 25.4 / 72


def rasterise(content: bytes, path: Path, dpi: int = 50) -> list[Path]:
    """Every page as a PNG (``path``-1.png, -2.png …), as the golden images are made."""
    pdf = path.with_suffix(".pdf")
    pdf.write_bytes(content)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(path)], check=True)
    return sorted(path.parent.glob(f"{path.name}-*.png"))
