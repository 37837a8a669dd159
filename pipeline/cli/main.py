"""``docvec``'s argument parser and entry point; each command lives in the module of its kind."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from collections.abc import Sequence

from pipeline.cli import dagster_runs
from pipeline.cli.admin_commands import (
    cmd_backfill,
    cmd_doctor,
    cmd_model,
    cmd_retention,
    cmd_status,
)
from pipeline.cli.delete_command import cmd_delete
from pipeline.cli.forget_command import cmd_forget
from pipeline.cli.keys_command import add_keys_parser
from pipeline.cli.mcp_command import add_mcp_parser
from pipeline.cli.query_commands import cmd_eval, cmd_search
from pipeline.cli.request_options import add_options
from pipeline.cli.serve_command import add_auth_options, add_query_backend_option, cmd_serve
from pipeline.cli.setup_commands import (
    cmd_demo,
    cmd_dev,
    cmd_down,
    cmd_migrate,
    cmd_sample_corpus,
    cmd_up,
)
from pipeline.errors import DocvecError
from pipeline.ingest.embedding import DEFAULT_MODEL
from pipeline.query.evaluation import RANKED, TUNING
from pipeline.query.request import MODES, SearchRequest
from pipeline.settings import load_settings
from pipeline.storage.retention import DEFAULT_WINDOW_DAYS


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docvec", description="docvec: documents in, a fresh pgvector search index out")
    parser.add_argument("--home", help="data dir (default $DOCVEC_HOME or ./.docvec)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_model(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--model", default=os.environ.get("DOCVEC_MODEL", DEFAULT_MODEL),
                       help="embedding model: bundled name or local path (default $DOCVEC_MODEL or all-MiniLM-L6-v2)")
        return p

    with_model(sub.add_parser("up", help=cmd_up.__doc__)).set_defaults(func=cmd_up)

    sub.add_parser("down", help=cmd_down.__doc__).set_defaults(func=cmd_down)

    p = sub.add_parser("serve", help="serve read-only search over HTTP (JSON API, OpenAPI docs at /docs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--pool-size", type=int, default=8,
                   help="database connections at most (default 8; a hybrid search uses two at once)")
    p.add_argument("--encode-threads", type=int, default=1,
                   help="CPU threads per query encode (default 1: concurrent requests share the cores)")
    add_query_backend_option(p)
    p.add_argument("--db-timeout", type=float, default=5.0,
                   help="seconds a request waits for a database connection before answering 503 (default 5)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument("--access-log", action="store_true", help="log every request")
    add_auth_options(p)
    p.set_defaults(func=cmd_serve)
    add_keys_parser(sub)
    add_mcp_parser(sub)

    p = with_model(sub.add_parser("migrate", help="apply schema migrations (Alembic)"))
    p.add_argument("--revision", default="head")
    p.add_argument("--downgrade", metavar="REV", help="downgrade to REV (e.g. base) instead")
    p.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    p.add_argument("--embedding-dim", type=int, help="vector dimension (default: the model's)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("sample-corpus", help="write the bundled sample corpus into the landing dir")
    p.add_argument("--landing-dir")
    p.add_argument("--end", type=_date, help="last ingest day (default today)")
    p.set_defaults(func=cmd_sample_corpus)

    def with_search(p: argparse.ArgumentParser, *, positional: tuple[str, ...] = ("query",)) -> argparse.ArgumentParser:
        add_options(p, SearchRequest, positional=positional, skip=() if positional else ("query",))
        p.add_argument("--json", action="store_true", help="print JSON")
        p.add_argument("--explain", action="store_true", help="also print the query plans (EXPLAIN ANALYZE) and how the "
                       "list was ordered (documents taking turns, grouped, or reranked)")
        return with_query_model(p)

    def with_query_model(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--model", help="search this stored model's vectors (name or path; default: the served model)")
        p.add_argument("--backend", default="torch", help="with --model: torch, onnx or onnx-int8")
        return p

    p = with_search(sub.add_parser("search", help="search the store (hybrid, vector or text)"))
    p.add_argument("--as", dest="principals", action="append", metavar="PRINCIPAL", help=(
        "search as this principal (repeatable: a user and their groups, e.g. --as alice --as group:hr): "
        "PostgreSQL's row-level security returns only what they may read (an admin's check of permissions)"))
    p.set_defaults(func=cmd_search)

    p = with_search(sub.add_parser("demo", help=cmd_demo.__doc__), positional=())
    p.add_argument("--query", help="search to run at the end (default: one of the sample set's questions)")
    p.add_argument("--end", type=_date, help="last sample day (default today)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("status", help=cmd_status.__doc__)
    p.add_argument("--window-days", type=int, default=DEFAULT_WINDOW_DAYS)
    p.add_argument("--today", type=_date)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("delete", help=cmd_delete.__doc__)
    p.add_argument("doc_ids", nargs="+", metavar="DOC_ID", help="document id: its path below the day folder")
    p.add_argument("--day", type=_date, help="deleted as of this day (default today)")
    p.add_argument("--landing", help="landing zone to check for the files (default $DOCVEC_LANDING_DIR)")
    p.set_defaults(func=cmd_delete)

    p = with_query_model(sub.add_parser("eval", help=cmd_eval.__doc__))
    p.add_argument("queries", nargs="?", help="labelled JSONL (query, expected_doc_ids, tags); default: the sample set")
    p.add_argument("-k", dest="cutoff", type=int, default=5,
                   help=f"recall@k and hit@k: documents counted per query (default 5; MRR and nDCG: the first {RANKED})")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated (default vector,text,hybrid)")
    add_options(p, SearchRequest, only=TUNING)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("doctor", help=cmd_doctor.__doc__)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("retention", help=cmd_retention.__doc__)
    p.add_argument("--dry-run", action="store_true", help="print what would be dropped, drop nothing")
    p.add_argument("--window-days", type=int, default=DEFAULT_WINDOW_DAYS, help="days kept, today included")
    p.add_argument("--today", type=_date, help="reckon the window from this day (default today)")
    p.add_argument("--mode", choices=("days", "collection"), help=(
        "days: drop whole days older than the window; collection: purge only history older than it, never a live "
        "document (default: $DOCVEC_SOURCE_MODE, else days)"))
    p.set_defaults(func=cmd_retention)

    p = sub.add_parser("forget", help=cmd_forget.__doc__)
    p.add_argument("doc_ids", nargs="*", metavar="DOC_ID", help="document id: its path below the day folder")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="every document whose metadata holds this pair (repeatable: all pairs), as search's --filter")
    p.add_argument("--dry-run", action="store_true", help="print what would be erased, erase nothing")
    p.add_argument("--landing", help="landing zone to check for copies (default $DOCVEC_LANDING_DIR)")
    p.add_argument("--batches-dir", help="the steps' day batches (default $DOCVEC_HOME/dagster/batches)")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("backfill", help="backfill a range of days through Dagster and wait for every run")
    p.add_argument("--from", dest="start", type=_date, required=True)
    p.add_argument("--to", dest="end", type=_date, required=True)
    p.add_argument("--job", default=dagster_runs.INGEST_JOB)
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for the runs")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("model", help=cmd_model.__doc__)
    p.add_argument("action", choices=("list", "activate", "rollback", "build"), nargs="?", default="list")
    p.add_argument("reference", nargs="?", help="stored model: id, name or name@revision (activate, build)")
    p.add_argument("--allow-incomplete", action="store_true", help="serve a model that lacks some stored days")
    p.add_argument("--model", help="build: a model not stored yet (bundled name or local path)")
    p.add_argument("--backend", default="torch", help="build: torch, onnx or onnx-int8")
    p.set_defaults(func=cmd_model)

    p = with_model(sub.add_parser("dev", help="docvec up, then the Dagster web UI (dagster dev)"))
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args, load_settings(home=args.home)))
    except DocvecError as exc:
        print(f"docvec: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
