"""Story-set persistence: the only module that writes SQL for the API and the worker."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, case, delete, func, insert, or_, select, true, update
from sqlalchemy.orm import Session, sessionmaker

from service.models import StorySetRecord
from service.schemas import Story, StoryRequest

T = StorySetRecord.__table__.c
SUMMARY_COLUMNS = (
    T.id,
    T.status,
    T.feature,
    T.context,
    T.persona,
    T.generator,
    T.model,
    T.error,
    T.created_at,
    T.updated_at,
    T.story_count,
)


_TEXT_FILTER = or_(
    T.feature.ilike(bindparam("pattern"), escape="\\"),
    T.context.ilike(bindparam("pattern"), escape="\\"),
    T.persona.ilike(bindparam("pattern"), escape="\\"),
)
# Built once: the hot list endpoint then skips statement construction and cache-key work.
# The total rides along as an uncorrelated scalar subquery, which PostgreSQL evaluates once;
# count(*) OVER () would read every row with all its columns instead.
_COUNT = select(func.count()).select_from(StorySetRecord.__table__)
_COUNT_FILTERED = _COUNT.where(_TEXT_FILTER)


def _page(count: Any, *where: Any) -> Any:
    """The page statement, newest first, with the matching total in every row."""
    total = count.correlate(None).scalar_subquery().label("total")
    return (
        select(*SUMMARY_COLUMNS, total)
        .where(*where)
        .order_by(T.created_at.desc(), T.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


_PAGE = _page(_COUNT)
_PAGE_FILTERED = _page(_COUNT_FILTERED, _TEXT_FILTER)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    """ISO-8601 in UTC; SQLite hands back naive datetimes that were stored as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def summary_dict(row: Any) -> dict[str, Any]:
    """A list entry in API shape from a row holding SUMMARY_COLUMNS."""
    return {
        "id": row.id,
        "status": row.status,
        "feature": row.feature,
        "context": row.context,
        "persona": row.persona,
        "generator": row.generator,
        "model": row.model,
        "error": row.error,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "story_count": row.story_count,
    }


def story_set_dict(record: StorySetRecord) -> dict[str, Any]:
    """A full story set in API shape."""
    data = summary_dict(record)
    del data["story_count"]
    data["stories"] = list(record.stories or [])
    return data


def _columns(record: StorySetRecord) -> dict[str, Any]:
    """The record's column values, for a Core insert without the ORM unit of work."""
    return {column.key: getattr(record, column.key) for column in StorySetRecord.__table__.c}


# A set that leaves `running` other than by finishing drops its lease and its claimer together.
_UNCLAIMED: dict[str, Any] = {
    "lease_expires_at": None,
    "claimed_by": None,
    "claim_token": None,
    "claimed_alone": False,
}
# A queued set with a claim left over was interrupted by a crash (an orderly stop hands its
# claim back): it may be what crashed the process, so it is retried alone (see `claim`).
_SUSPECT = (T.status == "queued") & (T.attempts > 0)
_FRESH = (T.status == "queued") & (T.attempts == 0)


@dataclass(frozen=True)
class Claimant:
    """Who claims: `slot` names the process's place (`<worker name>/<slot number>`, held by a
    lock while the process lives, so a process that takes a slot knows the slot's previous
    holder is gone), `token` this incarnation of it. Every write of a claimed set is guarded by
    the token: a process whose lease was taken over cannot overwrite the new owner's work."""

    slot: str
    token: str


@dataclass(frozen=True)
class ClaimedJob:
    """A story set this process has claimed for generation."""

    id: str
    feature: str
    context: str | None
    persona: str | None
    attempts: int
    alone: bool = False  # nothing else may run in this process while it does


@dataclass(frozen=True)
class Recovery:
    """What recovery did with abandoned work: the sets put back in the queue and those failed."""

    requeued: list[str]
    failed: list[str]

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed)


