"""Golden files: the rendered output of each environment, byte for byte.

After an intended change, regenerate them with
`AUTODEVHUB_UPDATE_GOLDEN=1 python -m pytest tests/cli/test_golden.py` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_golden(env: str) -> None:
    code, out, err = run_cli("render", "--env", env, "--project-dir", str(REPO))
    assert code == 0, err
    golden = GOLDEN / f"{env}.yaml"
    if os.environ.get("AUTODEVHUB_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(out)
    assert golden.exists(), f"missing {golden}: run with AUTODEVHUB_UPDATE_GOLDEN=1"
    assert out == golden.read_text(), f"render --env {env} differs from {golden.name}"
