"""Validation of rendered output: Kubernetes schemas (strict), CRD schemas kept here, Compose.

Verdicts for a document are cached by content hash (document, Kubernetes version, validator
version), so re-rendering an unchanged environment skips the schema engines entirely.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autodevhub_cli.core.adapters import process
from autodevhub_cli.core.adapters.compose import compose_binary
from autodevhub_cli.core.errors import ValidationError
from autodevhub_cli.core.render import RenderedManifest, RenderResult

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

DEFAULT_KUBE_VERSION = "1.33"
SUPPORTED_KUBE_VERSIONS = tuple(f"1.{minor}" for minor in range(30, 38))
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
# CRDs have no schema in kubernetes-validate: we keep strict ones for those we render.
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("argoproj.io/v1alpha1", "Rollout"): "rollout-argoproj-v1alpha1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
_CACHE_FORMAT = "1"


@dataclass
class ValidationReport:
    """What was checked, with which engine, and how many verdicts came from the cache."""

    target: str
    kube_version: str | None
    checked: list[str] = field(default_factory=list)
    cached: int = 0


def check_kube_version(version: str) -> str:
    """Accept `1.33` or `v1.33`; refuse versions the bundled schemas do not cover."""
    normal = version[1:] if version.startswith("v") else version
    normal = ".".join(normal.split(".")[:2])
    if normal not in SUPPORTED_KUBE_VERSIONS:
        raise ValidationError(
            f"Kubernetes version {version!r} is not supported for validation.",
            hint=f"Use one of {', '.join(SUPPORTED_KUBE_VERSIONS)} (--kube-version).",
        )
    return normal


def validate(result: RenderResult, kube_version: str | None = None) -> ValidationReport:
    """Validate every rendered document; raise ValidationError listing each failing one."""
    if result.target == "compose":
        return _validate_compose(result)
    version = check_kube_version(kube_version or DEFAULT_KUBE_VERSION)
    report = ValidationReport("kubernetes", version)
    cache = VerdictCache(f"k8s-{version}-{_engine_identity()}")
    problems: list[str] = []
    for manifest in result.manifests:
        label = f"{manifest.kind} {manifest.name}"
        if cache.known_good(manifest.document):
            report.cached += 1
            report.checked.append(label)
            continue
        found = _kubernetes_problems(manifest, version)
        if found:
            problems.extend(f"{label} (templates/{manifest.template}): {p}" for p in found)
        else:
            cache.remember(manifest.document)
            report.checked.append(label)
    if problems:
        raise ValidationError(
            f"{len(problems)} rendered document{'s' if len(problems) != 1 else ''} of "
            f"environment {result.environment!r} failed Kubernetes {version} schema validation:",
            problems=problems,
            hint="Fix the template or the environment value behind each field; "
            "`autodevhub render --no-validate` shows the output as rendered.",
        )
    return report


class _NoSchema(Exception):
    """kubernetes-validate has no schema for this apiVersion and kind."""


def _kubernetes_problems(manifest: RenderedManifest, version: str) -> list[str]:
    doc = manifest.document
    crd = CRD_SCHEMAS.get((manifest.api_version, manifest.kind))
    if crd is not None:
        problems = _json_schema_problems(SCHEMAS_DIR / crd, doc)
        template = (doc.get("spec") or {}).get("template")
        if manifest.kind == "Rollout" and isinstance(template, dict):
            wrapped = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": manifest.name},
                "template": template,
            }
            problems += [
                p.replace("template.", "spec.template.", 1)
                for p in _core_problems(wrapped, version)
            ]
        return problems
    try:
        return _core_problems(doc, version)
    except _NoSchema:
        return [
            f"no schema for apiVersion {manifest.api_version} kind {manifest.kind} in "
            f"Kubernetes {version}: a misspelt kind or an API version this cluster does not serve"
        ]


def _core_problems(doc: dict[str, Any], version: str) -> list[str]:
    from autodevhub_cli.core import schema_check
    from autodevhub_cli.core.list_keys import duplicate_keys

    compact = _compact_core(doc["apiVersion"], doc["kind"], version)
    try:
        problem = schema_check.check(doc, compact["schema"], compact["$defs"])
    except schema_check.Unsupported:
        return _core_problems_jsonschema(doc, version)
    if problem is not None:
        return [problem]
    return duplicate_keys(doc, compact["schema"], compact["$defs"])


def _compact_core(api_version: str, kind: str, version: str) -> dict[str, Any]:
    """The kind's schema with the definitions it reaches, from the cache or extracted once."""
    import re

    from autodevhub_cli.core import schema_check

    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    key = f"k8s-{version}-{_engine_identity()}-{kind.lower()}-{group_version}"
    found = schema_check.load_compact(key) if _caching() else None
    if found is None:
        schema = _core_validator(api_version, kind, version).schema
        found = schema_check.compact(schema, _core_definitions(version).get("$defs", {}))
        if _caching():
            schema_check.store_compact(key, found)
    return found


