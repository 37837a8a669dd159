"""A request declaration (a pydantic model such as ``SearchRequest``) as query-string parameters: the
same fields, names, defaults, bounds and descriptions, except that a mapping marked ``Pairs("filter")``
becomes a repeatable ``filter=KEY=VALUE`` parameter (a query string has no objects). ``docvec serve``'s
``GET /search`` takes the derived model and ``POST /search`` the declaration itself, so both routes, and
their OpenAPI, follow the declaration."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, Field, create_model

from pipeline.query.request import pairs_of, parse_pairs, validated

M = TypeVar("M", bound=BaseModel)


def query_parameters(model: type[BaseModel], name: str) -> type[BaseModel]:
    """``model``'s fields as query parameters (see the module docstring), as a model called ``name``."""
    fields: dict[str, Any] = {}
    for field_name, field in model.model_fields.items():
        pairs = pairs_of(field)
        if pairs is None:
            fields[field_name] = (field.annotation, field)
        else:
            fields[pairs.name] = (list[str], Field(default_factory=list,
                                                   description=f"{field.description}: KEY=VALUE, repeatable"))
    return create_model(name, __config__=model.model_config, __doc__=model.__doc__, **fields)


def from_query(model: type[M], parameters: BaseModel) -> M:
    """The ``model`` that query parameters derived from it spell (``KEY=VALUE`` pairs parsed: a malformed
    one is a ``ConfigError``)."""
    values = parameters.model_dump()
    for field_name, field in model.model_fields.items():
        pairs = pairs_of(field)
        if pairs is not None:
            values[field_name] = parse_pairs(values.pop(pairs.name))
    return validated(model, values)
