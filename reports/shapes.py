"""Shapes of the JSON the reports read (summary.json, prepare.json, study.json, answer cells), checked once at load.

A file of the wrong shape (a list where an object belongs, a number written as a string, nesting thousands deep)
gives one ``ShapeError`` naming the file and the key, instead of a TypeError deep inside the report later.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vton.core.io import read_data_file

MAX_DEPTH = 64  # far above any file vton writes; deeper nesting would overflow the recursive readers and writers


class ShapeError(ValueError):
    """A file is not valid JSON or lacks the shape its reader expects; the message names the file and the key."""


@dataclass(frozen=True)
class Scalar:
    """A JSON scalar whose type is one of ``kinds`` (exactly: a bool is no number), at least ``minimum`` when given;
    no kinds: any value."""

    kinds: tuple[type, ...]
    name: str
    minimum: float | None = None


@dataclass(frozen=True)
class Obj:
    """A JSON object with these keys; other keys are allowed and left unchecked."""

    required: Mapping[str, Spec] = field(default_factory=dict)
    optional: Mapping[str, Spec] = field(default_factory=dict)


@dataclass(frozen=True)
class MapOf:
    """A JSON object whose every value has the shape ``values``."""

    values: Spec


@dataclass(frozen=True)
class ListOf:
    """A JSON array of ``items``, of exactly ``length`` entries when given."""

    items: Spec
    length: int | None = None


Spec = Scalar | Obj | MapOf | ListOf | None | tuple  # None: JSON null; a tuple: any one of its specs

ANY = Scalar((), "any value")
TEXT = Scalar((str,), "a string")
NUMBER = Scalar((int, float), "a number")
COUNT = Scalar((int,), "a non-negative integer", 0)
FLAG = Scalar((bool,), "true or false")


def _describe(spec: Spec) -> str:
    if spec is None:
        return "null"
    if isinstance(spec, tuple):
        return " or ".join(_describe(s) for s in spec)
    if isinstance(spec, Scalar):
        return spec.name
    if isinstance(spec, ListOf):
        return f"an array of {spec.length} entries" if spec.length is not None else "an array"
    return "an object"


def _fits(value: Any, spec: Spec) -> bool:
    """Whether ``value`` has the outer shape of ``spec`` (its entries are checked separately)."""
    if spec is None:
        return value is None
    if isinstance(spec, tuple):
        return any(_fits(value, s) for s in spec)
    if isinstance(spec, Scalar):
        if spec.kinds and type(value) not in spec.kinds:
            return False
        return spec.minimum is None or value >= spec.minimum
    if isinstance(spec, ListOf):
        return isinstance(value, list) and (spec.length is None or len(value) == spec.length)
    return isinstance(value, dict)


def _shown(value: Any) -> str:
    """A scalar as written in JSON (cut short), a container by its kind."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"an array of {len(value)} entries"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _key(path: str, key: str | int) -> str:
    return f"{path}[{json.dumps(key)}]"


def check(value: Any, spec: Spec, where: str, path: str = "") -> Any:
    """``value`` itself when it has the shape ``spec``; else ShapeError naming ``where`` and the offending key."""
    if isinstance(spec, tuple):
        spec = next((s for s in spec if _fits(value, s)), spec)
    if not _fits(value, spec):
        raise ShapeError(f"{where}: {path or 'the top level'} must be {_describe(spec)}, not {_shown(value)}")
    if isinstance(spec, ListOf):
        for i, item in enumerate(value):
            check(item, spec.items, where, _key(path, i))
    elif isinstance(spec, MapOf):
        for k, v in value.items():
            check(v, spec.values, where, _key(path, k))
    elif isinstance(spec, Obj):
        for k, s in {**spec.required, **spec.optional}.items():
            if k in value:
                check(value[k], s, where, _key(path, k))
            elif k in spec.required:
                raise ShapeError(f"{where}: {_key(path, k)} is missing")
    return value


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar: 0), without recursion, stopping past MAX_DEPTH."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_DEPTH:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def parse_json(text: str | bytes, where: str, spec: Spec = ANY) -> Any:
    """The JSON document ``text`` checked against ``spec``; ShapeError naming ``where`` when it is not one.

    Invalid UTF-8 or JSON, a truncated file and nesting deeper than MAX_DEPTH all end here: json's parser raises
    RecursionError on deep nesting, and values nested a little less deep would overflow later writers.
    """
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ShapeError(f"{where} is not JSON: {exc}") from None
    if _depth(value) > MAX_DEPTH:
        raise ShapeError(f"{where} nests deeper than {MAX_DEPTH} levels")
    return check(value, spec, where)


def read_json(path: Path, spec: Spec) -> Any:
    """The JSON file ``path`` checked against ``spec`` (see parse_json); a missing file, a FIFO, a device or an
    oversized file is an OSError naming it (`read_data_file`), never a hang."""
    return parse_json(read_data_file(path), str(path), spec)
