"""Each analyzer's report, read into one form: tool, check id, object, message.

The object names what a reviewer would point at, stable across unrelated edits:
    prod/Deployment/worker                    a rendered Kubernetes object (<env>/<Kind>/<name>)
    prod/Rollout/backend                      a Rollout, checked through its pod template
    service/web/Dockerfile[build]             a Dockerfile stage (its name, else #index)
    .github/workflows/pipeline.yml:jobs.build.steps[2]   a step, a job, or the workflow
Line numbers go in `where`, never in the object, so a waiver survives an edit above it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SOURCE_ANNOTATION = "autodevhub.io/gate-source"


@dataclass(kw_only=True, frozen=True)
class Finding:
    """One problem one analyzer reports on one object."""

    tool: str
    id: str
    object: str
    message: str
    where: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        """The finding as JSON-ready fields."""
        return asdict(self)


class ToolError(Exception):
    """An analyzer did not produce a report it could be judged by."""


# Objects ---------------------------------------------------------------------------------------


class Objects:
    """Names the object at a file (and line) of the scan folder."""

    def __init__(self, scan: Path) -> None:
        self.scan = scan

    def at(self, relative: str, line: int | None) -> str:
        """The object that `relative` (a path under the scan folder) holds at `line`."""
        relative = relative.lstrip("/")
        if relative.startswith("kubernetes/"):
            return self.kubernetes(relative)
        if relative.startswith(".github/workflows/"):
            return relative + workflow_route(self.scan / relative, line)
        return relative + dockerfile_stage(self.scan / relative, line)

    def kubernetes(self, relative: str) -> str:
        """`<env>/<Kind>/<name>` of the (first) object in a rendered file."""
        env = relative.split("/")[1]
        doc = next(iter(_yaml_docs(self.scan / relative)), None) or {}
        meta = doc.get("metadata") or {}
        source = (meta.get("annotations") or {}).get(SOURCE_ANNOTATION)
        return f"{env}/{source or '{}/{}'.format(doc.get('kind'), meta.get('name'))}"


@cache
def _yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@cache
def _stages(path: Path) -> list[tuple[int, str]]:
    """(first line, name) of each stage of a Dockerfile."""
    stages = []
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        match = re.match(r"\s*FROM\s+\S+(?:\s+AS\s+(\S+))?", text, re.IGNORECASE)
        if match:
            stages.append((number, match.group(1) or f"#{len(stages)}"))
    return stages


def dockerfile_stage(path: Path, line: int | None) -> str:
    """`[stage]` that holds `line`; empty before the first FROM or with no line."""
    if not line or not path.is_file():
        return ""
    names = [name for first, name in _stages(path) if first <= line]
    return f"[{names[-1]}]" if names else ""


def workflow_route(path: Path, line: int | None) -> str:
    """`:jobs.J`, `:jobs.J.steps[i]` holding `line` (1-based), or empty for the workflow."""
    if not line or not path.is_file():
        return ""
    root = yaml.compose(path.read_text())
    jobs = _child(root, "jobs")
    if jobs is None:
        return ""
    for key, job in jobs.value:
        if _spans(key, job, line):
            steps = _child(job, "steps")
            for index, step in enumerate(steps.value if steps is not None else []):
                if _spans(step, step, line):
                    return f":jobs.{key.value}.steps[{index}]"
            return f":jobs.{key.value}"
    return ""


def _child(node: Any, name: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == name:
                return value
    return None


def _spans(first: Any, last: Any, line: int) -> bool:
    # yaml marks are 0-based; a block ends at the start of the next key.
    start = first.start_mark.line + 1
    return bool(start <= line <= max(last.end_mark.line, start))


# Analyzers -------------------------------------------------------------------------------------


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text() or "null")
    except (OSError, ValueError) as exc:
        raise ToolError(f"{path.name}: no JSON report ({exc})") from None


def checkov(report: Path, objects: Objects) -> Iterator[Finding]:
    """checkov -o json: one report per framework (a list, or one dict)."""
    data = _load_json(report)
    for run in data if isinstance(data, list) else [data]:
        results = run.get("results") or {}
        # An inline `checkov:skip` is a waiver outside the waiver file: it counts as a finding.
        failed = [(c, "") for c in results.get("failed_checks", [])]
        skipped = [(c, " (skipped inline)") for c in results.get("skipped_checks", [])]
        for check, note in failed + skipped:
            first = (check.get("file_line_range") or [0])[0]
            framework = run.get("check_type", "")
            line = first if framework != "kubernetes" else None
            yield Finding(
                tool="checkov",
                id=check["check_id"],
                object=objects.at(check["file_path"], line),
                message=check["check_name"] + note,
                where=f"{check['file_path'].lstrip('/')}:{max(first, 1)}",
                fix=check.get("guideline") or "",
            )


def trivy(report: Path, objects: Objects) -> Iterator[Finding]:
    """trivy config -f json: misconfigurations per target file."""
    # trivy cannot be told to disregard `#trivy:ignore` comments: each one is a finding here.
    for path in sorted(p for p in objects.scan.rglob("*") if p.is_file()):
        for number, text in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if "trivy:ignore" in text:
                relative = str(path.relative_to(objects.scan))
                yield Finding(
                    tool="trivy",
                    id="inline-ignore",
                    object=objects.at(relative, number),
                    message="a #trivy:ignore comment: waive in the waiver file instead",
                    where=f"{relative}:{number}",
                )
    for result in (_load_json(report) or {}).get("Results") or []:
        for misconfig in result.get("Misconfigurations") or []:
            if misconfig.get("Status", "FAIL") != "FAIL":
                continue
            line = (misconfig.get("CauseMetadata") or {}).get("StartLine")
            target = result["Target"]
            yield Finding(
                tool="trivy",
                id=misconfig["ID"],
                object=objects.at(target, line if result.get("Type") != "kubernetes" else None),
                message=misconfig.get("Message") or misconfig.get("Title", ""),
                where=f"{target}:{line or 1}",
                fix=misconfig.get("Resolution", ""),
            )


def hadolint(report: Path, objects: Objects) -> Iterator[Finding]:
    """hadolint -f json: one entry per rule and line."""
    for item in _load_json(report) or []:
        yield Finding(
            tool="hadolint",
            id=item["code"],
            object=objects.at(item["file"], item.get("line")),
            message=item["message"],
            where=f"{item['file']}:{item.get('line')}",
            fix=f"https://github.com/hadolint/hadolint/wiki/{item['code']}"
            if item["code"].startswith("DL")
            else "",
        )


def zizmor(report: Path, objects: Objects) -> Iterator[Finding]:
    """zizmor --format json: each finding with its primary location's route."""
    for item in _load_json(report) or []:
        locations = item.get("locations") or [{}]
        primary = next(
            (loc for loc in locations if loc["symbolic"].get("kind") == "Primary"), locations[0]
        )
        key = primary["symbolic"]["key"]
        path = (key.get("Local") or {}).get("given_path") or key["Local"]["verbatim_path"]
        route = _route(primary["symbolic"].get("route", {}).get("route", []))
        row = primary["concrete"]["location"]["start_point"]["row"] + 1
        annotation = primary["symbolic"].get("annotation")
        yield Finding(
            tool="zizmor",
            id=item["ident"],
            object=path + route,
            message=f"{item['desc']}: {annotation}" if annotation else item["desc"],
            where=f"{path}:{row}",
            fix=item.get("url", ""),
        )


