"""`kubectl port-forward` to a Service, for smoke checks when no Ingress is reachable.

kubectl speaks the API server's streaming protocol (SPDY/WebSocket) that the Python client's
port-forward only half supports; running it as a child process is what CI runners already do.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from autodevhub_cli.core.adapters import process
from autodevhub_cli.core.errors import ToolError

log = logging.getLogger("autodevhub.port_forward")
_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


@contextmanager
def forward(
    svc_name: str,
    port: int,
    namespace: str,
    *,
    context: str | None = None,
    kubeconfig: str | None = None,
    timeout: float = 30.0,
) -> Iterator[str]:
    """A local URL that reaches `svc_name:port` in `namespace` while the block runs."""
    kubectl = os.environ.get("AUTODEVHUB_KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        raise ToolError(
            "kubectl is needed to port-forward to the cluster for smoke checks.",
            command=["kubectl"],
            returncode=None,
            hint="Install kubectl, or set smoke.urls.<component> to a URL the runner can reach.",
        )
    command = [
        kubectl,
        "port-forward",
        f"svc/{svc_name}",
        f":{port}",
        "-n",
        namespace,
        "--address",
        "127.0.0.1",
    ]
    if context:
        command += ["--context", context]
    if kubeconfig:
        command += ["--kubeconfig", kubeconfig]
    proc = process.start(
        command,
        what="kubectl port-forward",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        bufsize=1,
    )
    lines: list[str] = []
    found: dict[str, int] = {}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            match = _FORWARDING.search(line)
            if match and "port" not in found:
                found["port"] = int(match.group(1))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while "port" not in found and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        if "port" not in found:
            raise ToolError(
                f"kubectl port-forward to svc/{svc_name} in {namespace} did not start.",
                command=command,
                returncode=proc.poll(),
                output="\n".join(lines),
            )
        yield f"http://127.0.0.1:{found['port']}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
