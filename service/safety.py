"""The rules by which settings are refused outside dev: placeholder or weak secrets, the dev
database, a trust-everyone proxy list. Each rule returns what is wrong and what to do, in one
paragraph that names the setting and never repeats its value."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote, urlsplit

DEFAULT_DATABASE_URL = "sqlite:///./var/autodevhub.db"
MIN_API_KEY_LENGTH = 20
MIN_API_KEY_DISTINCT_CHARACTERS = 10
KEY_HINT = (
    "generate each key with `openssl rand -hex 32` (or `python -c 'import secrets; "
    "print(secrets.token_urlsafe(32))'`) and give it as is or as `sha256:<hex digest>`"
)

# Whole values that are never a real secret.
_PLACEHOLDER_WORDS = {
    "",
    "admin",
    "changeit",
    "default",
    "dummy",
    "example",
    "key",
    "none",
    "null",
    "pass",
    "password",
    "placeholder",
    "secret",
    "test",
    "todo",
}
# Parts of a template default, anywhere in the value. Only words of six or more letters: a real
# random key contains a given shorter run often enough to be refused by mistake.
_PLACEHOLDER_MARKERS = (
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "change-this",
    "change_this",
    "change-it",
    "change_it",
    "replace",
    "placeholder",
    "example",
    "insert",
    "redacted",
)
# Hints and unrendered template syntax, at the start (after a key prefix): `your-api-key`,
# `<your key>`, `${ANTHROPIC_API_KEY}`, `{{ key }}`.
_PLACEHOLDER_STARTS = ("your", "<", "${", "{{", "%(", "$(")
_KEY_PREFIX = re.compile(r"^sk-ant-(api\d+-)?")
# `sk-ant-xxxxxxxx`, `sk-ant-...`, `****`: filler only.
_FILLER = re.compile(r"[x*.\-_0 ]*")
_WEAK_DATABASE_PASSWORDS = {
    "postgres",
    "postgresql",
    "password",
    "passw0rd",
    "changeme",
    "secret",
    "admin",
    "root",
    "123456",
    "12345678",
    "app",
}


def looks_like_placeholder(value: str) -> bool:
    """True for values that look like a template default rather than a real secret."""
    lowered = value.strip().lower()
    unprefixed = _KEY_PREFIX.sub("", lowered)
    return (
        lowered in _PLACEHOLDER_WORDS
        or unprefixed in _PLACEHOLDER_WORDS
        or any(marker in lowered for marker in _PLACEHOLDER_MARKERS)
        or unprefixed.startswith(_PLACEHOLDER_STARTS)
        or _FILLER.fullmatch(unprefixed) is not None
    )


PLACEHOLDER_DIGESTS = {
    hashlib.sha256(word.encode()).hexdigest()
    for word in (*_PLACEHOLDER_WORDS, "changeme", "change-me", "replace-me")
}


def api_key_is_weak(key: str) -> bool:
    """Too short, too few different characters, or a placeholder."""
    return (
        len(key) < MIN_API_KEY_LENGTH
        or len(set(key)) < MIN_API_KEY_DISTINCT_CHARACTERS
        or looks_like_placeholder(key)
    )


def api_keys_problem(keys: list[str], app_env: str, *, serves_api: bool = True) -> str | None:
    """Why API_KEYS (the entries as configured, before hashing) cannot be used in `app_env`; a
    process that does not serve the API (the generation worker) needs no keys."""
    if not keys and serves_api:
        return (
            f"API_KEYS is empty, which leaves POST and DELETE open to anyone outside dev "
            f"(APP_ENV={app_env}). Set API_KEYS to one or more comma-separated keys: {KEY_HINT}."
        )
    weak = [
        str(number)
        for number, key in enumerate(keys, start=1)
        if (
            key.removeprefix("sha256:").lower() in PLACEHOLDER_DIGESTS
            if key.startswith("sha256:")
            else api_key_is_weak(key)
        )
    ]
    if not weak:
        return None
    entries = ("entry " if len(weak) == 1 else "entries ") + ", ".join(weak)
    return (
        f"API_KEYS contains a placeholder or weak key ({entries} of {len(keys)}), refused "
        f"for APP_ENV={app_env}: a plain key needs at least {MIN_API_KEY_LENGTH} characters, "
        f"{MIN_API_KEY_DISTINCT_CHARACTERS} of them different, and no template words. Replace "
        f"it: {KEY_HINT}."
    )


def anthropic_api_key_problem(key: str, app_env: str) -> str | None:
    """Why ANTHROPIC_API_KEY cannot be used in `app_env`."""
    if not looks_like_placeholder(key):
        return None
    return (
        f"ANTHROPIC_API_KEY looks like a placeholder, not a real key, refused for "
        f"APP_ENV={app_env}. Set it to the key from the Anthropic console (in the secret the "
        f"deployment reads), or leave ANTHROPIC_API_KEY unset to run the offline generator."
    )


def database_url_problem(url: str, app_env: str) -> str | None:
    """Why DATABASE_URL cannot be used in `app_env`: the dev default, or a weak password."""
    if url.strip() == DEFAULT_DATABASE_URL:
        return (
            f"DATABASE_URL is not set, and its default (the SQLite file {DEFAULT_DATABASE_URL} "
            f"in the working directory) is for dev only, refused for APP_ENV={app_env}. Set "
            f"DATABASE_URL to the {app_env} database (postgresql://...), or to a SQLite file on "
            f"a persistent volume given by its absolute path (sqlite:////data/autodevhub.db)."
        )
    lowered = url.lower()
    if any(marker in lowered for marker in (*_PLACEHOLDER_MARKERS, "your-", "your_")) or any(
        start in lowered for start in ("<", "${", "{{")
    ):
        return (
            f"DATABASE_URL contains a placeholder, refused for APP_ENV={app_env}. Set the real "
            f"URL of the {app_env} database."
        )
    try:
        parts = urlsplit(url)
        password = parts.password
        user = unquote(parts.username or "")
    except ValueError:
        return None  # not a URL that carries a password; the engine reports what is wrong
    if password is None:
        return None  # certificate, peer or .pgpass authentication
    password = unquote(password)
    if (
        password.lower() in _WEAK_DATABASE_PASSWORDS
        or looks_like_placeholder(password)
        or password == user
    ):
        return (
            f"DATABASE_URL has an empty or well-known database password (such as `postgres`, "
            f"`password` or the user name), refused for APP_ENV={app_env}. Give the database "
            f"user a generated password (`openssl rand -hex 24`) and put it in DATABASE_URL."
        )
    return None


def forwarded_allow_ips_problem(value: str, app_env: str) -> str | None:
    """Why FORWARDED_ALLOW_IPS cannot be used in `app_env`: `*` trusts every client."""
    if "*" not in [item.strip() for item in value.split(",")]:
        return None
    return (
        f"FORWARDED_ALLOW_IPS is `*`, refused for APP_ENV={app_env}: every client could then "
        f"choose its own address with X-Forwarded-For and escape the per-address rate limits. "
        f"List the addresses or CIDRs of the proxies in front of the service (for example the "
        f"ingress controller's pod network)."
    )
