"""Every shipped stub, through its real SDK: default answers keep the schema's limits, an unknown model is
refused as the API refuses it (so it stops at the preflight), and ``python -m enrichkit.testing --api``
serves each one for the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from enrichkit import FatalProviderError, Task, enrich
from enrichkit.providers import ProviderName, choose_provider
from enrichkit.testing import AnthropicStub, GeminiStub, OpenAIStub
from enrichkit.testing.wire import PRICED, WireStub
from helpers import FAST_RETRY, SRC, topic_rows, write_jsonl

KEYS = {"gemini": "GEMINI_API_KEY", "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
STUBS = {"gemini": GeminiStub, "openai": OpenAIStub, "anthropic": AnthropicStub}
API: dict[str, ProviderName] = {"gemini": "gemini", "openai": "openai", "anthropic": "anthropic"}
MODELS = {"gemini": "gemini-3.1-flash-lite", "openai": "gpt-4.1-mini", "anthropic": "claude-haiku-4-5"}

LIMITED = Task(
    instruction="Rate and describe each topic.",
    inputs=["topic", "description"],
    output={
        "type": "object",
        "properties": {
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "share": {"type": "number", "minimum": 0.5, "maximum": 1},
            "gist": {"type": "string", "maxWords": 3, "maxLength": 16},
            "due": {"type": "string", "format": "date"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3},
        },
    },
)


@pytest.fixture(params=list(STUBS))
def api(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEYS[request.param], "test-key")
    return str(request.param)


@pytest.fixture
def priced(api: str) -> Iterator[WireStub]:
    with STUBS[api](models=PRICED) as server:
        yield server


def test_default_answers_keep_every_limit_of_the_schema(api: str, priced: WireStub, cache_dir: Path) -> None:
    provider = choose_provider(API[api], model=MODELS[api], base_url=priced.url).provider
    result = enrich(topic_rows(40), LIMITED, provider=provider, cache_dir=cache_dir, retry=FAST_RETRY, progress=False)
    assert result.failures == [] and result.stats.invalid_items == 0
    assert {r["stars"] for r in result.rows} <= {1, 2, 3, 4, 5} and len({r["stars"] for r in result.rows}) > 1
    assert all(0.5 <= r["share"] <= 1 and len(r["gist"].split()) <= 3 for r in result.rows)


def test_an_unknown_model_is_refused_as_the_api_refuses_it(api: str, priced: WireStub, cache_dir: Path) -> None:
    provider = choose_provider(API[api], model="no-such-model", base_url=priced.url).provider
    with pytest.raises(FatalProviderError, match="does not know model 'no-such-model'"):
        enrich(topic_rows(40), LIMITED, provider=provider, cache_dir=cache_dir, retry=FAST_RETRY, progress=False)
    assert len(priced.calls) == 1  # the free count, or the first call alone where the API cannot count


def test_by_default_a_stub_answers_for_any_model(api: str, cache_dir: Path) -> None:
    with STUBS[api]() as stub:
        provider = choose_provider(API[api], model="any-name", base_url=stub.url).provider
        result = enrich(topic_rows(3), LIMITED, provider=provider, cache_dir=cache_dir, progress=False)
    assert result.failures == [] and {c.model for c in stub.calls} == {"any-name"}


@pytest.mark.subprocess
@pytest.mark.parametrize("name", list(STUBS))
def test_python_m_enrichkit_testing_serves_each_api_and_says_how_to_use_it(name: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in KEYS.values()} | {"PYTHONPATH": SRC}
    server = subprocess.Popen(
        [sys.executable, "-m", "enrichkit.testing", "--api", name, "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        banner = [server.stdout.readline() for _ in range(4)]
        url = banner[0].split(" listening on ")[1].strip()
        assert banner[1].split("#")[0].strip() == f"export {KEYS[name]}=stub"
        rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(5))
        task = str(Path(SRC).parent / "schemas" / "roadmap-topic.json")
        run = [sys.executable, "-m", "enrichkit", "run", str(rows), "-t", task, "-o", str(tmp_path / "o.jsonl")]
        run += ["--provider", name, "--base-url", url, "--no-cache", "-q"]
        if name != "openai":  # OpenAI-compatible servers often need no key: the SDK does without
            keyless = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
            assert keyless.returncode == 2 and f"(any value does for a local stub: {KEYS[name]}=stub)" in keyless.stderr
        done = subprocess.run(run, env=env | {KEYS[name]: "stub"}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert len((tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()) == 5
        unknown = subprocess.run([*run, "-m", "no-such-model"], env=env | {KEYS[name]: "stub"}, capture_output=True,
                                 text=True, timeout=120)  # fmt: skip
        assert unknown.returncode == 2 and "does not know model 'no-such-model'" in unknown.stderr
    finally:
        server.terminate()
        server.wait(10)
