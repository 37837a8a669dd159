"""``docvec delete``: hide documents from search as of a day, without touching the landing zone."""

from __future__ import annotations

import argparse
import datetime as dt

from pipeline.ingest import landing_zone
from pipeline.ops import delete_documents
from pipeline.settings import Settings
from pipeline.storage import connections, migrate


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    """Delete documents as of a day (default today): tombstones hide every version stored on that day
    or before from search; a version landed on a later day is searchable again."""
    day = args.day or dt.date.today()
    landing = landing_zone.open_landing(args.landing or settings.landing,
                                        collection=settings.source_mode == "collection")
    with connections.connect(settings) as conn:
        migrate.require_current_schema(conn)
        report = delete_documents.delete(conn, args.doc_ids, day, landing)
    print("\n".join(report.lines()))
    return 0
