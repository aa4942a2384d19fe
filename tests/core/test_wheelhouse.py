"""The wheelhouse is fetched for the Python, libc and CPU a base image reports (real pip, no
network: a local folder of wheels stands in for the package index)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from autodevhub_cli.core.wheelhouse import ImagePython, _read_probe, prepare

TAGS = (
    "cp311-cp311-manylinux_2_17_x86_64",
    "cp312-cp312-manylinux_2_17_x86_64",
    "cp312-cp312-manylinux_2_39_x86_64",
    "cp312-cp312-musllinux_1_1_x86_64",
    "cp312-cp312-manylinux_2_17_aarch64",
)


def _wheel(folder: Path, tag: str) -> None:
    with zipfile.ZipFile(folder / f"demo-1.0-{tag}.whl", "w") as wheel:
        wheel.writestr("demo/__init__.py", "")
        wheel.writestr(
            "demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
        )
        wheel.writestr(
            "demo-1.0.dist-info/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n",
        )
        wheel.writestr("demo-1.0.dist-info/RECORD", "")


@pytest.fixture()
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "index"
    folder.mkdir()
    for tag in TAGS:
        _wheel(folder, tag)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    requirements = tmp_path / "requirements.lock"
    requirements.write_text("demo==1.0\n")
    return requirements


@pytest.mark.parametrize(
    ("python", "expected"),
    [
        (ImagePython(version="3.11"), "cp311-cp311-manylinux_2_17_x86_64"),
        (ImagePython(version="3.12"), "cp312-cp312-manylinux_2_17_x86_64"),
        # A newer glibc accepts the newer wheel (pip takes the most specific tag it allows).
        (ImagePython(version="3.12", libc_version="2.39"), "cp312-cp312-manylinux_2_39_x86_64"),
        (
            ImagePython(version="3.12", libc="musl", libc_version="1.2"),
            "cp312-cp312-musllinux_1_1_x86_64",
        ),
        (ImagePython(version="3.12", machine="aarch64"), "cp312-cp312-manylinux_2_17_aarch64"),
    ],
)
def test_wheels_are_fetched_for_the_image_python(
    index: Path, tmp_path: Path, python: ImagePython, expected: str
) -> None:
    folder = prepare(index, tmp_path / "cache", python=python)
    assert sorted(p.name for p in folder.glob("*.whl")) == [f"demo-1.0-{expected}.whl"]


def test_no_wheel_for_the_image_python_names_it(index: Path, tmp_path: Path) -> None:
    from autodevhub_cli.core.errors import BuildError

    with pytest.raises(BuildError) as caught:
        prepare(index, tmp_path / "cache", python=ImagePython(version="3.13"))
    assert "for CPython 3.13 on linux/x86_64 (glibc 2.36)" in str(caught.value)


def test_platform_tags_follow_the_libc() -> None:
    glibc = ImagePython(libc_version="2.31").platform_tags()
    assert glibc[0] == "manylinux_2_31_x86_64" and "manylinux_2_36_x86_64" not in glibc
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64"} <= set(glibc)
    musl = ImagePython(libc="musl", libc_version="1.2", machine="arm64").platform_tags()
    assert musl == [
        "musllinux_1_2_aarch64",
        "musllinux_1_1_aarch64",
        "musllinux_1_0_aarch64",
        "linux_aarch64",
    ]


def test_the_probe_answer_is_read_from_its_last_line() -> None:
    said = {"version": "3.12", "implementation": "cpython", "libc": "musl", "libc_version": "1.2"}
    found = _read_probe("a warning on stderr\n" + json.dumps({**said, "machine": "x86_64"}))
    assert found == ImagePython("3.12", "cpython", "musl", "1.2", "x86_64")
    assert _read_probe(json.dumps({**said, "libc": ""})) is None
    assert _read_probe("python3: not a probe") is None
