"""Everything an app instance holds while it runs, built at startup from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from service.anthropic_generator import make_generator
from service.db import StorageAlarm, make_engine, make_session_factory, safe_url
from service.generation import StoryGenerator
from service.list_cache import ListPageCache
from service.metrics import ServiceMetrics
from service.migrate import head_revision
from service.repository import StoryRepository
from service.security import RateLimiter
from service.settings import Settings
from service.worker import GenerationWorker

log = logging.getLogger("service.runtime")


@dataclass
class Runtime:
    """Settings, database, generator, worker, limiters and metrics of one app instance."""

    settings: Settings
    engine: Engine
    repository: StoryRepository
    generator: StoryGenerator
    worker: GenerationWorker
    metrics: ServiceMetrics
    write_limiter: RateLimiter
    read_limiter: RateLimiter
    auth_failure_limiter: RateLimiter
    ops_limiter: RateLimiter
    list_cache: ListPageCache
    head: str | None
    storage: StorageAlarm

    async def stop(self) -> None:
        """Stop the worker, close the model client and the connection pool."""
        await self.worker.stop()
        await self.generator.aclose()
        self.repository.background.dispose()
        self.engine.dispose()


async def start_runtime(settings: Settings) -> Runtime:
    """Connect, start the generation worker, and say what was configured (without secrets)."""
    metrics = ServiceMetrics()
    engine = make_engine(settings)
    background = engine if engine.dialect.name == "sqlite" else make_engine(settings, durable=False)
    repository = StoryRepository(engine, make_session_factory(engine), background)
    generator = make_generator(settings, metrics)
    list_cache = ListPageCache(settings.list_cache_seconds, max_bytes=settings.list_cache_max_bytes)
    worker = GenerationWorker(settings, repository, generator, metrics, list_cache.invalidate)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        repository=repository,
        generator=generator,
        worker=worker,
        metrics=metrics,
        write_limiter=RateLimiter(settings.rate_limit_per_minute),
        read_limiter=RateLimiter(settings.read_rate_limit_per_minute),
        auth_failure_limiter=RateLimiter(settings.auth_failures_per_minute),
        ops_limiter=RateLimiter(settings.ops_rate_limit_per_minute),
        list_cache=list_cache,
        head=head_revision(),
        storage=StorageAlarm(),
    )
    if settings.generates:
        try:
            await worker.recover(own_slot=True)
        except Exception:
            log.exception("recovery at startup failed; the worker retries while it runs")
        await worker.start_loops()
    log.info(
        "service started",
        extra={
            "app_env": settings.app_env,
            "database": safe_url(settings.database_url.get_secret_value()),
            "generator": generator.name,
            "model": generator.model,
            "role": settings.process_role,
            "max_concurrent_generations": settings.max_concurrent_generations,
            "auth": "api-keys" if settings.api_keys else "open",
        },
    )
    return runtime
