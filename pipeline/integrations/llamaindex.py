"""docvec as a LlamaIndex retriever: ``DocvecRetriever(base_url=..., api_key=...)`` searches through
``docvec serve``, ``DocvecRetriever(settings=...)`` (or ``database_url=``, or neither: the environment's
store) searches the store in process; both return ``NodeWithScore``s in docvec's order, sync
(``retrieve``) and async (``aretrieve``). Needs the extra: ``pip install 'docvec[llamaindex]'``.

Each node is a ``TextNode``: ``id_`` the chunk id, ``text`` the chunk's text, ``metadata`` the chunk's own
(title, section, page where present, ...) and docvec's (doc_id, chunk_id, seq, day, rank, score,
similarity, text_score; see ``client.hit_metadata``), of which the chunk's ids and the scores are kept
out of what LlamaIndex sends to a model or an embedding (title, section, page, doc_id and day stay in); its score is the
hit's ``score`` (what the mode ranks by). Nothing here loads NLTK or tiktoken data: the nodes are built
from docvec's text, never split or counted by LlamaIndex."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # the extra is not installed
    raise ImportError("docvec's LlamaIndex retriever needs llama-index-core: "
                      "pip install 'docvec[llamaindex]'") from exc

from pipeline.ingest.embedding import Embedder
from pipeline.integrations.client import DEFAULT_TIMEOUT, NOT_FOR_MODELS, DocvecSearch, hit_metadata
from pipeline.query.hits import SearchHit
from pipeline.query.request import Mode
from pipeline.settings import Settings

__all__ = ["DocvecRetriever", "node"]


def node(hit: SearchHit) -> NodeWithScore:
    """One hit as a LlamaIndex ``NodeWithScore``."""
    metadata = hit_metadata(hit)
    hidden = [key for key in NOT_FOR_MODELS if key in metadata]
    text = TextNode(id_=hit.chunk_id, text=hit.text, metadata=metadata, excluded_llm_metadata_keys=hidden,
                    excluded_embed_metadata_keys=hidden)
    return NodeWithScore(node=text, score=hit.score)


class DocvecRetriever(BaseRetriever):
    """docvec's search as a LlamaIndex retriever (see the module docstring). Over HTTP: ``base_url`` (docvec
    serve's root), ``api_key`` (an API key or bearer token; the key decides whom the search runs as),
    ``timeout`` seconds. In process: ``settings`` or ``database_url``, ``principals`` and ``tenant`` to
    search as, ``embedder`` when the model is loaded already. Search options: ``k``, ``mode``,
    ``filters``, ``since``, ``until``, ``as_of`` (None: docvec's default), and any other ``SearchRequest``
    field as a keyword. A bad option is a ``ConfigError`` when the retriever is made."""

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 settings: Settings | None = None, database_url: str | None = None, embedder: Embedder | None = None,
                 principals: Sequence[str] | None = None, tenant: str | None = None, k: int | None = None,
                 mode: Mode | None = None, filters: dict[str, str] | None = None, since: dt.date | None = None,
                 until: dt.date | None = None, as_of: dt.date | None = None,
                 callback_manager: CallbackManager | None = None, verbose: bool = False,
                 **search_options: Any) -> None:
        self._search = DocvecSearch(base_url=base_url, api_key=api_key, timeout=timeout, settings=settings,
                                    database_url=database_url, embedder=embedder, principals=principals,
                                    tenant=tenant, k=k, mode=mode, filters=filters, since=since, until=until,
                                    as_of=as_of, **search_options)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def __repr__(self) -> str:
        return f"DocvecRetriever({self._search!r})"

    @property
    def client(self) -> DocvecSearch:
        """The docvec search client this retriever runs (its hits are docvec's own ``SearchHit``s)."""
        return self._search

    def close(self) -> None:
        """Release the HTTP client or the in-process connection pool."""
        self._search.close()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [node(hit) for hit in self._search.search(query_bundle.query_str)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [node(hit) for hit in await self._search.asearch(query_bundle.query_str)]
