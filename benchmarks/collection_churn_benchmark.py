"""A living collection through ``--days`` days of churn (issue #27): a folder of real documents edited,
deleted and added to day by day, indexed in collection mode (one snapshot a day), side by side with
landing a full daily snapshot of the same folder in day-folder mode.

Corpus: the Python, PostgreSQL, Django and Git documentation as Debian ships them (python3-doc,
postgresql-doc, python-django-doc, git-doc: HTML, ~2,400 content pages by four projects' authors; no
index, search or download pages), shuffled with ``--seed``: ``--pages`` of them are the collection on day 1,
a reserve of others is added over the days, and a few more are kept out as donors of the paragraphs that
edits insert. No page is copied to pad the collection: when the documentation has fewer pages than asked,
the collection is as large as it allows, and the output says so.

Churn, seeded (``random.Random(seed)``): each day after the first, ~1% of the live documents are edited
(a paragraph of a donor page plus a phrase unique to the new version replaces the one the previous version
had, at the page's edit point: after its title, or the first place in its content that docvec's HTML reader
keeps), ~0.5% deleted and ~0.5% added (from the reserve), at least one of each
(a small collection's day still changes). Each version of each
document, the first included, carries a phrase of two made-up words unique to it.

Per day, each mode runs the day through the engine as the DAG does (read/snapshot, chunk, embed, load,
then the vector_index step's upkeep: sealing days into blocks and the index each partition warrants; the
model loaded once before timing) and records: run seconds, files read and parsed, chunks embedded,
rows written (the chunks loaded on the day), the store's bytes (every ``chunks`` partition, ``documents``,
``term_stats`` and ``document_deletions`` with their indexes) and the live collection (documents, chunk
rows). Then, in collection mode, correctness: every deleted document's and every superseded version's
phrase is searched (text, k=5) and no hit may be that version (its doc and day, or a text holding the
phrase); a sample of them is searched by vector too (the version's paragraph); every live document must be
in the top 5 for its current phrase. Day-folder mode is run for ``--folder-days`` days only (each parses
the whole collection and writes all its rows again) and its store extrapolated linearly to ``--days``; the
same searches there count the stale results it returns (for comparison, not a target). Its first day is
the same work as collection mode's (the whole collection into an empty store, one partition), so its store
starts as a copy of collection mode's day-1 database instead of embedding everything a second time.

Targets: a day's run (~2% churn) >= 20x shorter than the first run (the median day, the slowest shown
too); the store after ``--days`` days <= 1.5x the live collection's (the day-1 store, which holds exactly
the collection as it was, scaled by how the live versions' row bytes grew since); 0 wrong results (the
exit status is 1 otherwise).

Usage: ``python -m benchmarks.collection_churn_benchmark [--pages 2000] [--days 30] [--folder-days 3]
[--seed 27]``; it works in scratch databases (``docvec_bench_churn``, ``..._folders``) and a temporary
folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import math
import os
import platform
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from benchmarks import smoke
from benchmarks.server import benchmark_main, copy_scratch, drop_scratch, existing_scratch, scratch_settings
from pipeline.indexing.policy import IndexSettings
from pipeline.ingest import readers
from pipeline.ingest.chunking import ChunkingConfig
from pipeline.ingest.embedding import Embedder, load_embedder
from pipeline.ingest.landing import LocalLanding
from pipeline.ingest.planning import ReadOptions, Recipe
from pipeline.ops import index_upkeep, ingest_steps, loading
from pipeline.query.hits import SearchHit
from pipeline.query.service import SearchService
from pipeline.settings import Settings
from pipeline.storage import catalog, connections, days
from pipeline.storage.layout import LayoutSettings
from pipeline.storage.store_size import store_size, version_sizes
from tests.support.corpora import debian_doc_collection

DATABASE = "docvec_bench_churn"
EDITED, DELETED, ADDED = 0.01, 0.005, 0.005  # shares of the live documents, per day
DONOR_PAGES = 20
RESERVE_MARGIN = 1.15  # pages set aside for additions: the expected number times this
WINDOW_DAYS = 30  # the retention window the index upkeep plans its blocks within
VECTOR_SAMPLE = 3  # dead versions searched by vector each day
MB = 1024 * 1024
_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.S)
_TAG = re.compile(r"<[^>]+>")
_HEADING_END = re.compile(r"</h[12]>")
_PARAGRAPH_START = re.compile(r"<p[ >]")
EDIT_POINTS = 4  # of each kind: heading ends, then paragraph starts
EDIT_PROBE = "zamolut kiverat"  # made-up words an edit point is tried with


# -- the corpus and its churn -------------------------------------------------------------------------

def paragraphs(page: str) -> list[str]:
    """The page's prose paragraphs as plain text (tags dropped), of a length an editor would insert."""
    found = (" ".join(html.unescape(_TAG.sub("", p)).split()) for p in _PARAGRAPH.findall(page))
    return [p for p in found if 150 <= len(p) <= 700]


