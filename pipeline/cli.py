"""``docvec``: the command line face of the pipeline (it may launch Dagster; the engine never does)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline import (dagster_runs, db, doctor, evaluation, migrate, models, retention, sample_corpus, search, sources,
                      status, store)
from pipeline.embedding import DEFAULT_MODEL, Embedder, load_embedder
from pipeline.envfile import PROJECT_ROOT, dagster_environment, write_env_file
from pipeline.errors import DocvecError
from pipeline.settings import Settings, load_settings

log = logging.getLogger("docvec")
WORKSPACE = PROJECT_ROOT / "workspace.yaml"


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """Start the embedded server when needed, create databases, migrate, write .env for Dagster."""
    settings.home.mkdir(parents=True, exist_ok=True)
    url = db.server_url(settings)
    embedder = load_embedder(args.model or DEFAULT_MODEL)  # demo's --model defaults to the served one: None
    migrate.upgrade(settings, embedder.info.dim)
    env_path = write_env_file(dagster_environment(settings), PROJECT_ROOT / ".env")
    where = "embedded PostgreSQL" if settings.uses_embedded_server else "PostgreSQL"
    print(f"docvec is up: {where} at {db.redact(url)}, schema migrated (vector({embedder.info.dim}) for "
          f"{embedder.info.name}), Dagster instance configured in {env_path}")
    return 0


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the embedded PostgreSQL (its data stays; `docvec up` starts it again)."""
    stopped = db.stop_embedded_server(settings.pgdata)
    print("embedded PostgreSQL stopped" if stopped else "the embedded PostgreSQL was not running")
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    dim = args.embedding_dim or load_embedder(args.model or DEFAULT_MODEL).info.dim
    if args.sql:
        print(migrate.upgrade_sql(settings, dim, args.revision))
        return 0
    if args.downgrade:
        migrate.downgrade(settings, dim, args.downgrade)
        print(f"downgraded to {args.downgrade}")
        return 0
    migrate.upgrade(settings, dim, args.revision)
    print(f"migrated to {args.revision}")
    return 0


def cmd_sample_corpus(args: argparse.Namespace, settings: Settings) -> int:
    landing = Path(args.landing_dir) if args.landing_dir else settings.landing_dir
    counts = sample_corpus.write_sample_corpus(landing, end=args.end)
    queries = sample_corpus.write_labelled_queries(settings.home / "sample_queries.jsonl")
    print(f"wrote {counts['documents']} documents over {counts['days']} days to {landing}; labelled queries in {queries}")
    return 0


def _dagster_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **dagster_environment(settings)}


