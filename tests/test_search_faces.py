"""One declaration of every search option (``SearchRequest``) and the faces derived from it: ``docvec
search``/``demo``/``eval`` options and ``docvec serve``'s GET parameters and POST body carry the
declaration's names, defaults and bounds without restating them. No database, no model: the fast tier."""

# No ``from __future__ import annotations``: FastAPI reads the route annotations of the tiny app below.

import argparse
import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import psycopg
import pytest
from fastapi import FastAPI, Query
from fastapi.encoders import jsonable_encoder
from fastapi.testclient import TestClient
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field

from pipeline.api.app import create_app, unreachable
from pipeline.api.query_parameters import from_query, query_parameters
from pipeline.cli.main import build_parser
from pipeline.cli.request_options import add_options, options_from, request_from
from pipeline.errors import ConfigError, DatabaseUnavailableError, NothingServedError
from pipeline.query.evaluation import TUNING
from pipeline.query.request import Pairs, SearchRequest, pairs_of, parse_pairs, request
from pipeline.query.service import PooledConnections, SearchService
from pipeline.settings import load_settings
from pipeline.storage import connections

DECLARED = {name: field.get_default(call_default_factory=True) for name, field in SearchRequest.model_fields.items()
            if name != "query"}


def openapi(tmp_path: Path) -> dict[str, Any]:
    """The search API's OpenAPI document, from an app whose pool is never opened (no connection)."""
    settings = load_settings(home=tmp_path, database_url="postgresql://nobody@127.0.0.1:1/never_opened")
    return create_app(SearchService(PooledConnections(connections.search_pool(settings)))).openapi()


def api_name(name: str) -> str:
    field = SearchRequest.model_fields[name]
    pairs = pairs_of(field)
    return pairs.name if pairs else field.alias or name


def test_every_face_has_the_declared_defaults(tmp_path) -> None:
    """k is 10, rrf_k 60, the fusion relative... on the command line, over GET and in a POST body alike."""
    parser = build_parser()
    args = parser.parse_args(["search", "a question"])
    assert request_from(args, SearchRequest) == SearchRequest(query="a question")
    assert {name: getattr(args, name) for name in DECLARED if name != "filters"} == \
        {name: default for name, default in DECLARED.items() if name != "filters"}
    demo = parser.parse_args(["demo"])
    assert request_from(demo, SearchRequest, query="q") == SearchRequest(query="q") and demo.query is None
    assert options_from(parser.parse_args(["eval"]), SearchRequest) == {name: DECLARED[name] for name in TUNING}

    spec = openapi(tmp_path)
    parameters = {p["name"]: p for p in spec["paths"]["/search"]["get"]["parameters"]}
    body = spec["components"]["schemas"]["SearchRequest"]["properties"]
    assert set(parameters) == {api_name(name) for name in SearchRequest.model_fields}
    assert set(body) == {SearchRequest.model_fields[name].alias or name for name in SearchRequest.model_fields}
    for name, default in DECLARED.items():
        if SearchRequest.model_fields[name].default_factory is None:  # a factory's default is not in the schema
            assert parameters[api_name(name)]["schema"].get("default") == jsonable_encoder(default), name
            assert body[name].get("default") == jsonable_encoder(default), name  # None: left out
    assert parameters["k"]["schema"]["maximum"] == body["k"]["maximum"] == 100
    assert parameters["q"]["required"] and spec["components"]["schemas"]["SearchRequest"]["required"] == ["q"]


def test_every_option_the_readme_shows_parses_to_the_same_request() -> None:
    args = build_parser().parse_args([
        "search", "bread crust", "--filter", "topic=baking", "--filter", "author=ana", "--since", "2026-11-20",
        "--until", "2026-11-30", "-k", "5", "--mode", "vector", "--per-doc", "1", "--window", "1", "--documents",
        "--fusion", "rrf", "--rrf-k", "30", "--vector-weight", "0.5", "--candidates", "80", "--ef-search", "100",
        "--probes", "3", "--json", "--explain", "--model", "all-MiniLM-L6-v2", "--backend", "onnx"])
    assert request_from(args, SearchRequest) == SearchRequest(
        query="bread crust", filters={"topic": "baking", "author": "ana"}, since=dt.date(2026, 11, 20),
        until=dt.date(2026, 11, 30), k=5, mode="vector", per_doc=1, window=1, documents=True, fusion="rrf", rrf_k=30,
        vector_weight=0.5, candidates=80, ef_search=100, probes=3)
    assert args.json and args.explain and (args.model, args.backend) == ("all-MiniLM-L6-v2", "onnx")


