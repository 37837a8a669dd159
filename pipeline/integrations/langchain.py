"""docvec as a LangChain retriever: ``DocvecRetriever(base_url=..., api_key=...)`` searches through
``docvec serve``, ``DocvecRetriever(settings=...)`` (or ``database_url=``, or neither: the environment's
store) searches the store in process; both return LangChain ``Document``s in docvec's order, sync
(``invoke``) and async (``ainvoke``). Needs the extra: ``pip install 'docvec[langchain]'``.

Each ``Document``: ``page_content`` is the chunk's text, ``id`` its chunk id, ``metadata`` the chunk's own
(title, section, page where present, ...) and docvec's (doc_id, chunk_id, seq, day, rank, score,
similarity, text_score; see ``client.hit_metadata``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # the extra is not installed
    raise ImportError("docvec's LangChain retriever needs langchain-core: pip install 'docvec[langchain]'") from exc
from pydantic import Field, PrivateAttr, SecretStr

from pipeline.ingest.embedding import Embedder
from pipeline.integrations.client import DEFAULT_TIMEOUT, DocvecSearch, hit_metadata
from pipeline.query.hits import SearchHit
from pipeline.query.request import Mode
from pipeline.settings import Settings

__all__ = ["DocvecRetriever", "document"]


def document(hit: SearchHit) -> Document:
    """One hit as a LangChain ``Document``."""
    return Document(page_content=hit.text, id=hit.chunk_id, metadata=hit_metadata(hit))


class DocvecRetriever(BaseRetriever):
    """docvec's search as a LangChain retriever (see the module docstring). Over HTTP: ``base_url`` (docvec
    serve's root), ``api_key`` (an API key or bearer token; the key decides whom the search runs as),
    ``timeout`` seconds. In process: ``settings`` or ``database_url``, ``principals`` and ``tenant`` to
    search as, ``embedder`` when the model is loaded already. Search options: ``k``, ``mode``,
    ``filters``, ``since``, ``until``, ``as_of`` (None: docvec's default), and any other ``SearchRequest``
    field in ``search_options``. A bad option is a ``ConfigError`` when the retriever is made."""

    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout: float = DEFAULT_TIMEOUT
    settings: Settings | None = Field(default=None, repr=False)
    database_url: SecretStr | None = None
    embedder: Embedder | None = Field(default=None, repr=False, exclude=True)
    principals: list[str] | None = None
    tenant: str | None = None
    k: int | None = None
    mode: Mode | None = None
    filters: dict[str, str] | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    as_of: dt.date | None = None
    search_options: dict[str, Any] = Field(default_factory=dict)

    _search: DocvecSearch = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._search = DocvecSearch(
            base_url=self.base_url, api_key=self.api_key.get_secret_value() if self.api_key else None,
            timeout=self.timeout, settings=self.settings,
            database_url=self.database_url.get_secret_value() if self.database_url else None,
            embedder=self.embedder, principals=self.principals, tenant=self.tenant,
            **{"k": self.k, "mode": self.mode, "filters": self.filters, "since": self.since, "until": self.until,
               "as_of": self.as_of, **self.search_options})

    @property
    def client(self) -> DocvecSearch:
        """The docvec search client this retriever runs (its hits are docvec's own ``SearchHit``s)."""
        return self._search

    def close(self) -> None:
        """Release the HTTP client or the in-process connection pool."""
        self._search.close()

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [document(hit) for hit in self._search.search(query)]

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        return [document(hit) for hit in await self._search.asearch(query)]
