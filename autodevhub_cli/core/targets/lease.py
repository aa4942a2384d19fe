"""A coordination.k8s.io/v1 Lease per environment: two deploys never interleave, cluster-wide.

The holder renews the Lease while it works; a Lease whose renewTime is older than its duration
is stale (its holder died) and the next deploy takes it over.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from autodevhub_cli.core.adapters.kube import Conflict, Kube, ObjectRef, parse_time
from autodevhub_cli.core.lock import DeployLockedError

DURATION_SECONDS = 60


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Lease:
    """The deploy lock of one environment, held as a Lease in its namespace."""

    def __init__(self, kube: Kube, namespace: str, name: str, duration: int = DURATION_SECONDS):
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.duration = duration
        self.ref = ObjectRef("coordination.k8s.io/v1", "Lease", namespace, name)
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        self.identity = f"{user}@{socket.gethostname()} pid {os.getpid()}"

    def _body(self, command: str, acquired: dt.datetime, version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {
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
                "acquireTime": _micro(acquired),
                "renewTime": _micro(_now()),
            },
        }

    def acquire(self, command: str) -> None:
        """Take the Lease, or raise DeployLockedError naming its live holder."""
        self._ensure_namespace()
        acquired = _now()
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
        live = renewed is not None and (_now() - renewed).total_seconds() < duration
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
        """Push renewTime forward (keeps acquireTime)."""
        current = self.kube.get(self.ref)
        if current is None or (current.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        spec = current["spec"]
        acquired = parse_time(spec.get("acquireTime")) or _now()
        self.kube.replace(self._body(command, acquired, current["metadata"].get("resourceVersion")))

    def release(self) -> None:
        """Give the Lease back if it is still ours."""
        current = self.kube.get(self.ref)
        if current and (current.get("spec") or {}).get("holderIdentity") == self.identity:
            self.kube.delete(self.ref)

    @contextmanager
    def hold(self, command: str) -> Iterator[None]:
        """Hold the Lease for a block, renewing it in the background."""
        self.acquire(command)
        stop = threading.Event()

        def renew_loop() -> None:
            while not stop.wait(self.duration / 3):
                try:
                    self.renew(command)
                except Exception:  # a missed renewal is retried; the deploy goes on
                    continue

        thread = threading.Thread(target=renew_loop, name="lease-renewal", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            self.release()

    def _ensure_namespace(self) -> None:
        if self.kube.get(ObjectRef("v1", "Namespace", "", self.namespace)) is None:
            self.kube.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            )
