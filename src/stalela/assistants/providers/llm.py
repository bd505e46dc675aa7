"""Asking the operator's LLM for an extraction, through pydantic-ai (the optional ``stalela[ai]`` extra), under a
hard timeout; and falling back to the rule parser's draft, with the reason, when it fails. pydantic-ai is
imported here only, inside the functions that talk to a model: without the extra installed, or with no provider
configured, the service never imports it."""
from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import structlog

from stalela.assistants.parser import Draft, TenantContext
from stalela.assistants.parser.draft import instruction_in
from stalela.assistants.providers.agreement import to_draft
from stalela.assistants.providers.extraction import Extraction, instructions
from stalela.errors import ValidationFailed

if TYPE_CHECKING:  # annotations only: config.py imports SQLAlchemy (URLs), which the providers may not reach
    from stalela.config import Settings

log = structlog.get_logger(__name__)
# One more request when the output fails validation (the error is fed back to the model), within the timeout.
OUTPUT_RETRIES = 1
# Local servers (Ollama, vLLM, llama.cpp) need no key, but the OpenAI client insists on one.
NO_KEY = "not-needed"


@dataclass(frozen=True)
class LlmConfig:
    provider: str  # "openai" (any OpenAI-compatible endpoint) or "anthropic"
    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never in a log line or a traceback's locals
    timeout: float = 5.0
    output_mode: str = "native"  # "native" (json_schema) or "tool" (a forced tool call)

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"


def configured(settings: Settings) -> LlmConfig | None:
    if not settings.llm_provider or not settings.llm_model:
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return LlmConfig(settings.llm_provider, settings.llm_model, settings.llm_base_url, key,
                     settings.llm_timeout_seconds, settings.llm_output_mode)


def require(settings: Settings) -> LlmConfig:
    """The configured provider, or the 422 a request asking for one gets when the operator set none."""
    config = configured(settings)
    if config is None:
        raise ValidationFailed("no LLM provider is configured on this server: draft with the rule parser "
                               '("provider": "rules")', code="draft_provider_unavailable", field="provider")
    return config


@dataclass(frozen=True)
class Reading:
    """What the model made of a request, or why it made nothing (``failure``: timeout, connection_error,
    provider_error, invalid_output, not_installed, not_sent), and how long it took."""
    config: LlmConfig
    extraction: Extraction | None
    failure: str | None = None
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Answer:
    draft: Draft
    provider: str  # who answered: "llm", or "rules" after a fallback


