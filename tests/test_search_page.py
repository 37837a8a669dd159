"""The search page of `docvec serve` (issue #29, item 4) as people meet it: a real server process on the
sample store, driven in headless Chromium (type a query, submit, read the results, open a context link, on a
desktop and a phone-width screen), and over plain HTTP for what a browser hides (escaping, statuses,
headers, sign-in cookies). Screenshots are kept in $DOCVEC_SCREENSHOT_DIR when it is set."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.api import page_render
from pipeline.api.search_page import STATIC, _next_url
from pipeline.ingest.landing import LocalLanding
from pipeline.settings import Settings
from pipeline.storage import connections
from tests.support.browser import Browser, chromium_path
from tests.support.databases import fresh_database
from tests.support.engine_runs import run_days
from tests.support.network import free_port
from tests.support.sample import day_folder
from tests.support.serve_process import serve_process
from tests.support.tcp_relay import Relay

QUERY, EXPECTED = "ERR-4714", "runbooks/err-4714.md"  # tests/test_serve.py's text query and its first document
STATIC_DIR = Path(page_render.__file__).with_name("static")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch(url: str, *, data: dict[str, str] | None = None, headers: dict[str, str] | None = None,
          method: str | None = None) -> tuple[int, str, Any]:
    """Status, body and headers of one request (redirects not followed)."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=120) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def page_url(base: str, **params: Any) -> str:
    return f"{base}/?{urllib.parse.urlencode(params, doseq=True)}"


def document_ids(html: str) -> list[str]:
    return re.findall(r'<li class="document" data-doc-id="([^"]*)"', html)


# --- what needs no server -------------------------------------------------------------------------------

def test_text_from_documents_is_escaped_and_the_query_terms_marked() -> None:
    text = 'Rotating the <b>database</b> "credentials" & ERR-4714: <script>alert(1)</script>'
    shown = page_render.highlighted(text, "rotate database credentials ERR-4714")
    assert "<b>" not in shown and "<script>" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert re.findall(r"<mark>(.*?)</mark>", shown) == ["Rotating", "database", "credentials", "ERR-4714"]
    assert "&quot;" in shown and "&amp;" in shown
    assert page_render.highlighted("the of and", "the") == "the of and", "stop words are never marked"


def test_the_page_and_its_assets_reference_nothing_outside_the_server() -> None:
    asked = page_render.PageQuery(q='"><script>alert(1)</script>', filters=("topic=a&b",), extra={"k": "5"})
    html = page_render.page("t", page_render.search_form(asked) + page_render.sign_in("/?q=x"), signed_in=True)
    assert "<script>alert" not in html and "&quot;&gt;&lt;script&gt;" in html
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/search.js" defer>'], "no inline script"
    assert "style=" not in html and "<style" not in html
    assert 'name="viewport"' in html and '<label for="q">' in html and '<label for="mode">' in html
    for name in STATIC:
        assert not re.search(r"https?://|//[a-z]|@import|url\(", (STATIC_DIR / name).read_text()), name
    assert not re.search(r"(src|href|action)=\"(https?:)?//", html)


@pytest.mark.parametrize(("raw", "kept"), [("/?q=a&mode=text", "/?q=a&mode=text"), ("//evil.example/", "/"),
                                           ("https://evil.example/", "/"), ("/\\evil.example", "/"), ("", "/"),
                                           ("javascript:alert(1)", "/")])
def test_signing_in_returns_only_to_a_page_of_this_server(raw: str, kept: str) -> None:
    assert _next_url(raw) == kept


# --- the page on the sample store ---------------------------------------------------------------------

def _server_socket(info: Any) -> socket.socket:
    if info.host.startswith("/"):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(f"{info.host}/.s.PGSQL.{info.port}")
        return sock
    return socket.create_connection((info.host, info.port))


