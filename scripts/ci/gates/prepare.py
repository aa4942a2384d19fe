"""Lay out what the security gates scan, in one folder with the project's own relative paths.

    SCAN/kubernetes/<env>/NN-kind-name.yaml   every Kubernetes environment, rendered
    SCAN/kubernetes/<env>/NN-rollout-X.pod-template.yaml
                                             each Argo Rollout's pod template as a Deployment
    SCAN/<dockerfile path>                   each Dockerfile an environment builds
    SCAN/.github/workflows/*.yml             the CI workflows
    SCAN/trivy-data/ksv0125.yaml             the registries the environments push to (KSV-0125)
    SCAN/builds/<env>.json                   the build record the manifests are rendered with

The manifests are rendered as a deploy renders them: with `--images` of a build record, so the
project's own images are pinned `tag@sha256:` as `autodevhub deploy` pins them from the pushed
build (a Kubernetes deploy always pushes). The record names every component that builds an
image, or runs one another component builds, with a placeholder digest (sha256:000...); an image
the project does not build (`image.ref`) stays as the environment names it and is checked as is.

No analyzer knows the Argo Rollout CRD, so the Rollout's `spec.template` is copied into a
Deployment of the same name, namespace and selector; its annotation `autodevhub.io/gate-source`
names the Rollout, and findings on it are reported as `<env>/Rollout/<name>`.

Usage: python prepare.py SCAN_DIR   (from the project root, with the project installed)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

SOURCE_ANNOTATION = "autodevhub.io/gate-source"
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
WORKFLOWS = Path(".github/workflows")


def environment_names(root: Path) -> list[str]:
    """Every environment file of the project (files starting with `_` are bases)."""
    return sorted(p.stem for p in (root / "environments").glob("*.yaml") if p.stem[:1] != "_")


def load(root: Path, name: str) -> Any:
    """The typed environment, through the project's own loader."""
    from autodevhub_cli.core.config import load_environment
    from autodevhub_cli.core.project import find_project

    return load_environment(find_project(root), name)


def build_record(environment: Any) -> dict[str, Any]:
    """What `autodevhub build --push` records for `environment`, with placeholder digests."""
    components = environment.components
    # The components that build an image, and those that run one of them (same repository).
    built = {c.image.repository for c in components.values() if c.build is not None and c.image}
    names = [
        name
        for name, c in components.items()
        if c.image is not None and c.image.repository and c.image.repository in built
    ]
    images = [
        {"name": n, "tag": components[n].image.tag, "digest": PLACEHOLDER_DIGEST} for n in names
    ]
    return {"environment": environment.name, "images": images}


def render(root: Path, name: str, out: Path, images: Path) -> None:
    """`autodevhub render --env NAME --images RECORD --out OUT`: one file per object, validated."""
    command = [sys.executable, "-m", "autodevhub_cli", "render", "--env", name]
    command += ["--images", str(images), "--out", str(out)]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"[gates] {' '.join(command[1:])} failed ({done.returncode}):", file=sys.stderr)
        print(done.stderr.rstrip(), file=sys.stderr)
        sys.exit(2)


def pod_template_deployment(rollout: dict[str, Any]) -> dict[str, Any]:
    """A Deployment that runs the Rollout's pod template, for tools that know no Rollout."""
    meta = rollout.get("metadata") or {}
    spec = rollout.get("spec") or {}
    annotations = {SOURCE_ANNOTATION: f"Rollout/{meta.get('name')}"}
    deployment_spec: dict[str, Any] = {"template": spec["template"]}
    for key in ("replicas", "selector", "revisionHistoryLimit"):
        if key in spec:
            deployment_spec[key] = spec[key]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": meta.get("name"),
            **({"namespace": meta["namespace"]} if "namespace" in meta else {}),
            "labels": meta.get("labels") or {},
            "annotations": annotations,
        },
        "spec": deployment_spec,
    }


def extract_rollouts(folder: Path) -> list[Path]:
    """Write the pod template of each Rollout in `folder` beside it; the files written."""
    written = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Rollout":
                if not (doc.get("spec") or {}).get("template"):
                    continue
                target = path.with_name(f"{path.stem}.pod-template.yaml")
                target.write_text(yaml.safe_dump(pod_template_deployment(doc), sort_keys=False))
                written.append(target)
    return written


def copy_into(root: Path, scan: Path, relative: Path) -> None:
    """Copy a project file into the scan folder at the same relative path."""
    target = scan / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / relative, target)


def prepare(root: Path, scan: Path) -> dict[str, list[str]]:
    """Fill `scan`; returns what it holds, by kind, for the log line."""
    kube_envs, registries, dockerfiles = [], set(), set()
    for name in environment_names(root):
        environment = load(root, name)
        for component in environment.components.values():
            if component.build is not None:
                dockerfiles.add(component.build.dockerfile)
        if environment.target == "kubernetes":
            kube_envs.append(name)
            registries.add(environment.registry.url.split("/", 1)[0])
            record = scan / "builds" / f"{name}.json"
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(build_record(environment), indent=2))
            render(root, name, scan / "kubernetes" / name, record)
    rollouts = [p for n in kube_envs for p in extract_rollouts(scan / "kubernetes" / n)]
    for dockerfile in sorted(dockerfiles):
        copy_into(root, scan, Path(dockerfile))
    workflows = sorted(
        p.relative_to(root) for p in (root / WORKFLOWS).glob("*") if p.suffix in {".yml", ".yaml"}
    )
    for workflow in workflows:
        copy_into(root, scan, workflow)
    data = scan / "trivy-data"
    data.mkdir(parents=True, exist_ok=True)
    trusted = {"ksv0125": {"trusted_registries": sorted(registries)}}
    (data / "ksv0125.yaml").write_text(yaml.safe_dump(trusted))
    return {
        "kubernetes": kube_envs,
        "rollouts": [str(p.relative_to(scan)) for p in rollouts],
        "dockerfiles": sorted(dockerfiles),
        "workflows": [str(w) for w in workflows],
    }


def main() -> None:
    """Entry point: `python prepare.py SCAN_DIR`."""
    scan = Path(sys.argv[1]).resolve()
    held = prepare(Path.cwd(), scan)
    (scan / "dockerfiles.txt").write_text("".join(f"{d}\n" for d in held["dockerfiles"]))
    print(
        f"[gates] scanning {', '.join(held['kubernetes'])} (Kubernetes), "
        f"{len(held['rollouts'])} Rollout pod template(s), {', '.join(held['dockerfiles'])}, "
        f"{', '.join(held['workflows'])}"
    )


if __name__ == "__main__":
    main()
