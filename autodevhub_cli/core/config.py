"""Loading an environment: its file (and the bases it extends), env vars and `--set`, typed.

Precedence, highest first: `--set a.b=value` > `AUTODEVHUB__A__B=value` > environment file >
the bases it `extends` > model defaults.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from autodevhub_cli.core.errors import ConfigError
from autodevhub_cli.core.project import Project

if TYPE_CHECKING:
    from autodevhub_cli.core.environment import Environment
    from autodevhub_cli.core.validate import VerdictCache

ENV_PREFIX = "AUTODEVHUB__"
_SET_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_12_resolvers() -> dict[str | None, list[tuple[str, re.Pattern[str]]]]:
    """YAML 1.2's core schema instead of PyYAML's YAML 1.1: `yes`, `on`, `0777`, `0x1F` and
    `12:30` stay the text that was written (1.1 reads them as true, 511, 31 and 750), as they
    do for Kubernetes and Compose; true/false, null, decimal integers and floats keep their
    types."""
    table: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}
    rules = [
        ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
        ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9]*)$", "-+0123456789"),
        (
            "tag:yaml.org,2002:float",
            r"^[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)\.[0-9]*"
            r"|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?[eE][-+]?[0-9]+)(?:[eE][-+]?[0-9]+)?$",
            "-+.0123456789",
        ),
    ]
    for tag, pattern, first in rules:
        regexp = re.compile(pattern)
        for char in first:
            table.setdefault(char or None, []).append((tag, regexp))
    # Merge keys (<<) and `=` as PyYAML's loaders resolve them.
    for char in ("<", "="):
        table[char] = list(yaml.SafeLoader.yaml_implicit_resolvers.get(char, []))
    return table


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader with YAML 1.2's scalars, refusing a key given twice in one mapping (YAML
    would keep the last) and aliases that expand past a bound (a few lines of anchors can stand
    for billions of values)."""

    yaml_implicit_resolvers = _yaml_12_resolvers()

    def construct_document(self, node: yaml.Node) -> object:
        _check_size(node)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: dict[str, int] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be plain text, not a list or a mapping",
                    key_node.start_mark,
                )
            key = key_node.value
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"the key {key!r} is given twice in one mapping (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# What one YAML document may stand for once its aliases are expanded, and how deep it may nest:
# far beyond any environment file, far below what fills memory or the stack.
MAX_VALUES = 100_000
MAX_DEPTH = 64
MAX_EXTENDS = 16


def _check_size(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand past MAX_VALUES values or that nests deeper than
    MAX_DEPTH (counted over the node graph, each shared node once)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise yaml.constructor.ConstructorError(
                None, None, f"the values nest more than {MAX_DEPTH} levels deep", node.start_mark
            )
        if isinstance(node, yaml.ScalarNode):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to a value that contains it", node.start_mark
            )
        open_nodes.add(id(node))
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else node.value
        )
        total = 1 + sum(size(child, depth + 1) for child in children)
        open_nodes.discard(id(node))
        if total > MAX_VALUES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"its aliases expand to more than {MAX_VALUES:,} values",
                node.start_mark,
            )
        sizes[id(node)] = total
        return total

    size(root, 0)


@dataclass
class Override:
    """One value set from outside the files: a `--set` flag or an environment variable."""

    path: tuple[str, ...]
    value: object
    source: str
    fold_case: bool = False


@dataclass
class LoadedValues:
    """Merged raw values of an environment, with what each file contributed (for error messages)."""

    name: str
    data: dict[str, object]
    files: list[Path] = field(default_factory=list)
    overrides: list[Override] = field(default_factory=list)


def read_yaml_mapping(path: Path, project_root: Path | None = None) -> dict[str, object]:
    """Read a YAML file whose top level is a mapping; errors name the file and line."""
    shown = _display(path, project_root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{shown} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{shown} cannot be read: {exc}.", hint="Check the file's permissions and encoding."
        ) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            f"{shown}{where}: YAML syntax error: {problem}.",
            hint="Fix the YAML at that spot (indentation, a missing ':' or an unclosed quote).",
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: YAML error: {exc}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{shown}: the top level must be a mapping of fields, not a {type(data).__name__}.",
            hint="Start the file with fields such as 'target:' and 'namespace:'.",
        )
    return data