@pytest.fixture(scope="module")
def served(stored_sample, migrated, tmp_path_factory) -> Iterator[tuple[str, Relay]]:
    """`docvec serve` on the sample store, reaching PostgreSQL through a relay a test can cut."""
    with connections.connect(migrated) as conn:
        info = SimpleNamespace(host=conn.info.host, port=conn.info.port)
        password = f":{urllib.parse.quote(conn.info.password)}" if conn.info.password else ""
        url = f"postgresql://{conn.info.user}{password}@127.0.0.1:{{port}}/{conn.info.dbname}"
    relay = Relay(lambda: _server_socket(info), free_port())
    relay.start()
    env = {**os.environ, "DOCVEC_HOME": str(migrated.home), "DATABASE_URL": url.format(port=relay.port)}
    try:
        with serve_process(["--db-timeout", "2"], env, tmp_path_factory.mktemp("page"), ready=(200, 503)) as (base, _):
            yield base, relay
    finally:
        relay.stop()


def _screenshot(browser: Browser, name: str) -> None:
    if os.environ.get("DOCVEC_SCREENSHOT_DIR"):
        folder = Path(os.environ["DOCVEC_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        assert browser.screenshot(folder / name).stat().st_size > 0


def _wait(browser: Browser, expression: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.evaluate(f"(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()")
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{expression} never held; page: {browser.text()[:1500]!r}")


def _key(browser: Browser, key: str, code: str, keycode: int, text: str) -> None:
    for kind in ("keyDown", "keyUp"):
        browser.call("Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=keycode,
                     **({"text": text} if kind == "keyDown" else {}))


OUTSIDE = """[...document.querySelectorAll('[src],[href],[action]')]
  .map(e => e.src || e.href || e.action).concat(performance.getEntriesByType('resource').map(r => r.name))
  .filter(u => !u.startsWith(location.origin + '/'))"""


@pytest.mark.browser
def test_a_person_searches_opens_a_context_and_reads_it_on_a_phone(loaded_sample, served) -> None:
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: scripts/test.sh should have installed it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    base, _ = served
    browser = Browser()
    try:
        browser.goto(base + "/")
        _wait(browser, "document.readyState === 'complete' && !!document.getElementById('q')")
        _key(browser, "/", "Slash", 191, "/")  # the shortcut focuses the box (and types no "/")
        assert browser.evaluate("document.activeElement.id + '|' + document.activeElement.value") == "q|"
        browser.call("Input.insertText", text=QUERY)
        browser.evaluate("document.getElementById('mode').value = 'text'")
        browser.evaluate("document.getElementById('q').focus()")
        _key(browser, "Enter", "Enter", 13, "\r")
        _wait(browser, "document.readyState === 'complete' && !!document.querySelector('li.document, .message')")
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.evaluate("location.href")).query,
                                       keep_blank_values=True)
        assert params == {"q": [QUERY], "mode": ["text"]}, "the URL holds the query and mode, no empty fields"
        assert browser.evaluate("document.querySelector('li.document').dataset.docId") == EXPECTED
        assert QUERY in browser.evaluate(
            "[...document.querySelectorAll('li.document:first-child mark')].map(m => m.textContent)")
        assert browser.evaluate("getComputedStyle(document.querySelector('main')).maxWidth") != "none", "CSS applied"
        assert browser.evaluate(OUTSIDE) == []
        _screenshot(browser, "search-page-results.png")

        chunk = browser.evaluate("document.querySelector('li.document:first-child li.hit').dataset.chunkId")
        browser.evaluate("document.querySelector('li.document:first-child a.context-link').click()")
        _wait(browser, "!!document.querySelector('article.context li.found')")
        assert browser.evaluate("document.querySelector('article.context').dataset.docId") == EXPECTED
        found = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.evaluate("location.href")).query)
        assert found["context"] == [chunk] and found["q"] == [QUERY]
        assert QUERY in browser.evaluate("document.querySelector('li.found').innerText")
        _screenshot(browser, "search-page-context.png")

        browser.call("Emulation.setDeviceMetricsOverride", width=375, height=740, deviceScaleFactor=2, mobile=True)
        browser.goto(page_url(base, q=QUERY, mode="text", filter="topic=runbooks"))
        _wait(browser, "document.readyState === 'complete' && !!document.querySelector('li.document')")
        assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
            "a phone-width screen scrolls sideways")
        _screenshot(browser, "search-page-phone.png")
    finally:
        browser.close()


