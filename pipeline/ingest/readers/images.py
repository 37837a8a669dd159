"""Scanned images (PNG, JPEG, TIFF; each frame of a multi-page TIFF a page) through Pillow, their text
by OCR (``readers.ocr``). An image larger than ``ocr.MAX_PIXELS`` is refused from its header, before
it is decoded (a decompression bomb), and so is a file with more frames than ``ocr_max_pages``."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pipeline.errors import UnreadableDocument
from pipeline.ingest.readers import ocr
from pipeline.ingest.readers.ocr import OcrOptions
from pipeline.ingest.readers.pdf import first_line
from pipeline.ingest.readers.structure import Builder, Parsed

_COMPLETE_FIX = "check that the file is complete and opens in an image viewer (re-scan or re-export it)"


def read_image(path: Path, options: OcrOptions | None = None) -> Parsed:
    options = options or OcrOptions()
    ocr.require(options, "is a scanned image: its text needs OCR")
    recognizer = ocr.Recognizer(options)
    builder = Builder()
    with warnings.catch_warnings():
        # Pillow only warns between its limit and twice it; here any image over the limit is refused.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                frames = getattr(image, "n_frames", 1)
                ocr.check_page_count(frames, options)
                for index in range(frames):
                    image.seek(index)
                    ocr.check_pixels(*image.size, f"page {index + 1}" if frames > 1 else "the image")
                    image.load()
                    builder.page(index + 1)
                    builder.block(recognizer.text(image))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise UnreadableDocument(f"is too large an image to decode ({exc})",
                                     "scan or export it at 300 dpi or less, or split it") from exc
        except UnidentifiedImageError as exc:  # its message names the (staging) path: not part of a dead letter
            raise UnreadableDocument(f"is not a readable image (not {path.suffix.lstrip('.').upper()} data)",
                                     _COMPLETE_FIX) from exc
        except (OSError, EOFError, SyntaxError, ValueError) as exc:
            detail = str(exc).replace(str(path), path.name)
            raise UnreadableDocument(f"is not a readable image ({type(exc).__name__}: {detail})", _COMPLETE_FIX) from exc
    parsed = builder.build(None)
    if not parsed.text.strip():
        raise UnreadableDocument(
            f"is a scanned image: OCR found no text on its {frames:,} page{'s' if frames > 1 else ''}",
            f"check the scan (resolution, orientation; ocr_languages is {options.languages!r})")
    return Parsed(parsed.text, first_line(parsed.text), parsed.sections,
                  {"pages": frames, **recognizer.metadata()})