def _core_problems_jsonschema(doc: dict[str, Any], version: str) -> list[str]:
    validator = _core_validator(doc["apiVersion"], doc["kind"], version)
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(doc))
    if error is None:
        from autodevhub_cli.core.list_keys import duplicate_keys

        return duplicate_keys(doc, validator.schema, _core_definitions(version).get("$defs", {}))
    path = ".".join(str(p) for p in error.path) or "(document)"
    return [f"{path}: {error.message}"]


@functools.cache
def _core_definitions(version: str) -> Any:
    """kubernetes-validate's strict `_definitions.json` for `version`, loaded once per process."""
    from kubernetes_validate import utils

    return utils.schema_contents(
        f"kubernetes-json-schema/{_schema_dir(version)}/_definitions.json", version
    )


@functools.cache
def _schema_dir(version: str) -> str:
    from kubernetes_validate import utils

    # The newest bundled schema set that is not newer than the requested version.
    bundled = [v for v in utils.all_versions() if utils.major_minor(v) <= version]
    return f"v{bundled[-1]}-local-strict"


@functools.cache
def _core_validator(api_version: str, kind: str, version: str) -> Validator:
    """A validator for one kind, built like kubernetes_validate.validate() does, but reused.

    kubernetes_validate.validate() re-reads the 1.4 MB definitions file for every document
    (about 12 ms each); the schemas and the validator class are the same here.
    """
    import re

    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(
            f"kubernetes-json-schema/{_schema_dir(version)}/{kind.lower()}-{group_version}.json",
            version,
        )
    except FileNotFoundError:
        raise _NoSchema(f"{api_version} {kind}") from None
    registry: Any = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(_core_definitions(version)) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _json_schema_problems(schema_file: Path, doc: dict[str, Any]) -> list[str]:
    from autodevhub_cli.core import schema_check

    stat = schema_file.stat()
    key = f"crd-{schema_file.stem}-{stat.st_size}-{stat.st_mtime_ns}"
    compact = schema_check.load_compact(key) if _caching() else None
    if compact is None:
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
        compact = schema_check.compact(schema, schema.get("$defs", {}))
        if _caching():
            schema_check.store_compact(key, compact)
    try:
        problem = schema_check.check(doc, compact["schema"], compact["$defs"])
    except schema_check.Unsupported:
        return _json_schema_problems_jsonschema(schema_file, doc)
    return [problem] if problem else []


def _json_schema_problems_jsonschema(schema_file: Path, doc: dict[str, Any]) -> list[str]:
    import jsonschema

    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    found = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path))):
        path = ".".join(str(p) for p in error.path) or "(document)"
        found.append(f"{path}: {error.message}")
    return found


def _caching() -> bool:
    from autodevhub_cli.core import render_cache

    return render_cache.enabled()


def _validate_compose(result: RenderResult) -> ValidationReport:
    report = ValidationReport("compose", None)
    manifest = result.manifests[0]
    binary = compose_binary()
    cache = VerdictCache(f"compose-{_file_identity(binary)}")
    if cache.known_good(manifest.document):
        report.cached = 1
        report.checked.append(f"compose {manifest.name}")
        return report
    command = [binary, "-f", "-", "config", "--quiet", "--no-interpolate"]
    proc = process.run(
        command,
        what="Docker Compose (validating the output)",
        input=manifest.to_yaml(),
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().replace("validating -: ", "")
        raise ValidationError(
            f"The Compose file rendered for environment {result.environment!r} is invalid "
            "(docker compose config):",
            problems=[line for line in detail.splitlines() if line.strip()] or ["(no message)"],
            hint="Fix the Compose template or the environment value behind that field.",
        )
    cache.remember(manifest.document)
    report.checked.append(f"compose {manifest.name}")
    return report


@functools.cache
def _engine_identity() -> str:
    """Which kubernetes-validate (its schema sets) is installed, without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or spec.origin is None:
        return "none"
    stat = os.stat(spec.origin)
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def _file_identity(path: str) -> str:
    stat = os.stat(path)
    return f"{stat.st_size}-{int(stat.st_mtime)}"


class VerdictCache:
    """Content hashes of documents that passed validation, one empty file per verdict (the
    manifests' checks, and the project's values against its values.schema.json)."""

    def __init__(self, namespace: str) -> None:
        from autodevhub_cli.core import render_cache

        self.folder = render_cache.cache_home() / "validated"
        self.namespace = f"{_CACHE_FORMAT}:{namespace}:{self._schemas_identity()}"
        self.enabled = render_cache.enabled()

    @staticmethod
    def _schemas_identity() -> str:
        return "-".join(
            f"{p.name}:{p.stat().st_mtime_ns}" for p in sorted(SCHEMAS_DIR.glob("*.json"))
        )

    def _key(self, doc: dict[str, object]) -> Path:
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(self.namespace.encode() + b"\0" + blob).hexdigest()
        return self.folder / digest[:2] / digest[2:]

    def known_good(self, doc: dict[str, object]) -> bool:
        return self.enabled and self._key(doc).exists()

    def remember(self, doc: dict[str, object]) -> None:
        if not self.enabled:
            return
        key = self._key(doc)
        try:
            key.parent.mkdir(parents=True, exist_ok=True)
            key.touch()
        except OSError:
            pass  # a read-only cache only costs speed