def test_the_page_escapes_refuses_and_answers_like_the_api(loaded_sample, served) -> None:
    base, _ = served
    status, html, headers = fetch(page_url(base, q="<script>alert(1)</script>", mode="text"))
    assert status == 200 and "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"

    status, html, _ = fetch(page_url(base, q=QUERY, mode="text"))
    docs = document_ids(html)
    assert status == 200 and docs[0] == EXPECTED and len(docs) == len(set(docs)), "grouped by document"
    assert f"<mark>{QUERY}</mark>" in html
    with urllib.request.urlopen(f"{base}/search?{urllib.parse.urlencode({'q': QUERY, 'mode': 'text', 'per_doc': 3})}",
                                timeout=60) as response:
        api = json.load(response)["hits"]
    assert docs == list(dict.fromkeys(h["doc_id"] for h in api)), "the same search as /search"
    assert html.count('class="hit"') == len(api)

    for params, words in (({"q": QUERY, "filter": "novalue"}, "is not key=value"),
                          ({"q": QUERY, "mode": "fuzzy"}, "mode: Input should be"),
                          ({"q": QUERY, "since": "yesterday"}, "since:"),
                          ({"q": QUERY, "k": "0"}, "k: Input should be greater than or equal to 1")):
        status, html, headers = fetch(page_url(base, **params))
        assert status == 400 and words in html and 'role="alert"' in html and 'id="q"' in html, (params, html[-800:])
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    status, html, _ = fetch(page_url(base, q=QUERY, mode="text", context="no-such-chunk"))
    assert status == 404 and "no longer among this search" in html

    status, html, _ = fetch(base + "/")
    assert status == 200 and 'class="document"' not in html and 'id="q"' in html
    status, css, headers = fetch(base + "/static/search.css")
    assert "main {" in css
    assert status == 200 and headers["Content-Type"].startswith("text/css") and headers["X-Content-Type-Options"]
    assert fetch(base + "/static/app.py")[0] == 404 and fetch(base + "/static/..%2Fapp.py")[0] == 404
    assert fetch(base + "/", method="DELETE")[0] == 405 and fetch(base + "/", data={"q": "x"})[0] == 405, "read-only"


def test_the_page_says_when_the_database_is_down_and_recovers(served) -> None:
    base, relay = served
    relay.stop()
    try:
        status, html, headers = fetch(page_url(base, q=QUERY, mode="text"))
        assert status == 503 and "database is unavailable" in html and int(headers["Retry-After"]) >= 1, html[-600:]
        assert 'id="q"' in html, "the form stays, to try again"
    finally:
        relay.start()
    deadline = time.monotonic() + 30
    while (status := fetch(page_url(base, q=QUERY, mode="text"))[0]) != 200:
        assert status == 503 and time.monotonic() < deadline, status
        time.sleep(0.5)


# --- with authentication ------------------------------------------------------------------------------

READERS = {"public.md": ["*"], "hr-only.md": ["group:hr"], "logbook.md": ["*"]}
# A document of many chunks, one word ("foghorn") only in the middle: its context has neighbours on both sides.
LOGBOOK = "# Lighthouse logbook\n\n" + "\n\n".join(
    f"## Watch {n}\n\n" + " ".join(f"Keeper entry {n}.{i}: the lamp turned, the weather held, the tide rose "
                                     f"and fell along the rocks {n} {i}." for i in range(12))
    + (" The foghorn sounded twice at dusk." if n == 4 else "") for n in range(9))


@pytest.fixture(scope="module")
def private_store(migrated, embedder, tmp_path_factory) -> Settings:
    base = fresh_database(migrated, embedder.info.dim, "docvec_search_page_auth")
    landing = tmp_path_factory.mktemp("landing")
    folder = day_folder(landing, dt.date(2026, 7, 3))
    for name in READERS:
        (folder / name).write_text(f"# {name[:-3]}\n\nThe harbour ledger entry {name[:-3]} is filed by the desk."
                                   if name != "logbook.md" else LOGBOOK)
    with connections.connect(base) as conn:
        run_days(conn, LocalLanding(landing), [dt.date(2026, 7, 3)], embedder)
        with conn.transaction():
            for doc_id, names in READERS.items():
                conn.execute("UPDATE documents SET readers = %s WHERE doc_id = %s", (names, doc_id))
    return base


