"""An optional reranking stage: the first N fused candidates scored against the query by a local
cross-encoder (a sentence-transformers ``CrossEncoder`` directory; nothing is downloaded) and put in the
order of its scores, ahead of the candidates it did not score.

Off unless ``DOCVEC_RERANKER`` names the directory (``Settings.reranker``); ``DOCVEC_RERANK_CANDIDATES``
(default 50) is N. ``SearchService`` runs it once, for every face. The directory is checked when the
service is built (it exists, its ``config.json`` names a sequence-classification architecture, as a
cross-encoder's does); the model is loaded at the first search that needs it. Its quality is not
measured here: no cross-encoder weights are installable in this project's environment, so only the
plumbing and the latency are (benchmarks/rerank_benchmark.py)."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.ingest.embedding import choose_device
from pipeline.query.hits import SearchHit
from pipeline.settings import Settings

RERANK_CANDIDATES = 50
_FIX = ("set DOCVEC_RERANKER to a directory saved by sentence-transformers' CrossEncoder.save(), or unset it "
        "to search without reranking")


@dataclass(frozen=True)
class Reranked:
    """The candidates in their new order, and what the stage did (for ``--explain``)."""
    hits: list[SearchHit]
    scored: int
    seconds: float


def check_cross_encoder(path: Path) -> Path:
    """``path`` resolved, when it is a cross-encoder's directory; else a ``ConfigError`` naming it and the fix."""
    folder = path.expanduser()
    if not folder.is_dir():
        raise ConfigError(f"reranker directory {folder} does not exist; {_FIX}")
    config = folder / "config.json"
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"reranker directory {folder} has no readable config.json ({exc}); {_FIX}") from exc
    if not any(str(name).endswith("ForSequenceClassification") for name in architectures):
        raise ConfigError(f"{folder} is not a cross-encoder: its config.json names {architectures or 'no'} "
                          "architectures, not a ...ForSequenceClassification one (a sentence embedding model "
                          f"scores texts apart, not query and text together); {_FIX}")
    return folder.resolve()


class CrossEncoderReranker:
    """Reranks the first ``candidates`` hits with the cross-encoder in ``path`` (loaded once, on first use,
    on ``device``: ``auto`` picks a GPU when torch sees one, as the embedder does)."""

    def __init__(self, path: Path, candidates: int = RERANK_CANDIDATES, device: str = "auto") -> None:
        if candidates < 1:
            raise ConfigError(f"rerank candidates must be >= 1, got {candidates} (DOCVEC_RERANK_CANDIDATES)")
        self.path = check_cross_encoder(path)
        self.candidates = candidates
        self._device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import CrossEncoder

                try:
                    self._model = CrossEncoder(str(self.path), device=choose_device(self._device),
                                               local_files_only=True)
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"reranker directory {self.path} could not be loaded as a cross-encoder "
                                      f"({exc}); {_FIX}") from exc
            return self._model

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """The cross-encoder's score of each text for ``query``."""
        if not texts:
            return []
        predicted = self._loaded().predict([(query, text) for text in texts], show_progress_bar=False)
        return [float(value) for value in predicted]

    def rerank(self, query: str, hits: Sequence[SearchHit]) -> Reranked:
        """The first ``candidates`` hits by the cross-encoder's score (highest first; ties keep their
        order), then the rest as they were; each scored hit's ``score`` is its cross-encoder score."""
        started = time.perf_counter()
        head, tail = list(hits[:self.candidates]), list(hits[self.candidates:])
        scored = self.scores(query, [passage(hit) for hit in head])
        order = sorted(range(len(head)), key=lambda i: -scored[i])
        ranked = [replace(head[i], score=scored[i]) for i in order] + tail
        return Reranked([replace(hit, rank=n + 1) for n, hit in enumerate(ranked)], len(head),
                        time.perf_counter() - started)


def passage(hit: SearchHit) -> str:
    """What the cross-encoder reads of a chunk: its document's title, then its text."""
    title = hit.metadata.get("title")
    return f"{title}\n{hit.text}" if isinstance(title, str) and title.strip() else hit.text


def from_settings(settings: Settings) -> CrossEncoderReranker | None:
    """The reranker the settings configure (``DOCVEC_RERANKER``), or None: reranking is off."""
    if settings.reranker is None:
        return None
    count = settings.rerank_candidates or str(RERANK_CANDIDATES)
    if not count.isdigit():
        raise ConfigError(f"DOCVEC_RERANK_CANDIDATES must be a whole number >= 1, got {count!r}")
    return _shared(settings.reranker.expanduser().resolve(), int(count))


@functools.lru_cache(maxsize=4)
def _shared(path: Path, candidates: int) -> CrossEncoderReranker:
    """One reranker per configured directory and count in a process: every ``SearchService`` built from
    the settings (``search.search`` builds one per call) shares it, so the cross-encoder loads once."""
    return CrossEncoderReranker(path, candidates)
