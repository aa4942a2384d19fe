"""Secrets: write values into the environment's Kubernetes Secret through the API, restart the
workloads that use it (a checksum annotation on their pod template), and verify them.

Values are taken from stdin or a file, never echoed: messages, records and logs name only the
Secret and its keys.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autodevhub_cli.core.errors import ConfigError, SmokeCheckError

if TYPE_CHECKING:
    from autodevhub_cli.core.adapters.kube import Kube
    from autodevhub_cli.core.environment import Environment
    from autodevhub_cli.core.smoke import SmokeResult
    from autodevhub_cli.core.targets import Target
    from autodevhub_cli.core.targets.kubernetes import KubernetesTarget

Reporter = Callable[[str, str], None]
FIELD_MANAGER = "autodevhub-secrets"
ANNOTATION = "autodevhub.io/secret-checksum-{}"


# A Secret key: what Kubernetes accepts (and a file name Compose can mount).
_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


def parse_pairs(text: str, source: str) -> dict[str, str]:
    """`key=value` lines (blank lines and `#` comments skipped); the value is kept verbatim.
    A line that is not KEY=VALUE is named by its number, never shown: it is often a value
    pasted without its key."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"{source} line {number}: expected KEY=VALUE (the value itself is not shown).",
            )
        if not _KEY.match(key):
            raise ConfigError(
                f"{source} line {number}: what comes before the first '=' is not a key name "
                "(letters, digits, '-', '_' and '.'); it is not shown, in case it is a value "
                "pasted where the key belongs.",
                hint="Write each line as KEY=VALUE, such as api-key=..., with the key first.",
            )
        values[key] = value
    if not values:
        raise ConfigError(f"{source} holds no KEY=VALUE line.")
    return values


@dataclass
class SecretChange:
    """What `secrets set` changed (never the values)."""

    secret: str
    namespace: str
    keys: list[str]
    created: bool
    restarted: list[str] = field(default_factory=list)
    smoke_ok: bool | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return dict(self.__dict__)


def _kubernetes(target: Target | None) -> KubernetesTarget:
    """The target of an environment whose target is not compose: `target_for` makes a
    KubernetesTarget for each of them."""
    from autodevhub_cli.core.targets.kubernetes import KubernetesTarget

    if not isinstance(target, KubernetesTarget):
        raise TypeError(f"expected the environment's KubernetesTarget, not {target!r}")
    return target


def referenced_keys(environment: Environment) -> dict[str, set[str]]:
    """Secret name -> keys the environment's workloads and jobs reference."""
    found: dict[str, set[str]] = {}
    for ref in environment.secret_refs():
        found.setdefault(ref.secret, set()).add(ref.key)
    backup_ref = environment.backups.database_url
    if environment.backups.enabled and backup_ref is not None:
        found.setdefault(backup_ref.secret, set()).add(backup_ref.key)
    return found


def missing_secrets(
    environment: Environment, target: Target | None, only: str | None = None
) -> list[str]:
    """Each secret value the environment references (of Secret `only`, when given) that the
    target does not hold or holds empty, described with where it was looked for; never the
    value."""
    import os

    from autodevhub_cli.core.environment import SecretRef

    missing = []
    for secret, keys in sorted(referenced_keys(environment).items()):
        if only is not None and secret != only:
            continue
        if environment.target == "compose":
            for key in sorted(keys):
                path = environment.compose_secret_file(SecretRef(secret=secret, key=key))
                try:
                    empty = os.path.getsize(path) == 0
                except OSError:
                    missing.append(f"{secret}/{key} (no file {path})")
                    continue
                if empty:
                    missing.append(f"{secret}/{key} (the file {path} is empty)")
            continue
        from autodevhub_cli.core.adapters.kube import ObjectRef

        live = _kubernetes(target).kube.get(
            ObjectRef("v1", "Secret", environment.namespace, secret)
        )
        if live is None:
            missing.append(f"Secret {environment.namespace}/{secret} (does not exist)")
            continue
        data = {**(live.get("data") or {}), **(live.get("stringData") or {})}
        absent = sorted(key for key in keys if not data.get(key))
        if absent:
            missing.append(
                f"Secret {environment.namespace}/{secret}: key(s) {', '.join(absent)} "
                "missing or empty"
            )
    return missing


