"""The stub's Batch and Files APIs, driven by the real google-genai client."""

from __future__ import annotations

import asyncio
import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from enrichkit.testing import Answer, GeminiStub, http_error

SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}}
MODEL = "gemini-2.5-flash"


def sdk(stub: GeminiStub) -> genai.Client:
    """A real client on the stub (keep a reference: a collected client closes its connections)."""
    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=stub.url, api_version="v1beta"))


def prompt(i: int) -> str:
    return "Classify this record.\n\n" + json.dumps({"name": f"item {i}"})


def inline(n: int) -> list[types.InlinedRequestDict]:
    config: types.GenerateContentConfigDict = {"response_mime_type": "application/json", "response_json_schema": SCHEMA}
    return [
        {"contents": [{"role": "user", "parts": [{"text": prompt(i)}]}], "config": config, "metadata": {"key": f"k{i}"}}
        for i in range(n)
    ]


def jsonl(n: int) -> bytes:
    config = {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}
    lines = [
        {
            "key": f"k{i}",
            "request": {"contents": [{"role": "user", "parts": [{"text": prompt(i)}]}], "generationConfig": config},
        }
        for i in range(n)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def label(result: Any) -> str:
    """The label in an answer (an SDK response, or a response's wire JSON from a results file)."""
    if isinstance(result, types.GenerateContentResponse):
        text = result.text or ""
    else:
        text = result["candidates"][0]["content"]["parts"][0]["text"]
    value: str = json.loads(text)["label"]
    return value


def actions(stub: GeminiStub) -> list[str]:
    return [call.action for call in stub.api_calls]


def test_inline_job_runs_then_succeeds_with_keyed_answers(stub: GeminiStub) -> None:
    client = sdk(stub)
    job = client.batches.create(model=MODEL, src=inline(3), config={"display_name": "demo"})
    assert job.name is not None and job.state == types.JobState.JOB_STATE_PENDING and not job.done
    assert job.display_name == "demo" and job.model == f"models/{MODEL}"
    assert stub.batch_requests == []  # nothing answered before the job runs

    running = client.batches.get(name=job.name)
    assert running.state == types.JobState.JOB_STATE_RUNNING and running.dest is None
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.done and done.end_time is not None
    assert done.dest is not None and done.dest.inlined_responses is not None
    results = done.dest.inlined_responses
    assert [r.metadata for r in results] == [{"key": f"k{i}"} for i in range(3)]
    assert [label(r.response) for r in results] == [f"About item {i}" for i in range(3)]

    client.batches.get(name=job.name)
    assert [c.job for c in stub.batch_requests] == [job.name] * 3  # answered once, not on every get
    assert [c.prompt for c in stub.batch_requests] == [prompt(i) for i in range(3)]
    assert stub.generate_calls == [] and len(stub.calls) == 3
    assert actions(stub) == ["batchGenerateContent", "batches.get", "batches.get", "batches.get"]
    held = stub.jobs[job.name]
    assert (held.source, held.gets, held.state) == ("inline", 3, "BATCH_STATE_SUCCEEDED")
    assert [key for key, _ in held.requests] == ["k0", "k1", "k2"]


def test_concurrent_polls_answer_a_job_once(stub: GeminiStub) -> None:
    client = sdk(stub)
    name = client.batches.create(model=MODEL, src=inline(5)).name
    assert name is not None
    with ThreadPoolExecutor(8) as pool:
        states = list(pool.map(lambda _: client.batches.get(name=name).state, range(16)))
    assert states.count(types.JobState.JOB_STATE_RUNNING) == 1
    assert states.count(types.JobState.JOB_STATE_SUCCEEDED) == 15
    assert len(stub.batch_requests) == 5 and stub.jobs[name].gets == 16


def test_file_job_uploads_runs_and_downloads_results_joined_on_key(stub: GeminiStub) -> None:
    client = sdk(stub)
    data = jsonl(4)
    uploaded = client.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl", "display_name": "input"})
    assert uploaded.name is not None and stub.files[uploaded.name] == data
    assert uploaded.size_bytes == len(data) and uploaded.mime_type == "jsonl" and uploaded.display_name == "input"
    assert client.files.get(name=uploaded.name).size_bytes == len(data)

    job = client.batches.create(model=MODEL, src=uploaded.name)
    assert job.name is not None and stub.jobs[job.name].source == "file"
    client.batches.get(name=job.name)
    done = client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None and done.dest.inlined_responses is None and done.dest.file_name is not None

    lines = [json.loads(line) for line in client.files.download(file=done.dest.file_name).decode().splitlines()]
    by_key = {line["key"]: line["response"] for line in lines}
    assert {key: label(result) for key, result in by_key.items()} == {f"k{i}": f"About item {i}" for i in range(4)}
    generated = client.files.get(name=done.dest.file_name)
    assert (
        generated.source == types.FileSource.GENERATED
        and client.files.download(file=generated) == stub.files[done.dest.file_name]
    )
    assert actions(stub).count("files.upload") == 1 and actions(stub).count("files.download") == 2

    client.files.delete(name=uploaded.name)
    assert uploaded.name not in stub.files
    with pytest.raises(errors.ClientError) as missing:
        client.files.get(name=uploaded.name)
    assert missing.value.code == 404


def test_large_upload_arrives_whole_in_chunks(stub: GeminiStub) -> None:
    data = b"x" * (9 * 1024 * 1024)  # the SDK sends 8 MiB chunks
    client = sdk(stub)
    uploaded = client.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl"})
    assert uploaded.name is not None and stub.files[uploaded.name] == data
    assert actions(stub) == ["files.upload", "files.upload.chunk", "files.upload.chunk"]


def test_job_from_a_missing_file_is_refused(stub: GeminiStub) -> None:
    client = sdk(stub)
    with pytest.raises(errors.ClientError) as refused:
        client.batches.create(model=MODEL, src="files/nope")
    assert refused.value.code == 404 and stub.jobs == {}


@pytest.mark.parametrize(
    ("wire", "state"),
    [
        ("BATCH_STATE_FAILED", types.JobState.JOB_STATE_FAILED),
        ("BATCH_STATE_EXPIRED", types.JobState.JOB_STATE_EXPIRED),
        ("BATCH_STATE_CANCELLED", types.JobState.JOB_STATE_CANCELLED),
    ],
)
def test_manual_jobs_move_only_when_advanced(wire: str, state: types.JobState) -> None:
    with GeminiStub(batch_auto=False) as stub:
        client = sdk(stub)
        job = client.batches.create(model=MODEL, src=inline(2))
        assert job.name is not None
        for _ in range(3):
            assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_PENDING
        stub.advance(job.name, "BATCH_STATE_RUNNING")
        assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
        stub.advance(job.name, wire)
        ended = client.batches.get(name=job.name)
        assert ended.state == state and ended.done and ended.dest is None
        assert stub.batch_requests == [] and stub.jobs[job.name].gets == 5


def test_advance_to_succeeded_answers_the_requests() -> None:
    with GeminiStub(batch_auto=False) as stub:
        client = sdk(stub)
        job = client.batches.create(model=MODEL, src=inline(2))
        assert job.name is not None
        held = stub.advance(job.name)
        assert held.output is not None and [key for key, _ in held.output] == ["k0", "k1"]
        assert len(stub.batch_requests) == 2
        done = client.batches.get(name=job.name)
        assert done.state == types.JobState.JOB_STATE_SUCCEEDED
        assert done.dest is not None and done.dest.inlined_responses is not None
        assert [label(r.response) for r in done.dest.inlined_responses] == ["About item 0", "About item 1"]


def test_failed_job_carries_an_operation_error_in_the_raw_json() -> None:
    with GeminiStub(batch_auto=False) as stub:
        client = sdk(stub)
        job = client.batches.create(model=MODEL, src=inline(1))
        assert job.name is not None
        stub.advance(job.name, "BATCH_STATE_FAILED")
        raw = httpx2.get(f"{stub.url}/v1beta/{job.name}").json()
        assert raw["done"] is True and raw["error"]["code"] == 13 and raw["metadata"]["state"] == "BATCH_STATE_FAILED"


def test_a_rule_fails_one_request_of_a_batch(stub: GeminiStub) -> None:
    stub.rule(http_error(500, "boom"), when=lambda call: "item 1" in call.prompt)
    client = sdk(stub)
    job = client.batches.create(model=MODEL, src=inline(3))
    assert job.name is not None
    client.batches.get(name=job.name)
    results = client.batches.get(name=job.name).dest
    assert results is not None and results.inlined_responses is not None
    errors_by_key = {r.metadata["key"]: r.error for r in results.inlined_responses if r.metadata}
    assert errors_by_key["k0"] is None and errors_by_key["k2"] is None
    failed = errors_by_key["k1"]
    assert failed is not None and failed.code == 13 and failed.message == "boom"
    assert results.inlined_responses[1].response is None
    assert label(results.inlined_responses[2].response) == "About item 2"


def test_the_script_applies_to_batch_requests_in_order(stub: GeminiStub) -> None:
    stub.script(None, http_error(429, "slow down"), lambda call: Answer({"label": "odd"}))
    client = sdk(stub)
    data = jsonl(4)
    uploaded = client.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl"})
    assert uploaded.name is not None
    job = client.batches.create(model=MODEL, src=uploaded.name)
    assert job.name is not None
    stub.advance(job.name)
    lines = {line["key"]: line for line in map(json.loads, stub.files[stub.jobs[job.name].result_file].splitlines())}
    assert label(lines["k0"]["response"]) == "About item 0" and label(lines["k3"]["response"]) == "About item 3"
    assert lines["k1"] == {"key": "k1", "error": {"code": 8, "message": "slow down"}}
    assert label(lines["k2"]["response"]) == "odd"


def test_shuffled_outputs_and_dropped_metadata() -> None:
    with GeminiStub(shuffle_outputs=True, drop_inline_metadata=True) as stub:
        client = sdk(stub)
        job = client.batches.create(model=MODEL, src=inline(4))
        assert job.name is not None
        stub.advance(job.name)
        results = client.batches.get(name=job.name).dest
        assert results is not None and results.inlined_responses is not None
        assert all(r.metadata is None for r in results.inlined_responses)
        labels = [label(r.response) for r in results.inlined_responses]
        assert sorted(labels) == [f"About item {i}" for i in range(4)] and labels != sorted(labels)

        uploaded = client.files.upload(file=io.BytesIO(jsonl(4)), config={"mime_type": "jsonl"})
        assert uploaded.name is not None
        file_job = client.batches.create(model=MODEL, src=uploaded.name)
        assert file_job.name is not None
        stub.advance(file_job.name)
        lines = [json.loads(line) for line in stub.files[stub.jobs[file_job.name].result_file].splitlines()]
        keys = [line["key"] for line in lines]
        assert keys != sorted(keys) and all(
            label(line["response"]) == f"About item {line['key'][1:]}" for line in lines
        )


def test_list_cancel_and_delete(stub: GeminiStub) -> None:
    client = sdk(stub)
    first = client.batches.create(model=MODEL, src=inline(1)).name
    second = client.batches.create(model=MODEL, src=inline(2)).name
    assert first is not None and second is not None
    assert {job.name for job in client.batches.list()} == {first, second}

    client.batches.cancel(name=first)
    cancelled = client.batches.get(name=first)
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.done
    assert client.batches.get(name=first).state == types.JobState.JOB_STATE_CANCELLED  # auto mode leaves it
    assert stub.batch_requests == []

    client.batches.delete(name=second)
    assert list(stub.jobs) == [first] and [job.name for job in client.batches.list()] == [first]
    with pytest.raises(errors.ClientError) as missing:
        client.batches.get(name=second)
    assert missing.value.code == 404
    assert actions(stub).count("batchGenerateContent") == 2 and actions(stub).count("batches.cancel") == 1


def test_async_client_runs_a_file_job(stub: GeminiStub) -> None:
    async def run() -> bytes:
        parent = sdk(stub)
        client = parent.aio
        uploaded = await client.files.upload(file=io.BytesIO(jsonl(2)), config={"mime_type": "jsonl"})
        assert uploaded.name is not None
        job = await client.batches.create(model=MODEL, src=uploaded.name)
        assert job.name is not None
        while not (job := await client.batches.get(name=job.name)).done:
            pass
        assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.dest is not None and job.dest.file_name
        assert [j.name async for j in await client.batches.list()] == [job.name]
        return await client.files.download(file=job.dest.file_name)

    lines = [json.loads(line) for line in asyncio.run(run()).splitlines()]
    assert {line["key"]: label(line["response"]) for line in lines} == {"k0": "About item 0", "k1": "About item 1"}


def test_service_tier_is_recorded(stub: GeminiStub) -> None:
    client = sdk(stub)
    config = types.GenerateContentConfig(service_tier=types.ServiceTier.FLEX)
    client.models.generate_content(model=MODEL, contents=prompt(0), config=config)
    assert [call.service_tier for call in stub.generate_calls] == ["flex"]
