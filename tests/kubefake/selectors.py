"""Label and field selectors as the API server parses them in list queries."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import ApiError

Matcher = Callable[[dict[str, Any]], bool]
_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside `in (...)` parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    match = _SET_RE.match(term)
    if match:
        key, op, raw = match.groups()
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, value = (s.strip() for s in term.split(op, 1))
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[A-Za-z0-9./_-]+", term):
        return lambda labels: term in labels
    raise ApiError(
        400, f"unable to parse requirement: found '{term}', expected: in, notin, =, ==, !="
    )


def label_selector(selector: str | None) -> Matcher:
    """Matcher for `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`, comma-joined."""
    terms = [_label_term(t) for t in _split(selector or "")]

    def matches(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(term(labels) for term in terms)

    return matches


def field_value(obj: dict[str, Any], dotted: str) -> str:
    """A field as a selector compares it: a string, empty when absent."""
    node: Any = obj
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def field_selector(selector: str | None) -> Matcher:
    """Matcher for `metadata.name=x`, `involvedObject.name==x`, `status.phase!=Running`, ..."""
    terms: list[tuple[str, str, bool]] = []
    for term in _split(selector or ""):
        for op in ("!=", "==", "="):
            if op in term:
                key, value = (s.strip() for s in term.split(op, 1))
                terms.append((key, value, op != "!="))
                break
        else:
            raise ApiError(400, f"invalid selector: '{selector}'; can't understand '{term}'")

    def matches(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, key) == value) == equal for key, value, equal in terms)

    return matches
