"""A real S3-compatible server for tests and benchmarks: moto's standalone server (the same WSGI application as
``moto_server``) on 127.0.0.1, with request signatures checked against IAM access keys it issues, and
reached over HTTP by real clients (s3fs, boto3). A thin WSGI layer in front counts the requests by
kind, and can answer the next few object reads with 503 SlowDown, as a throttled store does, or fail
every listing page after the first, as a store that breaks half-way through a long listing does."""

from __future__ import annotations

import os
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.support.network import free_port

REGION = "us-east-1"
# Requests allowed before signatures are checked: enough to create the IAM user, its policy and its key.
BOOTSTRAP_ACTIONS = 4
ALLOW_S3 = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'


class RequestLog:
    """Counts of the requests that reached the server, by kind, and an optional run of injected 503s."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.fail_next_reads = 0
        # Every listing page after the first fails with 500 InternalError: a listing that breaks half-way.
        self.fail_list_continuations = False
        self._lock = threading.Lock()

    def kind(self, environ: dict[str, Any]) -> str:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        on_object = path.strip("/").count("/") >= 1  # /bucket/key…: path-style addressing
        if method == "GET" and on_object:
            return "object_get"
        if method == "HEAD" and on_object:
            return "object_head"
        if method == "GET" and ("list-type" in query or "prefix" in query or "delimiter" in query):
            return "list"
        return f"{method.lower()}_other"

    def middleware(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            kind = self.kind(environ)
            with self._lock:
                self.counts[kind] += 1
                throttle = kind == "object_get" and self.fail_next_reads > 0
                if throttle:
                    self.fail_next_reads -= 1
                broken = (kind == "list" and self.fail_list_continuations
                          and "continuation-token" in parse_qs(environ.get("QUERY_STRING", "")))
            if broken:
                body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                        b"<Message>We encountered an internal error. Please try again.</Message></Error>")
                start_response("500 Internal Server Error", [("Content-Type", "application/xml"),
                                                             ("Content-Length", str(len(body)))])
                return [body]
            if throttle:
                body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                        b"<Message>Please reduce your request rate.</Message></Error>")
                start_response("503 Slow Down", [("Content-Type", "application/xml"),
                                                 ("Content-Length", str(len(body)))])
                return [body]
            return app(environ, start_response)
        return counted

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


@dataclass
class S3Server:
    endpoint: str
    log: RequestLog
    key: str
    secret: str

    def client(self, key: str | None = None, secret: str | None = None) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=key or self.key, aws_secret_access_key=secret or self.secret)


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start the server, issue an IAM user's access key allowed s3:*, and yield it; stop it after."""
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(BOOTSTRAP_ACTIONS)  # read when moto is imported
    import boto3
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass  # one line per request would drown the test output

    log = RequestLog()
    port = free_port()
    server = make_server("127.0.0.1", port, log.middleware(DomainDispatcherApplication(create_backend_app)),
                         threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # moto keeps its backends (users, buckets) and its count of unauthenticated actions per process: a
        # second server in the same test session would find both left over. Start each one empty.
        for path, body in (("reset", b""), ("reset-auth", str(BOOTSTRAP_ACTIONS).encode())):
            request = urllib.request.Request(f"{endpoint}/moto-api/{path}", data=body, method="POST",
                                             headers={"Content-Type": "application/octet-stream"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION,
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="docvec-ingest")
        policy = iam.create_policy(PolicyName="docvec-landing", PolicyDocument=ALLOW_S3)["Policy"]["Arn"]
        iam.attach_user_policy(UserName="docvec-ingest", PolicyArn=policy)
        access = iam.create_access_key(UserName="docvec-ingest")["AccessKey"]
        log.reset()
        yield S3Server(endpoint, log, access["AccessKeyId"], access["SecretAccessKey"])
    finally:
        server.shutdown()
        thread.join(10)
