"""Who is asking ``docvec serve``: API keys (``docvec keys``) and bearer JWTs verified offline, both sent as
``Authorization: Bearer <credential>`` (a key starts with ``dvk_``). An authenticated caller searches as
its principals, within its tenant when it has one (``SearchService.search(principals=, tenant=)``:
PostgreSQL's row-level security decides every row), under a per-caller rate limit.

Answers: 401 with ``WWW-Authenticate`` without credentials or with bad ones (unknown key, wrong secret,
a token that is tampered with, expired, not yet valid, for another audience or issuer, signed with an
algorithm outside the allow-list); 403 for a revoked key; 429 with ``Retry-After`` over the rate.
Credentials never appear in an answer, a log line or an error: messages say what is wrong, never with what.

Tokens: verified against a JWKS file of public keys (RSA or EC; symmetric keys are refused, so a token
signed with HMAC using a public key as the secret, the RS/HS confusion, cannot verify), with an algorithm
allow-list that can never hold ``none`` or an HS algorithm, the key chosen by the token's ``kid`` and
bound to its own algorithm; ``exp``, ``iss``, ``aud`` and ``sub`` are required, ``leeway`` seconds of
clock skew allowed. Principals come from the configured claims (default ``groups`` and ``sub``: strings or
lists of strings), the tenant from the configured tenant claim; when one is configured, a token
without it is refused (leaving it out must never widen what a token sees)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt

from pipeline.api import keys
from pipeline.api.rate_limit import RateLimiter
from pipeline.errors import ConfigError
from pipeline.storage import access, api_keys

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

REALM = 'Bearer realm="docvec"'
DEFAULT_ALGORITHMS = ("RS256", "ES256")
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_DUMMY_DIGEST = keys.digest("no such key")


class Refused(Exception):
    """A request refused before it searched: ``status`` (401, 403, 429), a ``detail`` that never holds the
    credential, and the headers the status needs."""

    def __init__(self, status: int, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def _unauthorized(detail: str, error: str = "invalid_token") -> Refused:
    return Refused(401, detail, {"WWW-Authenticate": f'{REALM}, error="{error}"'})


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: whom it searches as, in which tenant, and its rate-limit bucket."""
    principals: tuple[str, ...]
    tenant: str | None
    bucket: str
    rate: tuple[int, int] | None = None


