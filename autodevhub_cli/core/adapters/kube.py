"""The Kubernetes API through the official client's DynamicClient. Imported lazily.

Every call goes through `_call`, which logs it and turns API errors into autodevhub errors
that name the object, the HTTP status and the server's reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from autodevhub_cli.core.errors import ApplyError, ConfigError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.resource import Resource

log = logging.getLogger("autodevhub.kube")
FIELD_MANAGER = "autodevhub"
T = TypeVar("T")


@dataclass(frozen=True)
class ObjectRef:
    """Which object: apiVersion, kind, namespace (empty when cluster-scoped), name."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, doc: dict[str, Any]) -> ObjectRef:
        """The reference of a manifest or a live object."""
        meta = doc.get("metadata") or {}
        return cls(doc["apiVersion"], doc["kind"], meta.get("namespace") or "", meta["name"])

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.kind} {self.name}{where}"


class ApplyConflict(ApplyError):
    """Server-side apply found fields owned by another field manager."""

    def __init__(self, ref: ObjectRef, conflicts: list[tuple[str, str]]) -> None:
        listed = "; ".join(f"{field} (owned by {manager})" for field, manager in conflicts)
        written_back = any(
            manager == "rollouts-controller" and ".containers" in field
            for field, manager in conflicts
        )
        hint = (
            "Argo Rollouts writes a Rollout back without the fields that hold their default "
            "value (such as `initialDelaySeconds: 0`, `readOnly: false` or an empty env value), "
            "and the Rollout's container list has no merge key, so the controller now owns the "
            "whole list. Leave such fields out of the template (autodevhub's template library "
            "renders none), then deploy once with --force-conflicts to take the list back."
            if written_back
            else "Another tool changed these fields. Stop it from managing them, or take "
            "ownership with --force-conflicts."
        )
        message = f"Applying {ref} conflicts with other field managers: {listed}."
        super().__init__(message, hint=hint)
        self.ref = ref
        self.conflicts = conflicts


