"""The security gates' own logic (scripts/ci/gates/): the Rollout's pod template, the objects
findings are named by, each analyzer's report read into one form, and the waiver verdict.
The analyzers themselves run in `bash scripts/ci/gates.sh`; these tests need none of them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "ci" / "gates"))

import check  # noqa: E402
import findings  # noqa: E402
import prepare  # noqa: E402

ROLLOUT = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "backend", "namespace": "autodevhub", "labels": {"app": "x"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "x"}},
        "strategy": {"blueGreen": {"activeService": "backend"}},
        "template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "backend", "image": "r.example/b:1"}]},
        },
    },
}

WORKFLOW = """\
name: pipeline
on: push
jobs:
  test:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - name: Tests
        run: bash .ci/run
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/upload-artifact@v4
"""

DOCKERFILE = """\
ARG BASE=python:3.11-slim
FROM ${BASE} AS builder
RUN cd /x && make
FROM ${BASE}
USER 10001
"""


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    """A scan folder as prepare.py lays it out, with one of each kind of file."""
    kube = tmp_path / "kubernetes" / "prod"
    kube.mkdir(parents=True)
    (kube / "01-deployment-worker.yaml").write_text(
        yaml.safe_dump(
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"}}
        )
    )
    (kube / "02-rollout-backend.yaml").write_text(yaml.safe_dump(ROLLOUT))
    prepare.extract_rollouts(kube)
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "pipeline.yml").write_text(WORKFLOW)
    (tmp_path / "service").mkdir()
    (tmp_path / "service" / "Dockerfile").write_text(DOCKERFILE)
    return tmp_path


def test_the_rollout_pod_template_becomes_a_deployment_that_names_its_rollout() -> None:
    deployment = prepare.pod_template_deployment(ROLLOUT)

    assert deployment["apiVersion"] == "apps/v1" and deployment["kind"] == "Deployment"
    assert deployment["metadata"]["name"] == "backend"
    assert deployment["metadata"]["namespace"] == "autodevhub"
    assert deployment["metadata"]["annotations"] == {prepare.SOURCE_ANNOTATION: "Rollout/backend"}
    assert deployment["spec"]["template"] == ROLLOUT["spec"]["template"]
    assert deployment["spec"]["selector"] == ROLLOUT["spec"]["selector"]
    assert "strategy" not in deployment["spec"]


def test_findings_on_the_extracted_template_are_reported_on_the_rollout(scan: Path) -> None:
    objects = findings.Objects(scan)

    assert objects.at("/kubernetes/prod/02-rollout-backend.pod-template.yaml", None) == (
        "prod/Rollout/backend"
    )
    assert objects.at("kubernetes/prod/01-deployment-worker.yaml", 3) == "prod/Deployment/worker"


@pytest.mark.parametrize(
    ("line", "expected"),
    [(1, ""), (3, "[builder]"), (4, "[#1]"), (5, "[#1]"), (None, "")],
)
def test_a_dockerfile_finding_names_its_stage(scan: Path, line: int | None, expected: str) -> None:
    assert findings.Objects(scan).at("service/Dockerfile", line) == f"service/Dockerfile{expected}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (1, ""),
        (4, ":jobs.test"),
        (7, ":jobs.test.steps[0]"),
        (9, ":jobs.test.steps[1]"),
        (13, ":jobs.build.steps[0]"),
    ],
)
def test_a_workflow_finding_names_its_job_and_step(scan: Path, line: int, expected: str) -> None:
    path = ".github/workflows/pipeline.yml"
    assert findings.Objects(scan).at(path, line) == path + expected


def write(reports: Path, tool: str, data: object) -> None:
    reports.mkdir(exist_ok=True)
    (reports / f"{tool}.json").write_text(json.dumps(data))


def test_each_analyzer_report_reads_into_one_form(scan: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    failed = {
        "check_id": "CKV_K8S_43",
        "check_name": "Image should use digest",
        "file_path": "/kubernetes/prod/02-rollout-backend.pod-template.yaml",
        "file_line_range": [1, 30],
    }
    skipped = {**failed, "check_id": "CKV_K8S_35", "check_name": "Secrets as files"}
    write(
        reports,
        "checkov",
        [
            {
                "check_type": "kubernetes",
                "results": {"failed_checks": [failed], "skipped_checks": [skipped]},
            }
        ],
    )
    write(
        reports,
        "trivy",
        {
            "Results": [
                {
                    "Target": "service/Dockerfile",
                    "Type": "dockerfile",
                    "Misconfigurations": [
                        {
                            "ID": "DS-0013",
                            "Message": "RUN should not be used to change directory",
                            "Resolution": "Use WORKDIR",
                            "Status": "FAIL",
                            "CauseMetadata": {"StartLine": 3},
                        },
                        {"ID": "DS-0002", "Message": "passed", "Status": "PASS"},
                    ],
                }
            ]
        },
    )
    write(
        reports,
        "hadolint",
        [{"code": "DL3003", "file": "service/Dockerfile", "line": 3, "message": "Use WORKDIR"}],
    )
    route = [{"Key": "jobs"}, {"Key": "build"}, {"Key": "steps"}, {"Index": 0}]
    write(
        reports,
        "zizmor",
        [
            {
                "ident": "unpinned-uses",
                "desc": "unpinned action reference",
                "url": "https://docs.zizmor.sh/audits/#unpinned-uses",
                "locations": [
                    {
                        "symbolic": {
                            "key": {"Local": {"verbatim_path": ".github/workflows/pipeline.yml"}},
                            "annotation": "not pinned to a hash",
                            "route": {"route": route},
                            "kind": "Primary",
                        },
                        "concrete": {"location": {"start_point": {"row": 12, "column": 8}}},
                    }
                ],
            }
        ],
    )
    write(
        reports,
        "actionlint",
        [
            {
                "message": "shellcheck reported issue in this script: SC2086:info:1:6: Double quote",
                "filepath": ".github/workflows/pipeline.yml",
                "line": 9,
                "kind": "shellcheck",
            }
        ],
    )

    rows = {(f.tool, f.id, f.object) for f in findings.read_all(reports, scan)}

    assert rows == {
        ("checkov", "CKV_K8S_43", "prod/Rollout/backend"),
        ("checkov", "CKV_K8S_35", "prod/Rollout/backend"),
        ("trivy", "DS-0013", "service/Dockerfile[builder]"),
        ("hadolint", "DL3003", "service/Dockerfile[builder]"),
        ("zizmor", "unpinned-uses", ".github/workflows/pipeline.yml:jobs.build.steps[0]"),
        ("actionlint", "shellcheck/SC2086", ".github/workflows/pipeline.yml:jobs.test.steps[1]"),
    }


def test_a_trivy_ignore_comment_is_a_finding(scan: Path, tmp_path: Path) -> None:
    (scan / "service" / "Dockerfile").write_text(DOCKERFILE + "#trivy:ignore:DS-0002\n")
    reports = tmp_path / "reports"
    for tool in findings.READERS:
        write(reports, tool, [] if tool != "trivy" else {"Results": []})

    (found,) = findings.read_all(reports, scan)

    assert (found.tool, found.id, found.object) == (
        "trivy",
        "inline-ignore",
        "service/Dockerfile[#1]",
    )


def test_an_analyzer_without_a_report_is_a_tool_error(scan: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "checkov.json").write_text("Traceback (most recent call last):")

    with pytest.raises(findings.ToolError, match=r"checkov\.json: no JSON report"):
        findings.read_all(reports, scan)


def finding(tool: str, id_: str, obj: str) -> findings.Finding:
    return findings.Finding(tool=tool, id=id_, object=obj, message="m", where="w")


def test_only_a_star_is_a_wildcard_in_a_waiver_object() -> None:
    """Objects hold brackets (a Dockerfile's stage) and `?`: they are literal, not glob classes."""
    staged = finding("checkov", "CKV_DOCKER_7", "service/Dockerfile[builder]")
    other_stage = finding("checkov", "CKV_DOCKER_7", "service/Dockerfiler")
    waiver = check.Waiver(
        tool="checkov", id="CKV_DOCKER_7", object="service/Dockerfile[builder]", reason="r"
    )
    assert waiver.covers(staged)
    assert not waiver.covers(other_stage)
    assert not check.Waiver(
        tool="checkov", id="CKV_DOCKER_7", object="service/Dockerfile?builder?", reason="r"
    ).covers(staged)
    assert check.Waiver(tool="checkov", id="CKV_DOCKER_7", object="*[builder]", reason="r").covers(
        staged
    )


def test_waivers_cover_by_tool_id_and_object_glob_and_stale_ones_fail() -> None:
    found = [
        finding("checkov", "CKV_K8S_35", "prod/Job/backend-migrate-0475dc7eb4"),
        finding("checkov", "CKV_K8S_35", "prod/Deployment/worker"),
        finding("trivy", "KSV-0117", "prod/Deployment/frontend"),
    ]
    waivers = [
        check.Waiver(tool="checkov", id="CKV_K8S_35", object="*/Job/backend-migrate-*", reason="r"),
        check.Waiver(tool="trivy", id="KSV-0117", object="staging/Deployment/frontend", reason="r"),
    ]

    verdict = check.judge(found, waivers)

    assert [f.object for f in verdict.unwaived] == [
        "prod/Deployment/worker",
        "prod/Deployment/frontend",
    ]
    assert verdict.stale == [waivers[1]]
    assert not verdict.ok
    lines = check.report(verdict, "security/waivers.yaml")
    assert (
        lines[0]
        == "[gates] 3 finding(s): 1 waived, 2 not waived (checkov 1, trivy 1); 1 stale waiver(s)"
    )
    assert "FINDING checkov CKV_K8S_35 prod/Deployment/worker: m (w)" in lines
    assert any(
        line.startswith("STALE   trivy KSV-0117 staging/Deployment/frontend") for line in lines
    )


def test_every_finding_waived_passes() -> None:
    found = [finding("hadolint", "DL3025", "service/web/Dockerfile[runtime]")]
    waivers = [
        check.Waiver(tool="hadolint", id="DL3025", object="service/web/*", reason="a reason")
    ]

    assert check.judge(found, waivers).ok


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{tool: checkov}", "expected a list"),
        ("- {tool: checkov, id: X, object: o}", "needs exactly the keys tool, id, object, reason"),
        ("- {tool: checkov, id: X, object: o, reason: ' '}", "needs a non-empty string"),
        ("- {tool: tfsec, id: X, object: o, reason: r}", "unknown tool 'tfsec'"),
        ("- [unclosed", "not YAML"),
    ],
)
def test_a_bad_waiver_file_says_what_is_wrong(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text(text)

    with pytest.raises(check.WaiverFileError, match=words):
        check.load_waivers(path)


def test_the_project_waiver_file_is_valid() -> None:
    for waiver in check.load_waivers(ROOT / "security" / "waivers.yaml"):
        assert len(waiver.reason) > 20, waiver


def test_the_build_record_pins_built_images_and_those_sharing_them_only() -> None:
    def component(repository: str | None, build: bool, ref: str | None = None) -> object:
        image = SimpleNamespace(repository=repository, tag="1.0.0", ref=ref)
        return SimpleNamespace(image=image, build=object() if build else None)

    environment = SimpleNamespace(
        name="prod",
        components={
            "backend": component("app/backend", build=True),
            "worker": component("app/backend", build=False),
            "cache": component(None, build=False, ref="redis:7.2"),
            "other": component("app/unbuilt", build=False),
        },
    )

    record = prepare.build_record(environment)

    assert record["environment"] == "prod"
    assert [i["name"] for i in record["images"]] == ["backend", "worker"]
    assert {i["digest"] for i in record["images"]} == {prepare.PLACEHOLDER_DIGEST}
