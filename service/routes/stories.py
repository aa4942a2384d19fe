"""`/api/stories`: submit a feature, read, list and delete story sets."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service.deps import RuntimeDep, limit_reader, require_writer, runtime_of
from service.schemas import (
    NO_NUL,
    ErrorDetail,
    PageLimit,
    PageOffset,
    StoryRequest,
    StorySet,
    StorySetPage,
)

router = APIRouter(prefix="/api/stories", tags=["stories"])

NOT_FOUND = "story set not found"
DIGITS = "Decimal digits only: `5`, not `5.0`, `+5` or `1e1`."
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "No story set with this id."},
    429: {"model": ErrorDetail, "description": "Rate limit exceeded; see Retry-After."},
    503: {"model": ErrorDetail, "description": "Database unavailable; retry after Retry-After."},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorDetail, "description": "Missing or invalid API key."},
    413: {"model": ErrorDetail, "description": "Request body too large."},
    429: ERRORS[429],
    503: ERRORS[503],
}


def _links_to_story_set(story_set_id: str) -> dict[str, Any]:
    """OpenAPI links from an answer naming a story set (at the runtime expression
    `story_set_id`) to the operations on that set: clients, and schemathesis' stateful phase,
    chain calls with real ids."""
    parameters = {"story_set_id": story_set_id}
    return {
        "GetStorySet": {
            "operationId": "get_story_set",
            "parameters": parameters,
            "description": "Read this story set: its status and, once done, its stories.",
        },
        "DeleteStorySet": {
            "operationId": "delete_story_set",
            "parameters": parameters,
            "description": "Delete this story set.",
        },
    }


def _story_set_id(raw: str) -> str:
    """Canonical hex id; anything that is not a UUID cannot exist, so it is a 404."""
    try:
        return uuid.UUID(raw).hex
    except ValueError:
        raise HTTPException(404, NOT_FOUND) from None


@router.post(
    "",
    status_code=202,
    response_model=StorySet,
    operation_id="create_story_set",
    responses={
        202: {"links": _links_to_story_set("$response.body#/id")},
        400: {"model": ErrorDetail, "description": "Body is not readable."},
        **WRITE_ERRORS,
    },
    dependencies=[Depends(require_writer)],
    summary="Queue a feature for story generation",
)
async def create_story_set(body: StoryRequest, runtime: RuntimeDep) -> Response:
    """Store the request, queue generation, answer 202 with the queued story set."""
    created = await run_in_threadpool(runtime.repository.create, body)
    runtime.storage.clear()
    runtime.list_cache.invalidate()
    runtime.worker.wake()
    return JSONResponse(
        created, status_code=202, headers={"Location": f"/api/stories/{created['id']}"}
    )


@router.get(
    "",
    response_model=StorySetPage,
    operation_id="list_story_sets",
    responses={
        200: {"links": _links_to_story_set("$response.body#/items/0/id")},
        429: ERRORS[429],
        503: ERRORS[503],
    },
    summary="List story sets, newest first",
)
async def list_story_sets(
    request: Request,
    limit: Annotated[PageLimit, Query(description=DIGITS)] = 20,
    offset: Annotated[PageOffset, Query(description=DIGITS)] = 0,
    q: Annotated[
        str,
        Query(
            max_length=200,
            pattern=NO_NUL,
            description="Text to find in feature, context or persona (no NUL); empty: all.",
        ),
    ] = "",
) -> Response:
    """A page of story sets, optionally filtered by text in feature, context or persona."""
    runtime = runtime_of(request)
    limit_reader(request, runtime)
    text = q or None

    async def load() -> bytes:
        items, total = await run_in_threadpool(runtime.repository.list_page, limit, offset, text)
        page = {"items": items, "total": total, "limit": limit, "offset": offset}
        return bytes(JSONResponse(page).body)

    body = await runtime.list_cache.get((limit, offset, text), load)
    return Response(body, media_type="application/json")


@router.get(
    "/{story_set_id}",
    response_model=StorySet,
    operation_id="get_story_set",
    # Polling until the status is final is the usual next call, then perhaps a delete.
    responses={200: {"links": _links_to_story_set("$response.body#/id")}, **ERRORS},
    summary="Get a story set with its status and stories",
)
async def get_story_set(story_set_id: str, request: Request) -> Response:
    """Status, stories, and which generator made them."""
    runtime = runtime_of(request)
    limit_reader(request, runtime)
    found = await run_in_threadpool(runtime.repository.get, _story_set_id(story_set_id))
    if found is None:
        raise HTTPException(404, NOT_FOUND)
    return JSONResponse(found)


@router.delete(
    "/{story_set_id}",
    status_code=204,
    operation_id="delete_story_set",
    responses={
        # After a delete, the set is gone: a read or a second delete must be a 404.
        204: {"links": _links_to_story_set("$request.path.story_set_id")},
        **WRITE_ERRORS,
        404: ERRORS[404],
    },
    dependencies=[Depends(require_writer)],
    summary="Delete a story set",
)
async def delete_story_set(story_set_id: str, runtime: RuntimeDep) -> Response:
    """Remove the set; a generation still running for it has nowhere to store its result."""
    deleted = await run_in_threadpool(runtime.repository.delete, _story_set_id(story_set_id))
    runtime.storage.clear()
    runtime.list_cache.invalidate()
    if not deleted:
        raise HTTPException(404, NOT_FOUND)
    return Response(status_code=204)