@pytest.mark.parametrize("argv,words", [(["-k", "0"], "greater than or equal to 1"),
                                        (["-k", "101"], "less than or equal to 100"),
                                        (["--mode", "fuzzy"], "invalid choice"),
                                        (["--since", "yesterday"], "date"),
                                        (["--vector-weight", "2"], "less than or equal to 1")])
def test_the_command_line_checks_the_declared_bounds(argv, words, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["search", "x", *argv])
    assert exited.value.code == 2 and words in capsys.readouterr().err


def test_python_callers_get_the_same_checks_as_config_errors() -> None:
    assert request("x", k=3, mode="text").k == 3
    with pytest.raises(ConfigError, match=r"mode: Input should be 'vector', 'text' or 'hybrid'"):
        request("x", mode="fuzzy")
    with pytest.raises(ConfigError, match=r"k: Input should be less than or equal to 100"):
        request("x", k=1000)
    with pytest.raises(ConfigError, match=r"unknown search option\(s\) per_document"):
        request("x", per_document=1)
    with pytest.raises(ConfigError, match="key=value"):
        parse_pairs(["novalue"])
    assert SearchRequest(query="x", documents=True, per_doc=3).per_document == 1
    assert SearchRequest(query="x", mode="vector").branch_size == 10, "nothing is cut after the vector branch"
    assert SearchRequest(query="x").branch_size == 50 and SearchRequest(query="x", k=20).branch_size == 80


class Tiny(BaseModel):
    """A declaration with one option of each kind, to show that faces follow whatever is declared."""
    model_config = ConfigDict(populate_by_name=True)
    query: str = Field(alias="q", min_length=1, description="what to look for")
    depth: int = Field(default=3, ge=1, le=9, description="how deep")
    shape: Literal["round", "flat"] = Field(default="round", description="which shape")
    loud: bool = Field(default=False, description="shout")
    tags: Annotated[dict[str, str], Pairs("tag")] = Field(default_factory=dict, description="labels")


TinyQuery = query_parameters(Tiny, "TinyQuery")
tiny_app = FastAPI()


@tiny_app.get("/tiny")
def tiny_get(params: Annotated[TinyQuery, Query()]) -> dict[str, Any]:  # type: ignore[valid-type]
    return from_query(Tiny, params).model_dump()


@tiny_app.post("/tiny")
def tiny_post(body: Tiny) -> dict[str, Any]:
    return body.model_dump()


def test_an_option_added_to_a_declaration_appears_on_the_command_line_and_the_api(capsys) -> None:
    parser = argparse.ArgumentParser(prog="tiny")
    add_options(parser, Tiny, positional=("query",))
    args = parser.parse_args(["hello", "--depth", "5", "--shape", "flat", "--loud", "--tag", "a=b", "--tag", "c=d"])
    assert request_from(args, Tiny) == Tiny(query="hello", depth=5, shape="flat", loud=True, tags={"a": "b", "c": "d"})
    assert request_from(parser.parse_args(["hello"]), Tiny) == Tiny(query="hello")
    parser.print_help()
    assert "how deep (default 3)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["hello", "--depth", "10"])
    assert "less than or equal to 9" in capsys.readouterr().err

    spec = tiny_app.openapi()
    parameters = {p["name"]: p["schema"] for p in spec["paths"]["/tiny"]["get"]["parameters"]}
    assert set(parameters) == {"q", "depth", "shape", "loud", "tag"}
    assert (parameters["depth"]["minimum"], parameters["depth"]["maximum"], parameters["depth"]["default"]) == (1, 9, 3)
    assert parameters["shape"]["enum"] == ["round", "flat"] and parameters["tag"]["type"] == "array"
    assert set(spec["components"]["schemas"]["Tiny"]["properties"]) == {"q", "depth", "shape", "loud", "tags"}
    client = TestClient(tiny_app)
    answer = client.get("/tiny", params=[("q", "x"), ("tag", "a=b"), ("tag", "c=d"), ("depth", "2")])
    assert answer.json() == Tiny(query="x", tags={"a": "b", "c": "d"}, depth=2).model_dump()
    assert client.post("/tiny", json={"q": "x", "tags": {"a": "b"}}).json() == Tiny(query="x", tags={"a": "b"}).model_dump()
    assert client.get("/tiny", params={"q": "x", "depth": 10}).status_code == 422


def test_only_an_unreachable_database_is_a_503() -> None:
    """The API's status follows the error's type: 503 (retry) only for a database that cannot be reached."""
    assert unreachable(DatabaseUnavailableError("lost")) and unreachable(PoolTimeout("no connection in 2 s"))
    assert unreachable(psycopg.OperationalError("connection refused")), "libpq: a refusal carries no SQLSTATE"
    assert not unreachable(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))
    assert not unreachable(NothingServedError("no embedding model is served yet"))
    assert not unreachable(ConfigError("filter 'x' is not key=value"))
