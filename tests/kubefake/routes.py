"""URL routing: turns one HTTP request into a verb on the cluster, and the result into a body."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from . import errors, patches
from .cluster import PATCH_TYPES, WriteOptions
from .errors import ApiError
from .resources import SERVER_VERSION, ResourceType, api_group, group_list, resource_list
from .selectors import field_selector, label_selector

if TYPE_CHECKING:
    from .server import KubeFake


@dataclass(frozen=True)
class Request:
    """One recorded HTTP request, as tests assert on it."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def body(self) -> Any:
        """The decoded body (JSON, or YAML for apply), None when empty."""
        return parse_body(self.content_type, self.raw)


@dataclass
class Response:
    """A JSON (or text) answer, or a stream of watch events."""

    code: int
    body: Any
    content_type: str = "application/json"
    stream: Iterator[bytes] | None = None


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str


def parse_body(content_type: str, raw: bytes) -> Any:
    """JSON, or YAML (a JSON superset) for apply patches and `application/yaml` bodies."""
    if not raw:
        return None
    try:
        if content_type.endswith("yaml"):
            return yaml.safe_load(raw.decode())
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"couldn't decode request body: {exc}") from exc


def handle(fake: KubeFake, req: Request) -> Response:
    """Answer one request; every failure becomes a `Status` body."""
    try:
        if fake.token and _bearer(req) != fake.token:
            raise ApiError(401, "Unauthorized")
        return _route(fake, req)
    except ApiError as exc:
        return Response(exc.code, exc.status())


def _bearer(req: Request) -> str | None:
    """The bearer token; the scheme is case-insensitive (RFC 6750, as kube-apiserver reads it).

    The client sends `Bearer` from a kubeconfig and `bearer` with a pod's service account.
    """
    scheme, _, token = (req.headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _route(fake: KubeFake, req: Request) -> Response:
    parts = [p for p in req.path.split("/") if p]
    if req.method == "GET":
        discovery = _discovery(fake, parts)
        if discovery is not None:
            return Response(200, discovery)
    target = _target(fake, parts)
    if target is None:
        raise errors.no_such_path()
    return _dispatch(fake, req, target)


def _discovery(fake: KubeFake, parts: list[str]) -> dict[str, Any] | None:
    types = fake.cluster.types()
    if parts == ["version"]:
        return SERVER_VERSION
    if parts == ["api"]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": fake.url.split("//")[1]}
            ],
        }
    if parts == ["api", "v1"]:
        return resource_list("v1", [t for t in types if not t.group])
    if parts == ["apis"]:
        return group_list(types)
    if len(parts) == 2 and parts[0] == "apis":
        versions = list(dict.fromkeys(t.version for t in types if t.group == parts[1]))
        if not versions:
            raise errors.no_such_path()
        return api_group(parts[1], versions)
    if len(parts) == 3 and parts[0] == "apis":
        served = [t for t in types if (t.group, t.version) == (parts[1], parts[2])]
        if not served:
            raise errors.no_such_path()
        return resource_list(f"{parts[1]}/{parts[2]}", served)
    return None


def _target(fake: KubeFake, parts: list[str]) -> Target | None:
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    rt = fake.cluster.find_type(group, version, rest[0])
    if rt is None:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in rt.subresources:
        return None
    if namespace is not None and not rt.namespaced:
        return None
    if rt.namespaced and namespace is None and name is not None:
        return None
    return Target(rt, namespace, name, sub)


def _write_options(req: Request, subresource: str) -> WriteOptions:
    dry_run = req.query.get("dryRun", "")
    if dry_run not in ("", "All"):
        raise errors.bad_request(f'Invalid dry run value: "{dry_run}"; only "All" is supported')
    is_apply = req.content_type == PATCH_TYPES[3]
    manager = req.query.get("fieldManager", "")
    if not manager:
        if is_apply:
            raise errors.bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch"
            )
        manager = (req.headers.get("user-agent") or "unknown").split("/")[0]
    force = req.query.get("force", "").lower()
    if force and not is_apply:
        raise errors.bad_request("force: Forbidden: may not be specified for non-apply patch")
    return WriteOptions(
        manager=manager, dry_run=bool(dry_run), subresource=subresource, force=force == "true"
    )


