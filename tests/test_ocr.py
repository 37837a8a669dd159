"""OCR with the real Tesseract on real rendered pages: image-only PDFs, PNG and multi-page TIFF become
text with their page numbers; a mixed PDF's text pages are never OCR'd; corrupt images, decompression
bombs and huge scans are dead letters or bounded work while the rest of the day loads; without
Tesseract (or its language data, or with OCR off) the dead letter or ConfigError says what to do."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from pipeline.errors import ConfigError, UnreadableDocument
from pipeline.ingest import stages
from pipeline.ingest.parse_pool import ParseLimits, parse_files
from pipeline.ingest.planning import DayPlan, Recipe
from pipeline.ingest.readers import ocr, parse
from pipeline.ingest.readers.ocr import OcrOptions
from pipeline.ops.ingest_steps import ReadReport
from pipeline.records import DayDocuments, ModelInfo
from resources import SourceResource
from tests.support import corpora, scans
from tests.support.sample import day_folder

DAY = dt.date(2026, 3, 9)
MANUAL = Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf")
FIRST = ["Invoice number 4711 for the lighthouse keeper", "Payment is due within thirty days"]
SECOND = ["Second page: the harbour master signs here", "Delivery by steamship to Rotterdam"]


@pytest.fixture(scope="module", autouse=True)
def tesseract() -> None:
    if ocr.missing(OcrOptions()) is not None:
        pytest.fail(f"OCR is not installed here ({ocr.missing(OcrOptions())}): {ocr.install_fix(OcrOptions())}")


@pytest.fixture(scope="module")
def manual() -> Path:
    try:
        corpora.require_package("libtasn1-doc", MANUAL)
    except corpora.CorpusUnavailable as exc:
        pytest.fail(f"cannot build the real corpus: {exc}")
    return MANUAL


def page_texts(parsed) -> dict[int, str]:
    """The text of each page, from the sections the reader recorded."""
    bounds = [(s.start, s.page) for s in parsed.sections]
    pages: dict[int, str] = {}
    for (start, page), (end, _) in zip(bounds, [*bounds[1:], (len(parsed.text), None)], strict=True):
        pages[page] = pages.get(page, "") + parsed.text[start:end]
    return pages


def test_an_image_only_pdf_becomes_text_with_its_page_numbers(tmp_path) -> None:
    pdf = scans.image_only_pdf([scans.text_image(FIRST), scans.text_image(SECOND)], tmp_path / "scan.pdf")
    parsed = parse(pdf)
    pages = page_texts(parsed)
    assert "lighthouse keeper" in pages[1] and "harbour master" in pages[2] and "Rotterdam" not in pages[1]
    assert parsed.metadata["pages"] == 2 and parsed.metadata["ocr_pages"] == 2 and parsed.metadata["ocr_seconds"] > 0


def test_png_and_multipage_tiff_are_documents(tmp_path) -> None:
    png = tmp_path / "letter.png"
    scans.degrade(scans.text_image(FIRST), seed=1).save(png)
    parsed = parse(png)
    assert "Payment is due within thirty days" in parsed.text and parsed.sections[0].page == 1
    tiff = scans.multipage_tiff([scans.text_image(FIRST), scans.text_image(SECOND)], tmp_path / "fax.tiff")
    pages = page_texts(parse(tiff))
    assert "4711" in pages[1] and "steamship" in pages[2]


def test_a_mixed_pdf_ocrs_only_its_pages_without_text(tmp_path, manual) -> None:
    """A real manual's text page, a blank page, then the same manual's next page as a scan: one OCR'd."""
    text_page = scans.page_subset(manual, [10], tmp_path / "text.pdf")
    scanned = scans.image_only_pdf(scans.rasterize(manual, [11], dpi=200), tmp_path / "scanned.pdf")
    mixed = tmp_path / "mixed.pdf"
    merged = pdfium.PdfDocument.new()
    merged.import_pages(pdfium.PdfDocument(str(text_page)))
    merged.new_page(612, 792)  # blank, no image: nothing to OCR
    merged.import_pages(pdfium.PdfDocument(str(scanned)))
    merged.save(str(mixed))
    parsed = parse(mixed)
    assert parsed.metadata["ocr_pages"] == 1, "the page with a text layer is read from it, never OCR'd"
    pages = page_texts(parsed)
    original = parse(text_page).text
    assert pages[1].strip() == original.strip()
    assert "asn1" in pages[3].lower() and len(pages[3]) > 500
    off = parse(mixed, OcrOptions(enabled=False))
    assert off.metadata["pages_without_text"] == [3] and "ocr_pages" not in off.metadata


def test_a_mixed_pdf_past_the_page_cap_keeps_its_text_and_records_the_rest(tmp_path, manual) -> None:
    merged = pdfium.PdfDocument.new()
    merged.import_pages(pdfium.PdfDocument(str(manual)), [10])
    scanned = scans.image_only_pdf([scans.text_image(FIRST, size=(1700, 300)), scans.text_image(SECOND, size=(1700, 300))],
                                   tmp_path / "scanned.pdf")
    merged.import_pages(pdfium.PdfDocument(str(scanned)))
    merged.save(str(tmp_path / "mixed.pdf"))
    parsed = parse(tmp_path / "mixed.pdf", OcrOptions(max_pages=1))
    assert parsed.metadata["ocr_pages"] == 1 and parsed.metadata["pages_without_text"] == [3]
    assert "lighthouse keeper" in parsed.text and "harbour master" not in parsed.text