def _executable(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


def _dagster(args: Sequence[str], settings: Settings, *, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a Dagster command on docvec's instance. The environment is passed explicitly and the working
    directory is the data dir, so no .env from elsewhere can point it at another instance."""
    command = [_executable("dagster"), *args]
    print("$ " + " ".join(command), flush=True)
    settings.home.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, cwd=settings.home, env=_dagster_env(settings), text=True,
                            capture_output=capture)
    if capture:
        print(result.stdout, end="")
        print(result.stderr, end="", file=sys.stderr)
    return result


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """The whole main job on the sample corpus: up, corpus, materialize every day, search."""
    cmd_up(args, settings)
    end = args.end or dt.date.today()
    counts = sample_corpus.write_sample_corpus(settings.landing_dir, end=end)
    days = sources.list_days(settings.landing_dir)
    first, last = days[0], days[-1]
    print(f"sample corpus: {counts['documents']} documents in {len(days)} day folders under {settings.landing_dir}")
    code = _dagster(["asset", "materialize", "-m", "pipeline.definitions", "--select", "group:ingest",
                     "--partition-range", f"{first}...{last}"], settings).returncode
    if code != 0:
        print(f"materialization failed (exit {code})", file=sys.stderr)
        return code
    args.query = args.query or sample_corpus.LABELLED_QUERIES[1][0]
    return cmd_search(args, settings)


def _search_embedder(args: argparse.Namespace, conn) -> Embedder:
    """The model named by --model/--backend, or else the one search serves."""
    if args.model:
        return load_embedder(args.model, backend=args.backend)
    return search.serving_embedder(conn)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    filters = search.parse_filters(args.filter or [])
    tuning = search.SearchTuning(ef_search=args.ef_search, probes=args.probes, rrf_k=args.rrf_k)
    with db.connect(settings, for_search=True) as conn:
        migrate.require_current_schema(conn)
        embedder = _search_embedder(args, conn)
        model_id = search.search_model_id(conn, embedder, args.query)
        vector = None if args.mode == "text" else embedder.encode([args.query])[0]
        options = dict(k=args.k, since=args.since, until=args.until, filters=filters)
        hits = search.search_embedded(conn, args.query, vector, model_id, tuning=tuning, mode=args.mode,
                                      per_doc=args.per_doc, window=args.window, **options)
        if args.explain:  # the same vector: the query is embedded once
            if args.mode in ("vector", "hybrid"):
                print(search.explain_vector(conn, vector, model_id, tuning=tuning, **options))
            if args.mode in ("text", "hybrid"):
                print(search.explain_text(conn, args.query, model_id, **options))
    if args.json:
        print(json.dumps([{**hit.__dict__, "ingest_date": hit.ingest_date.isoformat()} for hit in hits], indent=2))
        return 0
    print(f'query: "{args.query}"  ({len(hits)} results, {args.mode}; model {embedder.info.name}@{embedder.info.revision})')
    for hit in hits:
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= 160 else snippet[:157] + "..."
        scores = [f"similarity {hit.similarity:.3f}" if hit.similarity is not None else "",
                  f"text {hit.text_score:.3f}" if hit.text_score is not None else "",
                  f"fused {hit.score:.4f}" if args.mode == "hybrid" else ""]
        print(f"{hit.rank:>3}. {'  '.join(part for part in scores if part)}  {hit.ingest_date}  {hit.doc_id}#{hit.seq}\n"
              f"     {snippet}")
        for neighbour in hit.context or []:
            if neighbour["seq"] != hit.seq:
                text = " ".join(neighbour["text"].split())
                print(f"       #{neighbour['seq']}: {text[:157] + '...' if len(text) > 160 else text}")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Per day: documents, chunks, embedded/reused, open dead letters, index state; the retention horizon."""
    with db.connect(settings) as conn:
        migrate.require_current_schema(conn)
        statuses = status.day_statuses(conn)
        served = models.summary(conn)
    print(served)
    print(status.format_status(statuses, args.today or dt.date.today(), args.window_days))
    return 0


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


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Server and pgvector versions, memory settings against what the data needs, index validity and
    size, dead tuples, the heaviest statements (pg_stat_statements); exit 1 when something needs fixing."""
    with db.connect(settings) as conn:
        migrate.require_current_schema(conn)
        report = doctor.diagnose(conn)
    connection = f"{db.redact(db.docvec_url(settings))}{' (through PgBouncer)' if settings.pgbouncer else ''}"
    if args.json:
        print(json.dumps({"connection": connection, **report.as_dict()}, indent=2, default=str))
    else:
        print(f"connection    {connection}\n{doctor.format_report(report)}")
    return 1 if report.problems else 0


def cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    """Drop day partitions older than the window (``--dry-run`` shows what would go)."""
    today = args.today or dt.date.today()
    with db.connect(settings) as conn:
        migrate.require_current_schema(conn)
        result = retention.apply_retention(conn, today, args.window_days, dry_run=args.dry_run)
    verb = "would drop" if args.dry_run else "dropped"
    print(f"retention window: {args.window_days} days, oldest kept day {result.horizon} (today {today})")
    for purged in result.dropped:
        span = str(purged.first) if purged.first == purged.last else f"{purged.first}..{purged.last}"
        kept = f", rebuilt the rest as {purged.kept_as}" if purged.kept_as else ""
        print(f"  {verb} {span} ({purged.table}{kept}): {purged.rows:,} chunks, {purged.bytes / 1e6:.1f} MB")
    for day in result.skipped_busy:
        print(f"  skipped {day}: being ingested right now, retried next run")
    print(f"{verb} {len(result.days)} days, {result.rows:,} chunks, {result.bytes / 1e6:.1f} MB; "
          f"{result.documents_deleted} document rows, {result.dead_letters_deleted} resolved dead letters "
          f"in {result.seconds:.3f} s")
    return 0


def _model_table(conn) -> str:
    serving, previous = models.serving_model(conn), models.previous_model(conn)
    lines = [f"{'id':>3}  {'model':<48} {'dim':>4}  {'state':<9} {'days':>9}  activated"]
    for model in models.all_models(conn):
        coverage = models.coverage(conn, model)
        state = ("serving" if serving and model.id == serving.id else "retired" if model.retired_at else
                 "previous" if previous and model.id == previous.id else "shadow")
        days = f"{len(coverage.stored_days) - len(coverage.missing_days)}/{len(coverage.stored_days)}"
        activated = f"{model.activated_at:%Y-%m-%d %H:%M}" if model.activated_at else "never"
        lines.append(f"{model.id:>3}  {model.label:<48} {model.dim:>4}  {state:<9} {days:>9}  {activated}")
    return "\n".join(lines)


def cmd_model(args: argparse.Namespace, settings: Settings) -> int:
    """Embedding models: list them (serving, previous, shadow, retired; days covered), switch search to
    one (activate), go back to the previous one (rollback), or build a model's missing days (build)."""
    with db.connect(settings) as conn:
        migrate.require_current_schema(conn)
        if args.action == "activate":
            outcome = models.activate(conn, args.reference, allow_incomplete=args.allow_incomplete)
            print(f"search serves {outcome.serving.label}" + (
                f" (was {outcome.switched_from.label})" if outcome.switched else " (already)"))
        elif args.action == "rollback":
            outcome = models.rollback(conn, allow_incomplete=args.allow_incomplete)
            print(f"rolled back: search serves {outcome.serving.label} again (was {outcome.switched_from.label}, "
                  "now retired: ingest with it is refused until it is activated again)")
        elif args.action == "build":
            return _build_model(args, settings, conn)
        print(_model_table(conn))
    return 0


def _build_model(args: argparse.Namespace, settings: Settings, conn) -> int:
    """Embed every stored day the model lacks, in one Dagster run with that model configured; the run
    switches search to it when done."""
    if args.reference:
        stored = models.find_model(conn, args.reference)
        name, backend = stored.name, stored.backend
    else:
        name, backend = args.model or DEFAULT_MODEL, args.backend
    embedder = load_embedder(name, backend=backend)
    registered = store.registered_model(conn, embedder.info)
    missing = (models.coverage(conn, models.find_model(conn, str(registered))).missing_days if registered
               else models.stored_days(conn))
    if not missing:
        print(f"{embedder.info.name}@{embedder.info.revision} already covers every stored day")
        return 0
    print(f"embedding {len(missing)} stored days with {embedder.info.name} ({backend}): {missing[0]} … {missing[-1]}")
    config = {"resources": {"embedder": {"config": {"model": name, "backend": backend}}}}
    return _dagster(["asset", "materialize", "-m", "pipeline.definitions", "--select", "group:ingest",
                     "--partition-range", f"{missing[0]}...{missing[-1]}", "--config-json", json.dumps(config)],
                    settings).returncode


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    cmd_up(args, settings)
    return _dagster(["dev", "-w", str(WORKSPACE), "-p", str(args.port)], settings).returncode


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Backfill a range of days with `dagster job backfill` and see it through to the end: its runs
    are queued, so unless a Dagster daemon is already running (dagster dev, dagster-daemon run) one is
    started for the duration. Exits non-zero if any run fails."""
    if args.start > args.end:
        raise DocvecError(f"--from {args.start} is after --to {args.end}")
    db.server_url(settings)  # the embedded server may have stopped since `docvec up` (e.g. a reboot)
    launched = _dagster(["job", "backfill", "-w", str(WORKSPACE), "-j", args.job,
                         "--from", str(args.start), "--to", str(args.end), "--noprompt"], settings, capture=True)
    match = re.search(r"Launched backfill job `([^`]+)`", launched.stdout)
    if launched.returncode != 0 or not match:
        print("docvec: the backfill was not launched (see above)", file=sys.stderr)
        return launched.returncode or 1
    expected = (args.end - args.start).days + 1
    return dagster_runs.wait_for_backfill(match.group(1), expected, dagster_environment(settings),
                                          start_daemon=lambda: subprocess.Popen(
                                              [_executable("dagster-daemon"), "run", "-w", str(WORKSPACE)],
                                              cwd=settings.home, env=_dagster_env(settings)),
                                          timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docvec", description=__doc__)
    parser.add_argument("--home", help="data dir (default $DOCVEC_HOME or ./.docvec)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_model(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--model", default=os.environ.get("DOCVEC_MODEL", DEFAULT_MODEL),
                       help="embedding model: bundled name or local path (default $DOCVEC_MODEL or all-MiniLM-L6-v2)")
        return p

    with_model(sub.add_parser("up", help=cmd_up.__doc__)).set_defaults(func=cmd_up)

    sub.add_parser("down", help=cmd_down.__doc__).set_defaults(func=cmd_down)

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

    def with_search(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-k", type=int, default=5, help="results (default 5)")
        p.add_argument("--since", type=_date, help="only ingest days on or after this date")
        p.add_argument("--until", type=_date, help="only ingest days on or before this date")
        p.add_argument("--filter", action="append", metavar="KEY=VALUE", help="metadata filter, repeatable")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.add_argument("--explain", action="store_true", help="also print the query plan (EXPLAIN ANALYZE)")
        p.add_argument("--ef-search", type=int, default=search.SearchTuning.ef_search, help="HNSW candidates per query")
        p.add_argument("--probes", type=int, default=search.SearchTuning.probes, help="IVFFlat lists per query")
        p.add_argument("--mode", choices=search.MODES, default="hybrid",
                       help="vector, text (full-text) or hybrid (both, reciprocal rank fusion; default)")
        p.add_argument("--rrf-k", type=int, default=search.SearchTuning.rrf_k, help="fusion constant (default 60)")
        p.add_argument("--per-doc", type=int, metavar="N", help="at most N results per document")
        p.add_argument("--window", type=int, default=0, metavar="N", help="show N neighbouring chunks on each side")
        return with_query_model(p)

    def with_query_model(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--model", help="search this stored model's vectors (name or path; default: the served model)")
        p.add_argument("--backend", default="torch", help="with --model: torch, onnx or onnx-int8")
        return p

    p = with_search(sub.add_parser("search", help="vector search the store"))
    p.add_argument("query")
    p.set_defaults(func=cmd_search)

    p = with_search(sub.add_parser("demo", help=cmd_demo.__doc__))
    p.add_argument("--query", help="search to run at the end")
    p.add_argument("--end", type=_date, help="last sample day (default today)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("status", help=cmd_status.__doc__)
    p.add_argument("--window-days", type=int, default=retention.DEFAULT_WINDOW_DAYS)
    p.add_argument("--today", type=_date)
    p.set_defaults(func=cmd_status)

    p = with_query_model(sub.add_parser("eval", help=cmd_eval.__doc__))
    p.add_argument("queries", nargs="?", help="labelled JSONL (query, expected_doc_ids, tags); default: the sample set")
    p.add_argument("-k", type=int, default=5, help="recall@k (default 5)")
    p.add_argument("--modes", default=",".join(search.MODES), help="comma-separated (default vector,text,hybrid)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("doctor", help=cmd_doctor.__doc__)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("retention", help=cmd_retention.__doc__)
    p.add_argument("--dry-run", action="store_true", help="print what would be dropped, drop nothing")
    p.add_argument("--window-days", type=int, default=retention.DEFAULT_WINDOW_DAYS, help="days kept, today included")
    p.add_argument("--today", type=_date, help="reckon the window from this day (default today)")
    p.set_defaults(func=cmd_retention)

    p = sub.add_parser("backfill", help="backfill a range of days through Dagster and wait for every run")
    p.add_argument("--from", dest="start", type=_date, required=True)
    p.add_argument("--to", dest="end", type=_date, required=True)
    p.add_argument("--job", default="ingest_daily")
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
