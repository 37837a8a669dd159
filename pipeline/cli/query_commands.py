"""Commands that read the index: search and eval, both through the search service."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from pipeline.cli.request_options import options_from, request_from
from pipeline.query import evaluation
from pipeline.query.hits import SearchHit
from pipeline.query.request import SearchRequest
from pipeline.query.search_model import ModelSource, NamedModel, ServedModel
from pipeline.query.service import SearchService
from pipeline.settings import Settings
from pipeline.storage import access, connections, days, migrate


def model_named_by(args: argparse.Namespace) -> ModelSource:
    """The stored model named by --model/--backend, or else the one search serves; loaded only when a
    query is embedded (text mode reads stored rows only)."""
    return NamedModel(args.model, args.backend) if args.model else ServedModel()


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    """Search the store and print the hits (or JSON), with each branch's plan under --explain."""
    wanted = request_from(args, SearchRequest)
    principals = getattr(args, "principals", None)
    with connections.connect(settings, for_search=True) as conn:
        migrate.require_current_schema(conn)
        result = SearchService.over(conn, model_named_by(args)).search(wanted, explain=args.explain,
                                                                       principals=principals)
        readers = hit_readers(conn, result.hits, principals) if args.json else {}
    for plan in result.plans:
        print(plan)
    hits = result.hits
    if args.json:
        print(json.dumps([{**hit.__dict__, "ingest_date": hit.ingest_date.isoformat(),
                           "readers": _listed(readers.get((hit.doc_id, hit.ingest_date)))} for hit in hits], indent=2))
        return 0
    print(f'query: "{wanted.query}"  ({len(hits)} results, {wanted.mode}; model {result.model})')
    for hit in hits:
        print(format_hit(hit, fused=wanted.mode == "hybrid"))
    return 0


def hit_readers(conn: psycopg.Connection[Any], hits: Sequence[SearchHit],
                principals: Sequence[str] | None) -> dict[tuple[str, Any], tuple[str, ...]]:
    """Who may read each hit's document version, for an admin (one query): read as the connection's own
    role, or with ``principals`` as them, so a search as a principal shows only what it could read anyway."""
    versions = sorted({(hit.doc_id, hit.ingest_date) for hit in hits})
    if principals is None:
        return days.readers_of(conn, versions)
    with access.acting_as(conn, principals):
        return days.readers_of(conn, versions)


def _listed(readers: tuple[str, ...] | None) -> list[str] | None:
    return list(readers) if readers is not None else None


def _one_line(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 3] + "..."


def where(hit: SearchHit) -> str:
    """Where a hit is: ``manual.pdf p. 12 · Indexes > Partial Indexes``, ``deck.pptx slide 4 · …``, or
    ``notes.md#3`` (its chunk number) for a document without pages or sections."""
    meta = hit.metadata
    place = ""
    if isinstance(meta.get("page"), int):
        last = meta.get("last_page")
        place = f" p. {meta['page']}" + (f"–{last}" if isinstance(last, int) and last != meta["page"] else "")
    elif isinstance(meta.get("slide"), int):
        place = f" slide {meta['slide']}"
    section = meta.get("section")
    if not place and not section:
        return f"{hit.doc_id}#{hit.seq}"
    return f"{hit.doc_id}{place}" + (f" · {section}" if section else "")


def format_hit(hit: SearchHit, *, fused: bool) -> str:
    """A hit as `docvec search` prints it: rank, scores, where it came from, a snippet, its context."""
    scores = [f"similarity {hit.similarity:.3f}" if hit.similarity is not None else "",
              f"text {hit.text_score:.3f}" if hit.text_score is not None else "",
              f"fused {hit.score:.4f}" if fused else ""]
    if hit.document_score is not None:
        scores.append(f"document {hit.document_score:.4f}")
    lines = [f"{hit.rank:>3}. {'  '.join(part for part in scores if part)}  {hit.ingest_date}  {where(hit)}",
             f"     {_one_line(hit.text)}"]
    lines += [f"       #{n['seq']}: {_one_line(n['text'])}" for n in hit.context or [] if n["seq"] != hit.seq]
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """recall@k, MRR and nDCG@10 of each search mode on labelled queries (the sample set by default)."""
    queries = evaluation.load_queries(Path(args.queries)) if args.queries else evaluation.sample_queries()
    with connections.connect(settings, for_search=True) as conn:
        migrate.require_current_schema(conn)
        scores = evaluation.evaluate(conn, model_named_by(args), queries, modes=args.modes.split(","), k=args.cutoff,
                                     **options_from(args, SearchRequest, only=evaluation.TUNING))
    if args.json:
        print(json.dumps([s.__dict__ for s in scores], indent=2))
    else:
        print(evaluation.format_scores(scores, args.cutoff))
    return 0