def _dispatch(fake: KubeFake, req: Request, target: Target) -> Response:
    cluster, rt, sub = fake.cluster, target.rt, target.subresource
    namespace = target.namespace or ""
    body = req.body
    verb = _verb(req, target)
    if not sub and verb not in rt.verbs:
        raise ApiError(405, "the server does not allow this method on the requested resource")
    fake.check_access(verb, target)
    if req.method == "GET" and target.name is None:
        if req.query.get("watch") in ("true", "1"):
            return _watch(fake, req, target)
        return Response(200, _list(fake, req, target))
    if sub == "scale" and target.name is not None:
        return _scale(fake, req, target, body)
    if req.method == "GET" and sub == "log":
        return _pod_log(fake, req, namespace, target.name or "")
    if req.method == "GET":
        return Response(200, cluster.get(rt, namespace, target.name or ""))
    if req.method == "POST" and target.name is None:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was in an unknown format")
        if rt.plural == "selfsubjectaccessreviews":
            return Response(201, fake.review_access(body))
        if rt.namespaced and target.namespace is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        return Response(201, cluster.create(rt, namespace, body, _write_options(req, "")))
    if target.name is None and req.method == "DELETE":
        return Response(200, _delete_collection(fake, req, target))
    if target.name is None or sub == "log":
        raise ApiError(405, "the server does not allow this method on the requested resource")
    if req.method == "PUT":
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was in an unknown format")
        opts = _write_options(req, sub)
        return Response(200, cluster.replace(rt, namespace, target.name, body, opts))
    if req.method == "PATCH":
        if req.content_type not in PATCH_TYPES:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(PATCH_TYPES)}",
            )
        opts = _write_options(req, sub)
        existed = cluster.key(rt, namespace, target.name) in cluster.objects
        result = cluster.patch(rt, namespace, target.name, req.content_type, body, opts)
        return Response(200 if existed else 201, result)
    if req.method == "DELETE":
        opts = _write_options(req, "")
        _check_preconditions(cluster.get(rt, namespace, target.name), rt, body)
        gone = cluster.delete(rt, namespace, target.name, opts, orphan=_orphans(req, body))
        if rt.kind == "Pod" or gone["metadata"].get("deletionTimestamp"):
            return Response(200, gone)
        details = {"name": target.name, "kind": rt.plural, "uid": gone["metadata"].get("uid")}
        if rt.group:
            details["group"] = rt.group
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        return Response(200, {**status, "details": details})
    raise ApiError(405, "the server does not allow this method on the requested resource")


def _scale(fake: KubeFake, req: Request, target: Target, body: Any) -> Response:
    cluster, rt, name = fake.cluster, target.rt, target.name or ""
    namespace = target.namespace or ""
    if req.method == "GET":
        return Response(200, cluster.scale_view(rt, namespace, name))
    if req.method == "PUT" and isinstance(body, dict):
        wanted = body
    elif req.method == "PATCH" and req.content_type in PATCH_TYPES[:3]:
        current = cluster.scale_view(rt, namespace, name)
        if req.content_type == PATCH_TYPES[2]:
            wanted = patches.json_patch(current, body)
        elif isinstance(body, dict):
            wanted = patches.merge_patch(current, body)
        else:
            raise errors.bad_request("the body of the request was in an unknown format")
    else:
        raise ApiError(405, "the server does not allow this method on the requested resource")
    return Response(200, cluster.scale(rt, namespace, name, wanted, _write_options(req, "scale")))


def _check_preconditions(live: dict[str, Any], rt: ResourceType, body: Any) -> None:
    """DeleteOptions.preconditions: delete only the uid / resourceVersion the caller saw."""
    wanted = (body.get("preconditions") if isinstance(body, dict) else None) or {}
    meta = live["metadata"]
    for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        if wanted.get(key) and wanted[key] != meta.get(key):
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {rt.group_resource} "{meta["name"]}": '
                f"Precondition failed: {label} in precondition: {wanted[key]}, "
                f"{label} in object meta: {meta.get(key)}",
                "Conflict",
                {"name": meta["name"], "group": rt.group, "kind": rt.plural},
            )


