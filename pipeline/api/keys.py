"""API key secrets: a key is ``dvk_<id>_<secret>``, the id 12 hex characters (what ``docvec keys list``
and ``revoke`` name), the secret 32 random bytes (``secrets.token_urlsafe``). Only the SHA-256 of the
secret is stored: a 256-bit random secret cannot be guessed from its hash, so the slow, salted hashes
passwords need (bcrypt, argon2) would add latency to every request and no protection. A presented
secret is compared with the stored digest in constant time (``hmac.compare_digest``)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from pipeline.errors import ConfigError

PREFIX = "dvk_"
_KEY = re.compile(r"dvk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_RATE = re.compile(r"\s*(\d+)\s*/\s*(s|sec|second|min|minute|h|hour)\s*")
_SECONDS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


@dataclass(frozen=True)
class NewKey:
    """A key as created: ``key`` is shown once, ``secret_sha256`` is what is stored."""
    key_id: str
    key: str
    secret_sha256: bytes


def new_key() -> NewKey:
    """A fresh random key."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return NewKey(key_id=key_id, key=f"{PREFIX}{key_id}_{secret}", secret_sha256=digest(secret))


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def split_key(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    found = _KEY.fullmatch(presented)
    return (found.group(1), found.group(2)) if found else None


def matches(secret: str, stored_sha256: bytes) -> bool:
    """Whether ``secret`` is the one whose digest was stored (constant time)."""
    return hmac.compare_digest(digest(secret), stored_sha256)


def parse_rate(text: str) -> tuple[int, int]:
    """``600/min`` as (600, 60); also ``/s`` and ``/hour``. Otherwise a ``ConfigError``."""
    found = _RATE.fullmatch(text)
    if not found or int(found.group(1)) < 1:
        raise ConfigError(f"rate {text[:40]!r} is not N/s, N/min or N/hour with N at least 1 (e.g. --rate 600/min)")
    return int(found.group(1)), _SECONDS[found.group(2)]