def deep_merge(base: Mapping[str, object], top: Mapping[str, object]) -> dict[str, object]:
    """Merge mappings recursively; `top` wins; lists and scalars are replaced; `null` removes."""
    merged = dict(base)
    for key, value in top.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(current := merged.get(key), Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def parse_set_expression(expression: str, source: str | None = None) -> Override:
    """Parse `a.b.c=value`; the value is read as a YAML scalar or flow collection. Messages
    never show an environment variable's value, nor a secret-looking one (core.redact)."""
    from autodevhub_cli.core.redact import MASK, is_secret_name, redact_text

    key, sep, raw = expression.partition("=")
    key = key.strip()
    shown = f"{key}={MASK if is_secret_name(key) else redact_text(raw)}" if sep else expression
    if not sep or not _SET_KEY.match(key):
        raise ConfigError(
            f"Invalid {source or f'--set expression {shown!r}'}: expected KEY=VALUE with a "
            "dotted KEY such as components.web.replicas=3.",
        )
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
    except yaml.YAMLError as exc:
        # The parser's words, never the text it quotes (the value may be a secret).
        problem = getattr(exc, "problem", None)
        why = f" ({problem})" if problem and "'" not in problem and '"' not in problem else ""
        raise ConfigError(
            f"Invalid value in {source or f'--set {shown!r}'}: it is not a valid YAML scalar "
            f"or list{why}" + (" (the value is not shown: it may be a secret)." if source else "."),
            hint="Quote the value, e.g. --set 'key=\"a: b\"'.",
        ) from None
    if isinstance(value, float):
        value = raw.strip()  # 1.30 would become 1.3: keep the text, the model coerces numbers
    return Override(tuple(key.split(".")), value, source or f"--set {shown}")


def env_overrides(environ: Mapping[str, str]) -> list[Override]:
    """Overrides from `AUTODEVHUB__A__B=value` environment variables, sorted for determinism."""
    found = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            dotted = ".".join(name[len(ENV_PREFIX) :].split("__"))
            override = parse_set_expression(
                f"{dotted}={environ[name]}", source=f"environment variable {name}"
            )
            override.fold_case = True
            found.append(override)
    return found


def _apply(data: dict[str, object], override: Override) -> None:
    node: object = data
    for depth, segment in enumerate(override.path):
        last = depth == len(override.path) - 1
        so_far = ".".join(override.path[: depth + 1])
        if isinstance(node, list):
            # A list item by its index, such as smoke.checks.2.latency.budget_ms.
            if not segment.isdigit() or int(segment) >= len(node):
                raise ConfigError(
                    f"Cannot apply {override.source}: {so_far} is not an item of a list of "
                    f"{len(node)}.",
                    hint="Use an index from 0, or set the whole list.",
                )
            index = int(segment)
            if last:
                node[index] = override.value
                return
            node = node[index]
            continue
        if not isinstance(node, dict):
            raise ConfigError(
                f"Cannot apply {override.source}: {'.'.join(override.path[:depth])} is a "
                f"{type(node).__name__}, not a mapping of fields.",
                hint="Set the field itself, or check the dotted path.",
            )
        # Environment variables are upper-case; match existing keys case-insensitively, and
        # lower-case a new one only where it names a model field (an `env` entry, a label or a
        # header keeps the case it was given).
        key = next((k for k in node if str(k).lower() == segment.lower()), None)
        if key is None:
            folded = override.fold_case and not _free_key(override.path[:depth])
            key = segment.lower() if folded else segment
        if last:
            node[key] = override.value
            return
        child = node.setdefault(key, {})
        if not isinstance(child, (dict, list)):
            raise ConfigError(
                f"Cannot apply {override.source}: {so_far} is a {type(child).__name__}, "
                "not a mapping of fields.",
                hint="Set the field itself, or check the dotted path.",
            )
        node = child


def _free_key(parent: tuple[str, ...]) -> bool:
    """Whether the key under `parent` is free text (a key of a dict field of the environment
    model, such as an env variable's name, or anything under `values`), not a field name."""
    import typing

    from autodevhub_cli.core.environment import MISSING, DnsLabel, annotation_at

    current = annotation_at(parent)
    if current is MISSING:
        return False
    if current is Any:
        return True  # free-form values keep their keys as written
    # Component, task and volume names are DNS labels, lower-case by rule: those fold.
    return typing.get_origin(current) is dict and typing.get_args(current)[0] is not DnsLabel


def load_values(
    project: Project,
    name: str,
    sets: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> LoadedValues:
    """Read an environment's file and its bases and apply env-var and `--set` overrides."""
    available = project.environment_names()
    if name not in available:
        listed = ", ".join(available) if available else "none"
        raise ConfigError(
            f"Unknown environment {name!r}: there is no "
            f"{_display(project.environment_file(name), project.root)}.",
            hint=f"Available environments: {listed}. Create environments/{name}.yaml or pick "
            "one of those.",
        )
    files: list[Path] = []
    data = _read_with_bases(project, project.environment_file(name), files, ())
    if "name" in data and data["name"] != name:
        raise ConfigError(
            f"{_display(files[0], project.root)}: field 'name' is {data['name']!r} but the file "
            f"is the {name!r} environment.",
            hint="Remove 'name' from the file: it comes from the file name.",
        )
    data["name"] = name
    overrides = env_overrides(os.environ if environ is None else environ)
    overrides += [parse_set_expression(s) for s in sets]
    for override in overrides:
        if [p.lower() for p in override.path] == ["name"]:
            raise ConfigError(
                f"Cannot apply {override.source}: an environment's name is its file's name "
                f"({name!r}); it names its records, its lock and its Compose project.",
                hint="Run the command with --env for the other environment, not --set name.",
            )
        _apply(data, override)
    return LoadedValues(name=name, data=data, files=files, overrides=overrides)


def _read_with_bases(
    project: Project, path: Path, files: list[Path], chain: tuple[Path, ...]
) -> dict[str, object]:
    if path in chain:
        cycle = " -> ".join(_display(p, project.root) for p in (*chain, path))
        raise ConfigError(f"Environment files extend each other in a cycle: {cycle}.")
    if len(chain) >= MAX_EXTENDS:
        raise ConfigError(
            f"{_display(chain[0], project.root)} extends a chain of more than {MAX_EXTENDS} "
            f"files (it reached {_display(path, project.root)}).",
            hint="Merge some of the bases: a few levels (such as _base, then the environment) "
            "are easier to read.",
        )
    data = read_yaml_mapping(path, project.root)
    files.insert(0, path)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str) or not re.match(r"^[A-Za-z0-9_.-]+$", base):
        raise ConfigError(
            f"{_display(path, project.root)}: 'extends' must name another file in environments/ "
            f"(such as _base), not {base!r}."
        )
    base_path = project.environments_dir / f"{base}.yaml"
    if not base_path.is_file():
        raise ConfigError(
            f"{_display(path, project.root)}: extends {base!r} but "
            f"{_display(base_path, project.root)} does not exist.",
            hint="Fix the 'extends' field or create that base file.",
        )
    return deep_merge(_read_with_bases(project, base_path, files, (*chain, path)), data)


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)


