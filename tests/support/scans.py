"""Scanned editions of real documents, built on the fly and never committed: PDF pages rasterised by
PDFium at a scanner's resolution, given a scanner's flaws (a slight skew, grey paper, sensor noise),
and wrapped as image-only PDFs or TIFFs by Pillow; and images of known text for the OCR tests."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageDraw, ImageFont


def rasterize(pdf: Path, pages: Sequence[int], dpi: int = 200) -> list[Image.Image]:
    """The pages (indices from 0) of ``pdf`` as greyscale images at ``dpi``."""
    document = pdfium.PdfDocument(str(pdf))
    try:
        return [document[index].render(scale=dpi / 72, grayscale=True).to_pil().convert("L") for index in pages]
    finally:
        document.close()


def degrade(image: Image.Image, seed: int, max_skew_degrees: float = 0.8, noise: float = 12.0) -> Image.Image:
    """``image`` as a flatbed scanner returns it: rotated a little, on off-white paper, with noise."""
    rng = random.Random(seed)
    skewed = image.rotate(rng.uniform(-max_skew_degrees, max_skew_degrees), resample=Image.Resampling.BICUBIC,
                          expand=False, fillcolor=255)
    pixels = np.asarray(skewed, dtype=np.float32) * 0.92 + 12  # grey paper, ink not quite black
    pixels += np.random.default_rng(seed).normal(0.0, noise, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")


def image_only_pdf(images: Sequence[Image.Image], target: Path, dpi: int = 200) -> Path:
    """One page per image, no text layer: what a scanner's "scan to PDF" writes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = images
    first.save(target, "PDF", save_all=True, append_images=list(rest), resolution=dpi)
    return target


def multipage_tiff(images: Sequence[Image.Image], target: Path, dpi: int = 200) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = images
    first.save(target, "TIFF", save_all=True, append_images=list(rest), compression="tiff_deflate",
               dpi=(dpi, dpi))
    return target


def page_subset(pdf: Path, pages: Sequence[int], target: Path) -> Path:
    """The text edition of the same pages: ``pdf``'s pages (indices from 0) as a PDF of their own."""
    source, copy = pdfium.PdfDocument(str(pdf)), pdfium.PdfDocument.new()
    try:
        copy.import_pages(source, list(pages))
        target.parent.mkdir(parents=True, exist_ok=True)
        copy.save(str(target))
    finally:
        copy.close()
        source.close()
    return target


def text_image(lines: Sequence[str], size: tuple[int, int] = (1700, 2200), font_size: int = 40) -> Image.Image:
    """A page (A4-ish at 200 dpi) holding ``lines`` in Pillow's own font: text whose words are known."""
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=font_size)
    for number, line in enumerate(lines):
        draw.text((120, 150 + number * int(font_size * 1.8)), line, fill=0, font=font)
    return page
