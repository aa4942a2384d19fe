"""Field ownership (`metadata.managedFields`) and server-side apply.

Fields are tracked as leaf paths: maps are walked, scalars and empty maps are leaves. Lists with a
merge key in built-in types (containers and env by name, ports by port and protocol, ...) are walked
per element, the element named by a `k:{"name":"app"}` path part as in FieldsV1; every other list,
and every list in a custom resource without a schema, is atomic, as on the real server.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError

Path = tuple[str, ...]
_MISSING = object()
# Identity and bookkeeping fields nobody owns.
_UNOWNED_METADATA = {
    "name",
    "namespace",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
}
# Lists that server-side apply treats as maps keyed by these fields (built-in types only).
LIST_KEYS = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "imagePullSecrets": ("name",),
}


@dataclass
class Manager:
    """One `managedFields` entry: who wrote which fields, by apply or by update."""

    manager: str
    operation: str
    api_version: str
    time: str
    subresource: str = ""
    fields: set[Path] = field(default_factory=set)

    def describe(self) -> str:
        """How the real server names a manager in conflict messages."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


def leaves(
    obj: dict[str, Any] | None, scope: str, has_status: bool, assoc: bool = True
) -> dict[Path, Any]:
    """Owned leaf paths of an object; scope is "main" or "status"."""
    if not obj:
        return {}
    found: dict[Path, Any] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if scope == "status" and key != "status":
            continue
        if scope == "main" and key == "status" and has_status:
            continue
        if key == "metadata" and isinstance(value, dict):
            for meta_key, meta_value in value.items():
                if meta_key not in _UNOWNED_METADATA:
                    _walk(meta_value, ("metadata", meta_key), found, assoc)
        else:
            _walk(value, (key,), found, assoc)
    return found


def _list_keys(field: str, items: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(item, dict) for item in items):
        return ()
    if field == "ports":
        primary = "containerPort" if all("containerPort" in i for i in items) else "port"
        keys: tuple[str, ...] = (primary, "protocol")
    else:
        keys = LIST_KEYS.get(field, ())
    return keys if keys and all(keys[0] in item for item in items) else ()


