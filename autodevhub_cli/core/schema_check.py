"""A strict JSON-schema check for the keywords the Kubernetes and CRD schemas use, and the
compact per-kind schemas it reads.

kubernetes-validate's schemas use few keywords (type, properties, additionalProperties,
required, items, enum, oneOf, $ref into one definitions file); the CRD schemas kept here add
anyOf, const, pattern and bounds. Importing jsonschema and kubernetes-validate and reading the
1.4 MB definitions file costs a changed render about 80 ms, so the check runs on a compact
schema per kind (the kind's schema and the definitions it reaches, descriptions dropped),
extracted once per schema set into the user's cache. A schema with any other assertion keyword
is refused (`Unsupported`), and the caller validates with jsonschema instead. Messages read like
jsonschema's; the error reported is the shallowest, as jsonschema's `best_match` picks it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

_DEFS_MARK = "#/$defs/"
# Keywords that assert nothing (annotations, Kubernetes extensions) or are handled below.
_CHECKED = {
    "type",
    "properties",
    "additionalProperties",
    "required",
    "items",
    "enum",
    "const",
    "oneOf",
    "anyOf",
    "allOf",
    "$ref",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
}
_IGNORED = {"description", "title", "format", "default", "$schema", "$id", "$defs", "examples"}
_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


class Unsupported(Exception):
    """The schema uses a keyword this check does not implement."""


Error = tuple[tuple[str, ...], str]


def check(doc: object, schema: dict[str, Any], definitions: dict[str, Any]) -> str | None:
    """`path: message` of the most relevant error, or None when `doc` is valid."""
    errors: list[Error] = []
    _check(doc, schema, definitions, (), errors, 0)
    if not errors:
        return None
    path, message = min(errors, key=lambda e: len(e[0]))
    return f"{'.'.join(path) or '(document)'}: {message}"


def _resolve(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    for _ in range(32):
        ref = schema.get("$ref")
        if ref is None:
            return schema
        if not isinstance(ref, str) or _DEFS_MARK not in ref:
            raise Unsupported(f"$ref {ref!r}")
        name = ref.split(_DEFS_MARK, 1)[1]
        if name not in definitions:
            raise Unsupported(f"$ref to a missing definition {name!r}")
        siblings = {k for k in schema if k != "$ref" and k in _CHECKED}
        if siblings:
            raise Unsupported(f"$ref beside {sorted(siblings)}")
        schema = definitions[name]
    raise Unsupported("a $ref chain longer than 32")


def _check(
    value: object,
    schema: dict[str, Any] | bool,
    definitions: dict[str, Any],
    path: tuple[str, ...],
    errors: list[Error],
    depth: int,
) -> None:
    if schema is True or schema == {}:
        return
    if schema is False:
        errors.append((path, "False schema does not allow " + repr(value)))
        return
    if depth > 100:
        raise Unsupported("a document nested deeper than 100 levels")
    schema = _resolve(schema, definitions)
    unknown = [k for k in schema if k not in _CHECKED and k not in _IGNORED]
    if any(not k.startswith("x-") for k in unknown):
        raise Unsupported(f"keywords {sorted(k for k in unknown if not k.startswith('x-'))}")
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_TYPES[t](value) for t in names):
            errors.append((path, f"{value!r} is not of type {', '.join(map(repr, names))}"))
            return
    if "enum" in schema and not any(_equal(value, e) for e in schema["enum"]):
        errors.append((path, f"{value!r} is not one of {schema['enum']!r}"))
    if "const" in schema and not _equal(value, schema["const"]):
        errors.append((path, f"{schema['const']!r} was expected"))
    for keyword in ("oneOf", "anyOf"):
        if keyword in schema:
            passing = sum(
                1 for option in schema[keyword] if _valid(value, option, definitions, depth)
            )
            if passing == 0:
                errors.append((path, f"{value!r} is not valid under any of the given schemas"))
            elif keyword == "oneOf" and passing > 1:
                errors.append((path, f"{value!r} is valid under each of {passing} schemas"))
    for option in schema.get("allOf", ()):
        _check(value, option, definitions, path, errors, depth + 1)
    if isinstance(value, dict):
        _object(value, schema, definitions, path, errors, depth)
    elif isinstance(value, list):
        _array(value, schema, definitions, path, errors, depth)
    elif isinstance(value, str):
        _string(value, schema, path, errors)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append((path, f"{value!r} is less than the minimum of {schema['minimum']!r}"))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append((path, f"{value!r} is greater than the maximum of {schema['maximum']!r}"))


def _object(
    value: dict[str, Any],
    schema: dict[str, Any],
    definitions: dict[str, Any],
    path: tuple[str, ...],
    errors: list[Error],
    depth: int,
) -> None:
    for name in schema.get("required", ()):
        if name not in value:
            errors.append((path, f"{name!r} is a required property"))
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    unexpected = []
    for key, item in value.items():
        if key in properties:
            _check(item, properties[key], definitions, (*path, key), errors, depth + 1)
        elif extra is False:
            unexpected.append(key)
        elif isinstance(extra, dict):
            _check(item, extra, definitions, (*path, key), errors, depth + 1)
    if unexpected:
        shown = ", ".join(map(repr, unexpected))
        verb = "was" if len(unexpected) == 1 else "were"
        errors.append((path, f"Additional properties are not allowed ({shown} {verb} unexpected)"))


def _array(
    value: list[object],
    schema: dict[str, Any],
    definitions: dict[str, Any],
    path: tuple[str, ...],
    errors: list[Error],
    depth: int,
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append((path, f"{value!r} should be non-empty"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append((path, f"{value!r} is too long"))
    items = schema.get("items")
    if isinstance(items, (dict, bool)):
        for index, item in enumerate(value):
            _check(item, items, definitions, (*path, str(index)), errors, depth + 1)
    elif items is not None:
        raise Unsupported("items given as a list")


def _string(value: str, schema: dict[str, Any], path: tuple[str, ...], errors: list[Error]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append((path, f"{value!r} is too short"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append((path, f"{value!r} is too long"))
    if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
        errors.append((path, f"{value!r} does not match {schema['pattern']!r}"))


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(text: str) -> re.Pattern[str]:
    found = _PATTERNS.get(text)
    if found is None:
        found = _PATTERNS[text] = re.compile(text)
    return found


def _valid(
    value: object, schema: dict[str, Any] | bool, definitions: dict[str, Any], depth: int
) -> bool:
    errors: list[Error] = []
    _check(value, schema, definitions, (), errors, depth + 1)
    return not errors


def _equal(a: object, b: object) -> bool:
    # JSON equality: true is not 1, and 1 equals 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


# --- compact schemas ---------------------------------------------------------------------


def compact(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """`{"schema": ..., "$defs": ...}`: the schema and the definitions it reaches, without the
    descriptions (what `check` and the list-key walk read)."""
    reached: dict[str, Any] = {}
    pending = list(_refs(schema))
    while pending:
        name = pending.pop()
        if name in reached or name not in definitions:
            continue
        reached[name] = _strip(definitions[name])
        pending += _refs(definitions[name])
    return {"schema": _strip(schema), "$defs": reached}


def _refs(node: object) -> list[str]:
    found = []
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and _DEFS_MARK in ref:
            found.append(ref.split(_DEFS_MARK, 1)[1])
        for key, value in node.items():
            if key not in ("enum", "const", "default", "examples"):
                found += _refs(value)
    elif isinstance(node, list):
        for value in node:
            found += _refs(value)
    return found


def _strip(node: object) -> object:
    if isinstance(node, dict):
        return {
            k: (v if k in ("enum", "const", "default", "required") else _strip(v))
            for k, v in node.items()
            if k not in ("description", "title", "examples")
        }
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def cache_folder() -> Path:
    """Where compact schemas are kept (per user, like the other caches)."""
    from autodevhub_cli.core.render_cache import cache_home

    return cache_home() / "schemas"


def load_compact(key: str) -> dict[str, Any] | None:
    """A compact schema kept under `key`, or None."""
    try:
        return json.loads((cache_folder() / f"{key}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def store_compact(key: str, value: dict[str, Any]) -> None:
    """Keep a compact schema under `key` (written whole; a read-only cache only costs speed)."""
    path = cache_folder() / f"{key}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        staging.write_text(json.dumps(value, separators=(",", ":")), encoding="utf-8")
        os.replace(staging, path)
    except OSError:
        pass