def load_environment(
    project: Project,
    name: str,
    sets: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Environment:
    """Load and type-check an environment; every bad field is reported with where it came from."""
    from pydantic import ValidationError as PydanticValidationError

    from autodevhub_cli.core.environment import Environment

    values = load_values(project, name, sets, environ)
    try:
        environment = Environment.model_validate(values.data)
    except PydanticValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = _unknown_field(tuple(str(p) for p in error["loc"]))
            elif error["type"] == "missing":
                message = "required field is missing"
            problems.append((tuple(str(p) for p in error["loc"]), message))
        raise _invalid(name, values, project, problems) from None
    problems = environment.problems() + _values_problems(project, environment.values)
    if problems:
        raise _invalid(name, values, project, problems)
    return environment


VALUES_SCHEMA = "values.schema.json"


def _values_problems(
    project: Project, data: dict[str, object]
) -> list[tuple[tuple[str, ...], str]]:
    """The project's own `values` checked against environments/values.schema.json, when the
    project ships one (a JSON Schema, any draft jsonschema knows; 2020-12 when it names none).

    Values that passed against the same schema bytes and jsonschema version before are not
    checked again (the validation verdict cache): a render whose `values` did not change does
    not import jsonschema."""
    path = project.environments_dir / VALUES_SCHEMA
    if not path.is_file():
        return []
    where = f"environments/{VALUES_SCHEMA}"
    checked: dict[str, object] = {"values": data}
    cache = _values_verdicts(path)
    try:
        if cache is not None and cache.known_good(checked):
            return []
    except (TypeError, ValueError):
        cache = None  # values JSON cannot key (a YAML date): checked every time
    import jsonschema

    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{where} is not valid JSON: {exc}.",
            hint="Fix the file (a JSON Schema for the environments' `values`), or remove it.",
        ) from None
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.path) or "(top level)"
        raise ConfigError(
            f"{where} is not a valid JSON Schema: at {at}: {exc.message}.",
            hint="Fix the schema (https://json-schema.org), or remove the file.",
        ) from None
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.path])
    if not errors and cache is not None:
        cache.remember(checked)
    return [
        (("values", *(str(p) for p in error.path)), f"{error.message} (checked by {where})")
        for error in errors
    ]