def test_bad_scans_are_dead_letters_or_bounded_and_the_day_still_loads(tmp_path) -> None:
    landing = tmp_path / "landing"
    folder = day_folder(landing, DAY)
    scans.text_image(FIRST).save(folder / "good.png")
    good = folder / "good.png"
    (folder / "corrupt.png").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    (folder / "not-an-image.jpg").write_bytes(b"this is a text file with the wrong name\n" * 10)
    Image.new("1", (20_000, 20_000), 1).save(folder / "bomb.png")  # 400 megapixels in a small file
    assert (folder / "bomb.png").stat().st_size < 2 * 1024**2
    blank = Image.new("L", (170, 220), 255)
    scans.multipage_tiff([blank] * 500, folder / "archive.tiff", dpi=20)  # a 500-page scan
    read = stages.read_documents(landing, DAY, limits=ParseLimits(seconds=60, memory_mb=1024, workers=2))
    letters = {d.source_uri.rsplit("/", 1)[1]: f"{d.error}. {d.detail}" for d in read.dead_letters}
    assert [d.doc_id for d in read.documents] == ["good.png"]
    assert "lighthouse keeper" in read.documents[0].text and read.documents[0].metadata["format"] == "png"
    assert "not a readable image" in letters["corrupt.png"], letters
    assert "not a readable image" in letters["not-an-image.jpg"], letters
    assert "20,000x20,000 pixels" in letters["bomb.png"] or "too large an image" in letters["bomb.png"], letters
    assert "decompression bomb" in letters["bomb.png"] or "DecompressionBomb" in letters["bomb.png"]
    assert "has 500 pages to OCR, more than ocr_max_pages (60)" in letters["archive.tiff"], letters


def test_a_huge_scan_under_a_raised_page_cap_is_stopped_by_the_time_limit(tmp_path) -> None:
    pages = [scans.text_image(FIRST, size=(1700, 400))] * 500
    huge = scans.image_only_pdf(pages, tmp_path / "huge.pdf")
    good = tmp_path / "good.png"
    scans.text_image(SECOND, size=(1700, 300)).save(good)
    limits = ParseLimits(seconds=5, memory_mb=1024, workers=2, ocr=OcrOptions(max_pages=1000))
    stopped, parsed = parse_files([huge, good], limits)
    assert "longer than the parse time limit of 5 s" in str(stopped)
    assert not isinstance(parsed, Exception) and "harbour master" in parsed.text


def test_without_tesseract_the_dead_letter_says_what_to_install(tmp_path, monkeypatch) -> None:
    scan = scans.image_only_pdf([scans.text_image(FIRST)], tmp_path / "scan.pdf")
    png = tmp_path / "scan.png"
    scans.text_image(FIRST).save(png)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    ocr.installed_languages.cache_clear()
    try:
        for path in (scan, png):
            with pytest.raises(UnreadableDocument) as raised:
                parse(path, OcrOptions(languages="deu+eng"))
            message = str(raised.value)
            assert "the tesseract binary is not installed" in message, message
            assert "pip install 'docvec[ocr]'" in message
            assert "apt-get install tesseract-ocr tesseract-ocr-deu tesseract-ocr-eng" in message
    finally:
        monkeypatch.undo()
        ocr.installed_languages.cache_clear()
    assert shutil.which("tesseract"), "PATH restored"


def test_a_language_without_data_is_a_config_error_naming_the_package(tmp_path) -> None:
    png = tmp_path / "scan.png"
    scans.text_image(FIRST).save(png)
    with pytest.raises(ConfigError, match=r"no data for kat_old.*apt-get install tesseract-ocr tesseract-ocr-kat-old"):
        parse_files([png], ParseLimits(ocr=OcrOptions(languages="eng+kat_old")))
    with pytest.raises(ConfigError, match="not a list of Tesseract language names"):
        OcrOptions(languages="english; rm -rf /")


def test_with_ocr_off_a_scan_is_a_dead_letter_saying_so(tmp_path) -> None:
    scan = scans.image_only_pdf([scans.text_image(FIRST)], tmp_path / "scan.pdf")
    outcome, = parse_files([scan], ParseLimits(workers=1, ocr=OcrOptions(enabled=False)))
    assert isinstance(outcome, UnreadableDocument)
    assert "is a scanned PDF: no text to extract (OCR is turned off)" in str(outcome)


def test_the_days_ocr_cost_is_in_the_read_steps_report(tmp_path) -> None:
    landing = tmp_path / "landing"
    folder = day_folder(landing, DAY)
    scans.image_only_pdf([scans.text_image(FIRST), scans.text_image(SECOND)], folder / "scan.pdf")
    (folder / "notes.md").write_text("# Notes\n\nNothing scanned here.\n")
    read: DayDocuments = stages.read_documents(landing, DAY)
    model = ModelInfo("m", "r", 4, 128, True, "cpu")
    plan = DayPlan(read=read, recipe=Recipe.of(model), fingerprint="-", unchanged=False, files_read=2)
    report = ReadReport({DAY.isoformat(): plan}, str(landing))
    metadata = report.metadata()
    assert metadata["ocr_pages"] == 2 and metadata["ocr_seconds"] > 0
    assert "2 pages OCR'd in" in report.lines()[0]


def test_the_source_resources_ocr_settings_reach_the_parse_workers() -> None:
    limits = SourceResource(ocr=False, ocr_languages="deu+eng", ocr_dpi=200, ocr_max_pages=5).parse_limits()
    assert limits.ocr == OcrOptions(enabled=False, languages="deu+eng", dpi=200, max_pages=5)
    assert SourceResource().parse_limits().ocr == OcrOptions(), "on by default, wherever Tesseract is installed"
