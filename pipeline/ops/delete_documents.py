"""``docvec delete``: tombstones written directly (the same storage function a day's deletion manifest
goes through), what they hid, and whether the landing zone still holds the documents."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from pipeline.errors import ConfigError, DocvecError
from pipeline.ingest.landing import Landing
from pipeline.storage import tombstones
from pipeline.storage.tombstones import Tombstones


@dataclass(frozen=True)
class DeleteReport:
    """What ``delete`` did, and the day folders of the landing zone that still hold each document
    (``landing_error`` when the landing zone could not be listed)."""
    result: Tombstones
    landed: dict[str, list[dt.date]] = field(default_factory=dict)
    landing: str = ""
    landing_error: str = ""
    collection: bool = False  # the landing is a collection: its next snapshot brings back what it holds

    def lines(self) -> list[str]:
        day = self.result.day
        lines = [f"hid {len(self.result.hidden)} documents from search as of {day}:"]
        lines += [f"  {v.doc_id}: its version of {v.ingest_date} ({v.chunks} chunks)" for v in self.result.hidden]
        for doc_id, later in sorted(self.result.later.items()):
            lines.append(f"  {doc_id}: still searchable in its newer version of {later} (a tombstone hides only "
                         f"versions of its day and before: delete it as of {later} or later)")
        if self.landing_error:
            lines.append(f"could not check the landing zone {self.landing}: {self.landing_error}")
        for doc_id, days in sorted(self.landed.items()):
            if self.collection:
                lines.append(f"  {doc_id}: the collection {self.landing} still holds it: a run of a later day loads it "
                             "again and it is searchable again (delete the file from the collection to keep it deleted)")
                continue
            same = [d for d in days if d <= day]
            newer = [d for d in days if d > day]
            if same:
                lines.append(f"  {doc_id}: the landing zone still holds it in {', '.join(map(str, same))}/ "
                             "(it stays hidden when that day is loaded again)")
            if newer:
                lines.append(f"  {doc_id}: the landing zone holds it in {', '.join(map(str, newer))}/: a run of that "
                             "day loads it again and it is searchable again (expected; remove the file, or list it "
                             "in that day's .docvec-deleted, to keep it deleted)")
        return lines


def delete(conn: psycopg.Connection, doc_ids: Sequence[str], day: dt.date, landing: Landing | None) -> DeleteReport:
    """Hide ``doc_ids`` from search as of ``day``: every version stored on that day or before. All or
    nothing: an id with no stored version on or before ``day`` is a ``ConfigError`` and nothing is
    written. The landing zone is listed (when given) to say which day folders still hold them."""
    ids = sorted({i.strip().removeprefix("./") for i in doc_ids if i.strip()})
    if not ids:
        raise ConfigError("name at least one document id (its path below the day folder, as "
                          "`docvec search` shows it)")
    with conn.transaction():
        result = tombstones.record(conn, day, ids, "cli")
        if result.unknown:
            # Raised inside the transaction: the tombstones written above are rolled back with it.
            raise ConfigError(
                f"no stored version of {', '.join(result.unknown)} on or before {day}, so nothing "
                "was deleted. Ids are paths below the day folder (e.g. guides/setup.md, as `docvec search` shows "
                "them); fix the id, or pass --day on or after the day the document was loaded.")
    report = DeleteReport(result, landing=landing.url if landing else "", collection=bool(landing and landing.collection))
    if landing is None:
        return report
    try:
        for landed_day in landing.holding_days():
            held = {f.rel for f in landing.files(landed_day)} & set(ids)
            for doc_id in held:
                report.landed.setdefault(doc_id, []).append(landed_day)
    except DocvecError as exc:  # the tombstones stand; only the advice is missing
        return DeleteReport(result, landing=landing.url, landing_error=str(exc))
    return report
