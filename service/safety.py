"""The rules by which settings are refused outside dev: placeholder or weak secrets, the dev
database or one that does not last, a trust-everyone proxy list, any-origin CORS, a model API
reached in the clear, and an unset model key that would quietly mean offline stories. Each rule
returns what is wrong and what to do, in one paragraph that names the setting and never repeats
its value."""

from __future__ import annotations

import hashlib
import ipaddress
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
_COMMON_PASSWORDS = {
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
    "letmein",
    "welcome",
    "qwerty",
    "database",
    "test",
    "user",
}
MIN_DATABASE_PASSWORD_LENGTH = 12
# What is left of `Password123!` or `!!postgres2024` once digits and punctuation come off the ends.
_WORD_CORE = re.compile(r"^[\W\d_]*(.*?)[\W\d_]*$", re.DOTALL)


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


def is_common_password(value: str, user: str = "") -> bool:
    """A well-known password, also with digits or punctuation around it (`Password123!`), or
    the user name so dressed up."""
    lowered = value.lower()
    core = _WORD_CORE.fullmatch(lowered)
    common = _COMMON_PASSWORDS | ({user.lower()} if user else set())
    return lowered in common or (core is not None and core.group(1) in common)


def api_key_is_weak(key: str) -> bool:
    """Too short, too few different characters, a common password, or a placeholder."""
    return (
        len(key) < MIN_API_KEY_LENGTH
        or len(set(key)) < MIN_API_KEY_DISTINCT_CHARACTERS
        or is_common_password(key)
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


def anthropic_api_key_problem(
    key: str | None, app_env: str, *, offline: bool = False
) -> str | None:
    """Why ANTHROPIC_API_KEY cannot be used in `app_env` by a process that generates stories;
    `offline` when GENERATOR=offline chooses the offline generator on purpose."""
    if key is None:
        if offline:
            return None
        return (
            f"ANTHROPIC_API_KEY is unset or empty, so this process would quietly write canned "
            f"stories with the offline generator instead of asking the model, refused for "
            f"APP_ENV={app_env}. Set ANTHROPIC_API_KEY to the key from the Anthropic console (in "
            f"the secret the deployment reads), or set GENERATOR=offline if offline stories are "
            f"what you want."
        )
    if looks_like_placeholder(key):
        return (
            f"ANTHROPIC_API_KEY looks like a placeholder, not a real key, refused for "
            f"APP_ENV={app_env}. Set it to the key from the Anthropic console (in the secret the "
            f"deployment reads), or unset it and set GENERATOR=offline to run the offline "
            f"generator."
        )
    if (
        len(key) < MIN_API_KEY_LENGTH
        or len(set(key)) < MIN_API_KEY_DISTINCT_CHARACTERS
        or is_common_password(key)
    ):
        return (
            f"ANTHROPIC_API_KEY is too short or too simple to be a real key (a common password, "
            f"under {MIN_API_KEY_LENGTH} characters or under {MIN_API_KEY_DISTINCT_CHARACTERS} "
            f"different ones), refused for APP_ENV={app_env}. Set it to the key from the "
            f"Anthropic console (in the secret the deployment reads)."
        )
    return None


def anthropic_base_url_problem(url: str, app_env: str) -> str | None:
    """Why ANTHROPIC_BASE_URL cannot be used in `app_env`: anything but https, except plain
    http to a loopback or private address (a test double on the host or the cluster network,
    as the real-node tests use)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is not None and parts.scheme == "https" and host:
        return None
    if parts is not None and parts.scheme == "http" and _is_local_host(host):
        return None
    return (
        f"ANTHROPIC_BASE_URL is not an https:// URL, refused for APP_ENV={app_env}: the API key "
        f"and every feature description would cross the network unencrypted. Use https:// (or "
        f"unset it for the Anthropic API itself); plain http:// is accepted only to a loopback "
        f"or private IP address, such as a test double at http://10.244.0.1:8080."
    )


def _is_local_host(host: str) -> bool:
    """`localhost`, or an IP address that is loopback, private or link-local."""
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


def cors_origins_problem(origins: list[str], app_env: str) -> str | None:
    """Why CORS_ORIGINS cannot be used in `app_env`: `*` lets any web site call the API from
    its visitors' browsers, and `null` any sandboxed page or local file."""
    wild = [origin for origin in origins if origin.strip() in {"*", "null"}]
    if not wild:
        return None
    return (
        f"CORS_ORIGINS contains `{wild[0].strip()}`, which lets any web page call the API "
        f"from its visitors' browsers, refused for APP_ENV={app_env}. List the exact origins "
        f"of the web front end that calls the API, comma-separated (for example "
        f"https://stories.example.com), or leave CORS_ORIGINS empty when the front end is "
        f"served from the API's own origin."
    )


def _sqlite_problem(url: str, app_env: str) -> str | None:
    """A SQLite URL outside dev must name a file by its absolute path."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    if path in ("", ":memory:") or path.startswith("file::memory:") or "mode=memory" in url:
        return (
            f"DATABASE_URL is an in-memory SQLite database, which loses every story at each "
            f"restart and is not shared between processes, refused for APP_ENV={app_env}. Set "
            f"DATABASE_URL to the {app_env} database (postgresql://...), or to a SQLite file on "
            f"a persistent volume given by its absolute path (sqlite:////data/autodevhub.db)."
        )
    if not path.startswith("/"):
        return (
            f"DATABASE_URL names a SQLite file by a relative path, which each process resolves "
            f"against its own working directory (the migrate task and the API could use "
            f"different files), refused for APP_ENV={app_env}. Give the file's absolute path on "
            f"a persistent volume, with four slashes: sqlite:////data/autodevhub.db."
        )
    return None


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
    if lowered.strip().startswith("sqlite"):
        return _sqlite_problem(url.strip(), app_env)
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
        len(password) < MIN_DATABASE_PASSWORD_LENGTH
        or is_common_password(password, user)
        or looks_like_placeholder(password)
    ):
        return (
            f"DATABASE_URL has an empty, short (under {MIN_DATABASE_PASSWORD_LENGTH} "
            f"characters) or well-known database password (such as `postgres`, `password1` or "
            f"the user name), refused for APP_ENV={app_env}. Give the database user a generated "
            f"password (`openssl rand -hex 24`) and put it in DATABASE_URL."
        )
    return None


def _trusts_every_address(entries: list[str]) -> bool:
    """Whether the entries, as uvicorn reads them (`*`, addresses and networks; anything else
    is a literal host name), together cover every IPv4 or every IPv6 address."""
    if "*" in entries:
        return True
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if isinstance(network, ipaddress.IPv4Network):
            v4.append(network)
        else:
            v6.append(network)
    return any(n.prefixlen == 0 for n in ipaddress.collapse_addresses(v4)) or any(
        n.prefixlen == 0 for n in ipaddress.collapse_addresses(v6)
    )


def forwarded_allow_ips_problem(value: str, app_env: str) -> str | None:
    """Why FORWARDED_ALLOW_IPS cannot be used in `app_env`: `*`, `0.0.0.0/0`, `::/0` (or
    networks that add up to one of them) trust every client."""
    entries = [item.strip() for item in value.split(",") if item.strip()]
    if not _trusts_every_address(entries):
        return None
    return (
        f"FORWARDED_ALLOW_IPS trusts every address (`*`, `0.0.0.0/0`, `::/0` or networks "
        f"that together cover all addresses), refused for APP_ENV={app_env}: every client "
        f"could then choose its own address with X-Forwarded-For and escape the per-address "
        f"rate limits. List the addresses or CIDRs of the proxies in front of the service (for "
        f"example the ingress controller's pod network, 10.0.0.0/8)."
    )