def test_with_auth_a_browser_signs_in_once_and_searches_as_its_key(private_store, tmp_path) -> None:
    env = {**os.environ, "DATABASE_URL": str(private_store.database_url), "DOCVEC_HOME": str(tmp_path / "home")}
    made = subprocess.run([sys.executable, "-m", "pipeline.cli.main", "keys", "create", "--principal", "alice"],
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    key = made.stdout.splitlines()[0]
    with serve_process(["--auth", "keys"], env, tmp_path) as (base, log):
        asked = page_url(base, q="harbour ledger", mode="text")
        status, html, headers = fetch(asked)
        assert status == 401 and 'action="/session"' in html and 'type="password"' in html
        assert 'class="document"' not in html and "Set-Cookie" not in headers
        origin = {"Origin": base}
        next_url = "/?q=harbour+ledger&mode=text"
        status, html, headers = fetch(base + "/session", data={"credential": key + "x", "next": next_url},
                                      headers=origin)
        assert status == 401 and "the API key is not" in html and "Set-Cookie" not in headers
        status, _, headers = fetch(base + "/session", data={"credential": key, "next": next_url},
                                   headers={"Origin": "https://evil.example"})
        assert status == 403 and "Set-Cookie" not in headers, "a form posted from another site"

        status, _, headers = fetch(base + "/session", data={"credential": key, "next": next_url}, headers=origin)
        assert status == 303 and headers["Location"] == next_url and key not in headers["Location"]
        cookie = headers["Set-Cookie"]
        assert {"httponly", "samesite=strict", "path=/"} <= {p.strip().lower() for p in cookie.split(";")}
        jar = {"Cookie": cookie.split(";")[0]}
        status, html, _ = fetch(base + next_url, headers=jar)
        assert status == 200 and document_ids(html) == ["public.md"], "searches as the key's principals"
        assert key not in html and 'action="/session/end"' in html
        status, html, _ = fetch(page_url(base, q="harbour ledger", mode="text"),
                                headers={"Authorization": f"Bearer {key}"})
        assert status == 200 and document_ids(html) == ["public.md"]
        assert fetch(f"{base}/search?q=harbour+ledger", headers=jar)[0] == 401, "the JSON API never reads the cookie"

        status, html, _ = fetch(page_url(base, q="foghorn", mode="text"), headers=jar)
        link = re.search(r'class="context-link" href="([^"]+)"', html)
        assert status == 200 and document_ids(html) == ["logbook.md"] and link, html[-800:]
        status, html, _ = fetch(base + link.group(1).replace("&amp;", "&"), headers=jar)
        seqs = [int(s) for s in re.findall(r'data-seq="(\d+)"', html)]
        found = int(re.search(r'class="found" data-seq="(\d+)"', html).group(1))
        assert status == 200 and "<mark>foghorn</mark>" in html and html.count('class="neighbour"') >= 2
        assert seqs == list(range(found - 2, found + 3)), "two chunks on each side of the hit, in order"

        status, _, headers = fetch(base + "/session/end", data={}, headers={**origin, **jar})
        assert status == 303 and 'docvec_credential=""' in headers["Set-Cookie"]
        subprocess.run([sys.executable, "-m", "pipeline.cli.main", "keys", "revoke", key.split("_")[1]], env=env,
                       capture_output=True, text=True, timeout=120, check=True)
        status, html, headers = fetch(base + next_url, headers=jar)
        assert status == 403 and "revoked" in html and 'action="/session"' in html and 'class="document"' not in html
        assert 'docvec_credential=""' in headers["Set-Cookie"], "a revoked key's cookie is dropped"
        assert key not in log.read_text(), "the key never reaches the log"
