"""The strict schema check agrees with jsonschema on the Kubernetes and CRD schemas: same verdict
and same field for every rendered document and for single mistakes made in each of them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonschema.exceptions import best_match

from autodevhub_cli.core import schema_check, validate
from autodevhub_cli.core.config import load_environment
from autodevhub_cli.core.project import find_project
from autodevhub_cli.core.render import render
from tests.helpers import REPO

VERSION = "1.33"


def _documents() -> list[dict[str, Any]]:
    project = find_project(REPO)
    docs = []
    for name in ("staging", "prod"):
        docs += [
            m.document
            for m in render(project, load_environment(project, name, environ={})).manifests
        ]
    return docs


def _schemas(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(compact schema, its definitions, the jsonschema validator) for a document."""
    crd = validate.CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        schema = json.loads((validate.SCHEMAS_DIR / crd).read_text())
        compact = schema_check.compact(schema, schema.get("$defs", {}))
        return compact["schema"], compact["$defs"], jsonschema.Draft202012Validator(schema)
    validator = validate._core_validator(doc["apiVersion"], doc["kind"], VERSION)
    compact = schema_check.compact(
        validator.schema, validate._core_definitions(VERSION).get("$defs", {})
    )
    return compact["schema"], compact["$defs"], validator


def _expected(validator: Any, doc: dict[str, Any]) -> str | None:
    error = best_match(validator.iter_errors(doc))
    if error is None:
        return None
    return ".".join(str(p) for p in error.path) or "(document)"


def _mistakes(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Single mistakes at every mapping of the document: an unknown field, a wrong type."""
    found = []

    def walk(node: Any, path: list[Any]) -> None:
        if isinstance(node, dict):
            extra = copy.deepcopy(doc)
            target = extra
            for step in path:
                target = target[step]
            target["unknownFieldx"] = 1
            found.append((f"unknown field at {path}", extra))
            for key, value in node.items():
                if isinstance(value, (int, str, bool)) and not isinstance(value, bool):
                    wrong = copy.deepcopy(doc)
                    target = wrong
                    for step in path:
                        target = target[step]
                    target[key] = {"not": "a scalar"}
                    found.append((f"wrong type at {[*path, key]}", wrong))
                walk(value, [*path, key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, [*path, index])

    walk(doc, [])
    return found


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_same_verdict_and_field_as_jsonschema(doc: dict[str, Any]) -> None:
    schema, definitions, validator = _schemas(doc)
    assert schema_check.check(doc, schema, definitions) is None
    assert _expected(validator, doc) is None
    for what, bad in _mistakes(doc):
        ours = schema_check.check(bad, schema, definitions)
        theirs = _expected(validator, bad)
        if theirs is None:
            assert ours is None, what
            continue
        assert ours is not None, f"{what}: jsonschema refuses it at {theirs}"
        assert ours.split(": ", 1)[0] == theirs, what


def test_unknown_keyword_is_refused_not_ignored() -> None:
    with pytest.raises(schema_check.Unsupported, match="multipleOf"):
        schema_check.check(3, {"type": "integer", "multipleOf": 2}, {})


def test_messages_name_the_field(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "port": {"$ref": "#/$defs/port"}},
    }
    definitions = {"port": {"type": "integer", "minimum": 1}}
    assert schema_check.check({"name": "a", "port": 0}, schema, definitions) == (
        "port: 0 is less than the minimum of 1"
    )
    assert schema_check.check({"port": 1}, schema, definitions) == (
        "(document): 'name' is a required property"
    )
    assert schema_check.check({"name": "a", "x": 1}, schema, definitions) == (
        "(document): Additional properties are not allowed ('x' was unexpected)"
    )
