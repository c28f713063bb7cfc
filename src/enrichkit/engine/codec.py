"""The pack codec: rows into packs and requests, and answers back into checked values.

Live mode, batch mode, the dry run and ``enrichkit jobs`` all pack and check through one ``PackCodec``,
so a row is asked and accepted the same way whichever path it travels. The codec keeps nothing: what
the answers settle is the ``Settlement``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from enrichkit.engine.confidence import ConfidenceReader
from enrichkit.engine.crosswire import suspects, text_fields
from enrichkit.engine.own_words import copied
from enrichkit.engine.prompt import (
    cheapest_echo,
    echo_text,
    expected_output_tokens,
    pack_ids,
    pack_prompt_at,
    pack_schema,
    single_prompt_at,
    system_instruction,
)
from enrichkit.engine.validation import (
    AnswerError,
    Checked,
    check_pack,
    check_values,
    foreign_script,
    parse_answer,
    parse_items,
)
from enrichkit.providers.base import IdStyle, Media, MediaLimits, Reply, Request
from enrichkit.providers.media_cost import media_tokens
from enrichkit.rows.media import PDF, MediaReader, MediaRef, encoded_size, media_of, text_of
from enrichkit.rows.work import Work
from enrichkit.task.schema import make_validator
from enrichkit.task.scripts import scripts
from enrichkit.task.summaries import summary_fields
from enrichkit.task.task import Task

PACK_PROMPT_BUDGET = 24_000
PACK_OUTPUT_BUDGET = 8_000
PACK_MEDIA_BUDGET = 100_000
"""The prompt tokens a pack's images and documents may take (a pack closes before; every provider's
context holds it with room to spare)."""
REQUEST_TEXT_ROOM = 1_000_000
"""The bytes of a request left to its text when media fill it up to the provider's limit."""


@dataclass(frozen=True)
class _Load:
    """What a pack's media take so far: prompt tokens, inline bytes, items, PDF pages, images, and the
    longest side of its images."""

    tokens: int = 0
    sent: int = 0
    items: int = 0
    pages: int = 0
    images: int = 0
    side: int = 0

    def plus(self, refs: Sequence[MediaRef], tokens: Callable[[MediaRef], int], limits: MediaLimits | None) -> _Load:
        images = [r for r in refs if r.mime != PDF]
        return _Load(
            self.tokens + sum(map(tokens, refs)),
            self.sent + sum(inline_size(r, limits) for r in refs),
            self.items + len(refs),
            self.pages + sum(r.pages for r in refs),
            self.images + len(images),
            max([self.side, *(max(r.width, r.height) for r in images)]),
        )

    def over(self, limits: MediaLimits) -> bool:
        """Whether a request with these media passes ``limits``."""
        crowd, side = limits.crowded
        return (
            self.sent > limits.request_bytes - REQUEST_TEXT_ROOM
            or self.items > limits.items
            or bool(limits.pages and self.pages > limits.pages)
            or bool(crowd and self.images > crowd and self.side > side)
        )


def inline_size(ref: MediaRef, limits: MediaLimits | None) -> int:
    """The bytes ``ref`` takes in a request: base64-encoded, or none where it goes as an uploaded file."""
    if limits is not None and limits.file_above and ref.size > limits.file_above:
        return 0
    return encoded_size(ref)


def _as_is(values: dict[str, Any]) -> dict[str, Any]:
    return values


def asking(item: Work) -> tuple[bool, tuple[str, ...]]:
    """The order rows are packed in (``sorted(work, key=asking)``): those asking for every field, then by the
    fields they ask for."""
    return item.fields is not None, item.fields or ()