def _route(parts: list[dict[str, Any]]) -> str:
    """zizmor's route (jobs, build, steps, 2, ...) cut to the job and step."""
    keys = [p.get("Key", p.get("Index")) for p in parts]
    if len(keys) < 2 or keys[0] != "jobs":
        return ""
    if len(keys) >= 4 and keys[2] == "steps":
        return f":jobs.{keys[1]}.steps[{keys[3]}]"
    return f":jobs.{keys[1]}"


def actionlint(report: Path, objects: Objects) -> Iterator[Finding]:
    """actionlint -format '{{json .}}'; shellcheck's findings carry their SC code."""
    for item in _load_json(report) or []:
        kind = item.get("kind", "actionlint")
        code = re.search(r"\b(SC\d{4})\b", item["message"]) if kind == "shellcheck" else None
        yield Finding(
            tool="actionlint",
            id=f"shellcheck/{code.group(1)}" if code else kind,
            object=objects.at(item["filepath"], item.get("line")),
            message=item["message"],
            where=f"{item['filepath']}:{item.get('line')}",
        )


READERS = {
    "checkov": checkov,
    "trivy": trivy,
    "hadolint": hadolint,
    "zizmor": zizmor,
    "actionlint": actionlint,
}


def read_all(reports: Path, scan: Path) -> list[Finding]:
    """Every analyzer's findings, sorted and without duplicates."""
    objects = Objects(scan)
    found: set[Finding] = set()
    for tool, reader in READERS.items():
        found.update(reader(reports / f"{tool}.json", objects))
    return sorted(found, key=lambda f: (f.tool, f.id, f.object, f.where))