class StoryRepository:
    """Reads and writes story sets with short, self-contained transactions."""

    def __init__(
        self, engine: Engine, sessions: sessionmaker[Session], background: Engine | None = None
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        # The worker's bookkeeping may use an engine without synchronous commit: losing its last
        # writes in a database crash only means a set is generated again.
        self.background = background or engine

    def create(self, request: StoryRequest) -> dict[str, Any]:
        """Store a new request as `queued` before any generation starts."""
        now = utcnow()
        record = StorySetRecord(
            id=uuid.uuid4().hex,
            status="queued",
            feature=request.feature,
            context=request.context,
            persona=request.persona,
            story_count=0,
            attempts=0,
            claimed_alone=False,
            crashes_alone=0,
            created_at=now,
            updated_at=now,
        )
        with self.engine.begin() as conn:
            conn.execute(insert(StorySetRecord).values(**_columns(record)))
        return story_set_dict(record)

    def get(self, story_set_id: str) -> dict[str, Any] | None:
        """One story set with its stories, or None."""
        with self.sessions() as session:
            record = session.get(StorySetRecord, story_set_id)
            return story_set_dict(record) if record is not None else None

    def list_page(self, limit: int, offset: int, q: str | None) -> tuple[list[dict[str, Any]], int]:
        """A page of story sets, newest first, optionally filtered by a case-insensitive text."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if q:
            params["pattern"] = like_pattern(q)
        with self.engine.connect() as conn:
            rows = conn.execute(_PAGE_FILTERED if q else _PAGE, params).all()
            if rows:
                total = int(rows[0].total)
            else:
                # Past the last page there is no row to carry the total.
                total = int(conn.execute(_COUNT_FILTERED if q else _COUNT, params).scalar_one())
        return [summary_dict(row) for row in rows], total

    def delete(self, story_set_id: str) -> bool:
        """Remove a story set; False when there was none."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(StorySetRecord).where(T.id == story_set_id))
        return result.rowcount == 1

    def claim(
        self, limit: int, lease_seconds: float, claimant: Claimant, *, idle: bool = True
    ) -> list[ClaimedJob]:
        """Move up to `limit` queued sets to `running` under `claimant`'s lease.

        A set that a crash interrupted (a suspect) is retried alone in its process, so that a
        crash during that run can be laid at its door: an `idle` claimant (running nothing)
        takes one suspect before any fresh set, the ones least often hit while alone first, and
        runs nothing beside it; a busy claimant takes no fresh set while a suspect waits, so
        that some process runs dry and takes it. Fresh sets go oldest first.

        Safe across processes: PostgreSQL skips rows another claimer has locked, SQLite runs
        one writer at a time, and the `status = 'queued'` guard makes a lost race a no-op.
        """
        with self.background.begin() as conn:
            if idle:
                turns = (T.crashes_alone, T.created_at)
                suspect = self._claim(conn, _SUSPECT, turns, 1, lease_seconds, claimant, True)
                if suspect:
                    return suspect
            elif conn.execute(select(T.id).where(_SUSPECT).limit(1)).first() is not None:
                return []
            if limit <= 0:
                return []
            oldest = (T.created_at,)
            return self._claim(conn, _FRESH, oldest, limit, lease_seconds, claimant, False)

    def _claim(
        self,
        conn: Any,
        which: Any,
        order: tuple[Any, ...],
        limit: int,
        lease_seconds: float,
        claimant: Claimant,
        alone: bool,
    ) -> list[ClaimedJob]:
        """Claim up to `limit` sets matching `which`, in `order`, in one statement."""
        now = utcnow()
        candidates = select(T.id).where(which).order_by(*order).limit(limit)
        if self.background.dialect.name == "postgresql":
            # A CTE runs once; as an IN (...) subquery PostgreSQL may re-run it per row and
            # claim more than `limit` rows.
            claimable = candidates.with_for_update(skip_locked=True).cte("claimable")
            chosen: Any = T.id == claimable.c.id
        else:
            chosen = T.id.in_(candidates.scalar_subquery())
        statement = (
            update(StorySetRecord)
            .where(chosen, T.status == "queued")
            .values(
                status="running",
                attempts=T.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                claimed_by=claimant.slot,
                claim_token=claimant.token,
                claimed_alone=alone,
                updated_at=now,
            )
            .returning(T.id, T.feature, T.context, T.persona, T.attempts)
        )
        rows = conn.execute(statement).all()
        return [ClaimedJob(r.id, r.feature, r.context, r.persona, r.attempts, alone) for r in rows]

    def renew_leases(self, ids: list[str], lease_seconds: float, claimant: Claimant) -> set[str]:
        """Extend the lease on sets `claimant` is still generating; returns those it still holds
        (a set missing from the answer was taken over after its lease ran out)."""
        if not ids:
            return set()
        now = utcnow()
        with self.background.begin() as conn:
            rows = conn.execute(
                update(StorySetRecord)
                .where(T.id.in_(ids), T.status == "running", T.claim_token == claimant.token)
                .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
                .returning(T.id)
            ).all()
        return {row.id for row in rows}

    def complete(
        self,
        story_set_id: str,
        generator: str,
        model: str | None,
        stories: list[Story],
        claimant: Claimant,
    ) -> bool:
        """Store the parsed stories and mark the set done, all in one transaction; False when
        `claimant` no longer holds the set."""
        with self.background.begin() as conn:
            result = conn.execute(
                update(StorySetRecord)
                .where(T.id == story_set_id, T.status == "running", T.claim_token == claimant.token)
                .values(
                    status="done",
                    generator=generator,
                    model=model,
                    error=None,
                    stories=[story.model_dump(mode="json") for story in stories],
                    story_count=len(stories),
                    lease_expires_at=None,
                    updated_at=utcnow(),
                )
            )
        return result.rowcount == 1

    def fail(
        self,
        story_set_id: str,
        reason: str,
        generator: str | None,
        model: str | None,
        claimant: Claimant,
    ) -> bool:
        """Mark a set `claimant` holds failed with a reason; no stories are kept."""
        with self.background.begin() as conn:
            result = conn.execute(
                update(StorySetRecord)
                .where(T.id == story_set_id, T.status == "running", T.claim_token == claimant.token)
                .values(
                    status="failed",
                    generator=generator,
                    model=model,
                    error=reason[:2000],
                    stories=None,
                    story_count=0,
                    lease_expires_at=None,
                    updated_at=utcnow(),
                )
            )
        return result.rowcount == 1

    def release(self, ids: list[str], claimant: Claimant) -> None:
        """Hand sets back to the queue on orderly shutdown; the interrupted claim does not count."""
        if not ids:
            return
        with self.background.begin() as conn:
            conn.execute(
                update(StorySetRecord)
                .where(T.id.in_(ids), T.status == "running", T.claim_token == claimant.token)
                .values(
                    status="queued",
                    attempts=T.attempts - 1,
                    updated_at=utcnow(),
                    **_UNCLAIMED,
                )
            )

    def recover_abandoned(self, max_claims: int, claimant: Claimant | None = None) -> Recovery:
        """Requeue `running` sets whose owner is gone; fail those that crashed it too often.

        Gone means: the lease ran out, or (with `claimant`) the set was claimed from the
        claimant's slot by an earlier incarnation, which ended when it gave the slot up.

        A crash counts against a set only if the set ran alone (see `claim`): a crash that
        interrupts many sets at once says nothing about any one of them, and three unrelated
        crashes must not fail the oldest sets in flight for good. A set is failed once
        `max_claims` crashes hit it while it ran alone.
        """
        now = utcnow()
        gone = T.lease_expires_at.is_(None) | (T.lease_expires_at < now)
        if claimant is not None:
            gone = gone | ((T.claimed_by == claimant.slot) & (T.claim_token != claimant.token))
        abandoned = (T.status == "running") & gone
        alone = T.claimed_alone == true()
        with self.background.begin() as conn:
            failed = conn.execute(
                update(StorySetRecord)
                .where(abandoned, alone, T.crashes_alone + 1 >= max_claims)
                .values(
                    status="failed",
                    crashes_alone=T.crashes_alone + 1,
                    error=(
                        f"generation was interrupted {max_claims} times while it ran alone "
                        "(the service stopped each time, so this request is the likely cause); "
                        "giving up"
                    ),
                    updated_at=now,
                    **_UNCLAIMED,
                )
                .returning(T.id)
            ).all()
            requeued = conn.execute(
                update(StorySetRecord)
                .where(abandoned)
                .values(
                    status="queued",
                    crashes_alone=T.crashes_alone + case((alone, 1), else_=0),
                    updated_at=now,
                    **_UNCLAIMED,
                )
                .returning(T.id)
            ).all()
        return Recovery(requeued=[r.id for r in requeued], failed=[r.id for r in failed])
