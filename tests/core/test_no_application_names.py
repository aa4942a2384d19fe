"""The tool knows no application: the project's components, checks and tasks come from its own
environments/ and templates/, so no code under autodevhub_cli/ names this project's parts."""

from __future__ import annotations

import re

from tests.helpers import REPO

# Any spelling of this project's component and resource names; the Python package of the
# deployed app, `service`, as a lower-case word (the Kubernetes kind `Service` and Compose's
# `services` key and its `com.docker.compose.service` label are the platforms' own words, and
# stay, as do glibc's resolver error "Name or service not known" and an Ingress path's
# `backend:` field).
PLATFORM_WORDS = re.compile(
    r"com\.docker\.compose\.service\b|name or service not known|^\s*backend:$", re.I
)
FORBIDDEN = [
    re.compile(r"\b(backend|frontend|stories|story|worker)s?\b", re.IGNORECASE),
    re.compile(r"\bservice\b"),
]


def test_no_code_under_the_tool_names_the_application() -> None:
    hits = []
    tool = REPO / "autodevhub_cli"
    # Its code, and the template library every project's templates import (where a Compose
    # "service" is Compose's own word).
    for path in sorted([*tool.rglob("*.py"), *(tool / "library").glob("*.j2")]):
        patterns = FORBIDDEN if path.suffix == ".py" else FORBIDDEN[:1]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = PLATFORM_WORDS.sub("", line)
            for pattern in patterns:
                for match in pattern.finditer(line):
                    hits.append(
                        f"{path.relative_to(REPO)}:{number}: {match.group(0)!r}: {line.strip()}"
                    )
    assert hits == [], "\n".join(hits)


def test_the_grep_finds_what_it_looks_for() -> None:
    samples = ['COMPONENTS = ("backend", "frontend")', "POST /api/stories", "python -m service"]
    assert all(any(p.search(s) for p in FORBIDDEN) for s in samples)
    assert not any(p.search('("v1", "Service")') for p in FORBIDDEN)
    assert PLATFORM_WORDS.sub("", 'LABEL = "com.docker.compose.service"') == 'LABEL = ""'
    assert any(p.search(PLATFORM_WORDS.sub("", "from service import app")) for p in FORBIDDEN)