def edit_point(page: str) -> int | None:
    """Where in ``page`` an edit's paragraph goes: the first place, after one of its first headings or
    before one of its first paragraphs, where docvec's HTML reader keeps an inserted paragraph (a site's
    title in a header, or a manual page's header block, is navigation the reader drops); None if none."""
    candidates = [m.end() for m in _HEADING_END.finditer(page)][:EDIT_POINTS]
    candidates += [m.start() for m in _PARAGRAPH_START.finditer(page)][:EDIT_POINTS]
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "page.html"
        for at in candidates:
            probe.write_text(page[:at] + f"<p>Revision note {EDIT_PROBE}.</p>" + page[at:])
            if EDIT_PROBE in readers.parse(probe).text:
                return at
    return None


@dataclass(frozen=True)
class Version:
    """One version of a document: written on ``day``, findable by ``phrase`` (unique to it), with the
    paragraph the edit inserted (empty for a page as it came) and a query that finds this version by
    meaning (the paragraph, else the page's first paragraph)."""
    doc_id: str
    day: dt.date
    phrase: str
    paragraph: str
    query: str
    deleted: bool = False  # a dead version: its document was deleted (else superseded by a newer one)


@dataclass
class DayState:
    """The collection on a day: each live document's current version and bytes, the day's changes and
    every dead version so far."""
    day: dt.date
    files: dict[str, bytes]
    live: dict[str, Version]
    dead: list[Version]
    edited: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


class Churn:
    """The seeded churn of a collection over days (all decided before any run, so both modes see the same)."""

    def __init__(self, pages: dict[str, str], reserve: list[tuple[str, str]], donors: list[str], seed: int,
                 points: dict[str, int]) -> None:
        self.rng = random.Random(seed)
        self.points = points
        self.originals = dict(pages)
        self.reserve = list(reserve)
        self.donors = donors
        self.phrases: set[str] = set()
        self.live: dict[str, Version] = {}
        self.files: dict[str, bytes] = {}
        self.dead: list[Version] = []
        self.reserve_ran_out = False

    def phrase(self) -> str:
        """Two made-up words no page holds, never used before."""
        while True:
            words = ["".join(self.rng.choice("bdfgklmnprstvz") + self.rng.choice("aeiou") for _ in range(3))
                     + self.rng.choice("lnrst") for _ in range(2)]
            phrase = " ".join(words)
            if phrase not in self.phrases:
                self.phrases.add(phrase)
                return phrase

    def write(self, doc_id: str, day: dt.date, paragraph: str) -> None:
        """A new version of ``doc_id``: its original page with ``paragraph`` and a new phrase at its edit point."""
        original = self.originals[doc_id]
        phrase = self.phrase()
        inserted = f"<p>{html.escape(paragraph)} Revision note {phrase}.</p>" if paragraph else \
            f"<p>Revision note {phrase}.</p>"
        at = self.points[doc_id]
        self.files[doc_id] = (original[:at] + inserted + original[at:]).encode()
        first = paragraphs(original)
        self.live[doc_id] = Version(doc_id, day, phrase, paragraph, paragraph or (first[0] if first else phrase))

    def _count(self, share: float) -> int:
        """``share`` of the live documents, rounded at random to a whole number, at least one."""
        exact = share * len(self.live)
        return max(1, int(exact) + (self.rng.random() < exact - int(exact)))

    def first_day(self, day: dt.date) -> DayState:
        for doc_id in sorted(self.originals):
            self.write(doc_id, day, "")
        return self._state(day, [], [], sorted(self.originals))

    def next_day(self, day: dt.date) -> DayState:
        ids = sorted(self.live)
        edited = self.rng.sample(ids, self._count(EDITED))
        deleted = self.rng.sample(sorted(set(ids) - set(edited)), self._count(DELETED))
        wanted = self._count(ADDED)
        added = [self.reserve.pop() for _ in range(min(wanted, len(self.reserve)))]
        self.reserve_ran_out |= len(added) < wanted
        for doc_id in edited:
            self.dead.append(self.live[doc_id])
            self.write(doc_id, day, self.donors.pop() if self.donors else "")
        for doc_id in deleted:
            old = self.live.pop(doc_id)
            self.dead.append(Version(old.doc_id, old.day, old.phrase, old.paragraph, old.query, deleted=True))
            del self.files[doc_id]
        for doc_id, page in added:
            self.originals[doc_id] = page
            self.write(doc_id, day, "")
        return self._state(day, sorted(edited), sorted(deleted), sorted(doc_id for doc_id, _ in added))

    def _state(self, day: dt.date, edited: list[str], deleted: list[str], added: list[str]) -> DayState:
        return DayState(day, dict(self.files), dict(self.live), list(self.dead), edited, deleted, added)


