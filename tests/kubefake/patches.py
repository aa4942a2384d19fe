"""The three non-apply PATCH flavours: JSON merge, strategic merge and JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError

# Lists that strategic merge patch merges element-wise, and the key that identifies an element.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch where well-known lists (containers, env, ports...) merge by their key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # $setElementOrder, $retainKeys: ordering hints the fake ignores
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            merge_key = _merge_key(key, value + result[key])
            result[key] = (
                _merge_list(result[key], value, merge_key) if merge_key else copy.deepcopy(value)
            )
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(live: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in live]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            merged.append(copy.deepcopy(item))
            continue
        index = next(
            (
                i
                for i, old in enumerate(merged)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append(strategic_merge_patch({}, item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _invalid(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _invalid(message: str) -> ApiError:
    return ApiError(
        422, f"the server rejected our request due to an error in our request: {message}"
    )


def _container(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise _invalid(f"path /{'/'.join(parts)} does not exist") from exc
    return node, parts[-1]


def _get(doc: Any, path: str) -> Any:
    node = doc
    for part in _pointer(path):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise _invalid(f"path {path} does not exist") from exc
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    node, last = _container(doc, parts)
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if index > len(node):
            raise _invalid(f"index {index} out of range in {path}")
        node.insert(index, copy.deepcopy(value))
    elif isinstance(node, dict):
        node[last] = copy.deepcopy(value)
    else:
        raise _invalid(f"cannot add at {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    node, last = _container(doc, _pointer(path))
    try:
        if isinstance(node, list):
            node.pop(int(last))
        else:
            del node[last]
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise _invalid(f"path {path} does not exist") from exc
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 operation list; a failed `test` or bad path is a 422."""
    if not isinstance(operations, list):
        raise ApiError(400, "json patch body must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        if kind == "add":
            doc = _add(doc, path, op.get("value"))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, op.get("value")) if path else op.get("value")
        elif kind == "move":
            value = _get(doc, op["from"])
            doc = _add(_remove(doc, op["from"]), path, value)
        elif kind == "copy":
            doc = _add(doc, path, _get(doc, op["from"]))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise _invalid(f"testing value {path} failed")
        else:
            raise _invalid(f"unknown operation {kind!r}")
    return doc
