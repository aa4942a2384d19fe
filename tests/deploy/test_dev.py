"""`autodevhub dev` on the real Docker engine, with a copy of this project: the first deploy,
then a backend edit (synced, the containers restarted, new answer served, checks passed), an
edit that breaks the backend (said at once, not silently) and its fix, a web edit (the
frontend rebuilt and deployed, checks passed), and Ctrl-C during the next web edit's deploy
leaving the last good state running."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.deploy.conftest import Stack
from tests.helpers import Gathered

ROUTE = '''

@router.get("/api/dev-mark")
async def dev_mark() -> dict[str, str]:
    """Added by tests/deploy/test_dev.py."""
    return {{"mark": "{mark}"}}
'''


class Dev(Gathered):
    """`autodevhub dev --env dev` as a process of its own, its stdout gathered line by line."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(
            [sys.executable, "-m", "autodevhub_cli", "dev", "--env", "dev"],
            {**stack.process_env(), "NO_COLOR": "1"},
        )

    def status(self) -> list[str]:
        return [line for line in self.lines if re.match(r"^\[\d\d:\d\d:\d\d\] dev: ", line)]

    def wait_status(self, words: str, seconds: float = 180) -> str:
        """The first status line (after those seen so far) holding `words`."""
        seen = len(self.status())
        deadline = time.monotonic() + seconds
        while True:
            for line in self.status()[seen:]:
                if words in line:
                    return line
            assert self.proc.poll() is None, f"dev ended: {self.errors[-10:]}"
            assert time.monotonic() < deadline, f"no {words!r}: {self.status()[-5:]}"
            time.sleep(0.1)


@pytest.fixture()
def dev(stack: Stack) -> Iterator[Dev]:
    running = Dev(stack)
    yield running
    running.stop()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as answer:
        return str(answer.read().decode())


def _until(what: str, seen: Callable[[], bool], seconds: float = 60) -> float:
    started = time.monotonic()
    while True:
        try:
            if seen():
                return time.monotonic() - started
        except OSError:
            pass
        assert time.monotonic() - started < seconds, f"{what} not seen in {seconds:.0f}s"
        time.sleep(0.05)


def test_dev_syncs_a_backend_edit_rebuilds_a_web_edit_and_ctrl_c_leaves_it_running(
    stack: Stack, dev: Dev
) -> None:
    backend = f"http://127.0.0.1:{stack.backend_port}"
    frontend = f"http://127.0.0.1:{stack.frontend_port}"
    first = dev.wait_status("deployed release", seconds=300)
    assert "watching" in first and "service" in first, first

    # A backend edit: synced (mounted), the backend and the worker restarted, served, checked.
    ops = stack.root / "service" / "routes" / "ops.py"
    original = ops.read_text()
    ops.write_text(original + ROUTE.format(mark="one"))
    took = _until(
        "the new route",
        lambda: json.loads(_get(f"{backend}/api/dev-mark")).get("mark") == "one",
    )
    line = dev.wait_status("service/routes/ops.py changed")
    assert "restarted backend, restarted worker" in line and "FAILED" not in line, line
    assert re.search(r"checks (\d+)/\1 passed", line), line
    print(f"backend edit served after {took:.2f}s; {line}")

    # An edit that breaks the backend is said at once, with what it printed; the fix heals it.
    ops.write_text(original + ROUTE.format(mark="two") + "\ndef broken(:\n")
    broken = dev.wait_status("service/routes/ops.py changed", seconds=90)
    assert "FAILED" in broken and "SyntaxError" in broken, broken
    ops.write_text(original + ROUTE.format(mark="three"))
    healed = dev.wait_status("service/routes/ops.py changed", seconds=120)
    assert "FAILED" not in healed and re.search(r"checks (\d+)/\1 passed", healed), healed
    assert json.loads(_get(f"{backend}/api/dev-mark"))["mark"] == "three"

    # A web edit: the frontend's image rebuilt with the new bundle and deployed, checked.
    page = stack.root / "service" / "web" / "src" / "index.html"
    page.write_text(page.read_text().replace("<title>", "<title>dev loop · ", 1))
    line = dev.wait_status("rebuilt and deployed", seconds=300)
    assert "service/web/src/index.html changed" in line and "frontend" in line, line
    assert "FAILED" not in line and re.search(r"checks (\d+)/\1 passed", line), line
    assert "dev loop · " in _get(frontend)

    # The logs of the components came along.
    assert any(line.startswith(("backend/1 ", "backend/1 |")) for line in dev.lines)

    # Ctrl-C while the next web edit is being built and deployed: exit 0, the interrupted
    # deploy says what it left, and the last good state still runs and serves.
    page.write_text(page.read_text().replace("dev loop · ", "never served · ", 1))
    dev.wait_status("service/web/src/index.html changed: building and deploying")
    time.sleep(1)
    code = dev.interrupt()
    assert code == 0, dev.errors[-10:]
    assert "stopped watching" in dev.status()[-1], dev.status()[-3:]
    print(dev.status()[-1])
    # (the backend's own traceback of the broken edit is in its log lines: not autodevhub's)
    assert not any("Traceback" in line for line in dev.errors + dev.status())
    time.sleep(2)
    assert json.loads(_get(f"{backend}/api/dev-mark"))["mark"] == "three"
    assert "dev loop · " in _get(frontend) and "never served" not in _get(frontend)
    code, out, err = stack.cli("status", "--env", "dev", "--output", "json")
    assert code == 0, err
    state = json.loads(out)
    assert state["running"] and state["current"]["status"] == "deployed", state
    assert all(w["state"] == "running" for w in state["workloads"]), state["workloads"]
    assert os.environ.get("AUTODEVHUB_PROJECT_DIR") is None  # the stack's env stays its own
