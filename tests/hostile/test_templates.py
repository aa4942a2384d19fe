"""Hostile templates: an offline render runs no code, reads no file outside templates/, never
hangs, and names the template and line of every mistake (exit 2, never "Unexpected error").

A pull request's templates are rendered in CI next to its secrets (`render`, `validate`,
`diff`): Jinja's immutable sandbox is what stands between them and the runner, as Helm's
template engine cannot run commands or read files either.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hostile.cases import Case, run_case

T = "templates/kubernetes/zz-hostile.yaml.j2"


def template(text: str, name: str = T) -> object:
    def setup(project: Path) -> None:
        (project / name).write_text(text)

    return setup


def pwned(command: str) -> str:
    return "{{ " + command.replace("CMD", "'touch {project}/PWNED'") + " }}"


ESCAPES = [
    "cycler.__init__.__globals__.os.popen(CMD).read()",
    "joiner.__init__.__globals__.os.system(CMD)",
    "namespace.__init__.__globals__.os.system(CMD)",
    "lipsum.__globals__['os'].popen(CMD).read()",
    "range.__self__.__import__('os').system(CMD)",
    "''.__class__.__mro__[1].__subclasses__()",
    "env.__class__.__init__.__globals__['sys'].modules['os'].system(CMD)",
    "env.__dict__",
    "(1).__class__.__base__.__subclasses__()",
    "self.__init__.__globals__",
    "env.components.__class__.__mro__",
    "[].append.__self__",
    "{}.update({'a': 1})",
    "[1, 2].append(3)",
    "env.components.pop('backend')",
]

CASES: list[Case] = [
    Case(
        f"escape-{n}",
        ["render", "--env", "prod"],
        setup=template(pwned(expr).replace("{project}", "PROJECT")),
        words=["templates/kubernetes/zz-hostile.yaml.j2 line 1"],
        missing=["PWNED"],
    )
    for n, expr in enumerate(ESCAPES)
]


def _fix_project(case: Case) -> Case:
    """The escapes above name the project's folder: put it in once the copy exists."""
    original = case.setup

    def setup(project: Path) -> None:
        assert original is not None
        original(project)
        path = project / T
        path.write_text(path.read_text().replace("PROJECT", str(project)))

    return Case(**{**case.__dict__, "setup": setup})


CASES = [_fix_project(c) for c in CASES]


def linked(target: str, name: str = "templates/kubernetes/zz-link.yaml.j2") -> object:
    def setup(project: Path) -> None:
        os.symlink(target, project / name)

    return setup


def _secret_elsewhere(project: Path) -> None:
    (project.parent / "secret.txt").write_text("s3cr3t-value-outside\n")
    os.symlink(project.parent / "secret.txt", project / "templates/kubernetes/zz-leak.yaml.j2")


def _include_link(project: Path) -> None:
    (project.parent / "other.j2").write_text("leaked: s3cr3t-value-outside\n")
    os.symlink(project.parent / "other.j2", project / "templates/kubernetes/_outside.j2")
    (project / T).write_text('{% include "kubernetes/_outside.j2" %}\n')


def _fifo(name: str) -> object:
    def setup(project: Path) -> None:
        os.mkfifo(project / name)

    return setup


def _loop(project: Path) -> None:
    os.symlink(project / "templates/kubernetes", project / "templates/kubernetes/loop")


