"""Command-line options derived from a request declaration (a pydantic model such as
``SearchRequest``), so each option's name, type, choices, bound, default and help are written once,
in the model. A field ``per_doc`` becomes ``--per-doc`` (a one-letter field ``k`` becomes ``-k``); a
``Literal`` its choices; a bool a switch; a mapping marked ``Pairs("filter")`` a repeatable
``--filter KEY=VALUE``. Each value is checked against the field's bounds as it is parsed."""

from __future__ import annotations

import argparse
import types
from collections.abc import Callable, Collection
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from pipeline.query.request import Pairs, pairs_of, parse_pairs, validated

M = TypeVar("M", bound=BaseModel)


def flag(name: str, field: FieldInfo) -> str:
    """The option a field is spelled as on the command line."""
    pairs = pairs_of(field)
    if pairs is not None:
        return f"--{pairs.name}"
    return f"-{name}" if len(name) == 1 else "--" + name.replace("_", "-")


def _without_none(annotation: Any) -> Any:
    """``int | None`` → ``int``: a command line can only leave an option out, not give it None."""
    if get_origin(annotation) in (Union, types.UnionType):
        kept = [arg for arg in get_args(annotation) if arg is not type(None)]
        return kept[0] if len(kept) == 1 else Union[tuple(kept)]  # noqa: UP007  # built from a runtime tuple
    return annotation


def _parser_of(name: str, field: FieldInfo) -> Callable[[str], Any]:
    """A value as the field takes it, checked against its type and bounds; argparse reports a failure
    as an error of this option."""
    checks = [m for m in field.metadata if not isinstance(m, Pairs)]
    annotation = _without_none(field.annotation)
    form: Any = Annotated[(annotation, *checks)] if checks else annotation  # the field's type with its bounds
    adapter: TypeAdapter[Any] = TypeAdapter(form)

    def parse(raw: str) -> Any:
        try:
            return adapter.validate_python(raw)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{raw!r}: {exc.errors()[0]['msg']}") from exc
    parse.__name__ = name  # argparse names the type in its "invalid <type> value" message
    return parse


def _help(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    shown = "" if default in (None, False, {}, [], "") else f" (default {default})"
    return f"{field.description or ''}{shown}"


def add_options(parser: argparse.ArgumentParser, model: type[BaseModel], *, positional: Collection[str] = (),
                only: Collection[str] | None = None, skip: Collection[str] = ()) -> None:
    """Add an option (or a positional argument, for the names in ``positional``) for each field of
    ``model``: all of them, or ``only`` those, less ``skip``."""
    for name, field in model.model_fields.items():
        if name in skip or (only is not None and name not in only):
            continue
        annotation = _without_none(field.annotation)
        default = field.get_default(call_default_factory=True)
        if name in positional:
            parser.add_argument(name, type=_parser_of(name, field), help=field.description)
        elif pairs_of(field) is not None:
            parser.add_argument(flag(name, field), dest=name, action="append", metavar="KEY=VALUE",
                                help=f"{field.description}; repeatable")
        elif annotation is bool:
            parser.add_argument(flag(name, field), dest=name, default=default, help=_help(field),
                                action=argparse.BooleanOptionalAction if default else "store_true")
        elif get_origin(annotation) is Literal:
            parser.add_argument(flag(name, field), dest=name, default=default, choices=get_args(annotation),
                                help=_help(field))
        else:
            parser.add_argument(flag(name, field), dest=name, default=default, type=_parser_of(name, field),
                                metavar="N" if annotation is int else None, help=_help(field))


def options_from(args: argparse.Namespace, model: type[BaseModel], *,
                 only: Collection[str] | None = None) -> dict[str, Any]:
    """The values of ``model``'s fields that ``args`` holds (those ``add_options`` added; ``only`` those
    named), with ``KEY=VALUE`` pairs parsed (a malformed pair is a ``ConfigError``)."""
    options: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if not hasattr(args, name) or (only is not None and name not in only):
            continue
        value = getattr(args, name)
        options[name] = parse_pairs(value or []) if pairs_of(field) is not None else value
    return options


def request_from(args: argparse.Namespace, model: type[M], **overrides: Any) -> M:
    """``model`` built from ``args`` (and ``overrides``), validated as every face validates it."""
    return validated(model, {**options_from(args, model), **overrides})
