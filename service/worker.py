"""In-process generation worker: claims queued story sets from the database, bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from service.generation import GenerationError, GenerationInput, StoryGenerator
from service.metrics import ServiceMetrics
from service.repository import ClaimedJob, StoryRepository
from service.settings import Settings

log = logging.getLogger("service.worker")


class GenerationWorker:
    """Runs at most MAX_CONCURRENT_GENERATIONS generations; the database is the queue."""

    def __init__(
        self,
        settings: Settings,
        repository: StoryRepository,
        generator: StoryGenerator,
        metrics: ServiceMetrics,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.generator = generator
        self.metrics = metrics
        self.on_change = on_change
        self.capacity = settings.max_concurrent_generations
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start_loops(self) -> None:
        """Start claiming work and renewing leases."""
        self._loop_task = asyncio.create_task(self._run(), name="generation-worker")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="lease-heartbeat")

    async def recover(self) -> None:
        """Requeue or fail `running` sets whose owner is gone (lease expired)."""
        recovery = await asyncio.to_thread(
            self.repository.recover_abandoned, self.settings.generation_max_claims
        )
        if recovery.requeued or recovery.failed:
            log.warning(
                "recovered abandoned generations",
                extra={"requeued": recovery.requeued, "failed": recovery.failed},
            )

    def wake(self) -> None:
        """Tell the worker that new work was queued."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Generations running in this process."""
        return len(self._tasks)

    async def _run(self) -> None:
        """Claim while there is room; sleep until woken or the poll interval passes."""
        polls = 0
        while not self._stopping:
            self._wake.clear()
            free = self.capacity - len(self._tasks)
            claimed: list[ClaimedJob] = []
            try:
                if free > 0:
                    claimed = await asyncio.to_thread(
                        self.repository.claim, free, self.settings.generation_lease_seconds
                    )
                polls += 1
                if polls % 10 == 0:
                    await self.recover()
            except Exception:
                log.exception("claiming work failed; will retry")
            if claimed:
                self.on_change()
            for job in claimed:
                self._tasks[job.id] = asyncio.create_task(self._generate(job), name=f"gen-{job.id}")
            if claimed and len(claimed) == free:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.worker_poll_seconds)

    async def _heartbeat(self) -> None:
        """Extend leases of running generations so other processes do not take them over."""
        interval = self.settings.generation_lease_seconds / 3
        while not self._stopping:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(
                    self.repository.renew_leases,
                    list(self._tasks),
                    self.settings.generation_lease_seconds,
                )
            except Exception:
                log.exception("renewing leases failed")

    async def _generate(self, job: ClaimedJob) -> None:
        """Generate one set and store the outcome: all stories, or a failure reason."""
        generator = self.generator
        self.metrics.in_flight.inc()
        try:
            request = GenerationInput(job.feature, job.context, job.persona)
            try:
                stories = await generator.generate(request)
            except GenerationError as exc:
                await asyncio.to_thread(
                    self.repository.fail, job.id, exc.reason, generator.name, generator.model
                )
                self.metrics.story_sets.labels(generator.name, "failed").inc()
                log.warning("generation failed", extra={"story_set": job.id, "reason": exc.reason})
                return
            stored = await asyncio.to_thread(
                self.repository.complete, job.id, generator.name, generator.model, stories
            )
            if stored:
                self.metrics.stories_generated.labels(generator.name).inc(len(stories))
                self.metrics.story_sets.labels(generator.name, "done").inc()
                log.info("generation done", extra={"story_set": job.id, "stories": len(stories)})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("generation crashed", extra={"story_set": job.id})
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    self.repository.fail,
                    job.id,
                    f"internal error during generation ({type(exc).__name__})",
                    generator.name,
                    generator.model,
                )
            self.metrics.story_sets.labels(generator.name, "failed").inc()
        finally:
            self.on_change()
            self.metrics.in_flight.dec()
            self._tasks.pop(job.id, None)
            self._wake.set()

    async def stop(self) -> None:
        """Stop claiming, cancel running generations and hand them back to the queue."""
        self._stopping = True
        for task in (self._loop_task, self._heartbeat_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        interrupted = list(self._tasks)
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if interrupted:
            await asyncio.to_thread(self.repository.release, interrupted)
            log.info("released interrupted generations", extra={"count": len(interrupted)})