def _element(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    named = {k: item[k] for k in keys if k in item}
    return "k:" + json.dumps(named, sort_keys=True, separators=(",", ":"))


def _walk(value: Any, path: Path, found: dict[Path, Any], assoc: bool) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _walk(child, (*path, key), found, assoc)
        return
    keys = _list_keys(path[-1], value) if assoc and isinstance(value, list) and value else ()
    if keys:
        for item in value:
            _walk(item, (*path, _element(item, keys)), found, assoc)
    else:
        found[path] = value


def _element_keys(part: str) -> dict[str, Any] | None:
    return json.loads(part[2:]) if part.startswith("k:") else None


def _matches(item: Any, want: dict[str, Any]) -> bool:
    return isinstance(item, dict) and all(item.get(k) == v for k, v in want.items())


def _step(node: Any, part: str) -> Any:
    want = _element_keys(part)
    if want is not None and isinstance(node, list):
        return next((item for item in node if _matches(item, want)), _MISSING)
    if isinstance(node, dict) and part in node:
        return node[part]
    return _MISSING


def lookup(obj: Any, path: Path) -> Any:
    """The value at a path, or a sentinel when it is absent."""
    node = obj
    for part in path:
        node = _step(node, part)
        if node is _MISSING:
            return _MISSING
    return node


def _overlaps(a: Path, b: Path) -> bool:
    short = min(len(a), len(b))
    return a[:short] == b[:short]


def _put(node: Any, part: str, value: Any) -> None:
    want = _element_keys(part)
    if want is not None and isinstance(node, list):
        for index, item in enumerate(node):
            if _matches(item, want):
                node[index] = value
                return
        node.append(value)
    else:
        node[part] = value


def _set(obj: dict[str, Any], path: Path, value: Any) -> None:
    node: Any = obj
    for index, part in enumerate(path[:-1]):
        child = _step(node, part)
        wants_list = path[index + 1].startswith("k:")
        if not isinstance(child, list if wants_list else dict):
            want = _element_keys(part)
            child = [] if wants_list else dict(want or {})
            _put(node, part, child)
        node = child
    if isinstance(value, dict) and not value and isinstance(_step(node, path[-1]), dict):
        return  # an empty map in the config claims the map, it does not clear it
    _put(node, path[-1], copy.deepcopy(value))


def _drop(node: Any, part: str) -> None:
    want = _element_keys(part)
    if want is not None and isinstance(node, list):
        node[:] = [item for item in node if not _matches(item, want)]
    elif isinstance(node, dict):
        node.pop(part, None)


def _delete(obj: dict[str, Any], path: Path) -> None:
    nodes: list[Any] = [obj]
    for part in path[:-1]:
        child = _step(nodes[-1], part)
        if not isinstance(child, dict | list):
            return
        nodes.append(child)
    element = _element_keys(path[-2]) if len(path) > 1 else None
    if path[-1] not in (element or {}):
        _drop(nodes[-1], path[-1])  # an element's key fields go when the element does
    # Drop containers the removal left empty, but keep top-level sections like spec and metadata.
    for depth in range(len(nodes) - 1, 1, -1):
        node, want = nodes[depth], _element_keys(path[depth - 1])
        empty = set(node) <= set(want) if want is not None and isinstance(node, dict) else not node
        if not empty:
            break
        _drop(nodes[depth - 1], path[depth - 1])


def encode(fields: set[Path]) -> dict[str, Any]:
    """FieldsV1 JSON: `{"f:spec": {"f:replicas": {}}}`."""
    root: dict[str, Any] = {}
    for path in sorted(fields):
        node = root
        for part in path:
            node = node.setdefault(part if part.startswith("k:") else f"f:{part}", {})
    return root


def decode(fields_v1: dict[str, Any], prefix: Path = ()) -> set[Path]:
    """Leaf paths of FieldsV1 JSON; `v:` and `i:` list entries collapse to the whole list."""
    found: set[Path] = set()
    children = {k: v for k, v in fields_v1.items() if k != "."}
    if not children or any(not k.startswith(("f:", "k:")) for k in children):
        if prefix:
            found.add(prefix)
        return found
    for key, value in children.items():
        found |= decode(value or {}, (*prefix, key[2:] if key.startswith("f:") else key))
    return found


def read_managers(obj: dict[str, Any]) -> list[Manager]:
    """The managers recorded in an object's `metadata.managedFields`."""
    managers = []
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if not isinstance(entry, dict) or (not entry.get("manager") and not entry.get("fieldsV1")):
            continue
        managers.append(
            Manager(
                manager=entry.get("manager", ""),
                operation=entry.get("operation", "Update"),
                api_version=entry.get("apiVersion", ""),
                time=entry.get("time", ""),
                subresource=entry.get("subresource", ""),
                fields=decode(entry.get("fieldsV1") or {}),
            )
        )
    return managers


def write_managers(obj: dict[str, Any], managers: list[Manager]) -> None:
    """Store managers back into `metadata.managedFields`, dropping ones that own nothing."""
    entries = []
    for m in managers:
        if not m.fields:
            continue
        entry: dict[str, Any] = {
            "manager": m.manager,
            "operation": m.operation,
            "apiVersion": m.api_version,
            "time": m.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode(m.fields),
        }
        if m.subresource:
            entry["subresource"] = m.subresource
        entries.append(entry)
    obj.setdefault("metadata", {})["managedFields"] = entries


def _find(managers: list[Manager], name: str, operation: str, sub: str) -> Manager | None:
    for m in managers:
        if (m.manager, m.operation, m.subresource) == (name, operation, sub):
            return m
    return None


def record_update(
    managers: list[Manager],
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    name: str,
    subresource: str,
    api_version: str,
    now: str,
    has_status: bool,
    assoc: bool = True,
) -> list[Manager]:
    """Ownership after a create/update/patch: the writer takes every field it changed."""
    scope = "status" if subresource == "status" else "main"
    before = leaves(old, scope, has_status, assoc)
    after = leaves(new, scope, has_status, assoc)
    changed = {p for p, v in after.items() if before.get(p, _MISSING) != v}
    removed = set(before) - set(after)
    touched = changed | removed
    for m in managers:
        m.fields = {f for f in m.fields if not any(_overlaps(f, t) for t in touched)}
    mine = _find(managers, name, "Update", subresource)
    if mine is None:
        mine = Manager(name, "Update", api_version, now, subresource)
        managers.append(mine)
    mine.fields |= changed
    mine.time, mine.api_version = now, api_version
    return managers


def apply(
    managers: list[Manager],
    live: dict[str, Any],
    config: dict[str, Any],
    *,
    name: str,
    subresource: str,
    api_version: str,
    now: str,
    force: bool,
    has_status: bool,
    assoc: bool = True,
) -> tuple[dict[str, Any], list[Manager]]:
    """Server-side apply: conflict check, merge, and removal of fields the manager dropped."""
    scope = "status" if subresource == "status" else "main"
    applied = leaves(config, scope, has_status, assoc)
    mine = _find(managers, name, "Apply", subresource)
    others = [m for m in managers if m is not mine]
    conflicts: list[tuple[Manager, Path]] = []
    for other in others:
        for owned in sorted(other.fields):
            for path in applied:
                if not _overlaps(owned, path):
                    continue
                deeper = owned if len(owned) > len(path) else path
                if lookup(live, deeper) != lookup(config, deeper):
                    conflicts.append((other, owned))
                    break
    if conflicts and not force:
        raise conflict_error(conflicts)
    taken = {path for _, path in conflicts}
    for other in others:
        other.fields -= taken
    result = copy.deepcopy(live)
    previous = mine.fields if mine else set()
    for path in previous - set(applied):
        still_owned = any(_overlaps(path, f) for m in others for f in m.fields)
        if not still_owned and not any(_overlaps(path, p) for p in applied):
            _delete(result, path)
    for path, value in applied.items():
        _set(result, path, value)
    if mine is None:
        mine = Manager(name, "Apply", api_version, now, subresource)
        managers.append(mine)
    mine.fields, mine.time, mine.api_version = set(applied), now, api_version
    return result, managers


def path_text(path: Path) -> str:
    """`.spec.replicas` or `.spec.containers[name="app"].image`, as in conflict causes."""
    text = ""
    for part in path:
        want = _element_keys(part)
        if want is None:
            text += f".{part}"
        else:
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in want.items()) + "]"
    return text


def conflict_error(conflicts: list[tuple[Manager, Path]]) -> ApiError:
    """The 409 the real server answers when apply would overwrite another manager's fields."""
    causes = [
        {
            "type": "FieldManagerConflict",
            "message": f"conflict with {m.describe()}",
            "field": path_text(path),
        }
        for m, path in conflicts
    ]
    if len(conflicts) == 1:
        m, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {m.describe()}: {path_text(path)}"
    else:
        lines: list[str] = []
        for who in sorted({m.describe() for m, _ in conflicts}):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {path_text(p)}" for m, p in conflicts if m.describe() == who]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, message, "Conflict", {"causes": causes})
