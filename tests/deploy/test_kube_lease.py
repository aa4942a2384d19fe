"""No deploy without its lock, on the real control plane: a Lease taken over, deleted, or not
renewed for a third of its duration stops the deploy before its next step, changing nothing
more and rolling nothing back.

Why kwok nodes are enough here: the lock is a coordination.k8s.io Lease, kept by the API server
alone; the tests assert its holder, the check that notices it taken over or not renewed, and the
deploy's exit code, message and release record when it is lost. No container takes part: the
deploys of the last test need their pods only to be Ready (the condition kwok sets and the
rollout wait reads), and the step under test is a smoke check against a local HTTP server that
takes the Lease over.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autodevhub_cli.core.adapters.kube import Kube
from autodevhub_cli.core.lock import LockLostError
from autodevhub_cli.core.targets.lease import Lease
from tests.deploy.kube_cluster import Cluster

pytestmark = pytest.mark.k8s


def _take_over(cluster: Cluster, name: str) -> None:
    cluster.patch_as("someone-else", "Lease", name, {"spec": {"holderIdentity": "another deploy"}})


def test_a_lease_taken_over_is_lost_at_the_next_check(cluster: Cluster) -> None:
    lease = Lease(cluster.kube, cluster.ns, "autodevhub-test", duration=30)
    with lease.hold("deploy"):
        lease.check()
        _take_over(cluster, "autodevhub-test")
        with pytest.raises(LockLostError, match="taken over by another deploy"):
            lease.check()
    assert cluster.obj("Lease", "autodevhub-test") is not None, "the new holder's Lease stays"


def test_renewals_failing_for_a_third_of_the_duration_lose_the_lease(cluster: Cluster) -> None:
    own = Kube.connect(kubeconfig=str(cluster.kubeconfig))  # a connection of its own to cut
    lease = Lease(own, cluster.ns, "autodevhub-test", duration=3)
    with lease.hold("deploy"):
        lease.check()
        own.api_client.configuration.host = "https://127.0.0.1:1"  # unreachable from now on
        deadline = time.monotonic() + 20
        while True:
            try:
                lease.check()
            except LockLostError as exc:
                assert "has not been renewed for" in str(exc)
                break
            assert time.monotonic() < deadline, "the silence was never noticed"
            time.sleep(0.2)


def test_a_deploy_whose_lease_is_taken_over_stops_before_its_next_step(cluster: Cluster) -> None:
    # The smoke check's target takes the Lease over when it is asked: the deploy must stop
    # right after the check, record the release failed, and roll nothing back.
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            _take_over(cluster, "autodevhub-staging")
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cluster.record_build("staging", "c-00000000000000a1")
        assert cluster.deploy("staging")[0] == 0
        cluster.record_build("staging", "c-00000000000000a2")
        code, _, err = cluster.deploy(
            "staging",
            "--set",
            "smoke.probes=false",
            "--set",
            f"smoke.urls.frontend=http://127.0.0.1:{server.server_address[1]}",
            "--set",
            "smoke.checks=[{name: takeover, component: frontend, path: /}]",
        )
    finally:
        server.shutdown()
    assert code == 1, err
    assert "The deploy stopped: Lease" in err and "taken over by another deploy" in err
    assert "Rolled back" not in err and "rolling back" not in err
    assert cluster.releases("staging")[-1]["status"] == "failed"
