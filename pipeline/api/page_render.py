"""The search page's HTML (``pipeline/api/search_page.py`` serves it): rendered on the server, from
strings. Everything that comes from a document or a request is HTML-escaped here (``html.escape``, quotes
included); query terms are highlighted by wrapping the escaped words that carry a query term (the same
stemmed terms BM25 matches: ``lexical/terms.py``) in ``<mark>``. The page links only its own stylesheet
and script (``/static/``): no inline script or style, nothing from another origin."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode

from pipeline.lexical import terms
from pipeline.query.hits import SearchHit, place
from pipeline.query.request import MODES

# A word of a document's text as the highlighter sees it: a run of word characters, or an identifier joined
# by . : / + - (ERR-4714, os.path.join), so an identifier is highlighted whole when the query names it.
_WORD = re.compile(r"\w+(?:[.:/+-]\w+)*")


@dataclass(frozen=True)
class PageQuery:
    """What the page was asked, as its URL spells it: the query, mode, ``key=value`` filters, days, the
    other search options the URL carries (kept as hidden fields, so a new search keeps them), and the
    chunk whose context is shown."""
    q: str = ""
    mode: str = "hybrid"
    filters: tuple[str, ...] = ()
    since: str = ""
    until: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)
    context: str = ""

    def params(self, **changes: str) -> list[tuple[str, str]]:
        """The URL's parameters (empty ones left out), with ``changes``."""
        pairs = [("q", self.q), ("mode", self.mode), *(("filter", f) for f in self.filters),
                 ("since", self.since), ("until", self.until), *self.extra.items(), ("context", self.context)]
        pairs = [(k, changes.pop(k) if k in changes else v) for k, v in pairs] + list(changes.items())
        return [(k, v) for k, v in pairs if v]

    def url(self, **changes: str) -> str:
        """This page's URL (relative, so it follows whatever host and scheme the page was reached on)."""
        return "/?" + urlencode(self.params(**changes))


def highlighted(text: str, query: str) -> str:
    """``text`` HTML-escaped, with each word that carries one of ``query``'s terms in ``<mark>``."""
    wanted = set(terms.terms(query))
    out: list[str] = []
    last = 0
    for match in _WORD.finditer(text):
        if wanted.intersection(terms.token_terms(match.group())):
            out += [escape(text[last:match.start()]), "<mark>", escape(match.group()), "</mark>"]
            last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def page(title: str, body: str, *, signed_in: bool = False) -> str:
    """A whole page: ``body`` (already HTML) under the header, with the local stylesheet and script."""
    sign_out = ('<form class="sign-out" method="post" action="/session/end">'
                '<button type="submit">Sign out</button></form>') if signed_in else ""
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<link rel=\"stylesheet\" href=\"/static/search.css\">\n"
            "<script src=\"/static/search.js\" defer></script>\n</head>\n<body>\n"
            f"<header><a class=\"home\" href=\"/\">docvec search</a>{sign_out}</header>\n"
            f"<main>\n{body}\n</main>\n</body>\n</html>\n")


def _option(value: str, chosen: str) -> str:
    selected = " selected" if value == chosen else ""
    return f'<option value="{escape(value)}"{selected}>{escape(value)}</option>'


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def search_form(asked: PageQuery) -> str:
    """The query box, the mode, and (under "Options") the filters and the days; the URL's other options
    ride along as hidden fields."""
    filters = [*asked.filters, ""]
    filter_inputs = "".join(
        f'<input id="filter-{i}" name="filter" value="{escape(f)}" placeholder="key=value" '
        f'aria-label="Filter {i + 1} (key=value)">' for i, f in enumerate(filters))
    opened = " open" if asked.filters or asked.since or asked.until else ""
    return (
        '<form class="search" role="search" method="get" action="/">\n'
        '<div class="query"><label for="q">Search the documents</label>'
        f'<input id="q" name="q" type="search" value="{escape(asked.q)}" autocomplete="off" '
        'placeholder="Ask a question, or type a word or an error code" aria-describedby="keys">'
        '<button type="submit">Search</button></div>\n'
        '<div class="mode"><label for="mode">Mode</label><select id="mode" name="mode">'
        f'{"".join(_option(m, asked.mode) for m in ("hybrid", *(m for m in MODES if m != "hybrid")))}</select>'
        '<span id="keys" class="hint">Press <kbd>/</kbd> to search</span></div>\n'
        f'<details{opened}><summary>Options</summary>\n'
        f'<fieldset><legend>Filters (metadata key=value, all must match)</legend>{filter_inputs}</fieldset>\n'
        '<div class="days"><label for="since">Since</label>'
        f'<input id="since" name="since" type="date" value="{escape(asked.since)}">'
        '<label for="until">Until</label>'
        f'<input id="until" name="until" type="date" value="{escape(asked.until)}"></div>\n</details>\n'
        f'{"".join(_hidden(k, v) for k, v in asked.extra.items())}</form>')


