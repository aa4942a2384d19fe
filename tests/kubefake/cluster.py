"""The object store and the write path every verb goes through (one lock, one resourceVersion)."""

from __future__ import annotations

import copy
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import errors, fieldmanager, patches
from .defaults import apply_defaults
from .errors import ApiError
from .resources import BUILTIN_TYPES, ResourceType, default_crds, types_from_crd
from .selectors import field_selector, label_selector
from .validation import validate

Key = tuple[str, str, str, str, str]  # group, version, plural, namespace, name
CRD_TYPE = next(t for t in BUILTIN_TYPES if t.plural == "customresourcedefinitions")
NS_TYPE = next(t for t in BUILTIN_TYPES if t.plural == "namespaces")
PATCH_TYPES = (
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
)


def now() -> str:
    """An RFC 3339 timestamp in the API server's second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WriteEvent:
    """What a write hook sees: ADDED, MODIFIED or DELETED, the type and the stored object."""

    type: str
    resource: ResourceType
    object: dict[str, Any]
    old: dict[str, Any] | None
    subresource: str = ""


@dataclass(frozen=True)
class WriteOptions:
    """Per-request write switches from the query string."""

    manager: str = "kubefake"
    dry_run: bool = False
    subresource: str = ""
    force: bool = False


class Cluster:
    """Thread-safe object store with the real API server's write semantics."""

    def __init__(self, *, with_crds: bool = True, auto_create_namespaces: bool = False) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.auto_create_namespaces = auto_create_namespaces
        self.objects: dict[Key, dict[str, Any]] = {}
        self.history: list[tuple[int, str, ResourceType, dict[str, Any]]] = []
        self.hooks: list[Callable[[WriteEvent], None]] = []
        self.revision = 0
        for name in ("default", "kube-system", "kube-public"):
            self.create(NS_TYPE, "", {"metadata": {"name": name}})
        if with_crds:
            for crd in default_crds():
                self.create(CRD_TYPE, "", crd)

    # -- types -----------------------------------------------------------------------------
    def types(self) -> list[ResourceType]:
        """Built-in types plus one per served version of every stored CRD."""
        with self.lock:
            crds = [o for k, o in self.objects.items() if k[2] == "customresourcedefinitions"]
        found = list(BUILTIN_TYPES)
        for crd in crds:
            found += types_from_crd(crd)
        return found

    def find_type(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at group/version/plural, if any."""
        for rt in self.types():
            if (rt.group, rt.version, rt.plural) == (group, version, plural):
                return rt
        return None

    def type_for_kind(self, api_version: str, kind: str) -> ResourceType:
        """Look a type up by apiVersion and kind, as manifests name them."""
        for rt in self.types():
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        raise KeyError(f"no resource type for {api_version} {kind}")

    # -- reads -----------------------------------------------------------------------------
    @staticmethod
    def key(rt: ResourceType, namespace: str, name: str) -> Key:
        """Store key; cluster-scoped objects have an empty namespace."""
        return (rt.group, rt.version, rt.plural, namespace if rt.namespaced else "", name)

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        """A copy of one object, or NotFound."""
        with self.lock:
            obj = self.objects.get(self.key(rt, namespace, name))
            if obj is None:
                raise errors.not_found(rt, name)
            return copy.deepcopy(obj)

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: str | None = None,
        fields: str | None = None,
    ) -> list[dict[str, Any]]:
        """Copies of matching objects, sorted by namespace and name."""
        by_label, by_field = label_selector(labels), field_selector(fields)
        with self.lock:
            found = [
                copy.deepcopy(obj)
                for key, obj in sorted(self.objects.items())
                if key[:3] == (rt.group, rt.version, rt.plural)
                and (namespace is None or key[3] == namespace)
                and by_label(obj)
                and by_field(obj)
            ]
        return found

    # -- writes ----------------------------------------------------------------------------
    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: dict[str, Any],
        opts: WriteOptions | None = None,
    ) -> dict[str, Any]:
        """POST: store a new object, AlreadyExists if the name is taken."""
        opts = opts or WriteOptions()
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta.get("name") or ""
        with self.lock:
            if not name:
                raise errors.invalid(
                    rt,
                    "",
                    [
                        (
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            if meta.get("resourceVersion"):
                raise errors.bad_request(
                    "resourceVersion should not be set on objects to be created"
                )
            if self.key(rt, namespace, name) in self.objects:
                raise errors.already_exists(rt, name)
            managers = fieldmanager.record_update(
                [],
                None,
                self._normalize(rt, namespace, name, obj),
                name=opts.manager,
                subresource="",
                api_version=rt.api_version,
                now=now(),
                has_status=rt.has_status,
                assoc=not rt.from_crd,
            )
            return self._commit(rt, namespace, name, None, obj, managers, opts)

    def replace(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: dict[str, Any],
        opts: WriteOptions,
    ) -> dict[str, Any]:
        """PUT: replace the object (or its status), Conflict on a stale resourceVersion."""
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        with self.lock:
            old = self.get(rt, namespace, name)
            given = meta.get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise errors.stale(rt, name)
            return self._update(rt, namespace, name, old, obj, opts)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
    ) -> dict[str, Any]:
        """PATCH in any of the four flavours; apply creates the object when it is missing."""
        with self.lock:
            if patch_type == PATCH_TYPES[3]:
                return self._apply(rt, namespace, name, body, opts)
            old = self.get(rt, namespace, name)
            if patch_type != PATCH_TYPES[2] and not isinstance(body, dict):
                raise errors.bad_request(
                    "json: cannot unmarshal array into Go value of type map[string]interface {}"
                )
            if patch_type == PATCH_TYPES[0]:
                new = patches.merge_patch(old, body)
            elif patch_type == PATCH_TYPES[1]:
                new = patches.strategic_merge_patch(old, body)
            else:
                new = patches.json_patch(old, body)
                if not isinstance(new, dict):
                    raise errors.bad_request("json patch must leave an object")
            given = (
                (body.get("metadata") or {}).get("resourceVersion")
                if isinstance(body, dict)
                else None
            )
            if given and given != old["metadata"]["resourceVersion"]:
                raise errors.stale(rt, name)
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
            return self._update(rt, namespace, name, old, new, opts)

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        opts: WriteOptions | None = None,
        *,
        orphan: bool = False,
    ) -> dict[str, Any]:
        """DELETE: remove now (dependents too unless orphaned), or mark while finalizers remain."""
        opts = opts or WriteOptions()
        with self.lock:
            old = self.get(rt, namespace, name)
            if old["metadata"].get("finalizers"):
                marked = copy.deepcopy(old)
                marked["metadata"].setdefault("deletionTimestamp", now())
                marked["metadata"]["deletionGracePeriodSeconds"] = 0
                if opts.dry_run:
                    return marked
                return self._store(rt, "MODIFIED", marked, old, opts)
            if not opts.dry_run:
                self._remove(rt, old, orphan)
            return old

    def scale_view(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        """The autoscaling/v1 Scale the `/scale` subresource shows for an object."""
        obj = self.get(rt, namespace, name)
        meta = obj["metadata"]
        selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        status = obj.get("status") or {}
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": status.get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
            },
        }

    def scale(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        scale: dict[str, Any],
        opts: WriteOptions,
    ) -> dict[str, Any]:
        """Write `spec.replicas` through `/scale`, owned by the writer with subresource scale."""
        with self.lock:
            old = self.get(rt, namespace, name)
            given = (scale.get("metadata") or {}).get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise errors.stale(rt, name)
            replicas = (scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.invalid(
                    rt,
                    name,
                    [("FieldValueInvalid", "spec.replicas", f"Invalid value: {replicas!r}")],
                )
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["replicas"] = replicas
            self._update(rt, namespace, name, old, new, opts)
            return self.scale_view(rt, namespace, name)

    def set_status(
        self, rt: ResourceType, namespace: str, name: str, status: dict[str, Any], manager: str
    ) -> dict[str, Any]:
        """Replace `status` as a controller would, through the status subresource."""
        with self.lock:
            old = self.get(rt, namespace, name)
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(status)
            opts = WriteOptions(manager=manager, subresource="status")
            return self._update(rt, namespace, name, old, new, opts)

    # -- internals -------------------------------------------------------------------------
    def _normalize(
        self, rt: ResourceType, namespace: str, name: str, obj: dict[str, Any]
    ) -> dict[str, Any]:
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        meta["name"] = name
        if rt.namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def _update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        old: dict[str, Any],
        new: dict[str, Any],
        opts: WriteOptions,
    ) -> dict[str, Any]:
        self._normalize(rt, namespace, name, new)
        new = self._scope_to_subresource(rt, old, new, opts.subresource)
        managers = fieldmanager.record_update(
            fieldmanager.read_managers(old),
            old,
            new,
            name=opts.manager,
            subresource=opts.subresource,
            api_version=rt.api_version,
            now=now(),
            has_status=rt.has_status,
            assoc=not rt.from_crd,
        )
        return self._commit(rt, namespace, name, old, new, managers, opts)

    def _apply(
        self, rt: ResourceType, namespace: str, name: str, config: Any, opts: WriteOptions
    ) -> dict[str, Any]:
        if not isinstance(config, dict):
            raise errors.bad_request("apply patch must be a YAML or JSON object")
        if config.get("apiVersion") != rt.api_version or config.get("kind") != rt.kind:
            raise errors.bad_request(
                f"invalid object type: {config.get('apiVersion')}, Kind={config.get('kind')}; "
                f"this endpoint serves {rt.api_version}, Kind={rt.kind}"
            )
        meta = config.get("metadata") or {}
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        key = self.key(rt, namespace, name)
        old = copy.deepcopy(self.objects.get(key))
        given = meta.get("resourceVersion")
        if old is not None and given and given != old["metadata"]["resourceVersion"]:
            raise errors.stale(rt, name)
        if old is None and opts.subresource:
            raise errors.not_found(rt, name)
        live = old or self._normalize(rt, namespace, name, {"metadata": {}})
        merged, managers = fieldmanager.apply(
            fieldmanager.read_managers(live),
            live,
            config,
            name=opts.manager,
            subresource=opts.subresource,
            api_version=rt.api_version,
            now=now(),
            force=opts.force,
            has_status=rt.has_status,
            assoc=not rt.from_crd,
        )
        self._normalize(rt, namespace, name, merged)
        if old is not None:
            merged = self._scope_to_subresource(rt, old, merged, opts.subresource)
        return self._commit(rt, namespace, name, old, merged, managers, opts)

    @staticmethod
    def _scope_to_subresource(
        rt: ResourceType, old: dict[str, Any], new: dict[str, Any], subresource: str
    ) -> dict[str, Any]:
        if subresource == "status":
            scoped = copy.deepcopy(old)
            scoped["metadata"]["resourceVersion"] = new["metadata"].get("resourceVersion")
            if "status" in new:
                scoped["status"] = new["status"]
            else:
                scoped.pop("status", None)
            return scoped
        if rt.has_status:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        return new

    def _commit(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        managers: list[fieldmanager.Manager],
        opts: WriteOptions,
    ) -> dict[str, Any]:
        self._normalize(rt, namespace, name, new)
        meta = new["metadata"]
        if old is None and rt.has_status and opts.subresource != "status":
            new.pop("status", None)
        apply_defaults(rt, new, old)
        if old is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            meta["generation"] = 1
        else:
            for field in ("uid", "creationTimestamp", "deletionTimestamp"):
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
            meta["generation"] = old["metadata"].get("generation", 1) + (
                1 if _content(old) != _content(new) else 0
            )
        fieldmanager.write_managers(new, managers)
        self._validate(rt, namespace, name, old, new)
        if opts.dry_run:
            if old is None:
                meta.pop("resourceVersion", None)
            return new
        if old is not None and meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(rt, new)
            return new
        if old is not None and _unchanged(old, new):
            return old  # like etcd's guaranteed update: nothing new, no new resourceVersion
        return self._store(rt, "ADDED" if old is None else "MODIFIED", new, old, opts)

    def _store(
        self,
        rt: ResourceType,
        kind: str,
        new: dict[str, Any],
        old: dict[str, Any] | None,
        opts: WriteOptions,
    ) -> dict[str, Any]:
        self.revision += 1
        new["metadata"]["resourceVersion"] = str(self.revision)
        meta = new["metadata"]
        self.objects[self.key(rt, meta.get("namespace", ""), meta["name"])] = new
        self._notify(kind, rt, new, old, opts.subresource)
        return copy.deepcopy(new)

    def _remove(self, rt: ResourceType, obj: dict[str, Any], orphan: bool = False) -> None:
        meta = obj["metadata"]
        self.objects.pop(self.key(rt, meta.get("namespace", ""), meta["name"]), None)
        self.revision += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.revision)
        doomed: list[Key] = []
        if rt.plural == "namespaces":
            doomed = [k for k in self.objects if k[3] == meta["name"]]
        elif rt.plural == "customresourcedefinitions":
            spec = obj.get("spec") or {}
            group, plural = spec.get("group"), (spec.get("names") or {}).get("plural")
            doomed = [k for k in self.objects if (k[0], k[2]) == (group, plural)]
        elif not orphan:
            # The garbage collector, without the delay: dependents go with their owner.
            doomed = [
                k
                for k, o in self.objects.items()
                if k[3] == meta.get("namespace", "")
                and any(
                    ref.get("uid") == meta.get("uid")
                    for ref in (o.get("metadata") or {}).get("ownerReferences") or []
                )
            ]
        for key in doomed:
            found = self.find_type(*key[:3]) or (types_from_crd(obj) or [rt])[0]
            if key in self.objects:
                self._remove(found, self.objects[key])
        self._notify("DELETED", rt, gone, obj, "")

    def _notify(
        self,
        kind: str,
        rt: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        subresource: str,
    ) -> None:
        self.history.append((self.revision, kind, rt, copy.deepcopy(obj)))
        del self.history[:-2000]
        self.changed.notify_all()
        event = WriteEvent(kind, rt, copy.deepcopy(obj), old, subresource)
        for hook in list(self.hooks):
            hook(event)

    def _validate(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        old: dict[str, Any] | None,
        new: dict[str, Any],
    ) -> None:
        validate(rt, name, old, new)
        if rt.namespaced and old is None:
            ns_key = self.key(NS_TYPE, "", namespace)
            if ns_key not in self.objects:
                if not self.auto_create_namespaces:
                    raise ApiError(
                        404,
                        f'namespaces "{namespace}" not found',
                        details={"name": namespace, "kind": "namespaces"},
                    )
                self.create(NS_TYPE, "", {"metadata": {"name": namespace}})


def _unchanged(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when a write changes nothing but managedFields timestamps."""

    def comparable(obj: dict[str, Any]) -> dict[str, Any]:
        meta = dict(obj["metadata"])
        meta.pop("resourceVersion", None)
        meta["managedFields"] = [
            {k: v for k, v in entry.items() if k != "time"}
            for entry in meta.get("managedFields") or []
        ]
        return {**obj, "metadata": meta}

    return comparable(old) == comparable(new)


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything but metadata and status: what `metadata.generation` tracks."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
