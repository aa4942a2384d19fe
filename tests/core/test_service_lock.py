"""The backend image installs only what service/requirements.lock pins, each file by hash."""

from __future__ import annotations

import re

from tests.helpers import REPO


def _requirements(text: str) -> list[str]:
    """The lock's requirements, each with its continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def test_every_pin_carries_the_hashes_of_its_files() -> None:
    requirements = _requirements((REPO / "service" / "requirements.lock").read_text())
    assert len(requirements) > 20
    for line in requirements:
        name, _, rest = line.partition("==")
        assert name and rest, f"not pinned to one version: {line}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", rest), f"no hash: {name}"


def test_the_image_install_refuses_a_file_without_a_matching_hash() -> None:
    dockerfile = (REPO / "service" / "Dockerfile").read_text()
    install = re.search(r"pip install ([^\n]*(?:\\\n[^\n]*)*)", dockerfile)
    assert install is not None
    assert "--require-hashes" in install.group(1) and "--no-index" in install.group(1)