def message(text: str, kind: str = "error") -> str:
    """A notice on the page (``role=alert`` for errors, so screen readers announce it)."""
    role = ' role="alert"' if kind == "error" else ""
    return f'<p class="message {escape(kind)}"{role}>{escape(text)}</p>'


def _where(metadata: Mapping[str, object]) -> str:
    """Where a chunk sits: its section and its page (or pages, or slide), those it has."""
    parts = [str(metadata["section"])] if metadata.get("section") else []
    in_file = place(metadata)
    if in_file:
        parts.append(in_file)
    return " · ".join(parts)


def _chunk(hit: SearchHit, asked: PageQuery) -> str:
    where = _where(hit.metadata)
    return (f'<li class="hit" data-chunk-id="{escape(hit.chunk_id)}">'
            + (f'<p class="where">{escape(where)}</p>' if where else "")
            + f'<p class="text">{highlighted(hit.text, asked.q)}</p>'
            f'<p class="links"><span class="score">#{hit.rank} · score {hit.score:.3f}</span> '
            f'<a class="context-link" href="{escape(asked.url(context=hit.chunk_id))}">Context</a></p></li>')


def grouped(hits: Iterable[SearchHit]) -> list[list[SearchHit]]:
    """Hits grouped by document, documents in the order of their best-ranked hit, hits in rank order."""
    groups: dict[str, list[SearchHit]] = {}
    for hit in hits:
        groups.setdefault(hit.doc_id, []).append(hit)
    return list(groups.values())


def _title(hit: SearchHit) -> str:
    return str(hit.metadata.get("title") or hit.doc_id)


def results(hits: Sequence[SearchHit], asked: PageQuery, *, model: str, took_ms: float) -> str:
    """The hits, ranked and grouped by document: title, document id and day, then each chunk's place,
    highlighted text and context link."""
    documents = grouped(hits)
    if not documents:
        return message(f"Nothing matches “{asked.q}”: try other words, another mode, or fewer filters.", "empty")
    items = []
    for group in documents:
        first = group[0]
        items.append(
            f'<li class="document" data-doc-id="{escape(first.doc_id)}"><h2>{escape(_title(first))}</h2>'
            f'<p class="meta"><span class="doc-id">{escape(first.doc_id)}</span> · '
            f'<time datetime="{first.ingest_date.isoformat()}">{first.ingest_date.isoformat()}</time></p>'
            f'<ol class="hits">{"".join(_chunk(h, asked) for h in group)}</ol></li>')
    summary = (f'<p class="summary" role="status">{len(hits)} results in {len(documents)} documents · '
               f'{escape(asked.mode)} · {took_ms:.0f} ms · {escape(model)}</p>')
    return f'{summary}\n<ol class="documents">{"".join(items)}</ol>'


def context(hit: SearchHit, asked: PageQuery) -> str:
    """One hit in its document: the neighbouring chunks before and after it (the search's ``window``), the
    hit's own chunk marked as the one found."""
    where = _where(hit.metadata)
    pieces = []
    for neighbour in hit.context or [{"seq": hit.seq, "text": hit.text}]:
        own = neighbour["seq"] == hit.seq
        text = highlighted(str(neighbour["text"]), asked.q) if own else escape(str(neighbour["text"]))
        pieces.append(f'<li class="{"found" if own else "neighbour"}" data-seq="{int(neighbour["seq"])}">'
                      f'{"<strong>Found:</strong> " if own else ""}<p class="text">{text}</p></li>')
    return (f'<p><a class="back" href="{escape(asked.url(context=""))}">← Back to the results</a></p>\n'
            f'<article class="context" data-doc-id="{escape(hit.doc_id)}"><h2>{escape(_title(hit))}</h2>'
            f'<p class="meta"><span class="doc-id">{escape(hit.doc_id)}</span> · '
            f'<time datetime="{hit.ingest_date.isoformat()}">{hit.ingest_date.isoformat()}</time>'
            + (f" · {escape(where)}" if where else "") + f'</p><ol class="chunks">{"".join(pieces)}</ol></article>')


def sign_in(next_url: str, problem: str | None = None) -> str:
    """The form that asks for an API key or token once; the server keeps it in an HttpOnly cookie."""
    return ((message(problem) if problem else "")
            + '<form class="sign-in" method="post" action="/session">\n'
            '<p>This server needs an API key (<code>dvk_…</code>) or a bearer token to search.</p>\n'
            '<label for="credential">API key or token</label>'
            '<input id="credential" name="credential" type="password" autocomplete="off" required>'
            f'{_hidden("next", next_url)}<button type="submit">Sign in</button>\n</form>')
