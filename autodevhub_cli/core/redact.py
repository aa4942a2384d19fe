"""What is secret, decided in one place, and how it is hidden in text, JSON and error messages.

Secret are: the values of environment variables a check expands (`${env:NAME}`) or a component
reads as a secret (`secret_env` names), the values of authorization-like headers
(Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-API-Key, any name with token,
secret, password, key, credential or session in it), the userinfo of a URL (`user:pass@`) and
query parameters with such names, and any value a caller hands over (a Secret's new value).
Every message about smoke checks and secrets passes through `Redactor.text`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

MASK = "***"
# Shorter values are not searched for in free text: masking every "1234" or "test" would
# garble messages. They are still masked where they sit in a known place (a header, the
# userinfo of a URL, a `${env:...}` in a path).
MIN_SECRET_LENGTH = 6

_SECRET_NAME = re.compile(
    r"authori[sz]ation|cookie|token|secret|passw(or)?d|passphrase|credential|session|key",
    re.IGNORECASE,
)
# scheme://userinfo@ in running text (an error message, an answer's body).
_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/?#@\s]*)@")
# name=value query parameters in running text whose name says they are secret.
_QUERY_PARAM = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)")


def is_secret_name(name: str) -> bool:
    """Whether a header, query parameter, variable or key name says its value is secret."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """The URL without its password (or a lone user name, often a token) and without the values
    of secret-named query parameters, for messages and records."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return _mask_query(_mask_userinfo(url))
    netloc, query = parts.netloc, _mask_query(parts.query, separated=False)
    if "@" in netloc:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        user = parts.username if parts.password is not None else None
        netloc = (f"{user}:{MASK}@" if user else f"{MASK}@") + host + (f":{port}" if port else "")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # unchanged: urlunsplit would respell some URLs (sqlite:////path)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _mask_userinfo(text: str) -> str:
    def hide(match: re.Match[str]) -> str:
        user, sep, _password = match.group(2).partition(":")
        return f"{match.group(1)}{user}:{MASK}@" if sep and user else f"{match.group(1)}{MASK}@"

    return _USERINFO.sub(hide, text)


def _mask_query(text: str, separated: bool = True) -> str:
    """Secret-named `name=value` parameters masked: after ?, & or ; in running text, or in a
    bare query string (`separated=False`)."""

    def hide(match: re.Match[str]) -> str:
        if not is_secret_name(match.group(2)):
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}={MASK}"

    if separated:
        return _QUERY_PARAM.sub(hide, text)
    return _QUERY_PARAM.sub(hide, "&" + text)[1:] if text else text


def header_secrets(name: str, value: str) -> list[str]:
    """The secret parts of a header: its whole value and its credentials (after `Bearer`)
    when the name says it is secret, else nothing."""
    if not is_secret_name(name) or not value.strip():
        return []
    parts = value.split()
    return [value, parts[-1]] if len(parts) > 1 else [value]


def url_secrets(url: str) -> list[str]:
    """The secret of a URL's userinfo: its password and the Basic credentials an HTTP client
    makes of it (which a server may echo), or a lone user name (often a token)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if parts.password is None:
        return [parts.username] if parts.username else []
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password)}"
    return [parts.password, unquote(parts.password), base64.b64encode(pair.encode()).decode()]


class Redactor:
    """Hides known secret values, URL userinfo and secret query parameters in any text."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self.add(*values)

    def add(self, *values: str | None) -> None:
        """Treat these values (and their URL-encoded spellings) as secret from now on."""
        for value in values:
            if not value or len(value) < MIN_SECRET_LENGTH:
                continue
            self._values.update({value, quote(value, safe=""), quote(value), quote_plus(value)})
            self._values.update(v for v in (value.strip(),) if len(v) >= MIN_SECRET_LENGTH)

    def add_environment(self, names: Iterable[str], environ: Mapping[str, str]) -> None:
        """Treat the values of these environment variables as secret."""
        self.add(*(environ.get(name) for name in names))

    def text(self, text: str) -> str:
        """`text` with every known secret, URL userinfo and secret query value masked."""
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return _mask_query(_mask_userinfo(text)) if ("@" in text or "=" in text) else text

    __call__ = text

    def url(self, url: str) -> str:
        """A URL as it may be shown: `redact_url`, then `text`."""
        return self.text(redact_url(url))


def redact_text(text: str) -> str:
    """URL userinfo and secret query values masked in `text` (no known values)."""
    return Redactor().text(text)
