"""Commands that look after a running store: status, doctor, retention, model, backfill."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
from typing import Any

import psycopg

from pipeline.cli import dagster_runs
from pipeline.cli.envfile import dagster_environment
from pipeline.errors import DocvecError
from pipeline.ingest.embedding import DEFAULT_MODEL, load_embedder
from pipeline.ops import doctor, retention_run, status
from pipeline.settings import Settings
from pipeline.storage import connections, migrate, model_lifecycle, model_registry, retention, tombstones, urls


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Per day: documents, chunks, embedded/reused, open dead letters, index state; the retention horizon."""
    with connections.connect(settings) as conn:
        migrate.require_current_schema(conn)
        statuses = status.day_statuses(conn)
        served = model_lifecycle.summary(conn)
        searchable = tombstones.searchable_documents(conn)
    print(served)
    print(status.format_status(statuses, args.today or dt.date.today(), args.window_days))
    print(f"searchable documents: {searchable:,} (the latest version of each, less those deleted)")
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Server and pgvector versions, memory settings against what the data needs, index validity and
    size, dead tuples, the heaviest statements (pg_stat_statements); exit 1 when something needs fixing."""
    with connections.connect(settings) as conn:
        migrate.require_current_schema(conn)
        report = doctor.diagnose(conn)
    connection = f"{urls.redact(urls.docvec_url(settings))}{' (through PgBouncer)' if settings.pgbouncer else ''}"
    if args.json:
        print(json.dumps({"connection": connection, **report.as_dict()}, indent=2, default=str))
    else:
        print(f"connection    {connection}\n{doctor.format_report(report)}")
    return 1 if report.problems else 0


def cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    """Drop day partitions older than the window (``--dry-run`` shows what would go)."""
    today = args.today or dt.date.today()
    if (args.mode or settings.source_mode) == "collection":
        return _collection_retention(args, settings, today)
    with connections.connect(settings) as conn:
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


def _collection_retention(args: argparse.Namespace, settings: Settings, today: dt.date) -> int:
    """A collection's window keeps history, never a live document: purge what is older than it."""
    with connections.connect(settings) as conn:
        migrate.require_current_schema(conn)
        report = retention_run.enforce_retention(conn, today, args.window_days, dry_run=args.dry_run,
                                                 log=lambda _: None, collection=True)
    print(f"retention window: {args.window_days} days of history, oldest kept day "
          f"{retention.oldest_kept_day(today, args.window_days)} (today {today}); live documents stay")
    for line in report.lines():
        print(f"  {line}")
    return 0


def _model_table(conn: psycopg.Connection[Any]) -> str:
    serving, previous = model_registry.serving(conn), model_registry.previous(conn)
    lines = [f"{'id':>3}  {'model':<48} {'dim':>4}  {'state':<9} {'days':>9}  activated"]
    for model in model_registry.all_models(conn):
        coverage = model_lifecycle.coverage(conn, model)
        state = ("serving" if serving and model.id == serving.id else "retired" if model.retired_at else
                 "previous" if previous and model.id == previous.id else "shadow")
        days = f"{len(coverage.stored_days) - len(coverage.missing_days)}/{len(coverage.stored_days)}"
        activated = f"{model.activated_at:%Y-%m-%d %H:%M}" if model.activated_at else "never"
        lines.append(f"{model.id:>3}  {model.label:<48} {model.dim:>4}  {state:<9} {days:>9}  {activated}")
    return "\n".join(lines)


def cmd_model(args: argparse.Namespace, settings: Settings) -> int:
    """Embedding models: list them (serving, previous, shadow, retired; days covered), switch search to
    one (activate), go back to the previous one (rollback), or build a model's missing days (build)."""
    with connections.connect(settings) as conn:
        migrate.require_current_schema(conn)
        if args.action == "activate":
            outcome = model_lifecycle.activate(conn, model_registry.resolve(conn, args.reference).id,
                                               allow_incomplete=args.allow_incomplete)
            print(f"search serves {outcome.serving.label}" + (
                f" (was {outcome.switched_from.label})" if outcome.switched_from else " (already)"))
        elif args.action == "rollback":
            outcome = model_lifecycle.rollback(conn, allow_incomplete=args.allow_incomplete)
            was = outcome.switched_from.label if outcome.switched_from else "?"
            print(f"rolled back: search serves {outcome.serving.label} again (was {was}, "
                  "now retired: ingest with it is refused until it is activated again)")
        elif args.action == "build":
            return _build_model(args, settings, conn)
        print(_model_table(conn))
    return 0


def _build_model(args: argparse.Namespace, settings: Settings, conn: psycopg.Connection[Any]) -> int:
    """Embed every stored day the model lacks, in one Dagster run with that model configured; the run
    switches search to it when done."""
    if args.reference:
        stored = model_registry.resolve(conn, args.reference)
        name, backend, contextual = stored.name, stored.backend, stored.contextual
    else:
        name, backend, contextual = args.model or DEFAULT_MODEL, args.backend, True
    embedder = load_embedder(name, backend=backend, contextual=contextual)
    missing = model_lifecycle.missing_days(conn, embedder.info.name, embedder.info.revision)
    if not missing:
        print(f"{embedder.info.name}@{embedder.info.revision} already covers every stored day")
        return 0
    print(f"embedding {len(missing)} stored days with {embedder.info.name} ({backend}): {missing[0]} … {missing[-1]}")
    config = {"resources": {"embedder": {"config": {"model": name, "backend": backend, "contextual_headers": contextual}}}}
    return dagster_runs.launch_ingest(settings, missing[0], missing[-1], config)


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Backfill a range of days with `dagster job backfill` and see it through to the end: its runs
    are queued, so unless a Dagster daemon is already running (dagster dev, dagster-daemon run) one is
    started for the duration. Exits non-zero if any run fails."""
    if args.start > args.end:
        raise DocvecError(f"--from {args.start} is after --to {args.end}")
    urls.server_url(settings)  # the embedded server may have stopped since `docvec up` (e.g. a reboot)
    workspace = str(dagster_runs.WORKSPACE)
    launched = dagster_runs.run(["job", "backfill", "-w", workspace, "-j", args.job,
                                 "--from", str(args.start), "--to", str(args.end), "--noprompt"], settings, capture=True)
    match = re.search(r"Launched backfill job `([^`]+)`", launched.stdout)
    if launched.returncode != 0 or not match:
        print("docvec: the backfill was not launched (see above)", file=sys.stderr)
        return launched.returncode or 1
    expected = (args.end - args.start).days + 1
    return dagster_runs.wait_for_backfill(match.group(1), expected, dagster_environment(settings),
                                          start_daemon=lambda: subprocess.Popen(
                                              [dagster_runs.executable("dagster-daemon"), "run", "-w", workspace],
                                              cwd=settings.home, env=dagster_runs.environment(settings)),
                                          timeout=args.timeout)