class KeyStore:
    """API keys looked up through the owner's pool (``api_keys.key_pool``) on every request."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def open(self) -> None:
        self.pool.open(wait=False)

    def close(self) -> None:
        self.pool.close()

    def caller(self, presented: str) -> Caller:
        parts = keys.split_key(presented)
        if parts is None:
            raise _unauthorized("the API key is not well-formed: a key is dvk_<id>_<secret> as `docvec keys create` "
                                "printed it")
        key_id, secret = parts
        with self.pool.connection() as conn:
            stored = api_keys.secret_of(conn, key_id)
            known = stored is not None and keys.matches(secret, stored.secret_sha256)
            if stored is None:
                keys.matches(secret, _DUMMY_DIGEST)  # an unknown id costs the same as a wrong secret
            if not known or stored is None:
                raise _unauthorized("the API key is not valid: ask an admin for one (`docvec keys create`)")
            if stored.key.revoked_at is not None:
                raise Refused(403, f"API key {key_id} was revoked: ask an admin for a new one (`docvec keys create`)",
                              {})
            api_keys.touch(conn, key_id)
        key = stored.key
        return Caller(principals=key.principals, tenant=key.tenant, bucket=f"key:{key_id}", rate=key.rate)


@dataclass(frozen=True)
class TokenPolicy:
    """How bearer JWTs are verified (see the module docstring)."""
    jwks: Path
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 30.0
    principal_claims: tuple[str, ...] = ("groups", "sub")
    tenant_claim: str | None = None


def allowed_algorithms(names: Sequence[str]) -> tuple[str, ...]:
    """The allow-list, checked: asymmetric algorithms only (never ``none``, never HS*)."""
    chosen = tuple(n.strip() for n in names if n.strip())
    bad = [n for n in chosen if n not in ASYMMETRIC]
    if bad or not chosen:
        raise ConfigError(f"--jwt-algorithms {','.join(chosen)!r}: allowed are only asymmetric algorithms "
                          f"({', '.join(ASYMMETRIC)}); never 'none' nor HS256/384/512, whose shared secret would let "
                          "anyone who holds the public key sign (the RS/HS confusion)")
    return chosen


def _load_jwks(path: Path) -> list[jwt.PyJWK]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--jwks {path}: cannot read a JSON Web Key Set ({exc.__class__.__name__}); give the "
                          "path of a JSON file {{\"keys\": [...]}} of the issuer's public keys") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"--jwks {path}: no \"keys\" list; give the issuer's JWKS document")
    if any(isinstance(e, dict) and (e.get("kty") == "oct" or "d" in e) for e in entries):
        raise ConfigError(f"--jwks {path}: holds a symmetric or private key; give only the issuer's public keys "
                          "(RSA or EC)")
    try:
        return list(jwt.PyJWKSet(entries).keys)
    except jwt.PyJWTError as exc:
        raise ConfigError(f"--jwks {path}: no usable public key ({exc.__class__.__name__})") from exc


_TOKEN_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired: get a new one from the issuer"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (nbf/iat in the future)"),
    (jwt.InvalidAudienceError, "the token is not for this server's audience"),
    (jwt.InvalidIssuerError, "the token is not from this server's issuer"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not allowed here"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.DecodeError, "the token is not a well-formed, signed JWT"),
)


class TokenVerifier:
    """Bearer JWTs checked offline against ``policy`` (keys read once, at start)."""

    def __init__(self, policy: TokenPolicy) -> None:
        if not policy.issuer or not policy.audience:
            raise ConfigError("--auth jwt needs --issuer and --audience (the values the tokens' iss and aud must hold)")
        self.policy = policy
        self.algorithms = allowed_algorithms(policy.algorithms)
        self._keys = _load_jwks(policy.jwks)

    def _key(self, header: dict[str, Any]) -> jwt.PyJWK:
        kid = header.get("kid")
        found = [k for k in self._keys if k.key_id == kid] if kid is not None else self._keys
        if len(found) != 1:
            raise _unauthorized("the token's key (kid) is not among the server's keys" if kid is not None else
                                "the token names no key (kid) and the server has several")
        if header.get("alg") not in self.algorithms or header.get("alg") != found[0].algorithm_name:
            raise _unauthorized("the token's algorithm is not allowed here")
        return found[0]

    def caller(self, token: str) -> Caller:
        policy = self.policy
        try:
            key = self._key(jwt.get_unverified_header(token))
            claims = jwt.decode(token, key=key, algorithms=list(self.algorithms), audience=policy.audience,
                                issuer=policy.issuer, leeway=policy.leeway,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            detail = next((text for kind, text in _TOKEN_ERRORS if isinstance(exc, kind)), "the token is not valid")
            raise _unauthorized(detail) from None
        return Caller(principals=self._principals(claims), tenant=self._tenant(claims),
                      bucket=f"jwt:{claims['iss']}/{claims['sub']}")

    def _principals(self, claims: dict[str, Any]) -> tuple[str, ...]:
        found: list[str] = []
        for claim in self.policy.principal_claims:
            value = claims.get(claim)
            values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            found.extend(v for v in values if isinstance(v, str))
        try:
            return tuple(access.checked_principals(found))
        except ConfigError:
            raise _unauthorized("the token's principals are not valid principal names") from None

    def _tenant(self, claims: dict[str, Any]) -> str | None:
        if self.policy.tenant_claim is None:
            return None
        value = claims.get(self.policy.tenant_claim)
        if not isinstance(value, str):
            raise _unauthorized(f"the token lacks the {self.policy.tenant_claim!r} (tenant) claim")
        try:
            return access.checked_tenant(value)
        except ConfigError:
            raise _unauthorized("the token's tenant is not a valid tenant name") from None


@dataclass
class Authentication:
    """The server's authentication: keys, tokens or both; ``rate`` for callers without a rate of their own."""
    keys: KeyStore | None = None
    tokens: TokenVerifier | None = None
    rate: tuple[int, int] | None = (600, 60)
    limiter: RateLimiter = field(default_factory=RateLimiter)

    def open(self) -> None:
        if self.keys is not None:
            self.keys.open()

    def close(self) -> None:
        if self.keys is not None:
            self.keys.close()

    def caller(self, authorization: str | None) -> Caller:
        """The caller an ``Authorization`` header names, within its rate; otherwise ``Refused``."""
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise _unauthorized("this search needs credentials: send `Authorization: Bearer <API key or token>`",
                                "invalid_request")
        if credential.startswith(keys.PREFIX):
            if self.keys is None:
                raise _unauthorized("this server does not take API keys: send a bearer token")
            caller = self.keys.caller(credential)
        elif self.tokens is None:
            raise _unauthorized("this server takes API keys only (dvk_…), not tokens")
        else:
            caller = self.tokens.caller(credential)
        rate = caller.rate or self.rate
        if rate is not None:
            wait = self.limiter.acquire(caller.bucket, rate)
            if wait is not None:
                raise Refused(429, f"over the rate limit of {rate[0]} requests per {rate[1]} s: retry in {wait} s",
                              {"Retry-After": str(wait)})
        return caller
