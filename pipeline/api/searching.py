"""How ``docvec serve``'s routes run a search (the JSON API and the search page alike): as the caller's
principals and tenant when the server authenticates, measured for ``/metrics``."""

from __future__ import annotations

from pipeline.api.auth import Caller
from pipeline.api.metrics import ServeMetrics
from pipeline.query.request import SearchRequest
from pipeline.query.service import SearchResult, SearchService


def search_as(service: SearchService, wanted: SearchRequest, who: Caller | None, metrics: ServeMetrics) -> SearchResult:
    """The search for ``wanted`` as ``who`` (None: a server without authentication, as the connection's
    own role), its mode, candidates and encode time recorded in ``metrics``."""
    metrics.searching(wanted.mode)
    principals, tenant = (None, None) if who is None else (who.principals, who.tenant)
    result = service.search(wanted, principals=principals, tenant=tenant)
    metrics.searched(result)
    return result
