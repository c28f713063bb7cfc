"""The Gemini stub's Batch API (jobs of keyed requests) and Files API (resumable uploads, processing, gets,
downloads, deletes; ``resolve`` gives back the bytes a ``fileData`` URI names)."""

from __future__ import annotations

import datetime
import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from enrichkit.testing.faults import Error, Wire

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_DONE = {"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"}
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 503: 14, 504: 4}


@dataclass
class GeminiJob:
    """One batch job. ``output`` holds ``(key, {"response": ...} | {"error": ...})`` in served order."""

    name: str
    model: str
    display_name: str
    requests: list[tuple[str, dict[str, Any]]]
    source: Literal["inline", "file"]
    state: str = "BATCH_STATE_PENDING"
    gets: int = 0
    output: list[tuple[str, dict[str, Any]]] | None = None
    input_file: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def result_file(self) -> str:
        """The name of the JSONL results file of a file job."""
        return f"files/batch-{self.name.removeprefix('batches/')}"


def _batch_item(sent: Wire) -> dict[str, Any]:
    """A batch result item for a live call's answer (the error code gRPC-style, no details)."""
    if sent.status == 200:
        return {"response": sent.body}
    error = sent.body.get("error", {}) if isinstance(sent.body, dict) else {}
    message = str(error.get("message", sent.body))
    return {"error": {"code": _GRPC.get(sent.status, sent.status), "message": message}}


