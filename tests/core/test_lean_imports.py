"""The render path must not pay for the Docker or Kubernetes SDKs (they cost ~100-700 ms)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import REPO

PROBE = """
import sys, io, contextlib
from autodevhub_cli.main import app
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    try:
        app(["render", "--env", "prod", "--project-dir", sys.argv[1]], prog_name="autodevhub")
    except SystemExit as exc:
        code = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"docker", "kubernetes", "httpx", "fastapi", "service"})
print(__import__("json").dumps({"code": code, "heavy": heavy, "out": len(buf.getvalue())}))
"""


def test_render_imports_neither_docker_nor_kubernetes() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO)], capture_output=True, text=True, check=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, None)
    assert result["out"] > 1000
    assert result["heavy"] == []
