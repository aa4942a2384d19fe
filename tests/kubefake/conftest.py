"""Make the kubefake fixtures available to its own tests."""

from tests.kubefake.fixture import kube, kube_client, kube_dynamic, kubeconfig  # noqa: F401
