"""``docvec forget``: erase documents from everything docvec keeps (not through the search API, which
is read-only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.errors import DocvecError
from pipeline.ingest import landing_zone
from pipeline.ingest.landing import Landing
from pipeline.ops import forget
from pipeline.query.request import parse_pairs
from pipeline.settings import Settings
from pipeline.storage import connections, migrate


def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    """Erase documents (by id, or every one whose metadata matches --filter KEY=VALUE) from every day,
    sealed block and model's vectors, documents rows, term statistics, dead letters and the steps' day
    batches; an audit row records ids and counts, never text. --dry-run shows what would go."""
    filters = parse_pairs(args.filter or [])
    try:
        landing: Landing | None = landing_zone.open_landing(args.landing or settings.landing,
                                                            collection=settings.source_mode == "collection")
    except DocvecError as exc:  # erasing must not wait on the landing zone; the report says it was not checked
        print(f"docvec: warning: cannot open the landing zone to check for copies: {exc}", file=sys.stderr)
        landing = None
    batches = Path(args.batches_dir) if args.batches_dir else settings.dagster_artifacts_dir / "batches"
    with connections.connect(settings) as conn:
        migrate.require_current_schema(conn)
        report = forget.forget(conn, args.doc_ids, filters, batches_dir=batches, landing=landing,
                               dry_run=args.dry_run)
    print("\n".join(report.lines()))
    return 0