def _orphans(req: Request, body: Any) -> bool:
    options = body if isinstance(body, dict) else {}
    policy = req.query.get("propagationPolicy") or options.get("propagationPolicy")
    orphan = req.query.get("orphanDependents") or options.get("orphanDependents")
    return policy == "Orphan" or str(orphan).lower() == "true"


def _verb(req: Request, target: Target) -> str:
    if req.method == "GET":
        if target.name is not None:
            return "get"
        return "watch" if req.query.get("watch") in ("true", "1") else "list"
    if req.method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(req.method, req.method.lower())


def _list(fake: KubeFake, req: Request, target: Target) -> dict[str, Any]:
    rt = target.rt
    items = fake.cluster.list_objects(
        rt, target.namespace, req.query.get("labelSelector"), req.query.get("fieldSelector")
    )
    meta: dict[str, Any] = {"resourceVersion": str(fake.cluster.revision)}
    start = (
        int(base64.b64decode(req.query["continue"]).decode()) if req.query.get("continue") else 0
    )
    limit = int(req.query.get("limit") or 0)
    if limit and start + limit < len(items):
        meta["continue"] = base64.b64encode(str(start + limit).encode()).decode()
        meta["remainingItemCount"] = len(items) - start - limit
        items = items[start : start + limit]
    else:
        items = items[start:]
    return {
        "kind": f"{rt.kind}List",
        "apiVersion": rt.api_version,
        "metadata": meta,
        "items": items,
    }


def _delete_collection(fake: KubeFake, req: Request, target: Target) -> dict[str, Any]:
    opts = _write_options(req, "")
    listed = _list(fake, req, target)
    for obj in listed["items"]:
        meta = obj["metadata"]
        if (
            fake.cluster.key(target.rt, meta.get("namespace", ""), meta["name"])
            not in fake.cluster.objects
        ):
            continue  # already collected with its owner
        fake.cluster.delete(
            target.rt, meta.get("namespace", ""), meta["name"], opts, orphan=_orphans(req, None)
        )
    return listed


def _pod_log(fake: KubeFake, req: Request, namespace: str, name: str) -> Response:
    pod = fake.cluster.get(fake.cluster.type_for_kind("v1", "Pod"), namespace, name)
    containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    container = req.query.get("container")
    if container and containers and container not in containers:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    if not container and len(containers) > 1:
        raise errors.bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
        )
    text = fake.logs.get(
        (namespace, name, container or ""), fake.logs.get((namespace, name, ""), "")
    )
    tail = req.query.get("tailLines")
    if tail:
        lines = text.splitlines(keepends=True)
        text = "".join(lines[-int(tail) :]) if int(tail) else ""
    return Response(200, text, "text/plain")


def _watch(fake: KubeFake, req: Request, target: Target) -> Response:
    cluster, rt = fake.cluster, target.rt
    by_label = label_selector(req.query.get("labelSelector"))
    by_field = field_selector(req.query.get("fieldSelector"))
    timeout = float(req.query.get("timeoutSeconds") or 300)
    since = req.query.get("resourceVersion") or "0"

    def matches(obj: dict[str, Any]) -> bool:
        ns = obj["metadata"].get("namespace")
        return (
            (target.namespace is None or ns == target.namespace) and by_label(obj) and by_field(obj)
        )

    def events() -> Iterator[bytes]:
        deadline = time.monotonic() + timeout
        with cluster.lock:
            position = cluster.revision
            initial = [] if since != "0" else _list(fake, req, target)["items"]
            if since != "0":
                position = int(since)
        for obj in initial:
            yield json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n"
        while not fake.stopping and time.monotonic() < deadline:
            with cluster.changed:
                fresh = [h for h in cluster.history if h[0] > position]
                if not fresh:
                    cluster.changed.wait(min(0.2, max(deadline - time.monotonic(), 0)))
                    continue
            for revision, kind, event_rt, obj in fresh:
                position = revision
                if event_rt.plural == rt.plural and event_rt.group == rt.group and matches(obj):
                    yield json.dumps({"type": kind, "object": obj}).encode() + b"\n"

    return Response(200, None, "application/json", stream=events())
