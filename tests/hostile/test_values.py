"""Hostile and mistaken values: environment files, `--set` and `AUTODEVHUB__` variables.

A value is read as it was written (YAML 1.2's scalars: `0777`, `yes`, `12:30` stay text), keeps
its case where the model's key is free text, reaches Compose literally (`$`), and anything the
model or Kubernetes would refuse is refused here, naming the file and line or the override.
Files of a few lines cannot stand for billions of values or nest without end.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hostile.cases import Case, run_case

ENV = "environments/dev.yaml"


def append(path: str, text: str) -> object:
    def setup(project: Path) -> None:
        with (project / path).open("a") as handle:
            handle.write(text)

    return setup


def write(path: str, text: str) -> object:
    def setup(project: Path) -> None:
        (project / path).write_text(text)

    return setup


def replace(path: str, old: str, new: str) -> object:
    def setup(project: Path) -> None:
        text = (project / path).read_text()
        assert old in text, (old, path)
        (project / path).write_text(text.replace(old, new, 1))

    return setup


LAUGHS = """
smoke:
  checks:
    - name: lol
      component: backend
      path: /healthz
      headers:
        a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
        b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
        c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
        d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
        e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
        f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
        g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
        h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""

SCALARS = {
    "0777": "'0777'",
    "007": "'007'",
    "12:30": "'12:30'",
    "0x1F": "'0x1F'",
    "0o17": "'0o17'",
    "yes": "'yes'",
    "no": "'no'",
    "on": "'on'",
    "off": "'off'",
    "y": "y",
    "1_000": "'1_000'",
    "2001-01-01": "'2001-01-01'",
    ".inf": "'.inf'",
    ".nan": "'.nan'",
    "1.30": "'1.30'",
    "true": "'true'",  # an env value is text: a YAML true is "true"
    "42": "'42'",
}

