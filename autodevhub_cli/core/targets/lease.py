"""A coordination.k8s.io/v1 Lease per environment: two deploys never interleave, cluster-wide.

The holder renews the Lease while it works; a Lease whose renewTime is older than its duration
is stale (its holder died) and the next deploy takes it over.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from autodevhub_cli.core.adapters.kube import Conflict, Kube, ObjectRef, parse_time
from autodevhub_cli.core.errors import AutodevhubError
from autodevhub_cli.core.lock import DeployLockedError, LockLostError

log = logging.getLogger("autodevhub.lease")

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
        self.lost: str | None = None  # why the Lease is no longer ours, once it is not
        self._renewed = _now()

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
        """Push renewTime forward (keeps acquireTime); a Lease that is gone or held by another
        identity is lost for good."""
        current = self.kube.get(self.ref)
        if current is None:
            self.lost = f"Lease {self.namespace}/{self.name} was deleted while this deploy held it"
            return
        spec = current.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            self.lost = (
                f"Lease {self.namespace}/{self.name} was taken over by "
                f"{spec.get('holderIdentity') or 'nobody'} at {spec.get('acquireTime')}"
            )
            return
        acquired = parse_time(spec.get("acquireTime")) or _now()
        try:
            self.kube.replace(
                self._body(command, acquired, current["metadata"].get("resourceVersion"))
            )
        except Conflict:
            return  # changed under us: the next renewal reads it again
        self._renewed = _now()

    def check(self) -> None:
        """Raise LockLostError unless the Lease is still this deploy's: not lost, and renewed
        within a third of its duration (past that, another deploy may soon take it)."""
        if self.lost is None:
            try:
                current = self.kube.get(self.ref)
            except Exception:  # unreachable now: the silence below decides
                current = {"spec": {"holderIdentity": self.identity}}
            holder = ((current or {}).get("spec") or {}).get("holderIdentity")
            if current is None:
                self.lost = (
                    f"Lease {self.namespace}/{self.name} was deleted while this deploy held it"
                )
            elif holder != self.identity:
                self.lost = (
                    f"Lease {self.namespace}/{self.name} was taken over by {holder or 'nobody'}"
                )
        if self.lost is None:
            silent = (_now() - self._renewed).total_seconds()
            if silent > self.duration / 3:
                self.lost = (
                    f"Lease {self.namespace}/{self.name} has not been renewed for {silent:.0f}s "
                    f"(the limit is a third of its {self.duration}s duration)"
                )
        if self.lost is not None:
            raise LockLostError(
                f"The deploy stopped: {self.lost}. Nothing more was changed after that.",
                hint="Check who deploys this environment (`autodevhub status`), then deploy again.",
            )

    def release(self) -> None:
        """Give the Lease back if it is still ours."""
        current = self.kube.get(self.ref)
        if current and (current.get("spec") or {}).get("holderIdentity") == self.identity:
            self.kube.delete(self.ref)

    @contextmanager
    def hold(self, command: str) -> Iterator[None]:
        """Hold the Lease for a block, renewing it in the background. It is given back however
        the block ends, a signal included, even one that lands while the Lease is being taken
        (its write may have reached the server); `release` leaves another holder's alone."""
        stop = threading.Event()

        def renew_loop() -> None:
            # Every sixth of the duration: one missed renewal still leaves the deploy within
            # the third that `check` allows; two in a row stop it at its next step.
            while not stop.wait(self.duration / 6) and self.lost is None:
                try:
                    self.renew(command)
                except Exception:  # retried at the next tick; `check` counts the silence
                    continue

        thread = threading.Thread(target=renew_loop, name="lease-renewal", daemon=True)
        try:
            self.acquire(command)
            self._renewed = _now()
            thread.start()
            yield
        finally:
            stop.set()
            if thread.ident is not None:
                thread.join(timeout=5)
            try:
                self.release()
            except AutodevhubError as exc:  # the deploy's own outcome matters more
                log.warning(
                    "could not give Lease %s back (%s); it expires by itself", self.name, exc
                )

    def _ensure_namespace(self) -> None:
        if self.kube.get(ObjectRef("v1", "Namespace", "", self.namespace)) is None:
            self.kube.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            )
