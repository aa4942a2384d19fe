"""In-cluster configuration: a CI runner in a pod reaches the API with its service account.

The double serves HTTPS with a certificate from a throwaway CA, as the pod's `ca.crt` describes
the real API server's; the token and CA files stand where the kubelet mounts them
(`/var/run/secrets/kubernetes.io/serviceaccount/`), redirected into the test's folder.

On the double rather than the real control plane because these tests need what only a server
of the test's own can show: the exact Authorization header of every request, and a server
certificate signed by a CA the test makes (a wrong CA must stop the client before it sends
anything). The real cluster's RBAC and tokens are exercised by the least-privilege deploy in
test_kube_rbac.py.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes.config import incluster_config

from tests.helpers import REPO, run_cli
from tests.kubefake.server import KubeFake
from tests.kubefake.tls import ServerCertificate, make_server_certificate

pytestmark = pytest.mark.k8s


@dataclass
class Pod:
    """A project, a service account's files and the environment a pod gives its containers."""

    root: Path
    account: Path
    fake: KubeFake
    env: dict[str, str | None]

    def cli(self, *args: str) -> tuple[int, str, str]:
        return run_cli(*args, "--project-dir", str(self.root), env=self.env)  # type: ignore[arg-type]


@pytest.fixture()
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pod]:
    root = tmp_path / "project"
    for folder in ("environments", "templates"):
        shutil.copytree(REPO / folder, root / folder)
    tls = make_server_certificate(tmp_path / "tls")
    account = tmp_path / "serviceaccount"
    account.mkdir()
    token = secrets.token_hex(16)
    (account / "token").write_text(token)
    shutil.copy(tls.ca, account / "ca.crt")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(account / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(account / "ca.crt"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with KubeFake(auto_ready=True, auto_create_namespaces=False, token=token, tls=tls) as fake:
        env: dict[str, str | None] = {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(fake.port),
            "KUBECONFIG": None,
            "AUTODEVHUB__NAMESPACE": f"adh-{secrets.token_hex(3)}",
        }
        yield Pod(root, account, fake, env)


def test_a_pod_reaches_the_api_over_tls_with_its_service_account(pod: Pod) -> None:
    code, out, err = pod.cli("diff", "--env", "staging")
    assert code == 0, err
    namespace = pod.env["AUTODEVHUB__NAMESPACE"]
    assert f"Namespace {namespace}" in out
    assert "Deployment backend" in out
    token = (pod.account / "token").read_text()
    seen = pod.fake.requests_to()
    assert seen, "no request reached the API double"
    assert all(r.headers.get("authorization", "").lower() == f"bearer {token}" for r in seen)
    # A dry run: nothing was created.
    assert not pod.fake.objects(kind="Deployment")


def test_an_explicit_kubeconfig_wins_over_the_service_account(pod: Pod, tmp_path: Path) -> None:
    # The service account's token is wrong; the kubeconfig's is right.
    (pod.account / "token").write_text("not-the-token")
    kubeconfig = pod.fake.kubeconfig(tmp_path / "kubeconfig")
    code, _, err = pod.cli("diff", "--env", "staging", "--kubeconfig", str(kubeconfig))
    assert code == 0, err
    code, _, err = pod.cli("diff", "--env", "staging")
    assert code != 0
    assert "HTTP 401" in err
    assert "Traceback" not in err


def test_a_pod_without_a_mounted_token_is_told_what_to_mount(pod: Pod) -> None:
    (pod.account / "token").unlink()
    code, out, err = pod.cli("diff", "--env", "staging")
    assert code == 2, err
    assert "Cannot use the pod's ServiceAccount" in err
    assert "KUBERNETES_SERVICE_HOST" in err
    assert "automountServiceAccountToken" in err
    assert "Traceback" not in err and out == ""


def test_a_server_certificate_the_pods_ca_did_not_sign_is_refused(pod: Pod, tmp_path: Path) -> None:
    other: ServerCertificate = make_server_certificate(tmp_path / "other-ca")
    shutil.copy(other.ca, pod.account / "ca.crt")
    code, _, err = pod.cli("diff", "--env", "staging")
    assert code != 0
    assert "unreachable" in err and "CERTIFICATE_VERIFY_FAILED" in err
    assert "Traceback" not in err
    assert not pod.fake.requests_to()
