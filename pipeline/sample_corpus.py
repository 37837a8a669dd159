"""The bundled sample corpus, written by the docvec authors: generated deterministically, no downloads.

Ten topics × generated notes, plus hand-written "anchor" documents that the labelled queries point at.
Days are relative to an end date (default: today) so the sample always sits inside the retention window.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAYS = 7


@dataclass(frozen=True)
class Topic:
    slug: str
    subjects: tuple[str, ...]
    facts: tuple[str, ...]


CORPUS_FILE = Path(__file__).with_name("sample_corpus.json")


@dataclass(frozen=True)
class Anchor:
    path: str
    day_offset: int  # days before the end date
    topic: str
    body: str


@dataclass(frozen=True)
class Corpus:
    topics: tuple[Topic, ...]
    authors: tuple[str, ...]
    anchors: tuple[Anchor, ...]
    labelled: tuple[tuple[str, str, str], ...]  # (query, expected document, tag)
    demo_query: str


@functools.cache
def corpus() -> Corpus:
    """The corpus's text (``sample_corpus.json``): topics with their subjects and fact templates, the
    hand-written anchor documents, and the labelled queries that point at them."""
    data = json.loads(CORPUS_FILE.read_text(encoding="utf-8"))
    anchors = [Anchor(**entry) for entry in data["anchors"]]
    # Near-twins that differ by an identifier only, as error catalogues and product lines do: a sentence
    # embedding barely tells ERR-4471 from ERR-4417, full-text search matches the code exactly. They make
    # the hybrid-vs-vector evaluation meaningful.
    for topic, family in data["templated_anchors"].items():
        for identifier, offset in family["ids"]:
            names = {"id": identifier, "lower": identifier.lower()}
            anchors.append(Anchor(family["path"].format(**names), offset, topic,
                                  f"# {family['title'].format(**names)}\n\n{family['body']}"))
    return Corpus(
        topics=tuple(Topic(t["slug"], tuple(t["subjects"]), tuple(t["facts"])) for t in data["topics"]),
        authors=tuple(data["authors"]),
        anchors=tuple(anchors),
        labelled=tuple((query, doc, tag) for tag, pairs in data["labelled_queries"].items() for query, doc in pairs),
        demo_query=data["demo_query"],
    )


def _note(topic: Topic, subject: str, rng: random.Random) -> str:
    facts = rng.sample(topic.facts, k=rng.randint(2, 4))
    return " ".join(fact.format(s=subject) for fact in facts)


def write_sample_corpus(landing_dir: Path, end: dt.date | None = None, days: int = DAYS,
                        notes_per_topic_per_day: int = 5, seed: int = 7) -> dict[str, int]:
    """Write the corpus under ``landing_dir`` (one folder per day). Deterministic for a given end date.
    Returns counts. Existing files with the same names are overwritten; others are left alone."""
    end = end or dt.date.today()
    rng = random.Random(seed)
    written = 0
    first_day = end - dt.timedelta(days=days - 1)
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        folder = landing_dir / day.isoformat()
        for topic in corpus().topics:
            for n in range(notes_per_topic_per_day):
                subject = rng.choice(topic.subjects)
                author = rng.choice(corpus().authors)
                body = _note(topic, subject, rng)
                path = folder / topic.slug / f"note-{offset:02d}-{n:02d}.md"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"---\ntopic: {topic.slug}\nauthor: {author}\nsubject: {subject}\n---\n"
                                f"# {subject.capitalize()}\n\n{body}\n", encoding="utf-8")
                written += 1
    for anchor in corpus().anchors:
        day = end - dt.timedelta(days=min(anchor.day_offset, days - 1))
        path = landing_dir / day.isoformat() / anchor.path
        path.parent.mkdir(parents=True, exist_ok=True)
        body = anchor.body
        if path.suffix == ".md":
            body = f"---\ntopic: {anchor.topic}\nauthor: docvec\n---\n{body}"
        path.write_text(body + "\n", encoding="utf-8")
        written += 1
    return {"documents": written, "days": days, "first_day": first_day.toordinal(), "last_day": end.toordinal()}


def labelled_queries() -> list[dict[str, Any]]:
    """The sample corpus's labelled set, in the JSONL shape ``docvec eval`` reads."""
    return [{"query": query, "expected_doc_ids": [doc], "tags": [tag]} for query, doc, tag in corpus().labelled]


def demo_query() -> str:
    """The query ``docvec demo`` ends with."""
    return corpus().demo_query


def write_labelled_queries(path: Path) -> Path:
    """The labelled queries as JSONL: ``{"query": ..., "expected_doc_ids": [...], "tags": [...]}`` per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for entry in labelled_queries():
            handle.write(json.dumps(entry) + "\n")
    return path