class PackCodec:
    """Packs, requests and answers of one task, as a provider with ``id_style`` takes them.

    ``echo``: packed answers copy the first words of their row (``cheapest_echo``: those that tell the
    pack's rows apart in the fewest characters); ``affinity``: their free text is checked
    against the rows of their pack (``crosswire``); ``timeout``: each request's deadline; ``reads_schema``:
    the model reads the answer schema (``Capabilities.reads_schema``); ``logprobs``: requests ask for token
    log-probabilities, and answers that carry them give their closed fields' confidence; ``own_words``: a
    single row's first answer whose summary copies its row is refused (``Capabilities.own_words``);
    ``media``: what the provider takes of a row's images and documents (``Capabilities.media``), read when a
    request is made by ``reader``.

    A row to ask for some fields only (``Work.fields``: the others are cached) is packed with rows asking
    for the same ones, and asked and checked by the codec of the task holding those fields alone (``part``
    makes it): its prompt and answer schema name them alone."""

    def __init__(
        self,
        task: Task,
        *,
        id_style: IdStyle = "enum",
        echo: bool = False,
        affinity: bool = False,
        timeout: float | None = None,
        reads_schema: bool = True,
        logprobs: bool = False,
        own_words: bool = False,
        media: MediaLimits | None = None,
        reader: MediaReader | None = None,
        part: Callable[[tuple[str, ...]], PackCodec] | None = None,
    ) -> None:
        self.task = task
        self.media = media
        self.reader = reader
        self._part = part
        self.logprobs = logprobs
        self.confidence = ConfidenceReader(task.schema)
        self.id_style = id_style
        self.echo = "echo" if echo else None
        self.affinity = text_fields(task.schema) if affinity else []
        self.timeout = timeout
        self._system = system_instruction(task, reads_schema)
        self._reads_schema = reads_schema
        self._validator = make_validator(task.schema)
        self._fields = task.fields
        self._row_output_tokens = expected_output_tokens(task)
        self._text_fields = text_fields(task.schema)
        self._task_scripts = scripts(self._system)
        self._summaries = summary_fields(task.schema["properties"], task.instruction) if own_words else []

    # -- packs and requests --------------------------------------------------------------------

    def of(self, items: Sequence[Work]) -> PackCodec:
        """The codec that asks ``items`` (rows asking for the same fields): this one, or the part of the task
        they ask for."""
        fields = items[0].fields
        if fields is None or self._part is None or fields == tuple(self._fields):
            return self
        return self._part(fields)

    def packs(self, work: Sequence[Work], size: int) -> list[list[Work]]:
        """Greedy packs of up to ``size`` rows asking for the same fields, closed early when a token budget
        would overflow, or the provider's limits on a request's media (their tokens, inline bytes, number,
        PDF pages, and the side of its images where many are crowded in)."""
        packs: list[list[Work]] = []
        current: list[Work] = []
        tokens = 0
        load = _Load()
        limits = self.media
        for item in work:
            over_prompt = tokens + item.prompt_tokens > PACK_PROMPT_BUDGET
            full = over_prompt or (len(current) + 1) * self._row_output_tokens > PACK_OUTPUT_BUDGET
            full = full or (bool(current) and item.fields != current[0].fields)
            refs = media_of(item.inputs) if self.task.media else None
            adds = load.plus(refs, self.media_tokens, limits) if refs else load
            if refs:
                full = full or adds.tokens > PACK_MEDIA_BUDGET or (limits is not None and adds.over(limits))
            if current and (len(current) >= size or full):
                packs.append(current)
                current, tokens = [], 0
                adds = _Load().plus(refs, self.media_tokens, limits) if refs else _Load()
            current.append(item)
            tokens += item.prompt_tokens
            load = adds
        if current:
            packs.append(current)
        return packs

    def media_tokens(self, ref: MediaRef) -> int:
        """The prompt tokens the provider counts a row's image or document as (0 for a provider without media)."""
        if self.media is None:
            return 0
        return media_tokens(self.media.accounting, ref.mime == PDF, ref.width, ref.height, ref.pages)

    def _attached(self, items: Sequence[Work], ends: Sequence[int], load: bool) -> tuple[Media, ...]:
        """The media of ``items``, each after its row's record (``ends``: where each record ends in the
        prompt); their bytes read when ``load`` (else empty: a request only counted)."""
        if not self.task.media:
            return ()
        reader = self.reader or MediaReader()
        return tuple(
            Media(end, ref.mime, reader.read(ref) if load else b"", self.media_tokens(ref), ref.sha256)
            for end, item in zip(ends, items, strict=True)
            for ref in media_of(item.inputs)
        )

    def _shown(self, values: dict[str, Any]) -> dict[str, Any]:
        """A row's input values as its record shows them: each media by where it is."""
        if not self.task.media:
            return values
        refs = media_of(values)
        return {
            k: (f"(the {v.kind} after this record{'' if len(refs) == 1 else f', {refs.index(v) + 1} of {len(refs)}'})")
            if isinstance(v, MediaRef)
            else v
            for k, v in values.items()
        }

    def pack_request(self, items: Sequence[Work], load: bool = True) -> tuple[list[str], Request]:
        """The pack-local ids and the request of a pack of ``items`` (``load``: with its media's bytes)."""
        if (codec := self.of(items)) is not self:
            return codec.pack_request(items, load)
        ids = pack_ids(len(items))
        field, words = self._echo_plan(items)
        records = [(rid, self._shown(w.inputs)) for rid, w in zip(ids, items, strict=True)]
        prompt, ends = pack_prompt_at(records, field, words, self._reads_schema)
        request = Request(
            system=self._system,
            prompt=prompt,
            schema=pack_schema(self.task, ids, self.id_style, field, words),
            max_output_tokens=self._max_output_tokens(len(items)),
            timeout=self.timeout,
            logprobs=self.logprobs,
            media=self._attached(items, ends, load),
        )
        return ids, request

    def single_request(self, item: Work, rejected: str | None = None, load: bool = True) -> Request:
        """The request of one row on its own (object schema, no id); ``rejected``: why its previous
        answer was refused, for the model to repair."""
        if (codec := self.of([item])) is not self:
            return codec.single_request(item, rejected, load)
        prompt, end = single_prompt_at(self._shown(item.inputs), rejected, self._reads_schema)
        return Request(
            system=self._system,
            prompt=prompt,
            schema=self.task.schema,
            max_output_tokens=self._max_output_tokens(1),
            timeout=self.timeout,
            logprobs=self.logprobs,
            media=self._attached([item], [end], load),
        )

    def echoes(self, items: Sequence[Work]) -> list[str] | None:
        """What each packed answer must echo of its row (None without the echo check)."""
        if (codec := self.of(items)) is not self:
            return codec.echoes(items)
        field, words = self._echo_plan(items)
        return [echo_text(w.inputs.get(field), words) for w in items] if field else None

    def _echo_plan(self, items: Sequence[Work]) -> tuple[str | None, int]:
        """The input field and number of words a pack's answers echo (no field without the echo check, or
        without a text input to echo)."""
        fields = self.task.text_inputs
        return cheapest_echo([w.inputs for w in items], fields) if self.echo and fields else (None, 0)

    def expected_output_tokens(self, rows: int) -> int:
        """The answer tokens ``rows`` rows are expected to take (the dry run's and the budget's estimate)."""
        return rows * self._row_output_tokens

    def _max_output_tokens(self, rows: int) -> int:
        return max(1024, 4 * self.expected_output_tokens(rows))

    # -- answers -------------------------------------------------------------------------------

    def read_pack(
        self, reply: Reply, ids: list[str], items: list[Work], echoes: Sequence[str] | None = None
    ) -> Checked[Work]:
        """A pack's answer checked item by item: ids exactly once, values valid, not cross-wired. ``echoes``:
        what each item must echo (a batch job's manifest keeps them), else ``echoes(items)``."""
        if (codec := self.of(items)) is not self:
            return codec.read_pack(reply, ids, items, echoes)
        by_id = dict(zip(ids, items, strict=True))
        try:
            payload, broken = parse_items(reply.text)
        except AnswerError as exc:
            return Checked(invalid=dict.fromkeys(items, explain(reply, str(exc))))
        expected = echoes if echoes is not None else self.echoes(items)
        wanted = dict(zip(ids, expected, strict=True)) if expected is not None and self.echo else None
        check = check_pack(payload, ids, self._fields, self._validator, wanted, missing=broken)
        text = text_of if self.task.media else _as_is
        inputs = {rid: text(w.inputs) for rid, w in by_id.items() if w.rows}  # not a batch job's stand-ins
        for rid in suspects({r: v for r, v in check.valid.items() if r in inputs}, inputs, self.affinity):
            del check.valid[rid]
            check.invalid[rid] = "its text fits another row of the pack better than its own: an answer for another row?"
            check.crosswired += 1
            check.invalid_items += 1
            check.suspects.add(rid)
        for rid in list(check.valid):
            if (foreign := self.foreign_script(check.valid[rid], by_id[rid])) is not None:
                del check.valid[rid]
                check.invalid[rid] = foreign
                check.invalid_items += 1
        confidence = self._confidence(reply, {rid: values for rid, values in check.valid.items()})
        return Checked(
            {by_id[rid]: values for rid, values in check.valid.items()},
            {by_id[rid]: explain(reply, check.invalid[rid]) for rid in ids if rid in check.invalid},
            check.invalid_items,
            check.unknown_ids,
            check.crosswired,
            {by_id[rid] for rid in check.suspects},
            {by_id[rid]: conf for rid, conf in confidence.items() if rid is not None},
        )

    def read_single(self, reply: Reply, item: Work, repair: bool = False) -> Checked[Work]:
        """One row's answer checked (``repair``: an answer to a repair, not held to ``own_words`` again)."""
        if (codec := self.of([item])) is not self:
            return codec.read_single(reply, item, repair)
        try:
            payload = parse_answer(reply.text, dict)
        except AnswerError as exc:
            return Checked(invalid={item: explain(reply, str(exc))})
        values, problem = self.check_values(payload)
        problem = problem or self.foreign_script(values, item)
        if problem is None and not repair and item.rows:
            problem = copied(values, self._summaries, text_of(item.inputs))
        if problem is not None:
            return Checked(invalid={item: explain(reply, problem)}, invalid_items=1)
        confidence = self._confidence(reply, {None: values}).get(None)
        return Checked(valid={item: values}, confidence={item: confidence} if confidence else {})

    def _confidence(
        self, reply: Reply, answers: Mapping[str | None, Mapping[str, Any]]
    ) -> dict[str | None, dict[str, float]]:
        """The closed fields' confidence of the valid ``answers`` (empty without tokens or closed fields)."""
        if not reply.tokens or not self.confidence.fields or not answers:
            return {}
        return self.confidence.read(reply.tokens, answers)

    def foreign_script(self, values: Mapping[str, Any], item: Work) -> str | None:
        """Why ``values`` are refused for free text in a script neither ``item``'s row nor the task uses
        (None for a batch job's row this run does not hold: its inputs are not known)."""
        if not item.rows:
            return None
        inputs = text_of(item.inputs) if self.task.media else item.inputs
        return foreign_script(values, self._text_fields, inputs, self._task_scripts)

    def check_values(self, item: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The output fields of one answer and the first problem with them (None when valid)."""
        return check_values(item, self._fields, self._validator)


def explain(reply: Reply, problem: str) -> str:
    """Why a reply's rows failed, naming the finish reason when it was not a normal stop."""
    if reply.finish == "max_tokens":
        return f"answer cut off at the output token limit (MAX_TOKENS): {problem}"
    if reply.finish == "blocked":
        return f"blocked by the provider ({reply.detail or 'safety'})"
    return problem