class Kube:
    """A connection to one cluster: discovery, apply, get, list, delete, patch, pods and logs."""

    def __init__(self, api_client: ApiClient) -> None:
        from kubernetes.dynamic import DynamicClient

        self.api_client = api_client
        self.dynamic = _call("discovery", lambda: DynamicClient(api_client))

    @classmethod
    def connect(cls, context: str | None = None, kubeconfig: str | None = None) -> Kube:
        """Kubeconfig (file and context) or, inside a pod, the in-cluster ServiceAccount token."""
        import yaml
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        configuration = client.Configuration()
        in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not (
            kubeconfig or context or os.environ.get("KUBECONFIG")
        )
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(
                    config_file=kubeconfig, context=context, client_configuration=configuration
                )
        except (
            ConfigException,
            OSError,
            TypeError,
            ValueError,
            AttributeError,
            KeyError,
            yaml.YAMLError,
        ) as exc:
            # Also a kubeconfig that is not YAML, or whose fields have the wrong shapes: what
            # the client said, and where.
            said = _one_line(exc)
            if in_cluster:
                raise ConfigError(
                    "Cannot use the pod's ServiceAccount for the Kubernetes API "
                    "(KUBERNETES_SERVICE_HOST is set, and no kubeconfig or context was given): "
                    f"{said}.",
                    hint="Mount a ServiceAccount token into the pod "
                    "(automountServiceAccountToken: true), or pass --kubeconfig/--context.",
                ) from None
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise ConfigError(
                f"Cannot load the Kubernetes configuration from {where}"
                + (f" (context {context!r})" if context else "")
                + f": {said.rstrip('.')}.",
                hint="Pass --kubeconfig/--context, set kubernetes.kubeconfig/context in the "
                "environment file, or run inside a pod with a ServiceAccount.",
            ) from None
        log.info("kube: connect %s", configuration.host)
        return cls(client.ApiClient(configuration))

    def resource(self, api_version: str, kind: str) -> Resource:
        """The API resource serving `kind` in `api_version`."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            found: Resource = self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise ApplyError(
                f"The cluster does not serve {kind} in {api_version}.",
                hint="Install the CRD or controller that provides it (Argo Rollouts for "
                "Rollout, the Prometheus operator for ServiceMonitor), or disable that "
                "feature in the environment file.",
            ) from None
        return found

    def has(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves `kind` in `api_version`."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            self.dynamic.resources.get(api_version=api_version, kind=kind)
            return True
        except ResourceNotFoundError:
            return False

    def apply(
        self,
        doc: dict[str, Any],
        *,
        force: bool = False,
        dry_run: bool = False,
        manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Server-side apply `doc` as field manager `manager`; return the live object."""
        ref = ObjectRef.of(doc)
        resource = self.resource(ref.api_version, ref.kind)
        extra = {"dry_run": "All"} if dry_run else {}
        what = f"apply {ref}{' (dry run)' if dry_run else ''}"
        if manager != FIELD_MANAGER:
            what += f" as {manager}"
        try:
            result = _call(
                what,
                lambda: resource.server_side_apply(
                    body=doc,
                    name=ref.name,
                    namespace=ref.namespace or None,
                    field_manager=manager,
                    force_conflicts=force,
                    **extra,
                ),
                ref,
            )
        except NotFound:
            # An apply creates what is missing; a 404 means the namespace itself is missing.
            raise ApplyError(
                f"{what} failed: namespace {ref.namespace!r} does not exist.",
                hint="Render a Namespace for it (the environment's `namespace` is created by "
                "the deploy), or create it with `kubectl create namespace`.",
            ) from None
        return dict(result.to_dict())

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        resource = self.resource(ref.api_version, ref.kind)
        try:
            result = _call(
                f"get {ref}",
                lambda: resource.get(name=ref.name, namespace=ref.namespace or None),
                ref,
            )
        except NotFound:
            return None
        return dict(result.to_dict())

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of a kind (in a namespace), filtered by a label selector."""
        resource = self.resource(api_version, kind)
        kwargs: dict[str, str] = {"label_selector": selector} if selector else {}
        if resource.namespaced and namespace:
            kwargs["namespace"] = namespace
        result = _call(f"list {kind} {selector or ''}", lambda: resource.get(**kwargs))
        items = result.to_dict().get("items") or []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return list(items)

    def delete(self, ref: ObjectRef, dry_run: bool = False) -> None:
        """Delete an object (a missing one is not an error)."""
        resource = self.resource(ref.api_version, ref.kind)
        extra = {"dry_run": "All"} if dry_run else {}
        with contextlib.suppress(NotFound):
            _call(
                f"delete {ref}",
                lambda: resource.delete(
                    name=ref.name,
                    namespace=ref.namespace or None,
                    propagation_policy="Background",
                    **extra,
                ),
                ref,
            )

    def merge_patch(
        self, ref: ObjectRef, patch: dict[str, object], subresource: str | None = None
    ) -> dict[str, Any]:
        """A JSON merge patch on an object or its status subresource."""
        resource = self.resource(ref.api_version, ref.kind)
        if subresource:
            resource = resource.subresources[subresource]
        result = _call(
            f"patch {ref}{'/' + subresource if subresource else ''}",
            lambda: resource.patch(
                body=patch,
                name=ref.name,
                namespace=ref.namespace or None,
                content_type="application/merge-patch+json",
            ),
            ref,
        )
        return dict(result.to_dict())

    def replace(self, doc: dict[str, Any]) -> dict[str, Any]:
        """PUT an object (optimistic concurrency through metadata.resourceVersion)."""
        ref = ObjectRef.of(doc)
        resource = self.resource(ref.api_version, ref.kind)
        result = _call(
            f"replace {ref}",
            lambda: resource.replace(body=doc, namespace=ref.namespace or None),
            ref,
        )
        return dict(result.to_dict())

    def create(self, doc: dict[str, Any]) -> dict[str, Any]:
        """POST a new object."""
        ref = ObjectRef.of(doc)
        resource = self.resource(ref.api_version, ref.kind)
        result = _call(
            f"create {ref}",
            lambda: resource.create(body=doc, namespace=ref.namespace or None),
            ref,
        )
        return dict(result.to_dict())

    def allowed(self, review: dict[str, Any]) -> bool:
        """Ask the API server a SelfSubjectAccessReview; whether the verb is allowed."""
        resource = self.resource(review["apiVersion"], review["kind"])
        attributes = (review.get("spec") or {}).get("resourceAttributes") or {}
        what = f"access review {attributes.get('verb')} {attributes.get('resource')}"
        result = _call(what, lambda: resource.create(body=review))
        return bool((result.to_dict().get("status") or {}).get("allowed"))

    def pod_log(self, namespace: str, pod: str, container: str | None, tail: int = 20) -> str:
        """The last lines a pod's container printed ('' when unavailable)."""
        try:
            log = self.read_log(
                namespace,
                pod,
                container,
                since_seconds=None,
                tail=tail,
                previous=False,
                follow=False,
            )
            return "".join(f"{text}\n" for _moment, text in log)
        except Exception:  # logs are a diagnosis aid; never fail the diagnosis itself
            return ""

    def read_log(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        *,
        since_seconds: int | None,
        tail: int | None,
        previous: bool,
        follow: bool,
    ) -> PodLog:
        """A pod's container's log with the kubelet's timestamps, as it streams; ApplyError when
        it cannot be read (the container has not started, the pod is gone)."""
        from kubernetes import client

        api = client.CoreV1Api(self.api_client)
        shown = f"{pod} ({container})" if container else pod
        what = f"read the log of pod {shown} in {namespace}"
        options: dict[str, Any] = {
            "container": container,
            "timestamps": True,
            "follow": follow,
            "previous": previous,
            "_preload_content": False,
        }
        if since_seconds is not None:
            options["since_seconds"] = since_seconds
        if tail is not None:
            options["tail_lines"] = tail
        response = _call(what, lambda: api.read_namespaced_pod_log(pod, namespace, **options))
        return PodLog(response, what)

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Events about an object, newest last."""
        items = self.list_objects("v1", "Event", namespace)
        found = [e for e in items if (e.get("involvedObject") or {}).get("name") == name]
        return sorted(found, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


class PodLog:
    """A container's log from the API server as (time, text) lines; `close` ends a follow."""

    def __init__(self, response: Any, what: str) -> None:
        self._response = response
        self.what = what
        self._closed = False

    def __iter__(self) -> Iterator[tuple[dt.datetime | None, str]]:
        from urllib3.exceptions import HTTPError

        from autodevhub_cli.core.logs import parse_timestamped

        try:
            yield from parse_timestamped(self._response.stream(4096))
        except (HTTPError, OSError, ValueError) as exc:
            if self._closed:
                return
            raise ApplyError(f"{self.what}: the stream broke off ({_one_line(exc)})") from None
        finally:
            self._response.release_conn()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):  # already closed, or the connection is gone
            shutdown = getattr(self._response, "shutdown", None)  # urllib3 2.3: wakes a read
            if shutdown is not None:
                shutdown()
            self._response.close()


