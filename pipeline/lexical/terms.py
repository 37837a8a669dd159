"""Text → index terms. Words are lower-cased and Snowball-stemmed; identifiers are kept whole *and*
split into their parts, so ``os.path.splitext`` matches the query ``os.path.splitext`` exactly (a
rare, heavily weighted term) and also the words ``path`` and ``splitext``; ``__post_init__``,
``--system-site-packages``, ``JSONDecodeError``, ``ERR-4471`` and ``w:gz`` likewise. Dotted names
also index each shorter dotted tail (``lock.acquire`` from ``threading.Lock.acquire``), because a
manual documents a method under its class, not under its full module path.

Terms become integers (``term_id``): the index stores ids, never strings."""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from collections.abc import Iterable

import snowballstemmer

# A token: an option (-x, --flag-name), or a run of word characters joined by . _ - : / + (an identifier,
# a number, a path) that starts and ends with a word character, or a single word character.
_TOKEN = re.compile(r"--?[^\W\d_][\w-]*|\w[\w.:/+-]*\w|\w")
_SEPARATORS = re.compile(r"[._:/+-]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^\W\d_A-Za-z]+")
_IDENTIFIER_SHAPE = re.compile(r"[._:/+-]|[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]|^_|^[A-Z][A-Z0-9]{3,}$")
# English function words: as common in every chunk as in every question, so they rank nothing and
# only widen the candidate set. Kept short on purpose (content words rank by their idf).
STOP_WORDS = frozenset(
    "a an and are as at be been but by can could did do does doing for from had has have how i if in "
    "into is it its may me my of on or our should so than that the their them then there these they "
    "this those to was we were what when where which while who why will with would you your".split()
)
MAX_TOKEN_CHARS = 80  # longer "words" are data (hashes, base64), not terms anyone searches for
TERM_SPACE = 1_000_000_000  # term ids lie in [0, TERM_SPACE): pgvector's sparsevec dimension limit

_stemmer = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


@functools.lru_cache(maxsize=500_000)
def term_id(term: str) -> int:
    """A stable integer for a term (the same on every machine and in every release)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "big") % TERM_SPACE


@functools.lru_cache(maxsize=200_000)
def token_terms(token: str) -> tuple[str, ...]:
    """The terms of one token: a plain word gives its stem (none for a stop word); an identifier gives
    itself lower-cased, its dotted tails, and the stems of its parts."""
    if len(token) > MAX_TOKEN_CHARS:
        return ()
    if not _IDENTIFIER_SHAPE.search(token):
        word = token.lower()
        return () if word in STOP_WORDS else (_stem(word),)
    whole = token.lower()
    terms = [whole]
    if "." in whole.strip("."):
        names = whole.split(".")
        terms += [".".join(names[i:]) for i in range(1, len(names) - 1)]
    terms += [_stem(word) for word in _parts(token) if word and word not in STOP_WORDS and word != whole]
    return tuple(terms)


def _parts(token: str) -> list[str]:
    """An identifier's parts, lower-cased: split at its separators, then at case changes and digits."""
    return [part.lower() for piece in _SEPARATORS.split(token) for part in _CAMEL.findall(piece)]


def terms(text: str) -> list[str]:
    """Every term of ``text``, in order, repeated as often as it occurs."""
    return [term for token in _TOKEN.findall(text) for term in token_terms(token)
            ] if text else []


def surface_forms(text: str) -> dict[int, str]:
    """Each term id of ``text`` and how it reads there: the first word that gives it, lower-cased (a
    stem shows as the word it came from, an identifier's part as that part, a dotted tail as itself).
    For people (``--explain``), never for matching."""
    forms: dict[int, str] = {}
    for token in _TOKEN.findall(text) if text else ():
        word = token.lower()
        parts = {_stem(part): part for part in _parts(token)}
        for term in token_terms(token):
            forms.setdefault(term_id(term), word if term in (word, _stem(word)) else parts.get(term, term))
    return forms


def term_counts(fields: Iterable[tuple[str, int]]) -> Counter[str]:
    """Weighted term frequencies over ``(text, weight)`` fields: a title term counted ``weight`` times."""
    counts: Counter[str] = Counter()
    for text, weight in fields:
        if weight <= 0:
            continue
        for term in terms(text):
            counts[term] += weight
    return counts