class ProviderFailed(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


async def read_request(settings: Settings, text: str, today: date) -> Reading:
    """The configured model's reading of ``text`` (422 ``draft_provider_unavailable`` when none is configured).
    It needs no database: the drafting route calls it before its transaction, so that waiting for the model
    (up to the timeout) holds no lock and no pooled connection."""
    return await read(require(settings), text, today)


async def read(config: LlmConfig, text: str, today: date, model: Any = None) -> Reading:
    """Never raises for the model's sake: a failure is a ``Reading`` without extraction. ``model``: a
    pydantic-ai model to use instead of the configured one (the tests' TestModel and FunctionModel)."""
    started = time.perf_counter()
    if instruction_in(text):
        # A text that instructs a model is refused whoever reads it: it is not sent to one.
        return Reading(config, None, "not_sent", "the text carries an instruction")
    try:
        extraction = await asyncio.wait_for(extract(config, text, today, model), config.timeout)
    except (TimeoutError, asyncio.TimeoutError):
        return Reading(config, None, "timeout", f"no answer within {config.timeout:g} s",
                       time.perf_counter() - started)
    except ProviderFailed as exc:
        return Reading(config, None, exc.reason, exc.detail, time.perf_counter() - started)
    return Reading(config, extraction, seconds=time.perf_counter() - started)


def answer(reading: Reading, text: str, ctx: TenantContext, rules: Draft) -> Answer:
    """The model's draft, checked against ``rules`` (the rule parser's draft of the same text); or ``rules``
    itself, with the reason first in its ``reasons``, when the model gave nothing."""
    config = reading.config
    if reading.extraction is not None:
        return Answer(to_draft(reading.extraction, text, ctx, rules, config.name), "llm")
    # The provider's own words (an error body, which may name the operator's account or echo its key) go to the
    # operator's log only: the tenant's draft keeps the failure's code.
    log.warning("draft_provider_fallback", provider=config.name, reason=reading.failure, detail=reading.detail[:200])
    note = f"provider.fallback: {reading.failure} (asked: llm, {config.name})"
    return Answer(dataclasses.replace(rules, reasons=[note, *rules.reasons]), "rules")


async def extract(config: LlmConfig, text: str, today: date, model: Any = None) -> Extraction:
    """The model's extraction of ``text``, validated by ``Extraction``; ``ProviderFailed`` otherwise."""
    try:
        from pydantic_ai import Agent, NativeOutput, ToolOutput
        from pydantic_ai import exceptions as ai
    except ImportError as exc:
        raise ProviderFailed("not_installed", f"install stalela[ai] ({exc.name} is missing)") from None
    try:
        # A partly installed extra (pydantic-ai without a provider's SDK) fails here, on first use.
        model = model or _model(config)
        # Native (json_schema) where the library knows the model takes it, else a forced tool call (older Claude).
        native = config.output_mode == "native" and model.profile.get("supports_json_schema_output", False)
        output = NativeOutput(Extraction) if native else ToolOutput(Extraction)
        agent = Agent(model, output_type=output, instructions=instructions(today), retries=OUTPUT_RETRIES)
    except ImportError as exc:
        raise ProviderFailed("not_installed", f"install stalela[ai] ({exc.name} is missing)") from None
    # The SDK's own retries (with back-off) would outlast the timeout: one attempt, the fallback is ours.
    settings: dict[str, Any] = {"timeout": config.timeout, "max_retries": 0}
    if config.provider == "openai":
        settings["temperature"] = 0.0  # the same reading for the same text, where the server honours it
    try:
        result = await agent.run(text, model_settings=settings)
    except ai.ModelTimeoutError as exc:
        raise ProviderFailed("timeout", str(exc)) from None
    except ai.ModelConnectionError as exc:
        raise ProviderFailed("connection_error", str(exc)) from None
    except ai.ModelAPIError as exc:
        raise ProviderFailed("provider_error", str(exc)) from None
    except ai.UnexpectedModelBehavior as exc:
        raise ProviderFailed("invalid_output", str(exc)) from None
    except (asyncio.CancelledError, TimeoutError, asyncio.TimeoutError):
        raise
    except Exception as exc:  # noqa: BLE001 - a provider library's failure must never become a 500
        raise ProviderFailed("provider_error", f"{type(exc).__name__}: {exc}") from None
    return result.output


def warm(settings: Settings) -> None:
    """At start, when a provider is configured: import its library and build its client once, so that the first
    draft's timeout is not spent importing (about a second) and a missing ``stalela[ai]`` is said in the log at
    once. Not fatal: drafting falls back to the rules (``not_installed``), the fiscal service keeps serving."""
    config = configured(settings)
    if config is None:
        return
    try:
        _model(config)
    except ImportError as exc:
        log.error("llm_provider_not_installed", provider=config.name, missing=exc.name,
                  hint="pip install 'stalela[ai]'; until then drafts come from the rule parser")


def _model(config: LlmConfig) -> Any:
    if config.provider == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        return AnthropicModel(config.model, provider=AnthropicProvider(api_key=config.api_key or NO_KEY,
                                                                       base_url=config.base_url))
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    return OpenAIChatModel(config.model, provider=OpenAIProvider(base_url=config.base_url,
                                                                 api_key=config.api_key or NO_KEY))
