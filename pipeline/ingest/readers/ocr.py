"""Optical character recognition of page images with Tesseract, through pytesseract (the optional
extra ``docvec[ocr]``) and Debian's ``tesseract-ocr`` with a language pack per language. On by
default wherever it is installed (``OcrOptions.enabled`` turns it off). Nothing here imports
pytesseract until a page needs it, so a day without scans never loads it.

Tesseract runs single-threaded (``OMP_THREAD_LIMIT=1``): the parse workers already run one file per
core, and Tesseract's own OpenMP threads would only compete with them."""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError, UnreadableDocument

if TYPE_CHECKING:
    from PIL import Image

_LANGUAGES = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\+[A-Za-z][A-Za-z0-9_]*)*")
PIP_EXTRA = "pip install 'docvec[ocr]'"
# Pillow's own limit (MAX_IMAGE_PIXELS, ~89 megapixels: 9,400 pixels square, an A0 sheet at 200 dpi).
# Larger images are refused before they are decoded, and PDF pages are rendered below it.
MAX_PIXELS = 89_478_485


@dataclass(frozen=True)
class OcrOptions:
    """How pages without text are read: ``languages`` as Tesseract names them (``eng``, ``deu+eng``),
    pages rendered at ``dpi``, and at most ``max_pages`` pages to recognise in one file (a larger scan
    is a dead letter before any page is read: at ~1.5 s a page, 60 pages fit the default 120 s parse
    time limit of one file)."""
    enabled: bool = True
    languages: str = "eng"
    dpi: int = 300
    max_pages: int = 60

    def __post_init__(self) -> None:
        if not _LANGUAGES.fullmatch(self.languages):
            raise ConfigError(f"ocr_languages {self.languages!r} is not a list of Tesseract language names joined by "
                              "'+', e.g. 'eng' or 'deu+eng' (see `tesseract --list-langs`)")
        if not 72 <= self.dpi <= 600 or self.max_pages < 1:
            raise ConfigError(f"OCR settings: ocr_dpi must be 72..600 and ocr_max_pages >= 1 (got {self.dpi}, "
                              f"{self.max_pages})")

    @property
    def language_list(self) -> list[str]:
        return self.languages.split("+")


def debian_packages(languages: list[str]) -> str:
    """Debian's packages for Tesseract and these languages (``chi_sim`` is ``tesseract-ocr-chi-sim``)."""
    return " ".join(["tesseract-ocr", *(f"tesseract-ocr-{lang.lower().replace('_', '-')}" for lang in languages)])


def install_fix(options: OcrOptions) -> str:
    return f"install OCR: `{PIP_EXTRA}` and `apt-get install {debian_packages(options.language_list)}`"


@functools.cache
def installed_languages() -> frozenset[str] | None:
    """The languages the tesseract binary has data for; None when there is no tesseract binary."""
    binary = shutil.which("tesseract")
    if binary is None:
        return None
    try:
        listing = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (listing.stdout + "\n" + listing.stderr).splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("List of"))


def _pytesseract_missing() -> bool:
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return True
    return False


def _absent(options: OcrOptions, languages: frozenset[str]) -> list[str]:
    """The languages ``options`` names that Tesseract has no data for."""
    return [lang for lang in options.language_list if lang not in languages]


def missing(options: OcrOptions) -> str | None:
    """Why OCR cannot run here (what is not installed), or None when it can."""
    if _pytesseract_missing():
        return "pytesseract is not installed"
    languages = installed_languages()
    if languages is None:
        return "the tesseract binary is not installed"
    absent = _absent(options, languages)
    if absent:
        return f"Tesseract has no language data for {'+'.join(absent)}"
    return None


def check_languages(options: OcrOptions) -> None:
    """``ConfigError`` when Tesseract is installed but lacks a language ``options`` names (a setting to
    fix before a day is read, not a file's fault). Without Tesseract at all, scans are dead letters."""
    if not options.enabled:
        return
    languages = installed_languages()
    if languages is None:
        return
    absent = _absent(options, languages)
    if absent:
        raise ConfigError(f"ocr_languages {options.languages!r}: Tesseract has no data for {'+'.join(absent)} "
                          f"(it has {', '.join(sorted(languages - {'osd'})) or 'none'}); install it with "
                          f"`apt-get install {debian_packages(absent)}`, or set the source's ocr_languages")


def require(options: OcrOptions, what: str) -> None:
    """``UnreadableDocument`` (``what``: the file's problem) when OCR is off or not installed."""
    if not options.enabled:
        raise UnreadableDocument(f"{what} (OCR is turned off)",
                                 "turn OCR on (the source's ocr setting), or land the file with a text layer")
    reason = missing(options)
    if reason is not None:
        raise UnreadableDocument(f"{what} (OCR is not available: {reason})",
                                 f"{install_fix(options)}; or land the file with a text layer")


def check_page_count(pages: int, options: OcrOptions) -> None:
    if pages > options.max_pages:
        raise UnreadableDocument(
            f"has {pages:,} pages to OCR, more than ocr_max_pages ({options.max_pages:,})",
            "split the scan, or raise the source's ocr_max_pages (and parse_timeout_seconds: ~1.5 s a page a core)")


def check_pixels(width: int, height: int, where: str) -> None:
    if width * height > MAX_PIXELS:
        raise UnreadableDocument(
            f"{where} is {width:,}x{height:,} pixels, more than the {MAX_PIXELS:,}-pixel limit for an image "
            "(a decompression bomb, or a scan at far too high a resolution)",
            "scan or export it at 300 dpi or less, or split it")


def render_scale(width_points: float, height_points: float, dpi: int) -> float:
    """The scale a PDF page is rendered at: ``dpi``, or less when that would exceed ``MAX_PIXELS``."""
    scale = dpi / 72
    area = max(width_points * height_points, 1.0)
    return min(scale, math.sqrt(MAX_PIXELS / area) * 0.999)


@dataclass
class Recognizer:
    """Recognises page images one at a time, counting pages and seconds."""
    options: OcrOptions
    pages: int = 0
    seconds: float = 0.0

    def text(self, image: Image.Image) -> str:
        import pytesseract

        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        if image.mode not in ("1", "L", "RGB"):
            image = image.convert("RGB")
        started = time.perf_counter()
        try:
            text: str = pytesseract.image_to_string(image, lang=self.options.languages)
        except pytesseract.TesseractError as exc:
            raise UnreadableDocument(f"could not be OCR'd (Tesseract: {exc.message or exc.status})",
                                     "check that the image opens in an image viewer") from exc
        finally:
            self.seconds += time.perf_counter() - started
        self.pages += 1
        return text

    def metadata(self) -> dict[str, int | float]:
        """What OCR cost this file: stored with the document, summed per day in the read step's report."""
        return {"ocr_pages": self.pages, "ocr_seconds": round(self.seconds, 3)} if self.pages else {}
