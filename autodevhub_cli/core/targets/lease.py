"""A coordination.k8s.io/v1 Lease per environment: two deploys never interleave, cluster-wide.

The holder renews the Lease while it works; a Lease whose renewTime is older than its duration
is stale (its holder died) and the next deploy takes it over.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from autodevhub_cli.core.adapters.kube import Conflict, Kube, ObjectRef, parse_time
from autodevhub_cli.core.lock import (
    DURATION_SECONDS,
    DeployLockedError,
    RenewedLock,
    now,
    stamp,
)


class Lease(RenewedLock):
    """The deploy lock of one environment, held as a Lease in its namespace."""

    def __init__(self, kube: Kube, namespace: str, name: str, duration: int = DURATION_SECONDS):
        super().__init__(f"Lease {namespace}/{name}", duration)
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.ref = ObjectRef("coordination.k8s.io/v1", "Lease", namespace, name)

    def _body(self, command: str, acquired: dt.datetime, version: str | None) -> dict[str, Any]:
        meta: dict[str, object] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "autodevhub-lock"},
            "annotations": {"autodevhub.io/command": command},
        }
        if version:
            meta["resourceVersion"] = version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration,
                "acquireTime": stamp(acquired),
                "renewTime": stamp(now()),
            },
        }

    def acquire(self, command: str) -> None:
        """Take the Lease, or raise DeployLockedError naming its live holder."""
        self._ensure_namespace()
        acquired = now()
        current = self.kube.get(self.ref)
        if current is None:
            try:
                self.kube.create(self._body(command, acquired, None))
                return
            except Conflict:
                current = self.kube.get(self.ref)
                if current is None:
                    raise
        spec = current.get("spec") or {}
        renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
        duration = int(spec.get("leaseDurationSeconds") or self.duration)
        holder = spec.get("holderIdentity")
        live = renewed is not None and (now() - renewed).total_seconds() < duration
        if holder and live and holder != self.identity:
            annotations = (current.get("metadata") or {}).get("annotations") or {}
            raise DeployLockedError(
                f"Another {annotations.get('autodevhub.io/command', 'deploy')} of this "
                f"environment holds Lease {self.namespace}/{self.name}: {holder}, since "
                f"{spec.get('acquireTime')}, renewed {spec.get('renewTime')}.",
                hint=f"Wait for it to finish; a holder that died stops renewing and the Lease "
                f"expires {duration}s after its last renewal.",
            )
        version = (current.get("metadata") or {}).get("resourceVersion")
        try:
            self.kube.replace(self._body(command, acquired, version))
        except Conflict:
            raise DeployLockedError(
                f"Another deploy took Lease {self.namespace}/{self.name} at the same moment.",
                hint="Wait for it to finish, then deploy again.",
            ) from None

    def renew(self, command: str) -> None:
        """Push renewTime forward (keeps acquireTime); a Lease that is gone or held by another
        identity is lost for good."""
        current = self.kube.get(self.ref)
        if current is None:
            self.lost = f"{self.what} was deleted while this deploy held it"
            return
        spec = current.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            self.lost = (
                f"{self.what} was taken over by {spec.get('holderIdentity') or 'nobody'} at "
                f"{spec.get('acquireTime')}"
            )
            return
        acquired = parse_time(spec.get("acquireTime")) or now()
        try:
            self.kube.replace(
                self._body(command, acquired, current["metadata"].get("resourceVersion"))
            )
        except Conflict:
            return  # changed under us: the next renewal reads it again
        self.renewed()

    def holder(self) -> str | None:
        """The Lease's holderIdentity (None when the Lease is gone)."""
        current = self.kube.get(self.ref)
        if current is None:
            return None
        return str((current.get("spec") or {}).get("holderIdentity") or "nobody")

    def release(self) -> None:
        """Give the Lease back if it is still ours."""
        current = self.kube.get(self.ref)
        if current and (current.get("spec") or {}).get("holderIdentity") == self.identity:
            self.kube.delete(self.ref)

    def _ensure_namespace(self) -> None:
        if self.kube.get(ObjectRef("v1", "Namespace", "", self.namespace)) is None:
            self.kube.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            )
