"""A Kubernetes API server test double that the real `kubernetes` client talks to over HTTP.

with KubeFake(auto_ready=True) as kube:
    kube.kubeconfig(tmp_path / "kubeconfig")
    ...  # point the code under test at it, then assert on kube.objects() / kube.requests
"""

from .cluster import WriteEvent
from .errors import ApiError
from .resources import ResourceType, crd_manifest
from .routes import Request
from .server import KubeFake

__all__ = ["ApiError", "KubeFake", "Request", "ResourceType", "WriteEvent", "crd_manifest"]
