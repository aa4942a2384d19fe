"""In-process generation worker: claims queued story sets from the database, bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from service.db import is_unavailable, unavailable_reason
from service.generation import GenerationError, GenerationInput, StoryGenerator
from service.metrics import ServiceMetrics
from service.repository import Claimant, ClaimedJob, Recovery, StoryRepository
from service.settings import Settings

log = logging.getLogger("service.worker")
MAX_SLOTS = 256


class Slot:
    """This process's place among the generating processes of one worker name (one host or
    pod): slot n is held by an exclusive `flock` on `<dir>/slot-<n>.lock` for as long as the
    process lives. The kernel drops the lock when the process dies, even by SIGKILL, so a
    process that takes slot n knows that the slot's previous holder is gone and can requeue
    what it left `running` at once instead of waiting for its leases to run out."""

    def __init__(self, settings: Settings) -> None:
        name = settings.worker_name or socket.gethostname()
        token = uuid.uuid4().hex
        self._file: int | None = None
        directory = Path(settings.worker_slot_dir or Path(tempfile.gettempdir()) / "story-slots")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for number in range(MAX_SLOTS):
                fd = os.open(directory / f"slot-{number}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._file = fd
                self.claimant = Claimant(slot=f"{name}/{number}", token=token)
                return
        except OSError as exc:
            log.warning(
                "no slot lock: after a crash this process's work waits for its leases to run out",
                extra={"directory": str(directory), "error": str(exc)},
            )
        # No lock, no claim to a slot: a name of its own that no later process takes over.
        self.claimant = Claimant(slot=f"{name}/{token}", token=token)

    @property
    def held(self) -> bool:
        """Whether this process holds a slot lock (and so may requeue its slot's old work)."""
        return self._file is not None

    def close(self) -> None:
        """Give the slot up (after handing the work back)."""
        if self._file is not None:
            os.close(self._file)
            self._file = None


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
        self._slot: Slot | None = None
        self._slot_recovered = False
        self._outage_since: float | None = None
        # The set running alone (a crash interrupted it before): nothing is claimed beside it.
        self._alone: str | None = None

    @property
    def claimant(self) -> Claimant:
        """Who this process claims as (taking its slot on first use)."""
        if self._slot is None:
            self._slot = Slot(self.settings)
        return self._slot.claimant

    async def start_loops(self) -> None:
        """Start claiming work and renewing leases."""
        self._loop_task = asyncio.create_task(self._run(), name="generation-worker")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="lease-heartbeat")

    async def recover(self, own_slot: bool = False) -> Recovery:
        """Requeue or fail `running` sets whose owner is gone: their lease ran out, or (with
        `own_slot`, at start) an earlier incarnation of this process's slot claimed them."""
        mine = self.claimant
        claimant = mine if own_slot and self._slot is not None and self._slot.held else None
        recovery = await asyncio.to_thread(
            self.repository.recover_abandoned, self.settings.generation_max_claims, claimant
        )
        self._slot_recovered = self._slot_recovered or own_slot
        if recovery:
            # Each id here is generated again (or failed): the retry the model sees is logged.
            log.warning(
                "requeued generations whose process is gone",
                extra={
                    "requeued": recovery.requeued,
                    "failed": recovery.failed,
                    "reason": "earlier incarnation of this slot" if claimant else "lease expired",
                    "slot": mine.slot,
                },
            )
        return recovery

    def wake(self) -> None:
        """Tell the worker that new work was queued."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Generations running in this process."""
        return len(self._tasks)

    async def _run(self) -> None:
        """Claim while there is room; sleep until woken or the poll interval passes."""
        claimant = self.claimant
        poll = self.settings.worker_poll_seconds
        while not self._stopping:
            self._wake.clear()
            free = 0 if self._alone else self.capacity - len(self._tasks)
            claimed: list[ClaimedJob] = []
            try:
                if free > 0:
                    claimed = await asyncio.to_thread(
                        self.repository.claim,
                        free,
                        self.settings.generation_lease_seconds,
                        claimant,
                        idle=not self._tasks,
                    )
                self._database_back()
                poll = self.settings.worker_poll_seconds
            except Exception as exc:
                if not self._database_gone(exc, "claiming"):
                    log.exception("claiming work failed; will retry")
                # Back off while the database is away; a new request still wakes the loop.
                poll = min(poll * 2, max(5.0, self.settings.worker_poll_seconds))
            if claimed:
                self.on_change()
            for job in claimed:
                if job.alone:
                    self._alone = job.id
                self._tasks[job.id] = asyncio.create_task(self._generate(job), name=f"gen-{job.id}")
            if claimed and len(claimed) == free:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)

    def _database_gone(self, exc: Exception, doing: str) -> bool:
        """Whether `exc` says the database is unreachable; logs one warning per outage."""
        if not is_unavailable(exc):
            return False
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "database unavailable: generation paused until it is back",
                extra={"while": doing, "error": unavailable_reason(exc)},
            )
        return True

    def _database_back(self) -> None:
        if self._outage_since is not None:
            log.warning(
                "database back: generation resumed",
                extra={"outage_seconds": round(time.monotonic() - self._outage_since, 1)},
            )
            self._outage_since = None

    async def _heartbeat(self) -> None:
        """Every quarter lease: extend the leases of this process's generations, stop those that
        were taken over (their lease ran out while this process could not renew), and requeue
        the work of processes whose leases ran out. A dead process's work is so back in the
        queue within about 1.25 leases."""
        interval = self.settings.generation_lease_seconds / 4
        claimant = self.claimant
        while not self._stopping:
            await asyncio.sleep(interval)
            running = list(self._tasks)
            try:
                held = await asyncio.to_thread(
                    self.repository.renew_leases,
                    running,
                    self.settings.generation_lease_seconds,
                    claimant,
                )
            except Exception as exc:
                if not self._database_gone(exc, "renewing leases"):
                    log.exception("renewing leases failed")
            else:
                for lost in set(running) - held:
                    task = self._tasks.get(lost)
                    if task is not None:
                        log.warning(
                            "lease lost: another process took the set over; stopping here",
                            extra={"story_set": lost},
                        )
                        task.cancel()
            try:
                # Until the start-up pass has worked once (the database may have been down).
                await self.recover(own_slot=not self._slot_recovered)
            except Exception as exc:
                if not self._database_gone(exc, "requeueing abandoned work"):
                    log.exception("requeueing abandoned work failed")

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
                    self.repository.fail,
                    job.id,
                    exc.reason,
                    generator.name,
                    generator.model,
                    self.claimant,
                )
                self.metrics.story_sets.labels(generator.name, "failed").inc()
                log.warning("generation failed", extra={"story_set": job.id, "reason": exc.reason})
                return
            stored = await asyncio.to_thread(
                self.repository.complete,
                job.id,
                generator.name,
                generator.model,
                stories,
                self.claimant,
            )
            if not stored:
                log.warning(
                    "result discarded: the set was taken over by another process",
                    extra={"story_set": job.id},
                )
            else:
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
                    self.claimant,
                )
            self.metrics.story_sets.labels(generator.name, "failed").inc()
        finally:
            self.on_change()
            self.metrics.in_flight.dec()
            self._tasks.pop(job.id, None)
            if self._alone == job.id:
                self._alone = None
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
        try:
            if interrupted:
                await asyncio.to_thread(self.repository.release, interrupted, self.claimant)
                log.info("released interrupted generations", extra={"count": len(interrupted)})
        finally:
            if self._slot is not None:
                self._slot.close()
