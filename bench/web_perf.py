"""Page-load figures for the web front end: cold loads in headless Chromium through nginx.

    python3 bench/web_perf.py [--runs 20] [--json artifacts/web-bench.json]

Builds service/web into a temporary dist/, starts the real backend (SQLite, offline generator) and
nginx with service/web/nginx.conf (filled in by docker-entrypoint.sh), then loads "/" in a fresh
browser context (empty cache) `--runs` times and reports first contentful paint, DOMContentLoaded,
load, and the bytes transferred, from the browser's Performance API. It measures a one-line
HTML page the same way, as the floor this browser and machine put under any page.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "web"))

from web_servers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    build_dist,
    measure_load,
    missing_browser_tools,
    run_backend,
    run_nginx,
)

FLOOR_PAGE = "floor.html"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def measure(urls: list[str], runs: int) -> dict[str, list[dict[str, Any]]]:
    """`runs` cold loads of each URL, one fresh browser context each, after one warm-up."""
    from playwright.sync_api import sync_playwright

    samples: dict[str, list[dict[str, Any]]] = {url: [] for url in urls}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for i in range(runs + 1):
            for url in urls:  # interleaved, so load on the machine hits both alike
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                sample = measure_load(context.new_page(), url)
                context.close()
                if i:  # the first load also warms the browser up: not a page figure
                    samples[url].append(sample)
        browser.close()
    return samples


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, p90 and max of the timings; the byte counts of the last load."""
    summary: dict[str, Any] = {"runs": len(samples)}
    for key in ("fcp_ms", "dom_content_loaded_ms", "load_ms"):
        values = [float(s[key]) for s in samples if s[key] is not None]
        summary[key] = {
            "median": round(statistics.median(values), 1),
            "p90": round(percentile(values, 0.9), 1),
            "max": round(max(values), 1),
        }
    for key in ("requests", "transfer_bytes", "encoded_body_bytes", "decoded_body_bytes"):
        summary[key] = samples[-1][key]
    return summary


def main() -> int:
    """Build, serve, measure, print a summary (and write JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the samples and summary here")
    args = parser.parse_args()
    missing = missing_browser_tools()
    if missing:
        print("missing: " + ", ".join(missing), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp:
        work = Path(tmp)
        build = build_dist(work / "dist")
        if build.returncode != 0:
            print(build.stderr, file=sys.stderr)
            return 1
        print(build.stdout.rstrip())
        (work / "dist" / FLOOR_PAGE).write_text("<!doctype html><title>floor</title><p>floor</p>")
        with (
            run_backend(work) as backend,
            run_nginx(work / "dist", f"127.0.0.1:{backend.port}", work) as nginx,
        ):
            page_url, floor_url = nginx.url + "/", f"{nginx.url}/{FLOOR_PAGE}"
            samples = measure([page_url, floor_url], args.runs)
    result = {"page": summarize(samples[page_url]), "floor": summarize(samples[floor_url])}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": result, "samples": samples}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