def require_secrets(environment: Environment, target: Target) -> None:
    """Refuse to go on when a referenced secret value is not set, naming each and the command
    that sets it."""
    missing = missing_secrets(environment, target)
    if not missing:
        return
    secrets = sorted(referenced_keys(environment))
    command = f"autodevhub secrets set --env {environment.name}" + (
        f" --secret {secrets[0]}" if len(secrets) == 1 else " --secret NAME"
    )
    raise ConfigError(
        f"Environment {environment.name!r} uses secret values that are not set: "
        + "; ".join(missing)
        + ".",
        hint=f"Set them with `{command}` (KEY=VALUE lines on stdin, or --from-file FILE), "
        "then run the command again.",
    )


def set_secret(
    environment: Environment,
    values: dict[str, str],
    *,
    target: Target,
    secret: str | None = None,
    allow_unreferenced: bool = False,
    verify: bool = True,
    timeout: float = 300.0,
    report: Reporter | None = None,
) -> SecretChange:
    """Write `values` into the Secret, restart what uses it, wait, and run the smoke checks."""
    say = report or (lambda _s, _m: None)
    started = time.perf_counter()
    references = referenced_keys(environment)
    name = secret or (next(iter(references)) if len(references) == 1 else None)
    if name is None:
        raise ConfigError(
            f"Which Secret? The environment references {', '.join(sorted(references)) or 'none'}.",
            hint="Pass --secret NAME.",
        )
    known = references.get(name, set())
    unknown = [key for key in values if key not in known]
    if unknown and not allow_unreferenced:
        raise ConfigError(
            _unreferenced(name, environment.name, known, unknown, len(values)),
            hint="Check the key names, or pass --allow-unreferenced to store them anyway.",
        )
    empty = sorted(key for key, value in values.items() if not value.strip())
    if empty:
        raise ConfigError(
            f"The value given for {', '.join(empty)} of Secret {name} is empty; a secret value "
            "cannot be (a container would start with no password or key).",
            hint="Give each key its value (KEY=VALUE), or leave the key out to keep its "
            "current value.",
        )
    if environment.target == "compose":
        return _set_compose(environment, target, name, values, verify, timeout, say, started)
    return _set_kubernetes(
        environment, _kubernetes(target), name, values, verify, timeout, say, started
    )


def _set_kubernetes(
    environment: Environment,
    target: KubernetesTarget,
    name: str,
    values: dict[str, str],
    verify: bool,
    timeout: float,
    say: Reporter,
    started: float,
) -> SecretChange:
    """Kubernetes: the Secret through the API, and a restart of the workloads that read it."""
    from autodevhub_cli.core.adapters.kube import ObjectRef

    kube = target.kube
    namespace = environment.namespace
    ref = ObjectRef("v1", "Secret", namespace, name)
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    if kube.get(ObjectRef("v1", "Namespace", "", namespace)) is None:
        # A first run: the deploy that creates the namespace needs the Secret to be there.
        say("secret", f"creating namespace {namespace}")
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": namespace,
                    "labels": {
                        "name": namespace,
                        "app.kubernetes.io/part-of": environment.app,
                        "app.kubernetes.io/environment": environment.name,
                    },
                },
            }
        )
    live = kube.get(ref)
    if live is None:
        say("secret", f"creating {namespace}/{name} with {', '.join(sorted(values))}")
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
                },
                "data": encoded,
            }
        )
        data = encoded
    else:
        say("secret", f"updating {', '.join(sorted(values))} in {namespace}/{name}")
        data = {**(live.get("data") or {}), **encoded}
        kube.replace({**_without_status(live), "data": data})
    change = SecretChange(name, namespace, sorted(values), live is None)

    def restart_users(data: dict[str, str]) -> list[str]:
        checksum = hashlib.sha256(
            "\n".join(f"{k}={data[k]}" for k in sorted(data)).encode()
        ).hexdigest()[:16]
        from autodevhub_cli.core.kinds import NEXT_RUN, RESTART_AT, TEMPLATE, kind_of

        restarts = []
        for workload in _users(kube, environment, name, target.selector):
            row = kind_of(workload["kind"])
            what = f"{workload['kind']}/{workload['metadata']['name']}"
            if row is None or row.restart not in (TEMPLATE, RESTART_AT):
                when = "next run" if row and row.restart == NEXT_RUN else "next new pod"
                say("restart", f"{what}: not restarted, its {when} reads the new value")
                continue
            restarts.append(target.restart(workload, {ANNOTATION.format(name): checksum}))
        deadline = time.monotonic() + timeout
        for restart in restarts:
            target.wait_restarted(restart, deadline)
        return [str(r.ref) for r in restarts]

    change.restarted = restart_users(data)
    if verify and change.restarted:

        def restore() -> None:
            assert live is not None
            previous = kube.get(ref) or live
            kube.replace({**_without_status(previous), "data": live.get("data") or {}})
            restart_users(live.get("data") or {})

        change.smoke_ok = _verify_or_restore(
            environment, target, say, name, values, change.restarted, restore if live else None
        )
    change.seconds = round(time.perf_counter() - started, 3)
    return change