def plan_churn(corpus: dict[str, Path], pages: int, day_count: int, seed: int,
               smallest: bool) -> tuple[list[DayState], str]:
    """Every day's collection from ``corpus`` ({path in the collection: page}), decided up front; and a
    line saying what the corpus allowed."""
    rng = random.Random(seed)
    found = sorted(corpus)
    if smallest:  # smoke: the smallest pages, so that a first run takes seconds
        found = sorted(sorted(found, key=lambda key: corpus[key].stat().st_size)[:pages + 12])
    rng.shuffle(found)
    read = {key: corpus[key].read_text(errors="replace") for key in found}
    points = {key: point for key in found if (point := edit_point(read[key])) is not None}
    unedited = len(found) - len(points)
    found = [key for key in found if key in points]
    donor_count = min(DONOR_PAGES, max(2, len(found) // 10))
    added = ADDED * (day_count - 1) * RESERVE_MARGIN  # the reserve, per page of the collection

    def reserve_for(size: int) -> int:
        return max(math.ceil(added * size), day_count - 1) + 2

    room = len(found) - donor_count
    collection = min(pages, math.floor((room - 2) / (1 + added)), room - reserve_for(0))
    if collection < 10:
        raise SystemExit(f"collection_churn_benchmark: the corpus holds {len(found)} pages, too few for the churn")
    reserve_count = min(reserve_for(collection), room - collection)
    note = (f"{collection} pages" if collection >= pages else
            f"{collection} pages (asked for {pages}: the documentation has {len(found)} content pages, of which "
            f"{donor_count} are kept out as donors and {reserve_count} as the reserve of additions; no page is copied "
            "to pad)")
    if unedited:
        note += (f"; {unedited} pages left out: no place in them where an inserted paragraph survives the HTML "
                 "reader's removal of navigation and headers")
    donors = [text for key in found[:donor_count] for text in paragraphs(read[key])]
    rng.shuffle(donors)
    reserve = [(key, read[key]) for key in found[donor_count:donor_count + reserve_count]]
    chosen = {key: read[key] for key in found[donor_count + reserve_count:donor_count + reserve_count + collection]}
    churn = Churn(chosen, reserve, donors, seed, points)
    first = dt.date.today() - dt.timedelta(days=day_count - 1)
    states = [churn.first_day(first)]
    states += [churn.next_day(first + dt.timedelta(days=n)) for n in range(1, day_count)]
    if churn.reserve_ran_out:
        note += "; the reserve ran out, so later days added fewer pages"
    return states, note


# -- running a day and measuring it ------------------------------------------------------------------

@dataclass
class DayFigures:
    day: dt.date
    seconds: float  # the whole day: ingest and index upkeep
    upkeep_seconds: float  # of which the index upkeep (sealing, index builds)
    partitions: int  # chunks partitions after the day
    read: int
    parsed: int
    embedded: int
    rows: int
    store: int
    live_docs: int
    live_rows: int
    live_bytes: int  # row bytes of the live versions
    all_bytes: int  # row bytes of every stored version
    parts: dict[str, int]  # the store's bytes by table (chunks: every partition)
    wrong: int = 0  # collection mode: wrong results; day folders: stale results
    missing: int = 0  # live documents not in the top 5 for their phrase
    check_seconds: float = 0.0


def run_day(conn: psycopg.Connection, landing: LocalLanding, day: dt.date, embedder: Embedder,
            recipe: Recipe) -> DayFigures:
    """The day through the engine as the DAG runs it (tests/support/engine_runs.run_days, then the
    vector_index step's upkeep with its default settings), timed."""
    started = time.perf_counter()
    report = ingest_steps.read_days(conn, landing, [day], recipe, ReadOptions())
    chunks = ingest_steps.chunk_days(report.plans, embedder.backend_tokenizer).batches
    embedded = ingest_steps.embed_days(conn, chunks, lambda: embedder, log=lambda _: None).batches
    loads = loading.load_days(conn, embedded).loads
    upkeep_started = time.perf_counter()
    index_upkeep.upkeep_indexes(conn, [day], IndexSettings(), LayoutSettings(), today=day, window_days=WINDOW_DAYS,
                                log=lambda _: None)
    seconds, upkeep = time.perf_counter() - started, time.perf_counter() - upkeep_started
    plans = list(report.plans.values())
    sizes = version_sizes(conn)
    live = days.live_versions(conn, day + dt.timedelta(days=1))
    stored = store_size(conn)
    live_sizes = [sizes[key] for key in ((doc_id, v.day) for doc_id, v in live.items()) if key in sizes]
    return DayFigures(
        day, seconds, upkeep, len(catalog.partitions(conn)), sum(p.files_read for p in plans),
        sum(p.files_parsed for p in plans),
        sum(b.embedded for b in embedded.values()), sum(0 if load.unchanged else load.chunks for load in loads),
        stored.total, len(live), sum(s.rows for s in live_sizes), sum(s.row_bytes for s in live_sizes),
        sum(s.row_bytes for s in sizes.values()), {"chunks": stored.chunks, **stored.tables})


def dead_hit(hit: SearchHit, version: Version) -> bool:
    """Whether ``hit`` is (a chunk of) the dead ``version``: its document's chunk stored on its day, a
    text holding its phrase, or any chunk of a document that was deleted."""
    return ((hit.doc_id, hit.ingest_date) == (version.doc_id, version.day)
            or version.phrase in " ".join(hit.text.lower().split())
            or (version.deleted and hit.doc_id == version.doc_id))


def check(conn: psycopg.Connection, embedder: Embedder, state: DayState, rng: random.Random,
          figures: DayFigures) -> list[str]:
    """Search every dead version's phrase (and a sample by vector) and every live document's phrase;
    record the dead results and the live documents missed; the first few, described."""
    started = time.perf_counter()
    service = SearchService.over(conn, embedder)
    problems = []
    newest = [v for v in state.dead if v.doc_id in set(state.edited) | set(state.deleted)]
    older = [v for v in state.dead if v not in newest]
    sample = (newest + rng.sample(older, min(len(older), VECTOR_SAMPLE)))[:VECTOR_SAMPLE]
    searches = [(v, v.phrase, "text") for v in state.dead] + [(v, v.query, "vector") for v in sample]
    for version, query, mode in searches:
        wrong = [h for h in service.search_for(query, k=5, mode=mode).hits if dead_hit(h, version)]
        if wrong:
            figures.wrong += 1
            problems.append(f"{state.day}: {mode} search for the {'deleted' if version.deleted else 'superseded'} "
                            f"version of {version.doc_id} (stored {version.day}, phrase {version.phrase!r}) returned "
                            f"{wrong[0].doc_id} stored {wrong[0].ingest_date}")
    for version in state.live.values():
        hits = service.search_for(version.phrase, k=5, mode="text").hits
        if version.doc_id not in {h.doc_id for h in hits}:
            figures.missing += 1
            problems.append(f"{state.day}: {version.doc_id} (version of {version.day}) is not in the top 5 for its "
                            f"phrase {version.phrase!r}")
    figures.check_seconds = time.perf_counter() - started
    return problems


def sync_collection(root: Path, previous: DayState | None, state: DayState) -> None:
    """The collection folder edited in place into ``state``: only changed, added and deleted files touched."""
    changed = state.files if previous is None else {d: state.files[d] for d in (*state.edited, *state.added)}
    write_files(root, changed)
    for doc_id in state.deleted:
        (root / doc_id).unlink()


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for doc_id, content in files.items():
        path = root / doc_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def play(label: str, settings: Settings, states: Sequence[DayState], embedder: Embedder, recipe: Recipe,
         prepare: Callable[[DayState, DayState | None], None], landing: LocalLanding, *,
         deadline: float = math.inf, after_first: Callable[[], None] = lambda: None,
         previous: DayState | None = None, first_number: int = 1) -> tuple[list[DayFigures], list[str]]:
    """Each day prepared on the landing, run, measured and checked in ``settings``' database, a connection
    a day (``after_first`` runs once the first day's is closed: the database can then be copied)."""
    rows: list[DayFigures] = []
    problems: list[str] = []
    rng = random.Random(1)  # the vector samples: apart from the churn's generator
    for state in states:
        if rows and time.perf_counter() > deadline:
            break
        prepare(state, previous)
        with connections.connect(settings) as conn:
            figures = run_day(conn, landing, state.day, embedder, recipe)
            problems += check(conn, embedder, state, rng, figures)
        rows.append(figures)
        print(f"  {label:<11} {table_row(first_number + len(rows) - 1, figures)}", flush=True)
        if len(rows) == 1:
            after_first()
        previous = state
    return rows, problems


# -- output -------------------------------------------------------------------------------------------

HEADER = (f"  {'mode':<11} {'day':>3} {'date':<10} {'run s':>8} {'index s':>7} {'parts':>5} {'read':>5} {'parsed':>6} "
          f"{'embedded':>8} "
          f"{'rows':>6} {'store MB':>9} {'live docs':>9} {'live rows':>9} {'live MB':>7} {'wrong':>5} {'missed':>6} "
          f"{'check s':>7}")


def table_row(n: int, f: DayFigures) -> str:
    return (f"{n:>3} {f.day} {f.seconds:>8.2f} {f.upkeep_seconds:>7.2f} {f.partitions:>5} {f.read:>5} {f.parsed:>6} "
            f"{f.embedded:>8} {f.rows:>6} "
            f"{f.store / MB:>9.1f} {f.live_docs:>9} {f.live_rows:>9} {f.live_bytes / MB:>7.1f} {f.wrong:>5} "
            f"{f.missing:>6} {f.check_seconds:>7.1f}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(collection: list[DayFigures], folders: list[DayFigures], problems: list[str], day_count: int) -> int:
    """The targets with PASS/FAIL and the side-by-side store; the number of wrong results."""
    first, later = collection[0], collection[1:]
    median = statistics.median(f.seconds for f in later) if later else math.nan
    slowest = max((f.seconds for f in later), default=math.nan)
    speedup = first.seconds / median if later else math.nan
    print(f"run time: first run {first.seconds:.1f} s; later days median {median:.2f} s, slowest {slowest:.2f} s: "
          f"{speedup:.1f}x shorter (slowest {first.seconds / slowest:.1f}x; target >= 20x) {verdict(speedup >= 20)}")
    last = collection[-1]
    live_store = first.store * last.live_bytes / first.live_bytes  # the day-1 store held exactly the live collection
    ratio = last.store / live_store
    print(f"store after {len(collection)} days: {last.store / MB:.1f} MB, live collection {live_store / MB:.1f} MB "
          f"({last.live_docs} documents, {last.live_rows} chunk rows): {ratio:.2f}x (target <= 1.5x) "
          f"{verdict(ratio <= 1.5)}")
    print(f"  of the stored row bytes, {last.all_bytes / last.live_bytes:.2f}x the live versions' (history: superseded "
          "and deleted versions of the window)")
    growth = ", ".join(f"{name} {first.parts[name] / MB:.1f} -> {size / MB:.1f} MB ({size / max(first.parts[name], 1):.2f}x)"
                       for name, size in last.parts.items())
    print(f"  by table, day 1 -> day {len(collection)}: {growth}")
    wrong = sum(f.wrong for f in collection) + sum(f.missing for f in collection)
    print(f"wrong results: {wrong} ({sum(f.wrong for f in collection)} dead versions returned, "
          f"{sum(f.missing for f in collection)} live documents missed) over {len(collection)} days (target 0) "
          f"{verdict(wrong == 0)}")
    if len(folders) >= 2:
        per_day = (folders[-1].store - folders[0].store) / (len(folders) - 1)
        projected = folders[0].store + per_day * (day_count - 1)
        print(f"day folders, full daily snapshot: {len(folders)} of {day_count} days run (time budget); store after "
              f"{len(folders)} days {folders[-1].store / MB:.1f} MB (collection mode: "
              f"{collection[len(folders) - 1].store / MB:.1f} MB); extrapolated linearly to {day_count} days: "
              f"{projected / MB:.1f} MB, {projected / last.store:.1f}x collection mode's {last.store / MB:.1f} MB")
        print(f"  day-folder run after the first: median {statistics.median(f.seconds for f in folders[1:]):.2f} s, "
              f"rows written {statistics.median(f.rows for f in folders[1:]):.0f} a day against collection mode's "
              f"{statistics.median(f.rows for f in later):.0f}; stale results returned (deleted documents, old "
              f"texts): {sum(f.wrong for f in folders)} (not a target: day folders keep every day's copy)")
    for line in problems[:20]:
        print(f"  wrong: {line}")
    return wrong


@benchmark_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=2000, help="documents in the collection on day 1")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--folder-days", type=int, default=3, help="days run in day-folder mode (at least 2)")
    parser.add_argument("--folder-minutes", type=float, default=30.0,
                        help="stop day-folder mode after the day that ends past this (at least 2 days run)")
    parser.add_argument("--seed", type=int, default=27)
    args = smoke.parse_args(parser, {"pages": 30, "days": 3, "folder_days": 2})
    if args.days < 2 or args.folder_days < 2:
        parser.error("--days and --folder-days must be at least 2")
    states, note = plan_churn(debian_doc_collection(), args.pages, args.days, args.seed, smallest=args.smoke)
    embedder = load_embedder()
    recipe = Recipe(ChunkingConfig(max_seq_length=embedder.info.max_seq_length), embedder.info,
                    contextual=embedder.contextual)
    churned = sum(len(s.edited) + len(s.deleted) + len(s.added) for s in states[1:]) / max(1, len(states) - 1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, model {embedder.info.name} on {embedder.device}; "
          f"corpus: Debian's Python, PostgreSQL, Django and Git documentation (HTML), collection of {note}; "
          f"{args.days} days, seed {args.seed}; each day after the first "
          f"{EDITED:.1%} edited, {DELETED:.1%} deleted, {ADDED:.1%} added: {churned:.1f} documents a day "
          f"({churned / len(states[0].files):.1%})", flush=True)
    print(HEADER, flush=True)
    folders_database = DATABASE + "_folders"
    with tempfile.TemporaryDirectory() as tmp:
        folder, landing = Path(tmp) / "collection", Path(tmp) / "landing"
        try:
            collection, problems = play(
                "collection", scratch_settings(DATABASE, embedder.info.dim), states, embedder, recipe,
                lambda state, previous: sync_collection(folder, previous, state), LocalLanding(folder, collection=True),
                after_first=lambda: copy_scratch(DATABASE, folders_database))
            copied = existing_scratch(folders_database)
            assert copied is not None, "the day-1 copy was made after the first day"
            deadline = time.perf_counter() + args.folder_minutes * 60
            later, _ = play("day folder", copied, states[1:args.folder_days], embedder, recipe,
                            lambda state, _: write_files(landing / state.day.isoformat(), state.files),
                            LocalLanding(landing), deadline=deadline, previous=states[0], first_number=2)
            folders = [collection[0], *later]
        finally:
            drop_scratch(DATABASE)
            drop_scratch(folders_database)
    if report(collection, folders, problems, args.days):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
