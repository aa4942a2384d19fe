"""Duplicate keys in the lists the API server treats as maps or sets.

The Kubernetes OpenAPI marks lists such as a container's `env` (`x-kubernetes-list-type: map`,
keys `[name]`) or its `ports` (keys `[containerPort, protocol]`). A JSON schema cannot say that
their keys are unique, but server-side apply refuses a document with two entries of one key
(`duplicate entries for key [name="PORT"]`). This walk finds them offline, from the same
schemas, so the error comes at render time and names the field.
"""

from __future__ import annotations

import json
from typing import Any

_DEFS_MARK = "#/$defs/"


def duplicate_keys(doc: object, schema: dict[str, Any], definitions: dict[str, Any]) -> list[str]:
    """One problem per list entry whose key repeats an earlier entry's key."""
    found: list[str] = []
    _walk(doc, schema, definitions, "", found, depth=0)
    return found


def _resolve(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    for _ in range(20):  # a chain of $refs, never a cycle in these schemas
        ref = schema.get("$ref")
        if not isinstance(ref, str) or _DEFS_MARK not in ref:
            return schema
        schema = definitions.get(ref.split(_DEFS_MARK, 1)[1]) or {}
    return schema


def _walk(
    value: object,
    schema: dict[str, Any],
    definitions: dict[str, Any],
    path: str,
    found: list[str],
    depth: int,
) -> None:
    if depth > 64 or not schema:
        return
    schema = _resolve(schema, definitions)
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key) or (extra if isinstance(extra, dict) else None)
            if sub:
                _walk(item, sub, definitions, f"{path}.{key}" if path else key, found, depth + 1)
    elif isinstance(value, list):
        items = schema.get("items")
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map":
            found += _repeats(value, path, schema.get("x-kubernetes-list-map-keys") or [])
        elif list_type == "set":
            found += _repeats(value, path, None)
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _walk(item, items, definitions, f"{path}[{index}]", found, depth + 1)


def _repeats(entries: list[object], path: str, keys: list[str] | None) -> list[str]:
    seen: set[str] = set()
    problems = []
    for index, entry in enumerate(entries):
        if keys is None:
            key_text = json.dumps(entry, sort_keys=True)
        elif isinstance(entry, dict):
            key_text = ",".join(f"{k}={json.dumps(entry.get(k))}" for k in keys)
        else:
            continue
        if key_text in seen:
            problems.append(
                f"{path}[{index}]: duplicate entries for key [{key_text}] (the API server "
                "refuses a list with two entries of one key)"
            )
        seen.add(key_text)
    return problems
