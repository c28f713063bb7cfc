"""Providers: the seam (``base``) and the registry of the ones enrichkit ships.

Which provider a run uses, and why: Gemini when a key is set, else the embedded local model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from google import genai

from enrichkit.errors import UserError
from enrichkit.providers.base import Provider
from enrichkit.providers.gemini import DEFAULT_MODEL, KEY_VARIABLES, GeminiProvider, api_key_from_env, make_client

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
    cache_dir: Path | None = None,
) -> Choice:
    """The provider named, or by default Gemini if an API key is set and the local model if not."""
    if name is None:
        name = "gemini" if api_key_from_env() else "local"
        why = "an API key is set" if name == "gemini" else f"no {' / '.join(KEY_VARIABLES)} is set"
        if model_path is not None:
            name, why = "local", "--model-path was given"
    else:
        why = "chosen with --provider"
    if name == "gemini":
        client = make_client(base_url=base_url)
        return Choice(GeminiProvider(client, model or DEFAULT_MODEL, owns_client=True), why)
    if name == "local":
        from enrichkit.providers.local import local_provider

        return Choice(local_provider(model_path=model_path, cache_dir=cache_dir), why)
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
    client: genai.Client | None = None,
    model: str | None = None,
    base_url: str | None = None,
    model_path: Path | None = None,
    cache_dir: Path | None = None,
) -> Choice:
    """A ready provider as given; Gemini on a given ``client``; else ``choose_provider``'s choice."""
    if provider is not None and not isinstance(provider, str):
        return Choice(provider, "given")
    if client is not None:
        return Choice(GeminiProvider(client, model or DEFAULT_MODEL), "a client was given")
    return choose_provider(provider, model=model, base_url=base_url, model_path=model_path, cache_dir=cache_dir)
