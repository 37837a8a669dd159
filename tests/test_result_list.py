"""The default result list (issue #30, item 2): documents take turns near the top, in document-score
order (the best document's best two chunks, then one chunk of each other document per round), every hit
keeping its document score; ``group_by_document`` keeps the
old list (a document's chunks follow it). The same list on every face, since every face runs SearchService."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipeline.ingest import stages
from pipeline.query import evaluation, request
from pipeline.query.fusion import LEAD, interleave
from pipeline.query.hits import SearchHit
from pipeline.query.service import SearchService
from pipeline.storage import connections
from tests.support.databases import fresh_database


def _hit(doc: str, n: int, document_score: float) -> SearchHit:
    return SearchHit(rank=0, similarity=None, doc_id=doc, ingest_date=dt.date(2026, 1, 1), seq=n,
                     chunk_id=f"{doc}#{n}", text=f"{doc} {n}", metadata={}, score=1.0 - n / 10,
                     document_score=document_score)


def test_the_best_document_leads_with_two_chunks_then_documents_take_turns() -> None:
    grouped = [*(_hit("a", n, 0.9) for n in range(5)), *(_hit("b", n, 0.7) for n in range(4)), _hit("c", 0, 0.2)]
    listed = interleave(grouped)
    assert [h.chunk_id for h in listed] == ["a#0", "a#1", "b#0", "c#0", "a#2", "b#1", "a#3", "b#2", "a#4", "b#3"]
    assert [h.rank for h in listed] == list(range(1, 11))
    assert sorted(h.chunk_id for h in listed) == sorted(h.chunk_id for h in grouped), "every hit kept"
    assert {h.chunk_id: h.document_score for h in listed} == {h.chunk_id: h.document_score for h in grouped}
    assert LEAD == 2
    assert [h.chunk_id for h in interleave(grouped, 1)][:4] == ["a#0", "b#0", "c#0", "a#1"]
    assert [h.chunk_id for h in interleave(grouped[:2])] == ["a#0", "a#1"]
    assert interleave([]) == []


def _long_documents(folder: Path) -> None:
    for name, subject in (("keeper-log.md", "lighthouse keeper"), ("harbour-log.md", "harbour master")):
        paragraphs = [f"Entry {i}. The {subject} logs the lamp oil level, the tide and the passing ships at "
                      f"hour {i}. " * 6 for i in range(12)]
        (folder / name).write_text("\n\n".join(paragraphs))


def test_two_long_documents_share_the_first_five_results(migrated, tmp_path, embedder, chunking_config) -> None:
    day = dt.date(2026, 2, 26)
    folder = tmp_path / day.isoformat()
    folder.mkdir()
    _long_documents(folder)
    chunks = stages.chunk_documents(stages.read_documents(tmp_path, day), embedder.backend_tokenizer(), chunking_config)
    assert sum(c.doc_id == "keeper-log.md" for c in chunks.chunks) >= 5 <= sum(
        c.doc_id == "harbour-log.md" for c in chunks.chunks), "two long documents"
    # Its own database: tests/test_search.py stores a later keeper-log.md in the session's, which would be
    # the current version and leave this day's out of every search.
    with connections.connect(fresh_database(migrated, embedder.info.dim, "docvec_result_list")) as conn:
        stages.load_embeddings(conn, stages.embed_chunks(chunks, embedder, conn))
        service = SearchService.over(conn, embedder)
        query = {"k": 5, "since": day, "until": day, "mode": "hybrid"}

        default = service.search(request.request("lighthouse keeper lamp oil level", **query), explain=True)
        assert {h.doc_id for h in default.hits} == {"keeper-log.md", "harbour-log.md"}, "not five pieces of one page"
        assert [h.doc_id for h in default.hits][:3] == ["keeper-log.md"] * LEAD + ["harbour-log.md"], "the best leads"
        assert all(h.document_score is not None for h in default.hits)
        assert "taking turns" in default.plans[-1]

        grouped = service.search(request.request("lighthouse keeper lamp oil level", group_by_document=True, **query))
        assert [h.doc_id for h in grouped.hits] == ["keeper-log.md"] * 5, "the option keeps a document's chunks together"
        assert [h.chunk_id for h in grouped.hits[:LEAD]] == [h.chunk_id for h in default.hits[:LEAD]]

        one = service.search(request.request("lighthouse keeper lamp oil level", per_doc=1, **query)).hits
        assert [h.doc_id for h in one] == ["keeper-log.md", "harbour-log.md"]


def test_list_scores_count_the_first_k_chunks() -> None:
    hits = [_hit("a", 0, 1.0), _hit("b", 0, 0.5), _hit("a", 1, 1.0)]
    assert evaluation.list_scores(hits, ["b"], 5) == (1.0, 0.2)
    assert evaluation.list_scores(hits, ["a"], 2) == (1.0, 0.5)
    assert evaluation.list_scores(hits, ["c"], 5) == (0.0, 0.0)
