"""``docvec mcp``'s MCP server (the official SDK's ``MCPServer``): three read-only tools, ``search``,
``fetch_document`` and ``store_info``, described for a model to pick and call well. The search options
are ``SearchRequest``'s, with its descriptions, defaults and bounds shown in the input schema and checked
by ``SearchRequest`` itself, so a bad argument gets one sentence back as a tool error (``isError``),
never a crash. Who a call reads as: the principals the server was started with (stdio, or HTTP without
authentication), or the HTTP caller's, which ``pipeline/mcp_server/http.py`` authenticated."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import ToolAnnotations
from pydantic import Field, ValidationError
from pydantic.fields import FieldInfo

from pipeline.api.app import VERSION
from pipeline.api.auth import Caller
from pipeline.mcp_server.tools import MAX_CHUNKS, MAX_WINDOW, Acting, DocvecTools
from pipeline.query.request import SearchRequest

CALLER_STATE = "docvec_caller"  # where the HTTP middleware leaves the authenticated Caller (request.state)

INSTRUCTIONS = """\
docvec searches an organisation's document store (manuals, runbooks, notes, PDFs and slides ingested day by day).
Use `search` first with the user's question in natural language (mode hybrid, the default, suits most questions;
text for exact identifiers such as error codes; vector for paraphrases). Each hit has a `citation`: quote it when
you use the hit. Use `fetch_document` to read more of a document around a hit (its doc_id and chunk_id) or from the
start. Use `store_info` to learn which days and how many documents the store holds before answering "is there
anything about X" or questions about recency. Only documents the caller may read are ever returned."""

SEARCH = """\
Search the document store and get the best-matching passages, best first, each with its document id, title,
section, page (or slide) where the document has one, ingest day, score, the passage text and a `citation`
string to quote. Ask in natural language or with exact terms; narrow with `filters` (metadata key=value, e.g.
{"topic": "runbooks"}), `since`/`until` (ingest days), or `as_of` (the store as it was on a past day). Set
`documents` true to get one passage per document (which documents answer this?), and `window` 1-2 to get
the neighbouring passages of each hit as `context`. Results are limited to what the caller may read."""

FETCH = """\
Read a stored document's passages (chunks) in order: give `doc_id` (as search returned it) to read it from the
start (`first`, `max_chunks`; `next_first` in the answer says where to continue), or also `chunk_id` (from a
search hit) to read `window` chunks on each side of that passage. Returns the latest version of the document
(as of `as_of` when given), each chunk with its section, page and citation."""

STORE_INFO = """\
Describe what the caller can search: the embedding model served, how many documents are searchable, and per
ingest day how many document versions and chunks are stored. Use it to say how current or complete an answer
can be. Takes no arguments; reads nothing but counts."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_SCHEMA = SearchRequest.model_json_schema(by_alias=False)["properties"]
_HINTS = ("enum", "minimum", "maximum", "minLength", "maxLength", "format")


def _option(name: str, more: str = "") -> Any:
    """The tool parameter for ``SearchRequest.<name>``: its description and bounds as schema hints.
    The values are checked by ``SearchRequest`` (one sentence on failure), not by the SDK's own validation."""
    declared = _SCHEMA[name]
    shown = next((alt for alt in declared.get("anyOf", []) if alt.get("type") != "null"), declared)
    hints = {key: shown[key] for key in _HINTS if key in shown}
    field: FieldInfo = Field(description=(declared.get("description", "") + more).strip(),
                             json_schema_extra=hints or None)
    return field


def _default(name: str) -> Any:
    return SearchRequest.model_fields[name].default


