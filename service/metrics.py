"""Prometheus metrics, one registry per app instance (one per worker process)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
AI_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


ACTIVE_WINDOW_SECONDS = 300.0


class ActiveClients:
    """Distinct client addresses seen in the last five minutes, in bounded memory and O(1) per
    request: addresses are kept in the order last seen, so those out of the window leave from
    the front; past `max_clients`, the least recently seen one is forgotten."""

    def __init__(
        self, max_clients: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_clients = max_clients
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def touch(self, client: str) -> None:
        """Record a request from `client`."""
        now = self._clock()
        self._forget(now)
        if client in self._seen:
            self._seen.move_to_end(client)
        elif len(self._seen) >= self.max_clients:
            self._seen.popitem(last=False)
        self._seen[client] = now

    def count(self) -> float:
        """How many clients were seen within the window."""
        self._forget(self._clock())
        return float(len(self._seen))

    def _forget(self, now: float) -> None:
        cutoff = now - ACTIVE_WINDOW_SECONDS
        while self._seen and next(iter(self._seen.values())) < cutoff:
            self._seen.popitem(last=False)


class ServiceMetrics:
    """The service's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests served.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "http_request_errors_total",
            "HTTP responses with status 4xx or 5xx.",
            ["method", "route", "status"],
            registry=r,
        )
        self.stories_generated = Counter(
            "stories_generated_total",
            "User stories generated and stored.",
            ["generator"],
            registry=r,
        )
        self.story_sets = Counter(
            "story_sets_finished_total",
            "Story sets that finished generation.",
            ["generator", "outcome"],
            registry=r,
        )
        self.ai_calls = Counter(
            "ai_calls_total",
            "Calls to the Messages API by outcome.",
            ["model", "outcome"],
            registry=r,
        )
        self.ai_latency = Histogram(
            "ai_call_duration_seconds",
            "Latency of Messages API calls.",
            ["model"],
            buckets=AI_BUCKETS,
            registry=r,
        )
        self.ai_failures = Counter(
            "ai_failures_total",
            "Messages API calls that failed, by reason.",
            ["model", "reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            "generations_in_flight", "Story sets being generated right now.", registry=r
        )
        self.active_clients = ActiveClients()
        Gauge(
            "active_clients",
            "Distinct client addresses with a request in the last 5 minutes.",
            registry=r,
        ).set_function(self.active_clients.count)
        self.rate_limited = Counter(
            "rate_limited_total", "Requests refused by the rate limiter.", ["scope"], registry=r
        )

    def observe_request(
        self, method: str, route: str, status: int, seconds: float, client: str
    ) -> None:
        """Record one finished HTTP request."""
        self.active_clients.touch(client)
        code = str(status)
        self.requests.labels(method, route, code).inc()
        self.latency.labels(method, route).observe(seconds)
        if status >= 400:
            self.errors.labels(method, route, code).inc()

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
