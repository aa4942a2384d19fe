"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from service.db import ping
from service.deps import RuntimeDep, operations_limit
from service.migrate import current_revision
from service.runtime import Runtime
from service.schemas import ErrorDetail, HealthStatus, ReadyStatus

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthStatus, summary="The process is up")
async def healthz() -> dict[str, str]:
    """Liveness: answers as long as the event loop runs."""
    return {"status": "ok"}


def _readiness(runtime: Runtime) -> dict[str, Any]:
    """Check the database and the migration revision."""
    body: dict[str, Any] = {
        "status": "ready",
        "database": "ok",
        "head": runtime.head,
        "generator": runtime.generator.name,
    }
    try:
        ping(runtime.engine)
        body["migration"] = current_revision(runtime.engine)
    except Exception as exc:
        body.update(status="not ready", database="unreachable")
        body["reason"] = f"database unreachable ({type(exc).__name__})"
        return body
    if body["migration"] != runtime.head:
        body["status"] = "not ready"
        body["reason"] = (
            f"database is at migration {body['migration']}, code expects {runtime.head}; "
            "run `python -m service migrate`"
        )
    elif runtime.storage.active:
        # Reads would still work, but the service's purpose is to take requests: not ready,
        # so that the rollout stops and the alert on unready pods fires.
        body.update(status="not ready", database="full")
        body["reason"] = (
            "database storage is full: writes failed within the last "
            f"{runtime.storage.window:.0f} s; free space on the database's volume"
        )
    return body


@router.get(
    "/readyz",
    response_model=ReadyStatus,
    responses={
        429: {"model": ErrorDetail, "description": "Rate limit exceeded; see Retry-After."},
        503: {"model": ReadyStatus, "description": "Not ready, with the reason."},
    },
    dependencies=[Depends(operations_limit)],
    summary="The database is reachable and migrated",
)
async def readyz(runtime: RuntimeDep) -> Response:
    """Readiness: 200 when the database answers and is at the head migration, else 503."""
    body = await run_in_threadpool(_readiness, runtime)
    return JSONResponse(body, status_code=200 if body["status"] == "ready" else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}},
        429: {"model": ErrorDetail, "description": "Rate limit exceeded; see Retry-After."},
    },
    dependencies=[Depends(operations_limit)],
    summary="Prometheus metrics of this process",
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Counters, histograms and gauges in Prometheus text format."""
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
