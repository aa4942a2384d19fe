"""`KubeFake`: the HTTP server the real `kubernetes` client talks to, plus controls for tests."""

from __future__ import annotations

import base64
import copy
import json
import secrets
import ssl
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import controllers
from .cluster import Cluster, WriteEvent, WriteOptions, now
from .errors import ApiError
from .resources import ResourceType
from .routes import Request, Response, Target, handle

if TYPE_CHECKING:
    from .tls import ServerCertificate


@dataclass(frozen=True)
class Rule:
    """A denied permission: verb and resource, optionally limited to a namespace or group."""

    verb: str
    resource: str
    namespace: str | None = None
    group: str | None = None

    def matches(self, verb: str, resource: str, namespace: str | None, group: str) -> bool:
        """True when this rule covers the request; `*` matches any verb or resource."""
        return (
            self.verb in ("*", verb)
            and self.resource in ("*", resource)
            and (self.namespace is None or self.namespace == namespace)
            and (self.group is None or self.group == group)
        )


@dataclass
class Fault:
    """An injected failure for the next matching requests."""

    method: str
    path_contains: str
    code: int
    message: str
    times: int


class KubeFake:
    """A Kubernetes API server double on 127.0.0.1, driven by the real client over HTTP."""

    def __init__(
        self,
        *,
        auto_ready: bool | Callable[[dict[str, Any]], bool] = False,
        with_crds: bool = True,
        auto_create_namespaces: bool = False,
        token: str | None = None,
        tls: ServerCertificate | None = None,
    ) -> None:
        self.cluster = Cluster(with_crds=with_crds, auto_create_namespaces=auto_create_namespaces)
        self.auto_ready = auto_ready
        self.token = token if token is not None else secrets.token_hex(16)
        self.tls = tls  # serve HTTPS with this certificate (as a real API server does)
        self.logs: dict[tuple[str, str, str], str] = {}
        self.requests: list[Request] = []
        self.denied: list[Rule] = []
        self.faults: list[Fault] = []
        self.server_errors: list[str] = []
        self.stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.cluster.hooks.append(self._settle)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> KubeFake:
        """Listen on a free port in a background thread."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls.cert, self.tls.key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; open watches end within a fraction of a second."""
        self.stopping = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KubeFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`, or `https://` when serving TLS."""
        if self._server is None:
            raise RuntimeError("KubeFake is not started")
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        """The port it listens on."""
        if self._server is None:
            raise RuntimeError("KubeFake is not started")
        return int(self._server.server_address[1])

    def kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        """Write a kubeconfig with a `kubefake` context and token user; returns the path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubefake", "cluster": self._cluster_entry()}],
            "users": [{"name": "kubefake", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "kubefake",
                    "context": {"cluster": "kubefake", "user": "kubefake", "namespace": namespace},
                }
            ],
            "current-context": "kubefake",
            "preferences": {},
        }
        target = Path(path)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    def _cluster_entry(self) -> dict[str, str]:
        entry = {"server": self.url}
        if self.tls is not None:
            entry["certificate-authority-data"] = base64.b64encode(
                self.tls.ca.read_bytes()
            ).decode()
        return entry

    # -- reading state ---------------------------------------------------------------------
    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        """The served type at group/version/plural (KeyError if none)."""
        found = self.cluster.find_type(group, version, plural)
        if found is None:
            raise KeyError(f"{group}/{version}/{plural} is not served")
        return found

    def get(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """A copy of a stored object, or None."""
        with self.cluster.lock:
            key = self.cluster.key(self.resource(group, version, plural), namespace, name)
            obj = self.cluster.objects.get(key)
            return copy.deepcopy(obj) if obj is not None else None

    def objects(
        self, kind: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Copies of every stored object, optionally only one kind or namespace."""
        with self.cluster.lock:
            return [
                copy.deepcopy(obj)
                for key, obj in sorted(self.cluster.objects.items())
                if (kind is None or obj.get("kind") == kind)
                and (namespace is None or key[3] == namespace)
            ]

    def requests_to(self, method: str | None = None, path_contains: str = "") -> list[Request]:
        """Recorded requests filtered by method and a path fragment."""
        return [
            r
            for r in list(self.requests)
            if (method is None or r.method == method) and path_contains in r.path
        ]

    # -- changing state --------------------------------------------------------------------
    def create(self, manifest: dict[str, Any], manager: str = "kubefake-seed") -> dict[str, Any]:
        """Store a manifest directly (its namespace defaults to `default`)."""
        rt = self.cluster.type_for_kind(manifest["apiVersion"], manifest["kind"])
        namespace = (manifest.get("metadata") or {}).get("namespace", "default")
        stored = self.cluster.create(rt, namespace, manifest, WriteOptions(manager=manager))
        if manifest.get("status") and rt.has_status:
            meta = stored["metadata"]
            stored = self.cluster.set_status(
                rt, meta.get("namespace", ""), meta["name"], manifest["status"], manager
            )
        return stored

    def set_status(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
    ) -> dict[str, Any]:
        """Replace an object's status as its controller would."""
        rt = self.resource(group, version, plural)
        return self.cluster.set_status(rt, namespace, name, status, "kubefake-controller")

    def add_pod(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str] | None = None,
        phase: str = "Running",
        *,
        container_statuses: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None,
        containers: list[str] | None = None,
        owner: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A pod with a status; ready and running unless told otherwise."""
        names = containers or ["app"]
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {}}
        if owner:
            meta["ownerReferences"] = [owner]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {"containers": [{"name": n, "image": f"{n}:latest"} for n in names]},
        }
        running = phase == "Running"
        statuses = container_statuses or [
            {
                "name": n,
                "image": f"{n}:latest",
                "imageID": "",
                "ready": running,
                "restartCount": 0,
                "started": running,
                "state": {"running": {"startedAt": now()}}
                if running
                else {"waiting": {"reason": "ContainerCreating"}},
            }
            for n in names
        ]
        ready = "True" if running else "False"
        status = {
            "phase": phase,
            "conditions": conditions
            or [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": ready},
                {"type": "Ready", "status": ready},
            ],
            "containerStatuses": statuses,
            "podIP": "10.0.0.10",
            "startTime": now(),
        }
        self.create(pod, manager="kubelet")
        return self.set_status("", "v1", "pods", namespace, name, status)

    def crashloop(
        self,
        namespace: str,
        deployment: str,
        log: str = "Error: boom\n",
        *,
        reason: str = "CrashLoopBackOff",
        restarts: int = 4,
    ) -> list[dict[str, Any]]:
        """Make a Deployment's pods fail the way a broken image does on a real cluster.

        One pod per replica, labelled from the pod template (plus `pod-template-hash`) and owned by
        the Deployment's ReplicaSet, waiting in `reason` with `restarts` restarts; a Warning
        `BackOff` event per pod; `log` as each pod's log; the Deployment's status unavailable.
        """
        obj = self.get("apps", "v1", "deployments", namespace, deployment)
        if obj is None:
            raise KeyError(f"deployment {namespace}/{deployment} does not exist")
        spec = obj.get("spec") or {}
        template = spec.get("template") or {}
        pod_hash = controllers.pod_hash(template)
        labels = {
            **((template.get("metadata") or {}).get("labels") or {}),
            "pod-template-hash": pod_hash,
        }
        rs = self.get("apps", "v1", "replicasets", namespace, f"{deployment}-{pod_hash}")
        owner = None
        if rs is not None:
            owner = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": rs["metadata"]["name"],
                "uid": rs["metadata"]["uid"],
                "controller": True,
            }
        names = [c.get("name", "app") for c in (template.get("spec") or {}).get("containers") or []]
        pods = []
        for index in range(spec.get("replicas", 1)):
            name = f"{deployment}-{pod_hash}-{index:05d}"[:63]
            statuses = [
                {
                    "name": container,
                    "image": "",
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": restarts,
                    "state": {
                        "waiting": {
                            "reason": reason,
                            "message": "back-off restarting failed container",
                        }
                    },
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                }
                for container in names or ["app"]
            ]
            pods.append(
                self.add_pod(
                    namespace,
                    name,
                    labels,
                    phase="Running",
                    container_statuses=statuses,
                    conditions=[
                        {"type": "PodScheduled", "status": "True"},
                        {"type": "Initialized", "status": "True"},
                        {
                            "type": "ContainersReady",
                            "status": "False",
                            "reason": "ContainersNotReady",
                        },
                        {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                    ],
                    containers=names or None,
                    owner=owner,
                )
            )
            self.set_pod_log(namespace, name, log)
            self.add_event(
                namespace, "Pod", name, "BackOff", "Back-off restarting failed container"
            )
        status = controllers.deployment_status(obj, ready=False)
        self.set_status("apps", "v1", "deployments", namespace, deployment, status)
        return pods

    def add_event(
        self,
        namespace: str,
        involved_kind: str,
        involved_name: str,
        reason: str,
        message: str,
        type: str = "Warning",
    ) -> dict[str, Any]:
        """A core/v1 Event about an object, as the kubelet or a controller records it."""
        stamp = now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{involved_name}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {
                "kind": involved_kind,
                "name": involved_name,
                "namespace": namespace,
            },
            "reason": reason,
            "message": message,
            "type": type,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "kubefake"},
            "reportingComponent": "kubefake",
        }
        return self.create(event, manager="kubelet")

    def set_pod_log(self, namespace: str, pod: str, text: str, container: str = "") -> None:
        """What `/pods/{pod}/log` returns (for one container, or for any)."""
        self.logs[(namespace, pod, container)] = text

    def on_write(self, hook: Callable[[WriteEvent], None]) -> None:
        """Run `hook(event)` after every stored write (it may write too, e.g. set a status)."""
        self.cluster.hooks.append(hook)

    def fail_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        """Report a Deployment's rollout as timed out (`ProgressDeadlineExceeded`, 0 available)."""
        obj = self.get("apps", "v1", "deployments", namespace, name)
        if obj is None:
            raise KeyError(f"deployment {namespace}/{name} does not exist")
        status = controllers.progress_deadline_exceeded(obj)
        return self.set_status("apps", "v1", "deployments", namespace, name, status)

    def deny(
        self, verb: str, resource: str, namespace: str | None = None, group: str | None = None
    ) -> None:
        """Refuse verb on resource: access reviews say no and real requests get 403."""
        self.denied.append(Rule(verb, resource, namespace, group))

    def allow_all(self) -> None:
        """Forget every `deny`."""
        self.denied.clear()

    def inject_error(
        self, method: str, path_contains: str, code: int, message: str = "", times: int = 1
    ) -> None:
        """Answer the next `times` matching requests with a failure Status of this code."""
        self.faults.append(Fault(method, path_contains, code, message or f"injected {code}", times))

    # -- used by routes --------------------------------------------------------------------
    def review_access(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer a SelfSubjectAccessReview from the deny rules."""
        attrs = (body.get("spec") or {}).get("resourceAttributes")
        review = copy.deepcopy(body)
        review.update(apiVersion="authorization.k8s.io/v1", kind="SelfSubjectAccessReview")
        review.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        allowed = True
        if attrs:
            allowed = not any(
                rule.matches(
                    attrs.get("verb", ""),
                    attrs.get("resource", ""),
                    attrs.get("namespace") or None,
                    attrs.get("group", ""),
                )
                for rule in self.denied
            )
        review["status"] = {"allowed": allowed}
        if not allowed:
            review["status"]["reason"] = "denied by kubefake policy"
        return review

    def check_access(self, verb: str, target: Target) -> None:
        """403 Forbidden like RBAC when a deny rule covers this request."""
        rt = target.rt
        if any(rule.matches(verb, rt.plural, target.namespace, rt.group) for rule in self.denied):
            where = f' in the namespace "{target.namespace}"' if target.namespace else ""
            subject = f'{rt.group_resource} "{target.name}"' if target.name else rt.group_resource
            raise ApiError(
                403,
                f'{subject} is forbidden: User "kubefake" cannot {verb} resource "{rt.plural}" '
                f'in API group "{rt.group}"{where}',
                details={"name": target.name or "", "group": rt.group, "kind": rt.plural},
            )

    def serve(self, req: Request) -> Response:
        """Record the request, apply any injected fault, then answer it."""
        self.requests.append(req)
        for fault in self.faults:
            if fault.times > 0 and fault.method == req.method and fault.path_contains in req.path:
                fault.times -= 1
                return Response(fault.code, ApiError(fault.code, fault.message).status())
        try:
            with self.cluster.lock:
                return handle(self, req)
        except Exception as exc:  # a bug in the fake: answer 500 and keep it for the test to see
            self.server_errors.append(traceback.format_exc())
            return Response(500, ApiError(500, f"kubefake internal error: {exc!r}").status())

    def _settle(self, event: WriteEvent) -> None:
        if callable(self.auto_ready):
            controllers.settle(self.cluster, event, self.auto_ready)
        elif self.auto_ready:
            controllers.settle(self.cluster, event)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes; avoid 40 ms stalls
    fake: KubeFake

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, unquote(parts.path), query, content_type, raw, headers)
        response = self.fake.serve(request)
        if response.stream is not None:
            self._stream(response)
            return
        if response.content_type == "application/json":
            data = json.dumps(response.body).encode()
        else:
            data = str(response.body).encode()
        self.send_response(response.code)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, response: Response) -> None:
        self.send_response(response.code)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        assert response.stream is not None
        try:
            for chunk in response.stream:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
