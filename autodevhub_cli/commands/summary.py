"""GitHub Actions job summaries: a short Markdown report appended to $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any


def append(markdown: str) -> None:
    """Append to the job summary when running in GitHub Actions (no-op elsewhere)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown.rstrip() + "\n\n")


def images_table(images: Iterable[Mapping[str, object]]) -> str:
    """Markdown table of images: name, reference, what was done."""
    rows = ["| image | reference | action |", "| --- | --- | --- |"]
    for image in images:
        action = image.get("action", "")
        rows.append(f"| {image['name']} | `{image['ref']}` | {action} |")
    return "\n".join(rows)


def smoke_table(smoke: dict[str, Any] | None) -> str:
    """Markdown table of smoke checks."""
    if not smoke:
        return "_no smoke checks ran_"
    rows = ["| check | result | detail |", "| --- | --- | --- |"]
    for check in smoke.get("checks", []):
        mark = "pass" if check["ok"] else "**FAIL**"
        name, detail = (_cell(check["name"]), _cell(check["detail"]))
        rows.append(f"| {name} | {mark} | {detail} |")
    return "\n".join(rows)


def _cell(value: object) -> str:
    """Outside text (a check name, a server's answer) as one Markdown table cell."""
    return " ".join(str(value).split()).replace("|", "\\|")


def timings_line(timings: dict[str, float]) -> str:
    """`build 1.2 s · apply 3.4 s ...`."""
    return " · ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items())