CASES: list[Case] = [
    Case(
        f"set-scalar-{raw}",
        ["render", "--env", "dev", "--set", f"components.backend.env.V={raw}"],
        code=0,
        out_words=[f"V: {shown}"],
    )
    for raw, shown in SCALARS.items()
]
CASES += [
    Case(
        f"env-var-scalar-{raw}",
        ["render", "--env", "dev"],
        env={"AUTODEVHUB__COMPONENTS__BACKEND__ENV__V": raw},
        code=0,
        out_words=[f"V: {shown}"],
    )
    for raw, shown in list(SCALARS.items())[:8]
]
CASES += [
    Case(
        f"file-scalar-{raw}",
        ["render", "--env", "x"],
        setup=write(
            "environments/x.yaml",
            f"extends: dev\ncomponents:\n  backend:\n    env:\n      V: {raw}\n",
        ),
        code=0,
        out_words=[f"V: {shown}"],
    )
    for raw, shown in list(SCALARS.items())[:6]
]
CASES += [
    Case(
        "env-var-key-keeps-its-case",
        ["render", "--env", "dev"],
        env={"AUTODEVHUB__COMPONENTS__BACKEND__ENV__MY_FLAG": "1"},
        code=0,
        out_words=["MY_FLAG: '1'"],
    ),
    Case(
        "env-var-field-folds-case",
        ["render", "--env", "dev"],
        env={"AUTODEVHUB__COMPONENTS__WORKER__REPLICAS": "2"},
        code=0,
        out_words=["replicas: 2"],
    ),
    Case(
        "dollar-reaches-compose-literally",
        ["render", "--env", "dev", "--set", "components.backend.env.PASS=pa$word${HOME}"],
        code=0,
        out_words=["PASS: pa$$word$${HOME}"],
    ),
    Case(
        "replicas-beyond-int32",
        ["validate", "--env", "prod", "--set", "components.frontend.replicas=2147483648"],
        words=["components.frontend.replicas", "2147483647", "--set"],
    ),
    Case(
        "replicas-huge",
        ["render", "--env", "prod", "--set", "components.frontend.replicas=" + "9" * 400],
        words=["components.frontend.replicas"],
    ),
    Case(
        "uid-beyond-int32",
        ["render", "--env", "prod", "--set", "components.frontend.run_as_user=99999999999"],
        words=["components.frontend.run_as_user"],
    ),
    Case(
        "probe-delay-beyond-int32",
        [
            "render",
            "--env",
            "prod",
            "--set",
            "components.frontend.probes.readiness.period_seconds=4294967296",
        ],
        words=["period_seconds"],
    ),
    Case(
        "set-name-moves-nothing",
        ["render", "--env", "dev", "--set", "name=prod"],
        words=["an environment's name is its file's name ('dev')", "--env"],
    ),
    Case(
        "env-var-name-moves-nothing",
        ["deploy", "--env", "dev", "--dry-run"],
        env={"AUTODEVHUB__NAME": "prod"},
        words=["environment variable AUTODEVHUB__NAME", "its file's name ('dev')"],
    ),
    Case(
        "set-into-a-string",
        ["render", "--env", "prod", "--set", "ingress.hosts.0.x=1"],
        words=["ingress.hosts.0 is a str, not a mapping"],
    ),
    Case(
        "set-into-a-string-deeper",
        ["render", "--env", "prod", "--set", "namespace.x.y=1"],
        words=["namespace is a str"],
    ),
    Case(
        "set-into-a-number",
        ["render", "--env", "prod", "--set", "components.frontend.replicas.x=1"],
        words=["components.frontend.replicas is a int"],
    ),
    Case(
        "set-list-index-out-of-range",
        ["render", "--env", "prod", "--set", "ingress.hosts.9=x.example.com"],
        words=["ingress.hosts.9 is not an item of a list of 1"],
    ),
    Case(
        "set-no-equals",
        ["render", "--env", "prod", "--set", "components.frontend.replicas"],
        words=["expected KEY=VALUE"],
    ),
    Case(
        "set-bad-key",
        ["render", "--env", "prod", "--set", "../../etc=1"],
        words=["expected KEY=VALUE"],
    ),
    Case(
        "set-unclosed-flow",
        ["render", "--env", "prod", "--set", "ingress.hosts=[a, b"],
        words=["not a valid YAML scalar or list"],
    ),
    Case(
        "set-deep-flow",
        ["render", "--env", "prod", "--set", "labels.x=" + "[" * 500 + "]" * 500],
        words=["nest more than 64 levels"],
    ),
    Case(
        "set-alias-bomb",
        [
            "render",
            "--env",
            "prod",
            "--set",
            "labels.x=[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], "
            "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], "
            "[*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]]",
        ],
        words=["aliases expand to more than 100,000 values"],
        child=True,
        memory_mib=1024,
    ),
    Case(
        "billion-laughs-in-a-file",
        ["render", "--env", "dev"],
        setup=append(ENV, LAUGHS),
        words=["environments/dev.yaml line", "aliases expand to more than 100,000 values"],
        child=True,
        memory_mib=1024,
        seconds=30,
    ),
    Case(
        "recursive-alias",
        ["render", "--env", "dev"],
        setup=append(ENV, "\nlabels: &x {a: *x}\n"),
        words=["environments/dev.yaml line", "alias"],
        child=True,
    ),
    Case(
        "complex-key",
        ["render", "--env", "dev"],
        setup=append(ENV, "\n? [a, b]\n: 1\n"),
        words=["environments/dev.yaml line", "a key must be plain text"],
    ),
    Case(
        "mapping-as-key",
        ["render", "--env", "dev"],
        setup=append(ENV, "\nlabels:\n  ? {a: 1}\n  : x\n"),
        words=["environments/dev.yaml line", "a key must be plain text"],
    ),
    Case(
        "deep-nesting",
        ["render", "--env", "dev"],
        setup=append(ENV, "\nlabels:\n  x: " + "[" * 900 + "]" * 900 + "\n"),
        words=["environments/dev.yaml line", "nest more than 64 levels"],
        child=True,
    ),
    Case(
        "duplicate-key",
        ["render", "--env", "dev"],
        setup=append(ENV, "\ntarget: compose\n"),
        words=["environments/dev.yaml line", "given twice"],
    ),
    Case(
        "tabs",
        ["render", "--env", "dev"],
        setup=append(ENV, "\nlabels:\n\ta: 1\n"),
        words=["environments/dev.yaml line", "YAML"],
    ),
    Case(
        "python-tag",
        ["render", "--env", "dev"],
        setup=append(ENV, "\nlabels: !!python/object/apply:os.system ['touch PWNED']\n"),
        words=["environments/dev.yaml"],
        missing=["PWNED"],
    ),
    Case(
        "binary-bytes",
        ["render", "--env", "dev"],
        setup=lambda p: (p / ENV).write_bytes(b"target: \xff\xfe\n"),
        words=["environments/dev.yaml", "cannot be read"],
    ),
    Case(
        "top-level-list",
        ["render", "--env", "dev"],
        setup=write(ENV, "- a\n- b\n"),
        words=["environments/dev.yaml", "top level must be a mapping"],
    ),
    Case(
        "extends-cycle",
        ["render", "--env", "dev"],
        setup=write("environments/_base.yaml", "extends: dev\n"),
        words=["extend each other in a cycle"],
    ),
    Case(
        "extends-chain",
        ["render", "--env", "e30"],
        setup=lambda p: [
            (p / f"environments/e{i}.yaml").write_text(
                f"extends: {'dev' if i == 0 else f'e{i - 1}'}\n"
            )
            for i in range(31)
        ],
        words=["environments/e30.yaml extends a chain of more than 16 files"],
    ),
    Case(
        "extends-path",
        ["render", "--env", "dev"],
        setup=replace(ENV, "extends: _base", "extends: ../../etc/passwd"),
        words=["'extends' must name another file in environments/"],
    ),
    Case(
        "extends-not-a-string",
        ["render", "--env", "dev"],
        setup=replace(ENV, "extends: _base", "extends: [a]"),
        words=["'extends' must name another file"],
    ),
    Case(
        "symlink-loop-environment",
        ["render", "--env", "loop"],
        setup=lambda p: os.symlink(p / "environments/loop.yaml", p / "environments/loop.yaml"),
        words=["environments/loop.yaml cannot be read", "symbolic links"],
    ),
    Case(
        "symlink-loop-other-environment",
        ["render", "--env", "dev"],
        setup=lambda p: os.symlink(p / "environments/loop.yaml", p / "environments/loop.yaml"),
        code=0,
    ),
    Case(
        "dangling-other-environment",
        ["render", "--env", "dev"],
        setup=lambda p: os.symlink("/nonexistent", p / "environments/gone.yaml"),
        code=0,
    ),
    Case(
        "dangling-environment",
        ["render", "--env", "gone"],
        setup=lambda p: os.symlink("/nonexistent", p / "environments/gone.yaml"),
        words=["environments/gone.yaml does not exist"],
    ),
    Case(
        "folder-as-environment",
        ["render", "--env", "qa"],
        setup=lambda p: (p / "environments/qa.yaml").mkdir(),
        words=["environments/qa.yaml"],
    ),
    Case(
        "unknown-field-in-base",
        ["render", "--env", "dev"],
        setup=append("environments/_base.yaml", "\nreplicaz: 3\n"),
        words=["replicaz: unknown field", "environments/_base.yaml line"],
    ),
    Case(
        "bad-value-in-base-names-the-base",
        ["render", "--env", "staging"],
        setup=replace(
            "environments/_base.yaml", "app: autodevhub", "app: autodevhub\ncompose_x: 1"
        ),
        words=["compose_x", "environments/_base.yaml line"],
    ),
    Case(
        "bad-value-in-env-names-the-env",
        ["render", "--env", "staging"],
        setup=append("environments/staging.yaml", "\nnamespace: Bad_Name\n"),
        words=["namespace", "environments/staging.yaml line"],
    ),
    Case(
        "new-component-by-set-names-the-set",
        ["render", "--env", "prod", "--set", "components.extra.replicas=1"],
        words=["components.extra", "[--set components.extra.replicas=1]"],
        absent=["environments/prod.yaml line 9]"],
    ),
    Case(
        "dns-label-too-long",
        ["render", "--env", "prod", "--set", "components.frontend.tasks." + "a" * 64 + ".args=[x]"],
        words=["1 to 63"],
    ),
    Case(
        "namespace-too-long",
        ["render", "--env", "prod", "--set", "namespace=" + "a" * 64],
        words=["1 to 63"],
    ),
    Case(
        "negative-replicas",
        ["render", "--env", "prod", "--set", "components.frontend.replicas=-1"],
        words=["components.frontend.replicas"],
    ),
    Case(
        "replicas-as-text",
        ["render", "--env", "prod", "--set", "components.frontend.replicas=three"],
        words=["components.frontend.replicas"],
    ),
    Case(
        "unknown-target",
        ["render", "--env", "dev", "--set", "target=nomad"],
        words=["target"],
    ),
    Case(
        "memory-nonsense",
        ["render", "--env", "prod", "--set", "components.frontend.resources.limits.memory=lots"],
        words=["memory quantity"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_value(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)
