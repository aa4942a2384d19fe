"""Generator backed by the Anthropic Messages API, with timeouts, retries and strict parsing."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from service.generation import (
    SYSTEM_PROMPT,
    GenerationError,
    GenerationInput,
    MalformedReplyError,
    StoryGenerator,
    parse_stories,
    user_prompt,
)
from service.metrics import ServiceMetrics
from service.schemas import Story
from service.settings import Settings

if TYPE_CHECKING:
    import anthropic

log = logging.getLogger("service.anthropic")

RETRYABLE_STATUS = {408, 409, 429}


class _Retryable(Exception):
    """A failure worth another attempt, with the server's hint on when to retry."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(exc: Any) -> float | None:
    """Seconds from a Retry-After header on an API error response, if any."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None


class AnthropicGenerator:
    """Calls `messages.create` through the official SDK; one instance per process."""

    name = "anthropic"

    def __init__(self, settings: Settings, metrics: ServiceMetrics) -> None:
        import anthropic

        assert settings.anthropic_api_key is not None
        self.settings = settings
        self.metrics = metrics
        self.model: str | None = settings.anthropic_model
        # The SDK's own retries are off: this class retries transport errors and malformed
        # replies in one loop, so attempts, backoff and metrics stay in one place.
        self.client: anthropic.AsyncAnthropic = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            timeout=settings.anthropic_timeout_seconds,
            max_retries=0,
        )

    async def generate(self, request: GenerationInput) -> list[Story]:
        """Ask the model for stories; retry 429/5xx/timeouts/malformed replies with backoff."""
        attempts = self.settings.anthropic_max_attempts
        last_reason = "no attempt made"
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(request)
            except _Retryable as exc:
                last_reason = exc.reason
                if attempt == attempts:
                    break
                delay = self._backoff(attempt, exc.retry_after)
                log.warning(
                    "model call failed; retrying",
                    extra={"attempt": attempt, "reason": exc.reason, "retry_in_s": round(delay, 2)},
                )
                await asyncio.sleep(delay)
        raise GenerationError(f"model call failed after {attempts} attempts: {last_reason}")

    def _backoff(self, attempt: int, hint: float | None) -> float:
        """Exponential backoff with jitter, at least the server's Retry-After, within the cap."""
        base: float = self.settings.anthropic_backoff_seconds * 2.0 ** (attempt - 1)
        delay = base * random.uniform(0.5, 1.0)
        if hint is not None:
            delay = max(delay, hint)
        return min(delay, self.settings.anthropic_backoff_max_seconds)

    async def _attempt(self, request: GenerationInput) -> list[Story]:
        """One call and one parse; maps SDK errors to retryable or final failures."""
        import anthropic

        model = self.settings.anthropic_model
        started = time.perf_counter()
        outcome = "ok"
        try:
            message = await self.client.messages.create(
                model=model,
                max_tokens=self.settings.anthropic_max_tokens,
                system=SYSTEM_PROMPT,
                messages=[{"role": "user", "content": user_prompt(request)}],
            )
            text = "".join(
                str(getattr(block, "text", "")) for block in message.content if block.type == "text"
            )
            if message.stop_reason == "max_tokens":
                raise MalformedReplyError("reply was cut off at max_tokens")
            return parse_stories(text)
        except MalformedReplyError as exc:
            outcome = "malformed"
            raise _Retryable(f"malformed reply: {exc}") from exc
        except anthropic.APITimeoutError as exc:
            outcome = "timeout"
            raise _Retryable(
                f"timed out after {self.settings.anthropic_timeout_seconds:g}s"
            ) from exc
        except anthropic.APIConnectionError as exc:
            outcome = "connection_error"
            raise _Retryable("could not connect to the Messages API") from exc
        except anthropic.APIStatusError as exc:
            status = exc.status_code
            outcome = "rate_limited" if status == 429 else f"http_{status}"
            if status in RETRYABLE_STATUS or status >= 500:
                raise _Retryable(f"Messages API answered {status}", _retry_after(exc)) from exc
            raise GenerationError(f"Messages API refused the request ({status})") from exc
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.ai_calls.labels(model, outcome).inc()
            self.metrics.ai_latency.labels(model).observe(elapsed)
            if outcome != "ok":
                self.metrics.ai_failures.labels(model, outcome).inc()
            log.info(
                "model call",
                extra={"model": model, "outcome": outcome, "duration_ms": round(elapsed * 1000, 1)},
            )

    async def aclose(self) -> None:
        """Close the SDK's HTTP client."""
        await self.client.close()


def make_generator(settings: Settings, metrics: ServiceMetrics) -> StoryGenerator:
    """The Anthropic generator when a key is set, the offline one otherwise."""
    if settings.generator_name == "anthropic":
        return AnthropicGenerator(settings, metrics)
    from service.offline_generator import OfflineGenerator

    return OfflineGenerator()
