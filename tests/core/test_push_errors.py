"""Which push failures are the registry refusing credentials, and which are not."""

from __future__ import annotations

import pytest

from autodevhub_cli.core.adapters.docker_engine import _is_auth_error


@pytest.mark.parametrize(
    "message",
    [
        "unauthorized: authentication required",
        "denied: requested access to the resource is denied",
        "received unexpected HTTP status: 401 Unauthorized",
        "status 401",
    ],
)
def test_refused_credentials_are_auth_errors(message: str) -> None:
    assert _is_auth_error(message)


@pytest.mark.parametrize(
    "message",
    [
        'Get "http://127.0.0.1:40131/v2/": dial tcp 127.0.0.1:40131: connect: connection refused',
        "blob sha256:4011aa unknown",
    ],
)
def test_a_port_or_digest_holding_401_is_not_an_auth_error(message: str) -> None:
    assert not _is_auth_error(message)
