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


# Model names by the provider that serves them (a name's start), so that ``--model`` alone picks it.
MODEL_PREFIXES: tuple[tuple[str, ProviderName], ...] = (
    ("gemini-", "gemini"),
    ("models/gemini-", "gemini"),
    ("gemma-", "gemini"),
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("claude-", "anthropic"),
)

_KEYS: dict[str, tuple[str, ...]] = {"gemini": keys.GEMINI, "openai": (keys.OPENAI,), "anthropic": (keys.ANTHROPIC,)}


def provider_of(model: str) -> ProviderName | None:
    """The provider whose models are named like ``model`` (None: no API provider's name)."""
    return next((name for prefix, name in MODEL_PREFIXES if model.lower().startswith(prefix)), None)


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
    slots: int | None = None,
) -> Choice:
    """The provider named; else the one ``model``'s name belongs to (``provider_of``), which needs its
    key; else Gemini if an API key is set and the local model if not (``model`` then names a GGUF
    file). ``slots``: rows the local model decodes together (its default where None)."""
    if name is None and model_path is not None:
        name, why = "local", "--model-path was given"
    elif name is None and model is not None and (owner := provider_of(model)) is not None:
        if not keys.from_env(*_KEYS[owner]) and not (owner == "openai" and base_url):  # a local server takes none
            raise UserError(
                f"model {model!r} runs on {owner} and needs {' or '.join(_KEYS[owner])}: set it"
                " (or give a local model: a .gguf path or name, see --provider local)"
            )
        name, why = owner, f"model {model!r} is a {owner} model"
    elif name is None:
        name = "gemini" if keys.from_env(*keys.GEMINI) else "local"
        why = "an API key is set" if name == "gemini" else f"no {' / '.join(keys.GEMINI)} is set"
    else:
        why = "chosen with --provider"
    if name == "gemini":
        from enrichkit.providers.gemini import gemini_provider

        return Choice(gemini_provider(model=model, base_url=base_url), why)
    if name == "local":
        from enrichkit.providers.local.provider import local_provider

        return Choice(local_provider(model_path=model_path, model=model, slots=slots), why)
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
    slots: int | None = None,
) -> Choice:
    """A ready provider as given; Gemini on a given ``google.genai.Client``; else ``choose_provider``'s choice."""
    if provider is not None and not isinstance(provider, str):
        return Choice(provider, "given")
    if client is not None:
        from enrichkit.providers.gemini import DEFAULT_MODEL, GeminiProvider

        return Choice(GeminiProvider(client, model or DEFAULT_MODEL), "a client was given")
    return choose_provider(provider, model=model, base_url=base_url, model_path=model_path, slots=slots)
