"""Real documents nobody here wrote, in every format docvec reads: the Python documentation as Debian
ships it (HTML, and its reST sources), printed to PDF by headless Chromium and converted to Word,
PowerPoint and EPUB by pandoc; a Debian manual typeset by TeX; R's readxl example workbook. Then the
bad ones: encrypted, scanned, truncated, unknown, and files built to hang or exhaust a parser."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.ingest import planning, stages
from pipeline.ingest.landing_zone import open_landing
from pipeline.ingest.parse_pool import ParseLimits, parse_files
from pipeline.ingest.planning import Recipe
from pipeline.query import search
from pipeline.storage import connections, dead_letters
from tests.support import corpora
from tests.support.databases import fresh_database
from tests.support.sample import day_folder

DAY = dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def real_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One day folder holding a real document of each format, and the bad ones."""
    landing = tmp_path_factory.mktemp("formats")
    folder = day_folder(landing, DAY)
    try:
        docs = corpora.python_docs()
        corpora.print_to_pdf(docs / "tutorial" / "controlflow.html", folder / "tutorial" / "controlflow.pdf")
        corpora.pandoc(corpora.python_doc_source("tutorial", "datastructures"), folder / "datastructures.docx")
        corpora.pandoc(corpora.python_doc_source("tutorial", "errors"), folder / "errors.pptx")
        corpora.pandoc(corpora.python_doc_source("tutorial", "classes"), folder / "classes.epub", title="Classes")
        corpora.readxl_workbook("datasets.xlsx", folder / "datasets.xlsx")
        corpora.require_package("libtasn1-doc", Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"))
    except corpora.CorpusUnavailable as exc:
        pytest.fail(f"cannot build the real corpus: {exc}")
    shutil.copyfile("/usr/share/doc/libtasn1-doc/libtasn1.pdf", folder / "libtasn1.pdf")
    shutil.copyfile(corpora.python_docs() / "tutorial" / "inputoutput.html", folder / "tutorial" / "inputoutput.html")
    write_bad_documents(folder)
    return landing


def write_bad_documents(folder: Path) -> None:
    bad = folder / "bad"
    bad.mkdir()
    real_pdf = folder / "tutorial" / "controlflow.pdf"
    subprocess.run([corpora.tool("qpdf", "qpdf"), "--encrypt", "reader", "owner", "256", "--", str(real_pdf),
                    str(bad / "encrypted.pdf")], check=True, capture_output=True)
    image_page = bad / "scan.html"  # an image and nothing else, as a scanner's PDF holds
    image_page.write_text(f'<html><body><img src="{(corpora.python_docs() / "_images" / "turtle-star.png").as_uri()}">'
                          "</body></html>")
    corpora.print_to_pdf(image_page, bad / "scanned.pdf")
    image_page.unlink()
    (bad / "truncated.pdf").write_bytes(real_pdf.read_bytes()[: real_pdf.stat().st_size // 2])
    docx = (folder / "datastructures.docx").read_bytes()
    (bad / "truncated.docx").write_bytes(docx[: len(docx) // 3])
    shutil.copyfile(corpora.python_docs() / "objects.inv", bad / "objects.inv")  # no reader for it
    # An Excel 97 workbook under the new extension: what a renamed legacy or encrypted file looks like.
    legacy = corpora.readxl_workbook("datasets.xls", bad / "legacy.xls")
    legacy.rename(bad / "legacy.xlsx")


def zip_bomb_docx(target: Path, paragraphs: int) -> Path:
    """A Word file whose document part inflates to ~70 bytes per paragraph (an attack, or a runaway export)."""
    body = "<w:p><w:r><w:t>all work and no play</w:t></w:r></w:p>" * paragraphs
    ns = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", (
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'wordprocessingml.document.main+xml"/></Types>'))
        package.writestr("_rels/.rels", (
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/></Relationships>'))
        package.writestr("word/document.xml", f'<?xml version="1.0"?><w:document {ns}><w:body>{body}</w:body></w:document>')
    return target


def test_every_format_keeps_its_structure(real_day) -> None:
    read = stages.read_documents(real_day, DAY)
    docs = {d.doc_id: d for d in read.documents}
    assert set(docs) == {"tutorial/controlflow.pdf", "libtasn1.pdf", "datastructures.docx", "errors.pptx",
                         "classes.epub", "datasets.xlsx", "tutorial/inputoutput.html"}

    pdf = docs["tutorial/controlflow.pdf"]
    assert pdf.metadata["format"] == "pdf" and pdf.metadata["pages"] >= 10
    assert pdf.metadata["title"].startswith("4. More Control Flow Tools")
    # Numbered as the Python version's documentation numbers them ("4.7." in 3.11, "4.8." in 3.13).
    defining = next(s for s in pdf.sections if s.path and s.path[-1].endswith(". Defining Functions"))
    assert len(defining.path) == 2 and defining.path[0] == "4. More Control Flow Tools" and defining.page > 1
    assert pdf.text[defining.start:].startswith(defining.path[-1])
    manual = docs["libtasn1.pdf"]
    assert manual.metadata["title"] == "Libtasn1", "TeX leaves the PDF title empty: the title page names it"
    assert any(s.path == ("2 ASN.1 structure handling", "ASN.1 syntax") for s in manual.sections)
    assert "Chapter" not in manual.text.split("\n")[0], "running headers and page numbers are dropped"

    docx = docs["datastructures.docx"]
    assert docx.metadata["title"] == "Data Structures"
    assert any(s.label == "Data Structures > More on Lists > Using Lists as Stacks" for s in docx.sections)
    slides = docs["errors.pptx"]
    assert slides.metadata["slides"] >= 5 and all(s.slide for s in slides.sections)
    assert any(s.label.endswith("Handling Exceptions") and s.slide > 1 for s in slides.sections)
    book = docs["classes.epub"]
    assert book.metadata["title"] == "Classes" and any("Inheritance" in s.label for s in book.sections)
    sheets = docs["datasets.xlsx"]
    assert sheets.metadata["sheets"] == ["iris", "mtcars", "chickwts", "quakes"]
    assert "Sepal.Length | Sepal.Width" in sheets.text and any(s.path == ("mtcars",) for s in sheets.sections)
    page = docs["tutorial/inputoutput.html"]
    assert page.metadata["title"] == "7. Input and Output"
    assert "Navigation" not in page.text and "previous |" not in page.text, "the navigation bar is dropped"
    assert not page.text.startswith(("index", "modules")) and "Theme Auto Light Dark" not in page.text
    assert any(s.label == "7. Input and Output > 7.2. Reading and Writing Files" for s in page.sections)


def test_every_bad_document_is_a_dead_letter_naming_the_fix(real_day) -> None:
    read = stages.read_documents(real_day, DAY)
    letters = {d.source_uri.rsplit("/", 1)[1]: f"{d.error}. {d.detail}" for d in read.dead_letters}
    expected = {
        "encrypted.pdf": "password-protected",
        "scanned.pdf": "scanned PDF: OCR found no text on its 1 page",  # a drawing, no words
        "truncated.pdf": "not a readable PDF",
        "truncated.docx": "not a valid Word file",
        "objects.inv": "no reader for .inv; docvec reads: .docx, .epub",
        "legacy.xlsx": "encrypted (password-protected) or legacy",
    }
    assert set(letters) == set(expected), letters
    for name, words in expected.items():
        assert words.replace("; ", ". ") in letters[name] or words in letters[name], (name, letters[name])
    assert "qpdf --decrypt" in letters["encrypted.pdf"] and "ocrmypdf" in letters["scanned.pdf"]


def test_a_parser_that_hangs_or_balloons_is_stopped_and_the_rest_is_parsed(real_day, tmp_path) -> None:
    bomb = zip_bomb_docx(tmp_path / "bomb.docx", paragraphs=3_000_000)  # ~200 MB of XML in a ~1 MB file
    assert bomb.stat().st_size < 2 * 1024**2
    good = real_day / DAY.isoformat() / "datastructures.docx"
    small = ParseLimits(seconds=60, memory_mb=512, workers=2)
    ballooned, parsed = parse_files([bomb, good], small)
    assert "memory limit of 512 MiB" in str(ballooned) or "crash" in str(ballooned), ballooned
    assert not isinstance(parsed, Exception) and "Data Structures" in parsed.text
    slow, parsed = parse_files([bomb, good], ParseLimits(seconds=1, memory_mb=8192, workers=2))
    assert "longer than the parse time limit of 1 s" in str(slow)
    assert not isinstance(parsed, Exception) and "Data Structures" in parsed.text


def _parse_in_daemon(path: str, answer) -> None:
    outcome = parse_files([Path(path)], ParseLimits(seconds=60, workers=1))[0]
    answer.send(str(outcome) if isinstance(outcome, Exception) else outcome.text[:200])


def test_files_parse_inside_a_daemonic_process_as_celery_runs_steps(real_day) -> None:
    """Celery's prefork pool runs each step in a daemonic process, where multiprocessing refuses to start
    children: the parse workers must start there too."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    step = context.Process(target=_parse_in_daemon, args=(str(real_day / DAY.isoformat() / "datastructures.docx"),
                                                          sender), daemon=True)
    step.start()
    deadline = time.monotonic() + 120
    while not receiver.poll(0.5) and step.is_alive() and time.monotonic() < deadline:
        pass
    assert receiver.poll(0), f"the daemonic process gave no answer (exit code {step.exitcode})"
    text = receiver.recv()
    step.join(30)
    assert "Data Structures" in text, text


@pytest.fixture(scope="module")
def loaded_formats(migrated, embedder, real_day):
    """The real day loaded into a database of its own (its chunks would crowd the sample's searches)."""
    return fresh_database(migrated, embedder.info.dim, "docvec_formats")


def test_chunks_record_section_and_page_and_search_finds_them(loaded_formats, real_day, embedder,
                                                              chunking_config, capsys, monkeypatch) -> None:
    tokenizer = embedder.backend_tokenizer()
    documents = stages.read_documents(real_day, DAY)
    chunks = stages.chunk_documents(documents, tokenizer, chunking_config)
    with connections.connect(loaded_formats) as conn:
        stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))
        check_search(conn, embedder)
    monkeypatch.setenv("DATABASE_URL", loaded_formats.database_url)
    assert main(["--home", str(loaded_formats.home), "search", "keyword arguments kwarg=value", "--filter",
                 "format=pdf", "-k", "3"]) == 0
    first_hit = capsys.readouterr().out.splitlines()[1]
    assert "tutorial/controlflow.pdf p. " in first_hit and " · 4. More Control Flow Tools > 4." in first_hit
    of_pdf = [c for c in chunks.chunks if c.doc_id == "tutorial/controlflow.pdf"]
    assert all(c.metadata["title"].startswith("4. More Control Flow Tools") and c.metadata["page"] >= 1
               for c in of_pdf)
    # Cuts fall on headings: no chunk of the PDF holds the end of one section and a later heading.
    keyword = [c for c in of_pdf if c.metadata.get("section", "").endswith(". Keyword Arguments")]
    assert keyword and keyword[0].text.startswith(keyword[0].metadata["section"].rsplit(" > ", 1)[1])
    assert all(c.metadata["slide"] >= 1 for c in chunks.chunks if c.doc_id == "errors.pptx")


def check_search(conn, embedder) -> None:
    hits = search.search(conn, embedder, "functions called with keyword arguments of the form kwarg=value", k=5,
                         mode="hybrid", filters={"format": "pdf"})
    assert hits and hits[0].doc_id == "tutorial/controlflow.pdf"
    assert hits[0].metadata["section"].endswith("Keyword Arguments") and hits[0].metadata["page"] > 1
    by_page = search.search(conn, embedder, "keyword arguments", k=3, mode="text",
                            filters={"page": str(hits[0].metadata["page"]), "format": "pdf"})
    assert by_page and all(h.metadata["page"] == hits[0].metadata["page"] for h in by_page), \
        "--filter page=N matches the numeric page"
    sheet = search.search(conn, embedder, "miles per gallon cylinders horsepower mtcars", k=5, mode="hybrid")
    assert any(h.doc_id == "datasets.xlsx" and h.metadata.get("section") == "mtcars" for h in sheet)
    assert dead_letters.open_letters(conn, [DAY]), "the bad documents of the day are recorded"


def test_unchanged_documents_are_not_read_again_and_an_edit_reembeds_only_what_changed(migrated, embedder,
                                                                                       chunking_config, tmp_path) -> None:
    isolated = fresh_database(migrated, embedder.info.dim, "docvec_formats_incremental")
    landing = tmp_path / "landing"
    folder = day_folder(landing, DAY)
    source = tmp_path / "datastructures.rst"
    source.write_text(corpora.python_doc_source("tutorial", "datastructures").read_text())
    corpora.pandoc(source, folder / "datastructures.docx")
    corpora.print_to_pdf(corpora.python_docs() / "tutorial" / "controlflow.html", folder / "controlflow.pdf")
    tokenizer = embedder.backend_tokenizer()

    def run(conn):
        plan = planning.plan_day(conn, open_landing(str(landing)), DAY, Recipe(chunking_config, embedder.info))
        if plan.unchanged:
            return plan, None, None
        chunks = stages.chunk_day(plan, lambda: tokenizer)
        embedded = stages.embed_chunks(chunks, embedder, conn)
        return plan.read, embedded, stages.load_embeddings(conn, embedded)

    with connections.connect(isolated) as conn:
        _, first, first_load = run(conn)
        first_ids = {doc_id: [c.chunk_id for c in first.chunks if c.doc_id == doc_id] for doc_id in
                     ("datastructures.docx", "controlflow.pdf")}
        assert first.embedded == len(first.chunks) > 40 and first_load.chunks == len(first.chunks)
        assert run(conn)[0].files_read == 0, "an unchanged day's PDF and Word files are not even opened"
        # The Word file is edited at its end: it alone is read again, and only its last chunks are new;
        # the PDF is neither read nor re-chunked, and keeps its stored chunks.
        source.write_text(source.read_text() + "\n\nA closing paragraph added in the edit, about deques.\n")
        corpora.pandoc(source, folder / "datastructures.docx")
        batch, embedded, load = run(conn)
        assert [d.doc_id for d in batch.documents] == ["datastructures.docx"]
        assert [k.doc_id for k in batch.kept] == ["controlflow.pdf"]
        assert 1 <= embedded.embedded <= 3 and embedded.reused >= len(first_ids["datastructures.docx"]) - 3
        assert load.kept_chunks == len(first_ids["controlflow.pdf"])
        assert load.chunks == len(embedded.chunks) + load.kept_chunks
        again = {c.chunk_id for c in embedded.chunks}
        assert len(again & set(first_ids["datastructures.docx"])) >= len(first_ids["datastructures.docx"]) - 3, \
            "unchanged chunks keep their ids"