def parse_time(value: object) -> dt.datetime | None:
    """A Kubernetes timestamp (RFC 3339, or a datetime from the client) as an aware datetime."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def applied_fields(live: dict[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any]:
    """The fieldsV1 tree that `manager` owns through server-side apply (empty if none)."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            return dict(entry.get("fieldsV1") or {})
    return {}


def owns(live: dict[str, Any], *path: str, manager: str = FIELD_MANAGER) -> bool:
    """Whether `manager` applied the field at `path` (`owns(obj, "spec", "replicas")`)."""
    node: object = applied_fields(live, manager)
    for key in path:
        if not isinstance(node, dict) or f"f:{key}" not in node:
            return False
        node = node[f"f:{key}"]
    return True


class NotFound(ApplyError):
    """The object (or its namespace) does not exist."""


class Forbidden(ApplyError):
    """The identity may not do this (HTTP 401 or 403)."""


class Conflict(ApplyError):
    """A write lost a race (stale resourceVersion) or the object already exists."""


def _call(what: str, action: Callable[[], T], ref: ObjectRef | None = None) -> T:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    log.info("kube: %s", what)
    try:
        return action()
    except ApiException as exc:
        status = _status_body(exc)
        reason = status.get("message") or exc.reason or "no message"
        if exc.status == 404:
            raise NotFound(f"{what}: not found") from None
        if exc.status == 409 and ref is not None:
            causes = (status.get("details") or {}).get("causes") or []
            conflicts = [
                (str(c.get("field", "?")), _manager_of(str(c.get("message", ""))))
                for c in causes
                if c.get("reason") == "FieldManagerConflict"
                or c.get("type") == "FieldManagerConflict"
            ]
            if conflicts:
                raise ApplyConflict(ref, conflicts) from None
            raise Conflict(f"{what}: conflict: {reason}") from None
        if exc.status in (401, 403):
            raise Forbidden(
                f"{what} failed: HTTP {exc.status}: {reason}",
                hint="Check the kube context's credentials and RBAC permissions for this "
                "namespace (`autodevhub doctor` lists what a deploy needs).",
            ) from None
        raise ApplyError(f"{what} failed: HTTP {exc.status}: {reason}") from None
    except HTTPError as exc:
        raise ApplyError(
            f"{what} failed: the Kubernetes API is unreachable ({exc}).",
            hint="Check the kube context (`--context`) and that the cluster is up.",
        ) from None


def _status_body(exc: ApiException) -> dict[str, Any]:
    try:
        data = json.loads(exc.body or "{}")
        return data if isinstance(data, dict) else {}
    except (TypeError, ValueError):
        return {}


def _manager_of(message: str) -> str:
    # The API server says: conflict with "kubectl-edit" using apps/v1: .spec.replicas
    if '"' in message:
        return message.split('"')[1]
    return message or "another manager"


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line (a YAML error spans several)."""
    return " ".join(str(exc).split())