CASES += [
    Case(
        "link-outside-rendered",
        ["render", "--env", "prod"],
        setup=_secret_elsewhere,
        words=["templates/kubernetes/zz-leak.yaml.j2 is a link to", "outside the project's"],
        absent=["s3cr3t-value-outside"],
    ),
    Case(
        "link-outside-included",
        ["render", "--env", "prod"],
        setup=_include_link,
        words=["templates/kubernetes/_outside.j2 is a link to", "outside"],
        absent=["s3cr3t-value-outside"],
    ),
    Case(
        "link-to-etc-passwd",
        ["validate", "--env", "prod"],
        setup=linked("/etc/passwd"),
        words=["is a link to /etc/passwd"],
        absent=["root:x:0:0"],
    ),
    Case(
        "include-absolute",
        ["render", "--env", "prod"],
        setup=template('{% include "/etc/passwd" %}\n'),
        words=["zz-hostile.yaml.j2", "/etc/passwd"],
        absent=["root:x:0:0"],
    ),
    Case(
        "include-dotdot",
        ["render", "--env", "prod"],
        setup=template('{% include "../environments/prod.yaml" %}\n'),
        words=["zz-hostile.yaml.j2", "../environments/prod.yaml"],
    ),
    Case(
        "include-dotdot-through-the-library",
        ["render", "--env", "prod"],
        setup=template('{% include "autodevhub/../core/config.py" %}\n'),
        words=["zz-hostile.yaml.j2", "autodevhub/../core/config.py"],
        absent=["def load_environment"],
    ),
    Case(
        "include-missing",
        ["render", "--env", "prod"],
        setup=template('{% include "kubernetes/nope.j2" %}\n'),
        words=["zz-hostile.yaml.j2 line 1", "'kubernetes/nope.j2'", "does not exist"],
    ),
    Case(
        "fifo-as-template",
        ["render", "--env", "prod"],
        setup=_fifo("templates/kubernetes/zz-fifo.yaml.j2"),
        words=["templates/kubernetes/zz-fifo.yaml.j2 is not a regular file"],
        child=True,
        seconds=30,
    ),
    Case(
        "fifo-beside-templates",
        ["render", "--env", "prod"],
        setup=_fifo("templates/kubernetes/notes.fifo"),
        code=0,
        child=True,
        seconds=30,
    ),
    Case(
        "fifo-in-environments",
        ["render", "--env", "prod"],
        setup=_fifo("environments/notes.fifo"),
        code=0,
        child=True,
        seconds=30,
    ),
    Case(
        "link-loop-in-templates",
        ["render", "--env", "prod"],
        setup=_loop,
        code=0,
        child=True,
        seconds=30,
    ),
    Case(
        "dangling-link-beside-templates",
        ["render", "--env", "prod"],
        setup=linked("/nonexistent/file", "templates/kubernetes/dangling.txt"),
        code=0,
    ),
    Case(
        "dangling-link-as-template",
        ["render", "--env", "prod"],
        setup=linked("/nonexistent/file"),
        words=["zz-link.yaml.j2"],
    ),
    Case(
        "division-by-zero",
        ["render", "--env", "prod"],
        setup=template("a: 1\nb: {{ 1 / 0 }}\n"),
        words=["templates/kubernetes/zz-hostile.yaml.j2 line 2", "ZeroDivisionError"],
    ),
    Case(
        "type-error",
        ["render", "--env", "prod"],
        setup=template("a: {{ 'x' + 1 }}\n"),
        words=["templates/kubernetes/zz-hostile.yaml.j2 line 1", "TypeError"],
    ),
    Case(
        "recursion",
        ["render", "--env", "prod"],
        setup=template("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\na: {{ f(0) }}\n"),
        words=["zz-hostile.yaml.j2", "recurses without end"],
        child=True,
    ),
    Case(
        "self-include",
        ["render", "--env", "prod"],
        setup=template('{% include "kubernetes/zz-hostile.yaml.j2" %}\n'),
        words=["zz-hostile.yaml.j2", "recurses without end"],
        child=True,
    ),
    Case(
        "attribute-of-undefined",
        ["render", "--env", "prod"],
        setup=template("a: {{ env.components.nope.port }}\n"),
        words=["templates/kubernetes/zz-hostile.yaml.j2 line 1"],
    ),
    Case(
        "syntax-error",
        ["render", "--env", "prod"],
        setup=template("a: {{ env.name \n"),
        words=["templates/kubernetes/zz-hostile.yaml.j2", "template syntax error"],
    ),
    Case(
        "huge-output",
        ["render", "--env", "prod"],
        setup=template("a: '{{ 'x' * 10 ** 10 }}'\n"),
        words=["zz-hostile.yaml.j2 line 1"],
        child=True,
        memory_mib=1024,
    ),
    Case(
        "string-repeat",
        ["render", "--env", "prod"],
        setup=template("a: '{{ 'ab' * 10000000 }}'\n"),
        words=["zz-hostile.yaml.j2 line 1", "more than 1,000,000"],
        child=True,
    ),
    Case(
        "list-repeat",
        ["render", "--env", "prod"],
        setup=template("a: {{ ([1] * 100000000) | length }}\n"),
        words=["zz-hostile.yaml.j2 line 1", "more than 1,000,000"],
        child=True,
    ),
    Case(
        "huge-power",
        ["render", "--env", "prod"],
        setup=template("a: {{ 9 ** 99999999 }}\n"),
        words=["zz-hostile.yaml.j2 line 1", "bits"],
        child=True,
    ),
    Case(
        "huge-range",
        ["render", "--env", "prod"],
        setup=template("a: {{ range(10 ** 12) | list | length }}\n"),
        words=["zz-hostile.yaml.j2 line 1", "Range too big"],
        child=True,
    ),
    Case(
        "unknown-filter",
        ["render", "--env", "prod"],
        setup=template("a: {{ env.name | shell }}\n"),
        words=["zz-hostile.yaml.j2", "shell"],
    ),
    Case(
        "bad-json-from-template",
        ["render", "--env", "prod"],
        setup=template("a: {{ ('{not json' | from_json) }}\n"),
        words=["zz-hostile.yaml.j2", "invalid JSON"],
    ),
    Case(
        "validate-runs-nothing",
        ["validate", "--env", "prod"],
        setup=template(pwned("cycler.__init__.__globals__.os.popen(CMD).read()")),
        words=["sandbox"],
        missing=["PWNED"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_template(case: Case, tmp_path: Path) -> None:
    run_case(case, tmp_path)
