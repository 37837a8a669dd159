"""Commands that set docvec up and show it working: up, down, migrate, sample-corpus, demo, dev."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from pipeline import sample_corpus
from pipeline.cli import dagster_runs
from pipeline.cli.envfile import PROJECT_ROOT, dagster_environment, write_env_file
from pipeline.cli.query_commands import cmd_search
from pipeline.ingest import landing_zone
from pipeline.ingest.embedding import DEFAULT_MODEL, load_embedder
from pipeline.settings import Settings
from pipeline.storage import embedded_server, migrate, urls


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """Start the embedded server when needed, create databases, migrate, write .env for Dagster."""
    settings.home.mkdir(parents=True, exist_ok=True)
    url = urls.server_url(settings)
    embedder = load_embedder(args.model or DEFAULT_MODEL)  # demo's --model defaults to the served one: None
    migrate.upgrade(settings, embedder.info.dim)
    env_path = write_env_file(dagster_environment(settings), PROJECT_ROOT / ".env")
    where = "embedded PostgreSQL" if settings.uses_embedded_server else "PostgreSQL"
    print(f"docvec is up: {where} at {urls.redact(url)}, schema migrated ({migrate.stored_vectors(settings)} for "
          f"{embedder.info.name}), Dagster instance configured in {env_path}")
    return 0


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    """Stop the embedded PostgreSQL (its data stays; `docvec up` starts it again)."""
    stopped = embedded_server.stop_embedded_server(settings.pgdata)
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
    target = Path(args.landing_dir) if args.landing_dir else settings.landing_dir
    counts = sample_corpus.write_sample_corpus(target, end=args.end)
    queries = sample_corpus.write_labelled_queries(settings.home / "sample_queries.jsonl")
    print(f"wrote {counts['documents']} documents over {counts['days']} days to {target}; labelled queries in {queries}")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """The whole main job on the sample corpus: up, corpus, materialize every day, search."""
    cmd_up(args, settings)
    end = args.end or dt.date.today()
    counts = sample_corpus.write_sample_corpus(settings.landing_dir, end=end)
    days = landing_zone.list_days(settings.landing_dir)
    first, last = days[0], days[-1]
    print(f"sample corpus: {counts['documents']} documents in {len(days)} day folders under {settings.landing_dir}")
    code = dagster_runs.launch_ingest(settings, first, last, {})
    if code != 0:
        print(f"materialization failed (exit {code})", file=sys.stderr)
        return code
    args.query = args.query or sample_corpus.demo_query()
    return cmd_search(args, settings)


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    """docvec up, then become `dagster dev` (see dagster_runs.replace_process)."""
    cmd_up(args, settings)
    dagster_runs.replace_process(["dev", "-w", str(dagster_runs.WORKSPACE), "-p", str(args.port)], settings)
