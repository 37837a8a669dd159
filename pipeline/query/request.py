"""What a search asks for: every option of every face of search, declared once with its default, bound
and description. ``docvec search``'s options (pipeline/cli/request_options.py) and ``docvec serve``'s
query parameters and JSON body (pipeline/api) are derived from this declaration, and the Python entry
(``pipeline.query.service``) takes it, so an option added here appears on every face with the same
default and bound."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from pipeline.errors import ConfigError
from pipeline.lexical.expansion import FEEDBACK_WEIGHT
from pipeline.query.fusion import OPENING_WEIGHT, RRF_K, VECTOR_WEIGHT, Fusion

M = TypeVar("M", bound=BaseModel)

Mode = Literal["vector", "text", "hybrid"]
MODES: tuple[str, ...] = get_args(Mode)

# Hits each branch fetches before fusion and per-document limits cut them to k: enough that a document
# both branches rank well is in both lists (see fusion.py), few enough that a branch stays one index walk.
CANDIDATES = 50


@dataclass(frozen=True)
class Pairs:
    """Marks a mapping option that a command line or a query string spells as repeatable ``KEY=VALUE``
    arguments under ``name`` (``--filter topic=db``, ``?filter=topic=db``)."""
    name: str


def pairs_of(field: FieldInfo) -> Pairs | None:
    """The ``Pairs`` marker of a declared option, if it has one."""
    return next((m for m in field.metadata if isinstance(m, Pairs)), None)


def parse_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``["topic=databases", "author=ann"]`` → ``{"topic": "databases", "author": "ann"}``."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"filter {pair!r} is not key=value (e.g. topic=databases)")
        parsed[key.strip()] = value.strip()
    return parsed


class SearchRequest(BaseModel):
    """One search: the query and every option, each with its default and bound. Field order is the
    order faces list them in."""

    # Unknown fields are ignored as HTTP clients expect; ``request()`` refuses them for Python callers.
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    query: str = Field(alias="q", min_length=1, max_length=2000, description="the query")
    k: int = Field(default=10, ge=1, le=100, description="results")
    mode: Mode = Field(default="hybrid",
                       description="vector (cosine), text (BM25) or hybrid (both, fused by document)")
    since: dt.date | None = Field(default=None, description="only ingest days on or after this date")
    until: dt.date | None = Field(default=None, description="only ingest days on or before this date")
    as_of: dt.date | None = Field(default=None, description="search the store as it was once this day was loaded: "
                                  "each document's latest version stored on or before it, unless deleted by then; "
                                  "later versions and deletions are ignored. Refused before the retention horizon "
                                  "(history older than the window is purged) and with a since after it (nothing "
                                  "could match); an until after it changes nothing; a future day is today")
    per_doc: int | None = Field(default=None, ge=1, description="at most this many results per document")
    documents: bool = Field(default=False, description="rank documents: each one's best chunk and its score")
    group_by_document: bool = Field(default=False, description="hybrid: each document's chunks together after "
                                    "it, documents by score (by default documents take turns: the best document's "
                                    "best two chunks, then one chunk of each other document, round after round)")
    window: int = Field(default=0, ge=0, le=10, description="neighbouring chunks returned on each side of a hit")
    fusion: Fusion = Field(default="relative", description="hybrid: relative (normalised scores, weighted) "
                           "or rrf (reciprocal ranks)")
    vector_weight: float = Field(default=VECTOR_WEIGHT, ge=0, le=1,
                                 description="relative fusion: the vector branch's share")
    opening_weight: float = Field(default=OPENING_WEIGHT, ge=0, le=1,
                                  description="relative fusion: the share of a document's score decided by how near "
                                  "its opening chunk (title and first lines) is to the query; 0 turns it off")
    feedback_weight: float = Field(default=FEEDBACK_WEIGHT, ge=0, le=1,
                                   description="hybrid, relative fusion: pseudo-relevance feedback, the weight at "
                                   "which the heaviest terms of the first documents found are added to the query "
                                   "before both branches' candidates are scored again by BM25 and fused again; 0 "
                                   "turns it off")
    rrf_k: int = Field(default=RRF_K, ge=1, description="rrf fusion constant: larger flattens the top ranks")
    candidates: int = Field(default=CANDIDATES, ge=1, le=1000,
                            description="hits each branch fetches before fusion and per-document limits")
    ef_search: int | None = Field(default=None, ge=1, le=1000,
                                  description="HNSW candidates per query (default: what each index was built "
                                  "and its recall checked for)")
    probes: int | None = Field(default=None, ge=1, le=10000,
                               description="IVFFlat lists per query (default: as recorded on the index)")
    filters: Annotated[dict[str, str], Pairs("filter")] = Field(
        default_factory=dict, description='metadata that must match, e.g. {"topic": "runbooks"}')

    @property
    def per_document(self) -> int | None:
        """The per-document limit the search applies: one with ``documents``, else ``per_doc``."""
        return 1 if self.documents else self.per_doc

    @property
    def branch_size(self) -> int:
        """Hits each branch fetches: ``k`` unless something cuts them afterwards (fusion, a per-document
        limit), then enough candidates for that."""
        if self.mode == "vector" and self.per_document is None:
            return self.k
        return max(self.k, self.candidates, self.k * 4)


def validated(model: type[M], values: Mapping[str, Any]) -> M:
    """``values`` as a ``model``; an invalid value or an unknown option is a ``ConfigError`` naming
    each problem (Python callers and command lines get the reasons HTTP clients get as 422)."""
    known = set(model.model_fields) | {
        field.alias for field in model.model_fields.values() if field.alias}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown search option(s) {', '.join(unknown)}; the options are "
                          f"{', '.join(model.model_fields)}")
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']} (got {e.get('input')!r})"
                            for e in exc.errors())
        raise ConfigError(f"invalid search request: {reasons}") from exc


def request(query: str, **options: Any) -> SearchRequest:
    """A ``SearchRequest`` for ``query`` with ``options`` (any field of it by name), validated."""
    return validated(SearchRequest, {"query": query, **options})
