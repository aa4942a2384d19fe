"""One place decides what is secret (core.redact): header and parameter names, URL userinfo,
known values in any spelling; the backup's URLs use the same rule."""

from __future__ import annotations

import base64

import pytest

from autodevhub_cli.core import backup
from autodevhub_cli.core.errors import ConfigError
from autodevhub_cli.core.redact import (
    Redactor,
    header_secrets,
    is_secret_name,
    redact_text,
    redact_url,
    url_secrets,
)
from autodevhub_cli.core.secrets import parse_pairs


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("Proxy-Authorization", True),
        ("Cookie", True),
        ("Set-Cookie", True),
        ("X-API-Key", True),
        ("x_api_key", True),
        ("X-Auth-Token", True),
        ("client_secret", True),
        ("DB_PASSWORD", True),
        ("AUTODEVHUB__SMOKE__HEADERS__AUTHORIZATION", True),
        ("Content-Type", False),
        ("Accept", False),
        ("Keep-Alive", False),
        ("X-Trace", False),
    ],
)
def test_which_names_are_secret(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("sqlite:////data/x.db", "sqlite:////data/x.db"),
        ("http://u:p%40ss@127.0.0.1:8080/a", "http://u:***@127.0.0.1:8080/a"),
        ("https://ghp_TOKEN123@example.com/", "https://***@example.com/"),
        ("http://h/a?token=abc&page=2", "http://h/a?token=***&page=2"),
        ("http://[::1]:8080/p", "http://[::1]:8080/p"),
        ("http://u:pw@[::1", "http://u:***@[::1"),
    ],
)
def test_urls_lose_their_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_backup_uses_the_same_rule() -> None:
    assert backup.redact is redact_url


def test_known_values_are_hidden_in_every_spelling() -> None:
    hide = Redactor(["s3cret/value+1", "short"])
    text = hide.text(
        "sent s3cret/value+1, echoed s3cret%2Fvalue%2B1 and s3cret/value%2B1; "
        "see http://user:pw@host/x?api_key=k1&n=2; short stays"
    )
    assert "s3cret" not in text
    assert "http://user:***@host/x?api_key=***&n=2" in text
    assert "short stays" in text, "values too short to search for are left in running text"


def test_headers_and_urls_give_their_secrets() -> None:
    assert header_secrets("Authorization", "Bearer abc.def") == ["Bearer abc.def", "abc.def"]
    assert header_secrets("Accept", "text/html") == []
    basic = base64.b64encode(b"u:p@ss").decode()
    assert url_secrets("http://u:p%40ss@h/") == ["p%40ss", "p@ss", basic]
    assert url_secrets("https://TOKEN@h/") == ["TOKEN"]
    assert redact_text("no secret here: 1 < 2") == "no secret here: 1 < 2"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("sk-ant-PASTED-value\n", "line 1: expected KEY=VALUE"),
        ("a=1\nKEY: sk-ant-PASTED=value\n", "line 2: what comes before the first '=' is not a key"),
        ("\n# only a comment\n", "holds no KEY=VALUE line"),
    ],
)
def test_a_bad_secrets_line_is_named_by_number_only(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_pairs(text, "values.env")
    assert words in str(raised.value)
    assert "PASTED" not in str(raised.value)


def test_a_value_with_equals_signs_is_kept_whole() -> None:
    assert parse_pairs("api-key=abc==\n", "stdin") == {"api-key": "abc=="}