def _unreferenced(
    secret: str, environment: str, known: set[str], unknown: list[str], given: int
) -> str:
    """Which keys are not referenced. A key is named only when it is a near miss of a key the
    environment uses (a typo); any other is not shown, as it may be a value pasted where the
    key belongs."""
    typos = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, 1, cutoff=0.8)
        if close:
            typos.append(f"{key} (did you mean {close[0]}?)")
    hidden = len(unknown) - len(typos)
    if hidden:
        typos.append(
            f"{hidden} key{'s' if hidden != 1 else ''} not shown, in case "
            f"{'it is' if hidden == 1 else 'one is'} a value pasted where a key belongs"
        )
    return (
        f"{len(unknown)} of the {given} key(s) given for Secret {secret} "
        f"{'is' if len(unknown) == 1 else 'are'} not referenced by environment {environment!r}, "
        f"which uses {', '.join(sorted(known)) or 'no key of it'}: {'; '.join(typos)}."
    )


def _users(
    kube: Kube, environment: Environment, secret: str, selector: str
) -> list[dict[str, Any]]:
    """The environment's (`selector`) objects of every kind in the table of kinds that runs
    pods from a template, whose pods read the Secret."""
    from autodevhub_cli.core.kinds import pod_kinds

    found = []
    for row in pod_kinds():
        if not kube.has(row.api_version, row.kind):
            continue
        for item in kube.list_objects(row.api_version, row.kind, environment.namespace, selector):
            template: Any = item
            for key in row.pod_template or ():
                template = (template or {}).get(key) or {}
            pod = template.get("spec") or {}
            containers = [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]
            names = (
                {
                    ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
                    for container in containers
                    for env in container.get("env") or []
                }
                | {
                    (source.get("secretRef") or {}).get("name")
                    for container in containers
                    for source in container.get("envFrom") or []
                }
                | {(v.get("secret") or {}).get("secretName") for v in pod.get("volumes") or []}
                | {
                    (source.get("secret") or {}).get("name")
                    for v in pod.get("volumes") or []
                    for source in (v.get("projected") or {}).get("sources") or []
                }
            )
            if secret in names:
                found.append({**item, "apiVersion": row.api_version, "kind": row.kind})
    return found


def _without_status(obj: dict[str, Any]) -> dict[str, Any]:
    cleaned = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(cleaned.get("metadata") or {})
    meta.pop("managedFields", None)
    cleaned["metadata"] = meta
    return cleaned


