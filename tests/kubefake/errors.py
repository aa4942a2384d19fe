"""Kubernetes `Status` failures, shaped like the real API server sends them."""

from __future__ import annotations

from typing import Any

from .resources import ResourceType

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


class ApiError(Exception):
    """A request the fake refuses; carries the `Status` body the client will see."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        """The `Status` object for the response body."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(rt: ResourceType, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": rt.plural}
    if rt.group:
        details["group"] = rt.group
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    """`deployments.apps "web" not found`."""
    return ApiError(404, f'{rt.group_resource} "{name}" not found', details=_details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    """`deployments.apps "web" already exists`."""
    return ApiError(
        409,
        f'{rt.group_resource} "{name}" already exists',
        "AlreadyExists",
        _details(rt, name),
    )


def stale(rt: ResourceType, name: str) -> ApiError:
    """Optimistic-concurrency failure on a stale `metadata.resourceVersion`."""
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        "Conflict",
        _details(rt, name),
    )


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; each cause is (type, field, message) as in `FieldValueInvalid`."""
    text = ", ".join(f"{field}: {message}" for _, field, message in causes)
    details = _details(rt, name)
    details["kind"] = rt.kind
    details["causes"] = [
        {"reason": kind, "message": message, "field": field} for kind, field, message in causes
    ]
    return ApiError(422, f'{rt.kind}{rt.dotted_group} "{name}" is invalid: {text}', details=details)


def bad_request(message: str) -> ApiError:
    """400 BadRequest with a plain message."""
    return ApiError(400, message)


def no_such_path() -> ApiError:
    """What the server says for a URL that names no resource."""
    return ApiError(
        404,
        "the server could not find the requested resource",
        details={
            "causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]
        },
    )