def _values_verdicts(schema_path: Path) -> VerdictCache | None:
    """The verdict cache for values checked against this schema file by this jsonschema (None
    when the file cannot be read: the check that follows names it)."""
    import hashlib
    import importlib.util

    from autodevhub_cli.core.validate import VerdictCache

    spec = importlib.util.find_spec("jsonschema")
    origin = spec.origin if spec and spec.origin else ""
    try:
        engine = f"{origin}:{os.stat(origin).st_mtime_ns}" if origin else "missing"
        schema = hashlib.sha256(schema_path.read_bytes()).hexdigest()
    except OSError:
        return None
    return VerdictCache(f"values-{schema}-{engine}")


def _unknown_field(loc: tuple[str, ...]) -> str:
    """The message for a field the model does not have, listing the fields that are valid
    where it stands."""
    from autodevhub_cli.core.environment import fields_at

    fields = fields_at(loc[:-1])
    known = f"; valid here: {', '.join(fields)}" if fields else ""
    return f"unknown field (check its spelling){known}"


def _invalid(
    name: str, values: LoadedValues, project: Project, problems: list[tuple[tuple[str, ...], str]]
) -> ConfigError:
    lines = [
        f"{'.'.join(path) or '(top level)'}: {message} [{_source_of(values, path, project.root)}]"
        for path, message in problems
    ]
    return ConfigError(
        f"Environment {name!r} has {len(lines)} invalid field"
        f"{'s' if len(lines) != 1 else ''}:\n" + "\n".join(f"  - {p}" for p in lines),
        hint="Fix these fields in the environment file (or the --set / AUTODEVHUB__ override "
        "named) and run the command again.",
    )


def _source_of(values: LoadedValues, path: tuple[str, ...], root: Path) -> str:
    """Where the value at `path` came from: an override, or a file and line. The deepest match
    wins: the override or file that wrote the most of `path`, later ones on a tie (they win the
    merge)."""
    path = tuple(p for p in path if p != "[key]")
    found: list[tuple[int, int, str]] = []  # (depth matched, order, where)
    for order, file in enumerate(values.files):
        line, depth = _line_of(file, path)
        if line is not None:
            found.append((depth, order, f"{_display(file, root)} line {line}"))
    for order, override in enumerate(values.overrides, start=len(values.files)):
        common = 0
        for mine, theirs in zip(override.path, path, strict=False):
            if mine.lower() != theirs.lower():
                break
            common += 1
        if common == len(override.path) or common == len(path):
            found.append((len(path) + 1, order, override.source))  # it set this value or a parent
        elif common:
            found.append((common, order, override.source))
    if not found:
        return _display(values.files[-1], root) if values.files else "defaults"
    return max(found)[2]


def _line_of(file: Path, path: tuple[str, ...]) -> tuple[int | None, int]:
    """Line of the deepest key along `path` in a YAML file, and how many segments matched."""
    try:
        node = yaml.compose(file.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return None, 0
    line = None
    for depth, segment in enumerate(path):
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == segment:
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line, depth
        elif (
            isinstance(node, yaml.SequenceNode)
            and segment.isdigit()
            and int(segment) < len(node.value)
        ):
            node = node.value[int(segment)]
            line = node.start_mark.line + 1
        else:
            return line, depth
    return line, len(path)
