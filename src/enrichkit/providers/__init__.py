"""Providers: the seam every model is reached through (``base``), and the registry of those enrichkit ships.

A provider's module, and its SDK, is imported only when that provider is chosen: ``import enrichkit``
and a run on the local model import no provider SDK. By default a run uses Gemini when a key is set,
else the embedded local model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from enrichkit.errors import UserError
from enrichkit.providers import keys

if TYPE_CHECKING:
    from enrichkit.providers.base import Provider

ProviderName = Literal["gemini", "local", "openai", "anthropic"]
PROVIDERS: tuple[ProviderName, ...] = ("gemini", "local", "openai", "anthropic")


@dataclass(frozen=True)
class Choice:
    provider: Provider
    why: str


def choose_provider(
    name: ProviderName | None = None,
    *,
    model: str | None = None,
    base_url: str | None = None,
    model_path: Path | None = None,
) -> Choice:
    """The provider named, or by default Gemini if an API key is set and the local model if not."""
    if name is None:
        name = "gemini" if keys.from_env(*keys.GEMINI) else "local"
        why = "an API key is set" if name == "gemini" else f"no {' / '.join(keys.GEMINI)} is set"
        if model_path is not None:
            name, why = "local", "--model-path was given"
    else:
        why = "chosen with --provider"
    if name == "gemini":
        from enrichkit.providers.gemini import gemini_provider

        return Choice(gemini_provider(model=model, base_url=base_url), why)
    if name == "local":
        from enrichkit.providers.local.provider import local_provider

        return Choice(local_provider(model_path=model_path), why)
    if name == "openai":
        from enrichkit.providers.openai import openai_provider

        return Choice(openai_provider(model=model, base_url=base_url), why)
    if name == "anthropic":
        from enrichkit.providers.anthropic import anthropic_provider

        return Choice(anthropic_provider(model=model, base_url=base_url), why)
    raise UserError(f"unknown provider {name!r} (choose from {', '.join(PROVIDERS)})")


def resolve_provider(
    provider: ProviderName | Provider | None = None,
    *,
    client: Any = None,
    model: str | None = None,
    base_url: str | None = None,
    model_path: Path | None = None,
) -> Choice:
    """A ready provider as given; Gemini on a given ``google.genai.Client``; else ``choose_provider``'s choice."""
    if provider is not None and not isinstance(provider, str):
        return Choice(provider, "given")
    if client is not None:
        from enrichkit.providers.gemini import DEFAULT_MODEL, GeminiProvider

        return Choice(GeminiProvider(client, model or DEFAULT_MODEL), "a client was given")
    return choose_provider(provider, model=model, base_url=base_url, model_path=model_path)
