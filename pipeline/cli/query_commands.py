"""Commands that read the index: search and eval."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import psycopg

from pipeline.ingest.embedding import Embedder, load_embedder, model_identity
from pipeline.query import evaluation, search, search_model
from pipeline.query.hits import SearchHit
from pipeline.settings import Settings
from pipeline.storage import db, migrate


def _search_embedder(args: argparse.Namespace, conn: psycopg.Connection[Any]) -> Embedder:
    """The model named by --model/--backend, or else the one search serves."""
    if args.model:
        return load_embedder(args.model, backend=args.backend)
    return search_model.serving_embedder(conn)


def _text_search_model(args: argparse.Namespace, conn: psycopg.Connection[Any]) -> tuple[str, int]:
    """Text mode reads stored rows only: the model whose rows to read, identified without loading it."""
    if args.model:
        name, revision = model_identity(args.model, args.backend)
    else:
        served = search_model.served_model(conn)
        name, revision = served.name, served.revision
    return f"{name}@{revision}", search_model.stored_model_id(conn, name, revision)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    filters = search.parse_filters(args.filter or [])
    tuning = search.SearchTuning(ef_search=args.ef_search, probes=args.probes, rrf_k=args.rrf_k,
                                 fusion=args.fusion, vector_weight=args.vector_weight)
    with db.connect(settings, for_search=True) as conn:
        migrate.require_current_schema(conn)
        if args.mode == "text":
            label, model_id = _text_search_model(args, conn)
            vector = None
        else:
            embedder = _search_embedder(args, conn)
            label = f"{embedder.info.name}@{embedder.info.revision}"
            model_id = search_model.search_model_id(conn, embedder, args.query)
            vector = embedder.encode([args.query])[0]
        options: dict[str, Any] = {"k": args.k, "since": args.since, "until": args.until, "filters": filters}
        hits = search.search_embedded(conn, args.query, vector, model_id, tuning=tuning, mode=args.mode,
                                      per_doc=1 if args.documents else args.per_doc, window=args.window, **options)
        if args.explain:  # the same vector: the query is embedded once
            if vector is not None:
                print(search.explain_vector(conn, vector, model_id, tuning=tuning, **options))
            if args.mode in ("text", "hybrid"):
                print(search.explain_text(conn, args.query, model_id, **options))
    if args.json:
        print(json.dumps([{**hit.__dict__, "ingest_date": hit.ingest_date.isoformat()} for hit in hits], indent=2))
        return 0
    print(f'query: "{args.query}"  ({len(hits)} results, {args.mode}; model {label})')
    for hit in hits:
        print(format_hit(hit, fused=args.mode == "hybrid"))
    return 0


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
    with db.connect(settings, for_search=True) as conn:
        migrate.require_current_schema(conn)
        embedder = _search_embedder(args, conn)
        scores = evaluation.evaluate(conn, embedder, queries, modes=args.modes.split(","), k=args.k)
    if args.json:
        print(json.dumps([s.__dict__ for s in scores], indent=2))
    else:
        print(evaluation.format_scores(scores, args.k))
    return 0
