"""A separate generation worker: the API processes only queue (PROCESS_ROLE=api), and
`python -m service worker` claims and generates, with its own health, readiness and metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
from fastapi.testclient import TestClient

from service.main import create_app
from tests.helpers import REPO
from tests.service.conftest import SettingsFactory, wait_for
from tests.web.web_servers import free_port


def test_the_api_only_queues_and_the_worker_generates(migrated: SettingsFactory) -> None:
    with TestClient(create_app(migrated(process_role="api"))) as api:
        created = api.post("/api/stories", json={"feature": "Export invoices as PDF"})
        assert created.status_code == 202, created.text
        story_id = created.json()["id"]
        time.sleep(1.0)  # five of the worker's poll intervals: an API process claims nothing
        assert api.get(f"/api/stories/{story_id}").json()["status"] == "queued"
        with TestClient(create_app(migrated(process_role="worker"))) as worker:
            body = wait_for(api, story_id)
            assert body["status"] == "done" and body["stories"], body
            # The worker serves operations only: no API, its own metrics.
            assert worker.get("/api/stories").status_code == 404
            assert worker.get("/healthz").status_code == 200
            assert worker.get("/readyz").json()["status"] == "ready"
            scrape = worker.get("/metrics").text
            done = [
                line
                for line in scrape.splitlines()
                if line.startswith("story_sets_finished_total") and 'outcome="done"' in line
            ]
            assert done and float(done[0].rsplit(" ", 1)[1]) >= 1, scrape[:2000]


def test_python_m_service_worker_runs_and_stops_on_sigterm(migrated: SettingsFactory) -> None:
    settings = migrated()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "PORT": str(port),
        "WORKER_POLL_SECONDS": "0.2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "worker"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the worker never became ready"
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/api/stories", timeout=2).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    # uvicorn shuts down gracefully, then re-raises the signal it caught (as the API does).
    assert proc.returncode in (0, -signal.SIGTERM), output[-2000:]
    assert "Application shutdown complete." in output
    assert '"role": "worker"' in output