def _set_compose(
    environment: Environment,
    target: Target,
    name: str,
    values: dict[str, str],
    verify: bool,
    timeout: float,
    say: Reporter,
    started: float,
) -> SecretChange:
    """Compose: one 0600 file per key outside the repository, owned by the containers' user."""
    from pathlib import Path

    from autodevhub_cli.core.environment import SecretRef

    users = [
        component
        for component, spec in environment.components.items()
        if any(ref.secret == name for ref in spec.secret_env.values())
    ]
    uids = sorted({environment.components[u].run_as_user for u in users})
    if len(uids) > 1:
        raise ConfigError(
            f"Secret {name} is used by {', '.join(users)}, which run as different uids "
            f"({', '.join(map(str, uids))}); Compose mounts a secret file with its owner on the "
            "host, so one file cannot serve them all.",
            hint="Give these components the same run_as_user, or a Secret each.",
        )
    created = False
    previous: dict[str, str | None] = {}
    for key in values:
        path = Path(environment.compose_secret_file(SecretRef(secret=name, key=key)))
        try:
            previous[key] = path.read_text(encoding="utf-8")
        except OSError:
            previous[key] = None
    _write_compose_files(environment, name, values, uids, users, say)
    created = any(value is None for value in previous.values())
    change = SecretChange(name, environment.compose_project(), sorted(values), created)
    from autodevhub_cli.core.releases import ReleaseStore

    # The serving release's file, from the history on the Docker host.
    store = ReleaseStore(target.release_driver(), environment.name)
    serving = store.current()
    current = store.path(serving, target.rendered_filename) if serving is not None else None
    if current is not None and users:
        from autodevhub_cli.core.adapters import compose

        def restart() -> None:
            say("restart", ", ".join(users))
            compose.run(
                current,
                "up",
                "--detach",
                "--wait",
                "--no-deps",
                "--force-recreate",
                *users,
                timeout=timeout,
                what="docker compose up (restart)",
            )

        restart()
        change.restarted = users
        if verify:
            kept = {k: v for k, v in previous.items() if v is not None}

            def restore() -> None:
                _write_compose_files(environment, name, kept, uids, users, say)
                restart()

            change.smoke_ok = _verify_or_restore(
                environment, target, say, name, values, users, restore if kept else None
            )
    change.seconds = round(time.perf_counter() - started, 3)
    return change


def _write_compose_files(
    environment: Environment,
    name: str,
    values: dict[str, str],
    uids: list[int],
    users: list[str],
    say: Reporter,
) -> None:
    """One 0600 file per key, replaced in one step, owned by the containers' uid."""
    import os
    from pathlib import Path

    from autodevhub_cli.core.environment import SecretRef

    for key, value in values.items():
        path = Path(environment.compose_secret_file(SecretRef(secret=name, key=key)))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value)
        uid = uids[0] if uids else None
        if uid is not None and os.getuid() != uid:
            try:
                os.chown(tmp, uid, uid)
            except PermissionError:
                tmp.unlink()
                raise ConfigError(
                    f"The {users[0]} container runs as uid {uid}, and a Compose secret file is "
                    "mounted with its owner on the host, so the file must belong to that uid; "
                    "this user cannot give it away.",
                    hint=f"Run this as root, or set components.{users[0]}.run_as_user to your "
                    f"uid ({os.getuid()}) in environments/{environment.name}.yaml.",
                ) from None
        os.replace(tmp, path)
        say("secret", f"wrote {name}/{key} (0600) under {environment.compose.secrets_dir}")


def _verify_or_restore(
    environment: Environment,
    target: Target,
    say: Reporter,
    name: str,
    values: dict[str, str],
    restarted: list[str],
    restore: Callable[[], None] | None,
) -> bool:
    """The smoke checks after a secret changed; when they fail, the previous values come back
    (`restore`, None when there were none) and the failure says which happened."""
    smoke = _check(environment, target, say, values.values())
    if smoke.ok:
        return True
    if restore is not None:
        say("secret", f"the checks fail: restoring the previous values of {name}")
        restore()
    raise SmokeCheckError(
        f"Secret {name} was changed and {', '.join(restarted)} restarted, but the smoke checks "
        f"fail: {smoke.summary()}. "
        + (
            "The previous values are back and what uses them runs with them again."
            if restore is not None
            else "There was no previous value to restore."
        ),
        hint="Check the new value (is it the one the application expects?) and set it again.",
    )


def _check(
    environment: Environment, target: Target, say: Reporter, secrets: Iterable[str]
) -> SmokeResult:
    """The smoke checks, where the target reaches the components; the new values are kept out
    of their results (a server may echo them)."""
    from autodevhub_cli.core.smoke import run_smoke_checks

    with target.smoke_endpoints(environment, False) as endpoints:
        return run_smoke_checks(
            environment,
            endpoints,
            report=lambda c, m: say("smoke", f"{c}: {m}"),
            secrets=secrets,
        )