class DocvecMCP(MCPServer[Any]):
    """``MCPServer`` whose argument errors read as one sentence (field, reason, value), like
    ``SearchRequest``'s, instead of pydantic's multi-line report."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']} (got {e.get('input')!r})"
                                for e in cause.errors())
            raise ToolError(f"invalid arguments: {reasons}") from cause


def build_server(tools: DocvecTools, acting: Acting | None) -> DocvecMCP:
    """The MCP server over ``tools``. ``acting``: whom every call reads as; None: as the HTTP request's
    authenticated caller."""
    server = DocvecMCP("docvec", title="docvec document search", version=VERSION, instructions=INSTRUCTIONS,
                       description="Read-only search over a docvec store, with citations")

    def who(ctx: Context[Any, Any]) -> Acting:
        if acting is not None:
            return acting
        request = ctx.request_context.request
        caller = getattr(getattr(request, "state", None), CALLER_STATE, None)
        if not isinstance(caller, Caller):  # the middleware refuses such a request before it gets here
            raise ToolError("this request carries no authenticated caller: send `Authorization: Bearer <API key "
                            "or token>`")
        return Acting(caller.principals, caller.tenant)

    @server.tool(description=SEARCH, annotations=READ_ONLY)
    def search(
        query: Annotated[str, _option("query", ": a question or keywords")],
        ctx: Context[Any, Any],
        k: Annotated[int, _option("k", " to return (1-100)")] = _default("k"),
        mode: Annotated[str, _option("mode")] = _default("mode"),
        filters: Annotated[dict[str, str] | None, _option("filters")] = None,
        since: Annotated[str | None, _option("since", " (YYYY-MM-DD)")] = None,
        until: Annotated[str | None, _option("until", " (YYYY-MM-DD)")] = None,
        as_of: Annotated[str | None, _option("as_of", " (YYYY-MM-DD)")] = None,
        documents: Annotated[bool, _option("documents")] = _default("documents"),
        per_doc: Annotated[int | None, _option("per_doc")] = None,
        group_by_document: Annotated[bool, _option("group_by_document")] = _default("group_by_document"),
        window: Annotated[int, _option("window")] = _default("window"),
        fusion: Annotated[str, _option("fusion", " (tuning: leave unset)")] = _default("fusion"),
        vector_weight: Annotated[float, _option("vector_weight", " (tuning: leave unset)")] = _default("vector_weight"),
        opening_weight: Annotated[float, _option("opening_weight", " (tuning: leave unset)")] = _default(
            "opening_weight"),
        feedback_weight: Annotated[float, _option("feedback_weight", " (tuning: leave unset)")] = _default(
            "feedback_weight"),
        rrf_k: Annotated[int, _option("rrf_k", " (tuning: leave unset)")] = _default("rrf_k"),
        candidates: Annotated[int, _option("candidates", " (tuning: leave unset)")] = _default("candidates"),
        ef_search: Annotated[int | None, _option("ef_search", " (tuning: leave unset)")] = None,
        probes: Annotated[int | None, _option("probes", " (tuning: leave unset)")] = None,
    ) -> dict[str, Any]:
        options = {"query": query, "k": k, "mode": mode, "filters": filters, "since": since, "until": until,
                   "as_of": as_of, "documents": documents, "per_doc": per_doc, "group_by_document": group_by_document,
                   "window": window, "fusion": fusion, "vector_weight": vector_weight,
                   "opening_weight": opening_weight, "feedback_weight": feedback_weight, "rrf_k": rrf_k,
                   "candidates": candidates, "ef_search": ef_search, "probes": probes}
        return tools.search(options, who(ctx))

    @server.tool(description=FETCH, annotations=READ_ONLY)
    def fetch_document(
        doc_id: Annotated[str, Field(description="the document's id, exactly as a search hit's doc_id")],
        ctx: Context[Any, Any],
        chunk_id: Annotated[str | None, Field(description="a search hit's chunk_id: read around that passage "
                                                          "instead of from the start")] = None,
        window: Annotated[int, Field(description="with chunk_id: chunks on each side of it",
                                     json_schema_extra={"minimum": 0, "maximum": MAX_WINDOW})] = 2,
        first: Annotated[int, Field(description="without chunk_id: the position (seq) to read from",
                                    json_schema_extra={"minimum": 0})] = 0,
        max_chunks: Annotated[int, Field(description="without chunk_id: at most this many chunks",
                                         json_schema_extra={"minimum": 1, "maximum": MAX_CHUNKS})] = 50,
        as_of: Annotated[str | None, Field(description="the version stored by this day (YYYY-MM-DD); default: "
                                                       "the latest")] = None,
    ) -> dict[str, Any]:
        return tools.fetch_document(doc_id, who(ctx), chunk_id=chunk_id, window=window, first=first,
                                    max_chunks=max_chunks, as_of=as_of)

    @server.tool(description=STORE_INFO, annotations=READ_ONLY)
    def store_info(ctx: Context[Any, Any]) -> dict[str, Any]:
        return tools.store_info(who(ctx))

    return server
