"""Typed service settings read from the environment, resolved lazily through a cached getter."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service import safety
from service.safety import DEFAULT_DATABASE_URL

UNSAFE_SETTING = "unsafe_setting"


def hash_api_key(key: str) -> str:
    """Return the sha256 hex digest under which an API key is kept."""
    return hashlib.sha256(key.encode()).hexdigest()


def _refuse(problem: str | None) -> None:
    """Raise the refusal of an unsafe setting; its message is the whole explanation."""
    if problem is not None:
        raise PydanticCustomError(UNSAFE_SETTING, "{problem}", {"problem": problem})


def _strict_env(info: ValidationInfo) -> str | None:
    """The APP_ENV whose rules apply to this field: None in dev (or when APP_ENV is invalid)."""
    app_env = info.data.get("app_env")
    return app_env if app_env not in (None, "dev") else None


def _split_csv(value: object) -> object:
    """Accept a comma-separated string (or JSON-ish list) for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            text = text.strip("[]").replace('"', "").replace("'", "")
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Everything the service reads from its environment (see docs/service.md)."""

    # hide_input_in_errors: a validation error's text (in a traceback, say) never shows a value.
    model_config = SettingsConfigDict(
        extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # Declared first: the checks of the fields below read them (they run in declaration order).
    app_env: Literal["dev", "staging", "prod"] = "dev"
    # Which part of the service this process runs: "all" serves the API and generates; with a
    # separate generation worker deployed, the API pods run "api" (they only queue) and the
    # worker pods "worker" (`python -m service worker`: the queue, health and metrics).
    process_role: Literal["all", "api", "worker"] = "all"
    # Which generator writes the stories: unset, the model when ANTHROPIC_API_KEY is set and the
    # offline generator otherwise (dev only: elsewhere a missing key is refused unless
    # GENERATOR=offline says that offline stories are meant).
    generator: Literal["anthropic", "offline"] | None = None
    database_url: SecretStr = Field(default=SecretStr(DEFAULT_DATABASE_URL), validate_default=True)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=20, ge=0, le=200)

    anthropic_api_key: SecretStr | None = Field(default=None, validate_default=True)
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-5-5"
    anthropic_max_tokens: int = Field(default=4096, ge=256, le=64000)
    anthropic_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    anthropic_max_attempts: int = Field(default=4, ge=1, le=10)
    anthropic_backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    anthropic_backoff_max_seconds: float = Field(default=30.0, ge=0, le=600)

    max_concurrent_generations: int = Field(default=16, ge=1, le=1000)
    # A claimed set's lease, renewed every quarter of it while the generation runs: the work of
    # a process that died is back in the queue within about 1.25 leases, and at once when the
    # process restarts in the same slot (see service.worker.Slot).
    generation_lease_seconds: float = Field(default=20.0, ge=1, le=3600)
    # Names this process's slots; the host name by default (a pod's or container's name). Give
    # each process group its own when several share a host name but not /tmp.
    worker_name: str = Field(default="", max_length=150)
    worker_slot_dir: str = ""
    # A set is failed for good after this many crashes hit it while it ran alone (a set a crash
    # interrupted is retried alone; crashes with other sets in flight do not count against it).
    generation_max_claims: int = Field(default=3, ge=1, le=20)
    worker_poll_seconds: float = Field(default=2.0, gt=0, le=300)

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, validate_default=True)
    # Failed API-key checks per client address per minute (also the burst), then 429.
    auth_failures_per_minute: int = Field(default=10, ge=0)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(default=60, ge=0)
    read_rate_limit_per_minute: int = Field(default=1200, ge=0)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    list_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    # Bytes of rendered list pages kept per process (anonymous reads choose the page).
    list_cache_max_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # Per-address budget for /readyz, /metrics, /openapi.json and /docs: generous, so that the
    # kubelet's probes and Prometheus (a few a minute each) never meet it.
    ops_rate_limit_per_minute: int = Field(default=600, ge=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    access_log: bool = True
    migrate_on_start: bool | None = None
    forwarded_allow_ips: str = "127.0.0.1"
    # Connection bounds of the HTTP server (service.server): the request head (request line and
    # headers) in bytes and in time, the time for a whole body, idle keep-alive, and open
    # connections per process (beyond it: 503, except the probes).
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    max_connections: int = Field(default=1000, ge=1, le=100_000)
    # /docs and /openapi.json: on in dev, off elsewhere unless set.
    docs_enabled: bool | None = None

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("anthropic_api_key", "anthropic_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _refuse_unsafe_database(cls, url: SecretStr, info: ValidationInfo) -> SecretStr:
        app_env = _strict_env(info)
        if app_env is not None:
            _refuse(safety.database_url_problem(url.get_secret_value(), app_env))
        return url

    @field_validator("anthropic_api_key")
    @classmethod
    def _refuse_placeholder_key(
        cls, key: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        generator = info.data.get("generator")
        if generator == "anthropic" and key is None:
            raise ValueError("GENERATOR=anthropic needs ANTHROPIC_API_KEY; set it")
        app_env = _strict_env(info)
        # Only a process that generates needs the key: the API pods beside a worker only queue.
        if app_env is not None and info.data.get("process_role") != "api":
            value = key.get_secret_value() if key is not None else None
            offline = generator == "offline"
            _refuse(safety.anthropic_api_key_problem(value, app_env, offline=offline))
        return key

    @field_validator("anthropic_base_url")
    @classmethod
    def _refuse_plain_http(cls, url: str | None, info: ValidationInfo) -> str | None:
        app_env = _strict_env(info)
        if app_env is not None and url is not None:
            _refuse(safety.anthropic_base_url_problem(url, app_env))
        return url

    @field_validator("cors_origins")
    @classmethod
    def _refuse_any_origin(cls, origins: list[str], info: ValidationInfo) -> list[str]:
        app_env = _strict_env(info)
        if app_env is not None:
            _refuse(safety.cors_origins_problem(origins, app_env))
        return origins

    @field_validator("api_keys")
    @classmethod
    def _hash_keys(cls, keys: list[str], info: ValidationInfo) -> list[str]:
        """Keep only digests: `sha256:<hex>` entries as given, plain keys hashed at load.

        Outside dev, weak or placeholder keys are refused (their strength can only be judged
        before hashing), and so is an empty list where the API is served.
        """
        hashed = []
        for key in keys:
            if key.startswith("sha256:"):
                digest = key.removeprefix("sha256:").lower()
                if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                    raise ValueError("API_KEYS entry with sha256: prefix must be 64 hex digits")
                hashed.append(digest)
            else:
                hashed.append(hash_api_key(key))
        app_env = _strict_env(info)
        if app_env is not None:
            serves_api = info.data.get("process_role") != "worker"
            _refuse(safety.api_keys_problem(keys, app_env, serves_api=serves_api))
        return hashed

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _refuse_trust_all(cls, value: str, info: ValidationInfo) -> str:
        app_env = _strict_env(info)
        if app_env is not None:
            _refuse(safety.forwarded_allow_ips_problem(value, app_env))
        return value

    @property
    def generator_name(self) -> Literal["anthropic", "offline"]:
        """Which generator this configuration selects: GENERATOR if set, else the model when a
        key is set."""
        if self.generator is not None:
            return self.generator
        return "anthropic" if self.anthropic_api_key is not None else "offline"

    @property
    def generates(self) -> bool:
        """Whether this process claims and runs generations."""
        return self.process_role != "api"

    @property
    def should_migrate_on_start(self) -> bool:
        """Dev migrates on start unless told not to; other envs run `migrate` explicitly."""
        return self.app_env == "dev" if self.migrate_on_start is None else self.migrate_on_start

    @property
    def serves_docs(self) -> bool:
        """Whether /docs and /openapi.json answer: in dev unless DOCS_ENABLED says otherwise."""
        return self.app_env == "dev" if self.docs_enabled is None else self.docs_enabled

    def sqlite_parent(self) -> Path | None:
        """The directory of a SQLite database file, if that is what DATABASE_URL names."""
        url = self.database_url.get_secret_value()
        if not url.startswith("sqlite") or ":memory:" in url:
            return None
        path = url.split("///", 1)[1] if "///" in url else ""
        return Path(path).parent if path else None


SECRETS_DIR = "/run/secrets"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with `overrides` on top (validated with them).

    Docker/Compose secrets mounted as files in /run/secrets (named after the setting, e.g.
    /run/secrets/database_url) are read too; an environment variable of the same name wins.
    """
    secrets_dir = os.environ.get("SECRETS_DIR", SECRETS_DIR)
    if os.path.isdir(secrets_dir):
        return Settings(_secrets_dir=secrets_dir, **overrides)
    return Settings(**overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment (see `load_settings`), read once per process on first use."""
    return load_settings()
