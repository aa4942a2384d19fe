"""Property tests: generated YAML, `--set` expressions and templates thrown at the loader and the
renderer. Whatever they are, the answer is a rendered, valid output or an error the user can
act on (exit 2); never another exception, never a file written outside the project's output.

Each example runs in this process through the core's `render_environment`, what `render` and
`validate` call; hypothesis's deadline bounds each example's time (a generous bound against a
hang, not a speed measurement). Inputs that could eat memory or hang are the child-process
cases of the other files here.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autodevhub_cli.core.errors import AutodevhubError, reported
from autodevhub_cli.core.pipeline import RenderRequest, render_environment
from tests.helpers import copy_project

BOUND = settings(
    max_examples=60,
    deadline=10_000,  # ms: far above any render (about 0.1 s), far below a hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)

_TEMPLATE = Path(tempfile.mkdtemp(prefix="hostile-project-"))
copy_project(_TEMPLATE / "p")


@contextmanager
def project() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        shutil.copytree(_TEMPLATE / "p", folder / "p")
        yield folder / "p"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def outcome(root: Path, env: str = "prod", sets: tuple[str, ...] = ()) -> int:
    """0 for a rendered and valid output, else the exit code of the error raised; any other
    exception fails the test (it would be an "Unexpected error")."""
    try:
        render_environment(RenderRequest(environment=env, project_dir=root, sets=sets, environ={}))
    except AutodevhubError as exc:
        message, code = reported(exc)
        assert message.strip(), "an error says what is wrong"
        assert "Traceback" not in message
        return code
    return 0


# --- YAML ---------------------------------------------------------------------------------

scalar = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(["0777", "yes", "12:30", "0x1F", "~", "!!binary", "*a", "&a", "<<", "null"]),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "namespace",
    "target",
    "replicas",
    "components",
    "ingress",
    "smoke",
    "labels",
    "backups",
    "kubernetes",
    "registry",
    "build",
    "monitoring",
    "network_policies",
    "rollout",
    "releases",
    "compose",
    "extends",
]


@BOUND
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), value, max_size=4))
def test_any_yaml_values_in_an_environment_file(values: dict[str, object]) -> None:
    with project() as root:
        text = yaml.safe_dump(values, allow_unicode=True)
        (root / "environments" / "x.yaml").write_text("extends: prod\n" + text)
        assert outcome(root, "x") in (0, 2)


@BOUND
@given(st.text(max_size=300))
def test_any_text_as_an_environment_file(text: str) -> None:
    with project() as root:
        (root / "environments" / "x.yaml").write_text(text)
        assert outcome(root, "x") in (0, 2)


@BOUND
@given(st.binary(max_size=200))
def test_any_bytes_as_an_environment_file(data: bytes) -> None:
    with project() as root:
        (root / "environments" / "x.yaml").write_bytes(b"extends: prod\n" + data)
        assert outcome(root, "x") in (0, 2)


# --- --set --------------------------------------------------------------------------------

PATHS = [
    "replicas",
    "namespace",
    "components.frontend.replicas",
    "components.frontend.env.X",
    "components.frontend.env",
    "components.backend.probes.readiness.path",
    "components.backend.strategy",
    "components.frontend.resources.limits.memory",
    "components.frontend.image.tag",
    "ingress.hosts",
    "ingress.hosts.0",
    "smoke.checks",
    "smoke.checks.0.path",
    "labels.a",
    "backups.schedule",
    "monitoring.interval",
    "kubernetes.version",
    "name",
]
segment = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)
key = st.one_of(
    st.sampled_from(PATHS),
    st.builds(lambda p, s: f"{p}.{s}", st.sampled_from(PATHS), segment),
    st.lists(segment, min_size=1, max_size=5).map(".".join),
    st.text(max_size=20),
)
raw = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["[", "{", "]", "[a, [b, {c: d}]]", "&a [*a]", "!!python/none", "'", '"']),
    value.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()),
)


@BOUND
@given(st.lists(st.builds(lambda k, v: f"{k}={v}", key, raw) | st.text(max_size=30), max_size=4))
def test_any_set_expressions(sets: list[str]) -> None:
    with project() as root:
        assert outcome(root, "prod", tuple(sets)) in (0, 2)


# --- templates ----------------------------------------------------------------------------

atom = st.sampled_from(
    [
        "env",
        "env.name",
        "env.components",
        "env.components.backend",
        "env.components.backend.replicas",
        "env.namespace",
        "1",
        "0",
        "'x'",
        "[]",
        "{}",
        "none",
        "range(5)",
        "cycler",
        "joiner",
        "lipsum",
        "namespace",
        "self",
        "loop",
        "undefined_name",
    ]
)
attribute = st.sampled_from(
    [
        "__class__",
        "__init__",
        "__globals__",
        "__mro__",
        "__subclasses__()",
        "__dict__",
        "__self__",
        "mro()",
        "append(1)",
        "update({})",
        "pop()",
        "keys()",
        "items()",
        "name",
        "replicas",
        "model_dump()",
        "model_copy()",
        "port_of('http')",
        "gi_frame",
        "f_globals",
    ]
)
operator = st.sampled_from([" + ", " - ", " * ", " / ", " // ", " % ", " ** ", " ~ ", " and "])
filter_ = st.sampled_from(
    ["", "| to_yaml", "| to_json", "| from_json", "| short_hash", "| length", "| list", "| int"]
)


@st.composite
def expression(draw: st.DrawFn) -> str:
    text = draw(atom)
    for _ in range(draw(st.integers(0, 3))):
        text += "." + draw(attribute)
    if draw(st.booleans()):
        text += draw(operator) + draw(atom)
    return f"({text}) {draw(filter_)}"


@st.composite
def template(draw: st.DrawFn) -> str:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: hostile", "data:"]
    for n in range(draw(st.integers(1, 4))):
        lines.append(f"  k{n}: '{{{{ {draw(expression())} }}}}'")
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["{% for x in range(3) %}", "{% if env %}", "{{"])))
    return "\n".join(lines) + "\n"


@BOUND
@given(template())
def test_any_template_expression(text: str) -> None:
    with project() as root:
        (root / "templates" / "kubernetes" / "zz-hostile.yaml.j2").write_text(text)
        before = sorted(p.name for p in root.iterdir())
        assert outcome(root, "prod") in (0, 2)
        assert sorted(p.name for p in root.iterdir()) == before, "a template wrote a file"
