"""Judge the analyzers' findings against the waiver file; exit 1 if any is not waived.

A waiver is `{tool, id, object, reason}`; `object` may hold `*`, the only wildcard
(`*/Job/backend-migrate-*`; brackets and `?` are literal, as in service/Dockerfile[build]).
A waiver that matches no finding is stale and fails too, so the file only says what is true.

Usage: python check.py REPORTS_DIR SCAN_DIR WAIVERS_FILE
Exit codes: 0 every finding waived, 1 findings or stale waivers, 2 a bad waiver file or an
analyzer that produced no report.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from findings import READERS, Finding, ToolError, read_all

FIELDS = ("tool", "id", "object", "reason")


@dataclass(kw_only=True, frozen=True)
class Waiver:
    """An accepted finding, with why it is accepted."""

    tool: str
    id: str
    object: str
    reason: str

    def covers(self, finding: Finding) -> bool:
        """Whether this waiver accepts `finding`."""
        return (
            finding.tool == self.tool
            and finding.id == self.id
            and _object_pattern(self.object).fullmatch(finding.object) is not None
        )


def _object_pattern(pattern: str) -> re.Pattern[str]:
    # Only `*` is a wildcard: objects hold brackets (service/Dockerfile[build]) and `?`.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


class WaiverFileError(Exception):
    """The waiver file is not a list of {tool, id, object, reason}."""


def load_waivers(path: Path) -> list[Waiver]:
    """The waivers in `path` (a missing file holds none), each entry checked."""
    if not path.exists():
        return []
    try:
        data: Any = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise WaiverFileError(f"{path}: not YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise WaiverFileError(f"{path}: expected a list of {{{', '.join(FIELDS)}}}")
    waivers = []
    for index, entry in enumerate(data):
        where = f"{path} entry {index + 1}"
        if not isinstance(entry, dict) or set(entry) != set(FIELDS):
            raise WaiverFileError(f"{where}: needs exactly the keys {', '.join(FIELDS)}")
        if not all(isinstance(entry[k], str) and entry[k].strip() for k in FIELDS):
            raise WaiverFileError(f"{where}: every key needs a non-empty string")
        if entry["tool"] not in READERS:
            raise WaiverFileError(f"{where}: unknown tool {entry['tool']!r} ({', '.join(READERS)})")
        waivers.append(Waiver(**{k: entry[k].strip() for k in FIELDS}))
    return waivers


@dataclass(kw_only=True, frozen=True)
class Verdict:
    """What the gate decided: the findings no waiver covers, and the waivers nothing needs."""

    findings: list[Finding]
    unwaived: list[Finding]
    stale: list[Waiver]

    @property
    def ok(self) -> bool:
        """Whether the gate passes."""
        return not self.unwaived and not self.stale


def judge(findings: list[Finding], waivers: list[Waiver]) -> Verdict:
    """Match every finding against the waivers."""
    unwaived = [f for f in findings if not any(w.covers(f) for w in waivers)]
    stale = [w for w in waivers if not any(w.covers(f) for f in findings)]
    return Verdict(findings=findings, unwaived=unwaived, stale=stale)


def report(verdict: Verdict, waivers_file: str) -> list[str]:
    """The lines the gate prints: a summary, one line per problem, and what to do."""
    counts = Counter(f.tool for f in verdict.unwaived)
    waived = len(verdict.findings) - len(verdict.unwaived)
    per_tool = ", ".join(f"{tool} {counts[tool]}" for tool in READERS if counts[tool])
    lines = [
        f"[gates] {len(verdict.findings)} finding(s): {waived} waived, "
        f"{len(verdict.unwaived)} not waived"
        + (f" ({per_tool})" if per_tool else "")
        + (f"; {len(verdict.stale)} stale waiver(s)" if verdict.stale else "")
    ]
    for f in verdict.unwaived:
        fix = f" -> {f.fix}" if f.fix else ""
        lines.append(f"FINDING {f.tool} {f.id} {f.object}: {f.message} ({f.where}){fix}")
    for w in verdict.stale:
        lines.append(f"STALE   {w.tool} {w.id} {w.object}: matches no finding; remove it")
    if verdict.unwaived:
        first = verdict.unwaived[0]
        lines.append(
            f"[gates] fix each finding; or, if it does not apply, add to {waivers_file}:\n"
            f"  - {{tool: {first.tool}, id: {first.id}, object: {json.dumps(first.object)},"
            " reason: why it does not apply here}"
        )
    return lines


def main() -> int:
    """Entry point: `python check.py REPORTS_DIR SCAN_DIR WAIVERS_FILE`."""
    reports, scan, waivers_file = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    try:
        waivers = load_waivers(Path(waivers_file))
        findings = read_all(reports, scan)
    except (WaiverFileError, ToolError) as exc:
        print(f"[gates] {exc}", file=sys.stderr)
        return 2
    verdict = judge(findings, waivers)
    (reports / "findings.json").write_text(
        json.dumps([f.to_dict() for f in findings], indent=2) + "\n"
    )
    print("\n".join(report(verdict, waivers_file)))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