def _timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _job_json(job: GeminiJob, drop_inline_metadata: bool = False) -> dict[str, Any]:
    """The job as the Batch API sends it: an operation whose ``metadata`` the SDK reads."""
    stats = {"requestCount": str(len(job.requests))}
    if job.output is None:
        stats["pendingRequestCount"] = str(len(job.requests))
    else:
        failed = sum("error" in item for _, item in job.output)
        stats |= {"successfulRequestCount": str(len(job.output) - failed), "failedRequestCount": str(failed)}
    metadata: dict[str, Any] = {
        "@type": _TYPE + "GenerateContentBatch",
        "model": f"models/{job.model}",
        "displayName": job.display_name,
        "name": job.name,
        "createTime": _timestamp(job.created),
        "updateTime": _timestamp(job.updated),
        "state": job.state,
        "batchStats": stats,
    }
    wire: dict[str, Any] = {"name": job.name, "metadata": metadata}
    if job.input_file is not None:
        metadata["inputConfig"] = {"fileName": job.input_file}
    if job.output is not None:
        if job.source == "file":
            output: dict[str, Any] = {"responsesFile": job.result_file}
        else:
            meta = [{} if drop_inline_metadata else {"metadata": {"key": key}} for key, _ in job.output]
            items = [{**item, **extra} for (_, item), extra in zip(job.output, meta, strict=True)]
            output = {"inlinedResponses": {"inlinedResponses": items}}
        metadata["output"] = output
        wire["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **output}
    if job.state in _DONE:
        metadata["endTime"] = _timestamp(job.updated)
        wire["done"] = True
    if job.state == "BATCH_STATE_FAILED":
        wire["error"] = {"code": 13, "message": "stub: the batch failed"}
    return wire


class GeminiBatches:
    """The Batch and Files API state of one stub (the caller holds its lock around every method); a job
    that succeeds has ``answer(job, key, request)`` answer each of its requests as a live call."""

    def __init__(
        self,
        answer: Callable[[GeminiJob, str, dict[str, Any]], Wire],
        url: str,
        *,
        auto: bool = True,
        shuffle_outputs: bool = False,
        drop_inline_metadata: bool = False,
    ) -> None:
        self.answer = answer
        self.url = url
        self.auto = auto
        self.shuffle_outputs = shuffle_outputs
        self.drop_inline_metadata = drop_inline_metadata
        self.jobs: dict[str, GeminiJob] = {}
        self.files: dict[str, bytes] = {}
        self._file_info: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, tuple[dict[str, Any], bytearray]] = {}
        self.processing = 0
        """How many ``files.get`` an uploaded file stays ``PROCESSING`` for (0: ``ACTIVE`` at once)."""
        self.failing: set[str] = set()
        """The sha256 of uploaded contents whose processing fails (state ``FAILED``)."""
        self._gets: dict[str, int] = {}

    def serve(
        self, action: str, route: str, name: str, body: dict[str, Any], headers: dict[str, str], upload: str, raw: bytes
    ) -> Wire | Error:
        """Answer one Batch or Files API request; ``name`` is the model, job or file it names, ``upload``
        the upload session its bytes belong to ("" for none)."""
        if upload:
            return self._upload_chunk(upload, raw, headers)
        if action == "batchGenerateContent":
            return self._create_job(name, body, headers)
        if action == "batches.list":
            return Wire(body={"operations": [_job_json(job, self.drop_inline_metadata) for job in self.jobs.values()]})
        if action == "files.upload":
            return self._upload_start(body, route)
        kind, _, verb = action.partition(".")
        name = f"{kind}/{name}"
        if name not in (self.jobs if kind == "batches" else self.files):
            return Error(404, f"{name} not found")
        if kind == "files":
            if verb == "delete":
                del self.files[name], self._file_info[name]
                return Wire(body={})
            if verb == "get":
                self._processed(name)
            return Wire(body=self.files[name] if verb == "download" else self._file_info[name])
        job = self.jobs[name]
        if verb == "delete":
            del self.jobs[name]
            return Wire(body={})
        if verb == "cancel":
            if job.state not in _DONE:
                self.set_state(job, "BATCH_STATE_CANCELLED")
            return Wire(body={})
        job.gets += 1
        if self.auto and job.state in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
            self.set_state(job, "BATCH_STATE_RUNNING" if job.gets == 1 else "BATCH_STATE_SUCCEEDED")
        return Wire(body=_job_json(job, self.drop_inline_metadata))

    def set_state(self, job: GeminiJob, state: str) -> None:
        """Move ``job`` to a wire ``state``, answering its requests when it succeeds."""
        job.state = state
        job.updated = time.time()
        if state == "BATCH_STATE_SUCCEEDED" and job.output is None:
            self._answer(job)

    def _create_job(self, model: str, body: dict[str, Any], headers: dict[str, str]) -> Wire | Error:
        batch = body.get("batch", {})
        source = batch.get("inputConfig", {})
        input_file = source.get("fileName")
        if input_file is None:
            inline = source.get("requests", {}).get("requests", [])
            requests = [(str(r.get("metadata", {}).get("key", "")), r.get("request", {})) for r in inline]
        elif input_file not in self.files:
            return Error(404, f"{input_file} not found")
        else:
            try:
                lines = [json.loads(line) for line in self.files[input_file].decode().splitlines() if line.strip()]
            except ValueError:
                return Error(400, f"{input_file} is not JSONL")
            requests = [(str(line.get("key", "")), line.get("request", {})) for line in lines]
        job = GeminiJob(
            name=f"batches/{uuid.uuid4().hex[:12]}",
            model=model,
            display_name=batch.get("displayName", ""),
            requests=requests,
            source="inline" if input_file is None else "file",
            input_file=input_file,
            headers=headers,
        )
        self.jobs[job.name] = job
        return Wire(body=_job_json(job, self.drop_inline_metadata))

    def _answer(self, job: GeminiJob) -> None:
        """Answer every request of ``job`` as a live call would be answered (delays ignored)."""
        output = []
        for key, request in job.requests:
            output.append((key, _batch_item(self.answer(job, key, request))))
        if self.shuffle_outputs and len(output) > 1:
            mixed = random.Random(job.name).sample(output, len(output))
            output = mixed if mixed != output else output[::-1]
        job.output = output
        if job.source == "file":
            lines = "".join(json.dumps({"key": key, **item}) + "\n" for key, item in output)
            download = f"{self.url}/v1beta/{job.result_file}:download?alt=media"  # only generated files have one
            info = {"mimeType": "application/jsonl", "source": "GENERATED", "downloadUri": download}
            self._store(job.result_file, lines.encode(), info)

    def _upload_start(self, body: dict[str, Any], route: str) -> Wire:
        """Open a resumable upload session; the client sends the bytes to ``X-Goog-Upload-URL``."""
        meta = body.get("file", {})
        upload = uuid.uuid4().hex
        self._uploads[upload] = (meta, bytearray())
        url = f"{self.url}{route}?upload_id={upload}&upload_protocol=resumable"
        return Wire(body={}, headers={"X-Goog-Upload-Status": "active", "X-Goog-Upload-URL": url})

    def _upload_chunk(self, upload: str, raw: bytes, headers: dict[str, str]) -> Wire | Error:
        if upload not in self._uploads:
            return Error(404, f"no upload {upload}")
        meta, data = self._uploads[upload]
        data += raw
        command = next((v for k, v in headers.items() if k.lower() == "x-goog-upload-command"), "")
        if "finalize" not in command:
            return Wire(body={}, headers={"X-Goog-Upload-Status": "active"})
        del self._uploads[upload]
        name = meta.get("name") or f"files/{uuid.uuid4().hex[:12]}"
        info = {
            "displayName": meta.get("display_name", meta.get("displayName")),
            "mimeType": meta.get("mime_type", meta.get("mimeType")),
            "source": "UPLOADED",
        }
        stored = self._store(name, bytes(data), info)
        self._processed(name, look=False)
        return Wire(body={"file": stored}, headers={"X-Goog-Upload-Status": "final"})

    def _processed(self, name: str, look: bool = True) -> None:
        """A look at an uploaded file (``look``; else its upload): ``PROCESSING`` for ``processing`` looks,
        then ``ACTIVE``, or ``FAILED`` for a content in ``failing``."""
        info = self._file_info[name]
        if info.get("source") != "UPLOADED" or info["state"] in ("ACTIVE", "FAILED"):
            return
        self._gets[name] = seen = self._gets.get(name, 0) + look
        if seen < self.processing:
            info["state"] = "PROCESSING"
        elif hashlib.sha256(self.files[name]).hexdigest() in self.failing:
            info["state"] = "FAILED"
            info["error"] = {"code": 3, "message": "stub: the file could not be processed"}
        else:
            info["state"] = "ACTIVE"

    def resolve(self, uri: str) -> tuple[bytes | None, str]:
        """The bytes of the uploaded file ``uri`` names, or why a request may not use it (as the API says)."""
        name = "files/" + uri.rsplit("/files/", 1)[-1]
        if name not in self.files:
            return None, f"You do not have permission to access the File {name} or it may not exist."
        if self._file_info[name]["state"] != "ACTIVE":
            return None, f"The File {name} is not in an ACTIVE state and usage is not allowed."
        return self.files[name], ""

    def _store(self, name: str, data: bytes, info: dict[str, Any]) -> dict[str, Any]:
        """Keep a file's bytes and its metadata (what ``files.get`` answers); return the metadata."""
        now = time.time()
        self.files[name] = data
        self._file_info[name] = {
            **{k: v for k, v in info.items() if v is not None},
            "name": name,
            "sizeBytes": str(len(data)),
            "createTime": _timestamp(now),
            "updateTime": _timestamp(now),
            "expirationTime": _timestamp(now + 48 * 3600),
            "uri": f"{self.url}/v1beta/{name}",
            "state": "PROCESSING" if info.get("source") == "UPLOADED" else "ACTIVE",
        }
        return self._file_info[name]
