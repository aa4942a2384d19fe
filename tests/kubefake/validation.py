"""The few server-side validations deploy code is likely to trip over on a real cluster."""

from __future__ import annotations

import json
import re
from typing import Any

from . import errors
from .resources import ResourceType

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_KINDS = {"namespaces", "services"}


def _invalid(rt: ResourceType, name: str, field: str, message: str) -> errors.ApiError:
    kind = "FieldValueRequired" if message.startswith("Required") else "FieldValueInvalid"
    if "Forbidden" in message:
        kind = "FieldValueForbidden"
    return errors.invalid(rt, name, [(kind, field, message)])


def _immutable(rt: ResourceType, name: str, field: str, value: Any) -> errors.ApiError:
    return _invalid(rt, name, field, f"Invalid value: {json.dumps(value)}: field is immutable")


def validate(rt: ResourceType, name: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
    """Raise 422 Invalid for a bad name, a Deployment selector problem or an immutable change."""
    label = rt.plural in _DNS_LABEL_KINDS
    pattern, limit = (_LABEL, 63) if label else (_SUBDOMAIN, 253)
    if not pattern.match(name) or len(name) > limit:
        what = "RFC 1123 label" if label else "RFC 1123 subdomain"
        raise _invalid(
            rt,
            name,
            "metadata.name",
            f'Invalid value: "{name}": a lowercase {what} must consist of lower case alphanumeric '
            "characters, '-' or '.', and must start and end with an alphanumeric character",
        )
    spec = new.get("spec") or {}
    old_spec = (old or {}).get("spec") or {}
    if rt.kind == "Deployment" and rt.group == "apps":
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            raise _invalid(rt, name, "spec.selector", "Required value")
        if any(labels.get(k) != v for k, v in selector.items()):
            raise _invalid(
                rt,
                name,
                "spec.template.metadata.labels",
                f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
            )
        if old is not None and old_spec.get("selector") != spec.get("selector"):
            raise _immutable(rt, name, "spec.selector", spec.get("selector"))
    job = rt.kind == "Job" and rt.group == "batch"
    if job and old is not None and old_spec.get("template") != spec.get("template"):
        raise _immutable(rt, name, "spec.template", spec.get("template"))
    if rt.kind == "PersistentVolumeClaim" and old is not None:
        strip = ("resources", "volumeAttributesClassName")
        if {k: v for k, v in old_spec.items() if k not in strip} != {
            k: v for k, v in spec.items() if k not in strip
        }:
            raise _invalid(
                rt,
                name,
                "spec",
                "Forbidden: spec is immutable after creation except resources.requests and "
                "volumeAttributesClassName for bound claims",
            )
