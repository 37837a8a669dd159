"""Authentication on ``docvec serve`` (issue #28, item 3, and tenants, item 4), tried from outside: a real
server process on a free port, a real HTTP client, real PostgreSQL. API keys from ``docvec keys`` and
bearer JWTs signed here with keys generated in the test; the server reads only the public JWKS file.

Each search runs as the caller's principals and tenant through row-level security, so the documents'
readers (set on the stored versions with the owner's connection, as tests/test_permissions.py does)
decide what comes back."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pipeline.api.auth import TokenPolicy, TokenVerifier, allowed_algorithms
from pipeline.api.rate_limit import RateLimiter
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.storage import access, connections
from tests.support.network import free_port
from tests.support.readers_store import store_with_readers
from tests.support.serve_process import serve_process

DAY = dt.date(2026, 7, 2)
ISSUER, AUDIENCE = "https://idp.example.test", "docvec-search"
# Who may read each document (all say "harbour ledger", the query every search below runs).
READERS = {
    "acme-hr.md": ["tenant:acme", "group:hr"],
    "acme-alice.md": ["tenant:acme", "alice"],
    "globex-hr.md": ["tenant:globex", "group:hr", "alice"],
    "public.md": ["*"],
}
QUERY = "harbour ledger"


@pytest.fixture(scope="module")
def store(migrated, embedder, tmp_path_factory) -> Settings:
    return store_with_readers(migrated, embedder, tmp_path_factory.mktemp("landing"), "docvec_serve_auth", DAY, READERS)


def docvec(store: Settings, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """``docvec ARGS`` in a process of its own against the store."""
    env = {**os.environ, "DATABASE_URL": str(store.database_url), "DOCVEC_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    return done.returncode, done.stdout, done.stderr


def call(base: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + "/search", data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def seen(base: str, token: str | None, **options: Any) -> set[str]:
    status, answer, _ = call(base, {"q": QUERY, "k": 10, **options}, token)
    assert status == 200, answer
    return {h["doc_id"] for h in answer["hits"]}


@contextmanager
def serving(store: Settings, tmp_path: Path, *args: str) -> Iterator[tuple[str, Path]]:
    env = {**os.environ, "DATABASE_URL": str(store.database_url), "DOCVEC_HOME": str(tmp_path / "home")}
    with serve_process(["--log-level", "debug", "--access-log", *args], env, tmp_path) as served:
        yield served


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An identity provider for the test: an RSA and an EC signing key, and the JWKS of their public halves."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        return {"keys": [{**rsa_jwk, "kid": "rsa-1", "alg": "RS256", "use": "sig"},
                         {**ec_jwk, "kid": "ec-1", "alg": "ES256", "use": "sig"}]}

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "groups": ["group:hr"], "tenant": "globex",
                "iat": now, "exp": now + 300, **changes}

    def token(self, algorithm: str = "RS256", **changes: Any) -> str:
        key, kid = (self.rsa, "rsa-1") if algorithm.startswith("RS") else (self.ec, "ec-1")
        return jwt.encode(self.claims(**changes), key, algorithm=algorithm, headers={"kid": kid})

    def public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def forged(self, algorithm: str, **changes: Any) -> str:
        """A token in the given ``alg``: ``none`` unsigned, ``HS256`` signed with the RSA public key as secret."""
        head = _b64(json.dumps({"alg": algorithm, "typ": "JWT", "kid": "rsa-1"}).encode())
        body = _b64(json.dumps(self.claims(**changes)).encode())
        signing_input = f"{head}.{body}".encode()
        signature = b"" if algorithm == "none" else hmac.new(self.public_pem(), signing_input, hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(signature)}"


def create_key(store: Settings, tmp_path: Path, *args: str) -> str:
    code, out, err = docvec(store, tmp_path, "keys", "create", *args)
    assert code == 0, err
    key = out.splitlines()[0]
    assert key.startswith("dvk_")
    return key


def test_keys_and_tokens_search_as_their_principals_within_their_tenant(store, tmp_path) -> None:
    acme = create_key(store, tmp_path, "--principal", "alice", "--principal", "group:hr", "--tenant", "acme",
                      "--name", "acme portal")
    plain = create_key(store, tmp_path, "--principal", "alice")
    doomed = create_key(store, tmp_path, "--principal", "alice", "--name", "to revoke")
    limited = create_key(store, tmp_path, "--principal", "alice", "--rate", "2/min")
    issuer = Issuer()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()))
    tokens: list[str] = []
    with serving(store, tmp_path, "--auth", "keys", "--auth", "jwt", "--jwks", str(jwks), "--issuer", ISSUER,
                 "--audience", AUDIENCE, "--jwt-tenant-claim", "tenant") as (base, log):
        # Without credentials, or with bad ones: 401 and how to authenticate.
        for token in (None, "", "dvk_nonsense", acme[:-1] + ("A" if acme[-1] != "A" else "B"),
                      "dvk_000000000000_" + acme.split("_", 2)[2]):
            status, answer, headers = call(base, {"q": QUERY}, token)
            assert status == 401 and headers["WWW-Authenticate"].startswith('Bearer realm="docvec"'), (token, answer)
        # A tenant key sees only its tenant's documents its principals may read, in every mode and option.
        for mode in ("text", "vector", "hybrid"):
            for options in ({}, {"documents": True}, {"window": 1}):
                assert seen(base, acme, mode=mode, **options) == {"acme-hr.md", "acme-alice.md"}, (mode, options)
                assert seen(base, plain, mode=mode, **options) == {"acme-alice.md", "globex-hr.md", "public.md"}
        # A revoked key stops at once: 403.
        assert seen(base, doomed, mode="text") == {"acme-alice.md", "globex-hr.md", "public.md"}
        key_id = doomed.split("_")[1]
        assert docvec(store, tmp_path, "keys", "revoke", key_id)[0] == 0
        status, answer, _ = call(base, {"q": QUERY, "mode": "text"}, doomed)
        assert status == 403 and "revoked" in answer["detail"], answer
        # Over its rate: 429 with Retry-After.
        assert seen(base, limited, mode="text") and seen(base, limited, mode="text")
        status, answer, headers = call(base, {"q": QUERY, "mode": "text"}, limited)
        assert status == 429 and int(headers["Retry-After"]) >= 1, answer
        # Tokens: principals from groups and sub, tenant from its claim; RS256 and ES256.
        for algorithm in ("RS256", "ES256"):
            tokens.append(issuer.token(algorithm))
            assert seen(base, tokens[-1], mode="text") == {"globex-hr.md"}, algorithm
        tokens.append(issuer.token(tenant="acme", groups=[]))
        assert seen(base, tokens[-1], mode="text") == {"acme-alice.md"}
        good = issuer.token()
        head, _, signature = good.split(".")
        refused = {
            "tampered": f"{head}.{_b64(json.dumps(issuer.claims(tenant='acme')).encode())}.{signature}",
            "expired": issuer.token(exp=int(time.time()) - 120),
            "not yet valid": issuer.token(nbf=int(time.time()) + 600),
            "wrong audience": issuer.token(aud="someone-else"),
            "wrong issuer": issuer.token(iss="https://evil.example.test"),
            "alg none": issuer.forged("none"),
            "HS256 with the public key": issuer.forged("HS256"),
            "no tenant claim": issuer.token(tenant=None),
            "unknown key": jwt.encode(issuer.claims(), rsa.generate_private_key(public_exponent=65537, key_size=2048),
                                      algorithm="RS256", headers={"kid": "rsa-1"}),
            "not a token": "not.a.token",
        }
        for what, token in refused.items():
            tokens.append(token)
            status, answer, headers = call(base, {"q": QUERY, "mode": "text"}, token)
            assert status == 401 and "WWW-Authenticate" in headers, (what, answer)
        code, listing, _ = docvec(store, tmp_path, "keys", "list", "--json")
        logged = log.read_text()
    assert code == 0
    listed = {k["id"]: k for k in json.loads(listing)}
    assert listed[key_id]["revoked"] and listed[acme.split("_")[1]]["tenant"] == "acme"
    assert listed[acme.split("_")[1]]["last_used"] != "-" and listed[acme.split("_")[1]]["name"] == "acme portal"
    assert "POST /search" in logged, "the access log was on"
    for secret in (acme, plain, doomed, limited, *tokens):
        for part in (secret, secret.split("_", 2)[-1], secret.split(".")[-1]):  # a key's secret, a token's signature
            if len(part) > 20:
                assert part not in logged and part not in listing, "a credential reached the log or the listing"
    with connections.connect(store) as conn:
        digests = [bytes(r[0]) for r in conn.execute("SELECT secret_sha256 FROM api_keys")]
    assert hashlib.sha256(acme.split("_", 2)[2].encode()).digest() in digests, "stored as the secret's SHA-256"
    assert not any(acme.split("_", 2)[2].encode() in d for d in digests)


def test_serving_beyond_loopback_without_authentication_is_refused(settings, capsys) -> None:
    from pipeline.cli.main import build_parser, main
    from pipeline.cli.serve_command import authentication

    assert main(["serve", "--host", "0.0.0.0", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "--allow-anyone-to-search" in err and "--auth keys" in err, err
    parser = build_parser()
    for host in ("127.0.0.1", "localhost", "::1"):
        assert authentication(parser.parse_args(["serve", "--host", host]), settings) is None, "loopback as before"
    opened = parser.parse_args(["serve", "--host", "0.0.0.0", "--allow-anyone-to-search"])
    assert authentication(opened, settings) is None


def test_the_reader_role_cannot_read_key_hashes_and_a_tenant_scopes_rls(store, tmp_path) -> None:
    create_key(store, tmp_path, "--principal", "bob")
    with connections.connect(store) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SET LOCAL ROLE docvec_reader")
            conn.execute("SELECT secret_sha256 FROM api_keys")
        def readable(principals: Sequence[str], tenant: str | None) -> set[str]:
            with access.acting_as(conn, principals, tenant):
                return {r[0] for r in conn.execute("SELECT DISTINCT doc_id FROM chunks")}
        assert readable(["group:hr"], None) == {"acme-hr.md", "globex-hr.md", "public.md"}
        assert readable(["group:hr"], "acme") == {"acme-hr.md"}
        assert readable(["group:hr", "tenant:globex"], "globex") == {"globex-hr.md"}
        assert readable(["alice"], "initech") == set()
        with pytest.raises(ConfigError, match="invalid tenant"):
            readable(["alice"], "acme' OR true")
        assert conn.execute("SELECT current_setting('docvec.tenant', true)").fetchone()[0] in (None, "")


def test_token_configuration_refuses_what_would_let_anyone_sign(tmp_path) -> None:
    for algorithms in (["none"], ["HS256"], ["RS256", "HS512"], []):
        with pytest.raises(ConfigError, match="asymmetric"):
            allowed_algorithms(algorithms)
    assert allowed_algorithms(["RS256", " ES256"]) == ("RS256", "ES256")
    secret = tmp_path / "symmetric.json"
    secret.write_text(json.dumps({"keys": [{"kty": "oct", "k": _b64(b"s" * 32), "kid": "h"}]}))
    with pytest.raises(ConfigError, match="symmetric or private"):
        TokenVerifier(TokenPolicy(jwks=secret, issuer=ISSUER, audience=AUDIENCE))
    with pytest.raises(ConfigError, match="--issuer and --audience"):
        TokenVerifier(TokenPolicy(jwks=secret, issuer="", audience=AUDIENCE))


def test_the_rate_limit_is_a_token_bucket_per_caller() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.acquire("a", (3, 60)) for _ in range(3)] == [None, None, None], "a burst of the whole allowance"
    assert limiter.acquire("a", (3, 60)) == 20, "then one token per 20 s"
    assert limiter.acquire("b", (3, 60)) is None, "each caller has its own bucket"
    now[0] = 20.0
    assert limiter.acquire("a", (3, 60)) is None and limiter.acquire("a", (3, 60)) == 20


def test_keys_cli_refuses_bad_input(store, tmp_path) -> None:
    for args, words in ((["create", "--principal", "*"], "invalid principal"),
                        (["create", "--principal", "a", "--rate", "fast"], "N/min"),
                        (["create", "--principal", "a", "--tenant", "a b"], "invalid tenant"),
                        (["revoke", "000000000000"], "no API key")):
        code, _, err = docvec(store, tmp_path, "keys", *args)
        assert code == 2 and words in err, (args, err)
    key = create_key(store, tmp_path, "--principal", "carol", "--principal", "group:eng", "--name", "listed")
    code, listing, _ = docvec(store, tmp_path, "keys", "list")
    line = next(row for row in listing.splitlines() if row.startswith(key.split("_")[1]))
    assert code == 0 and "listed" in line and "principals=carol,group:eng" in line and "revoked=no" in line
    assert key.split("_", 2)[2] not in listing
