"""The pack codec: rows into packs and requests, and answers back into checked values.

Live mode, batch mode, the dry run and ``enrichkit jobs`` all pack and check through one ``PackCodec``,
so a row is asked and accepted the same way whichever path it travels. The codec keeps nothing: what
the answers settle is the ``Settlement``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from enrichkit.engine.confidence import ConfidenceReader
from enrichkit.engine.crosswire import suspects, text_fields
from enrichkit.engine.own_words import copied, summary_fields
from enrichkit.engine.prompt import (
    cheapest_echo,
    echo_text,
    expected_output_tokens,
    pack_ids,
    pack_prompt,
    pack_schema,
    single_prompt,
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
from enrichkit.providers.base import IdStyle, Reply, Request
from enrichkit.rows.work import Work
from enrichkit.task.schema import make_validator
from enrichkit.task.scripts import scripts
from enrichkit.task.task import Task

PACK_PROMPT_BUDGET = 24_000
PACK_OUTPUT_BUDGET = 8_000


class PackCodec:
    """Packs, requests and answers of one task, as a provider with ``id_style`` takes them.

    ``echo``: packed answers copy the first words of their row (``cheapest_echo``: those that tell the
    pack's rows apart in the fewest characters); ``affinity``: their free text is checked
    against the rows of their pack (``crosswire``); ``timeout``: each request's deadline; ``reads_schema``:
    the model reads the answer schema (``Capabilities.reads_schema``); ``logprobs``: requests ask for token
    log-probabilities, and answers that carry them give their closed fields' confidence; ``own_words``: a
    single row's first answer whose summary copies its row is refused (``Capabilities.own_words``)."""

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
    ) -> None:
        self.task = task
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
        self._summaries = summary_fields(task) if own_words else []

    # -- packs and requests --------------------------------------------------------------------

    def packs(self, work: Sequence[Work], size: int) -> list[list[Work]]:
        """Greedy packs of up to ``size`` rows, closed early when a token budget would overflow."""
        packs: list[list[Work]] = []
        current: list[Work] = []
        tokens = 0
        for item in work:
            over_prompt = tokens + item.prompt_tokens > PACK_PROMPT_BUDGET
            over_output = (len(current) + 1) * self._row_output_tokens > PACK_OUTPUT_BUDGET
            if current and (len(current) >= size or over_prompt or over_output):
                packs.append(current)
                current, tokens = [], 0
            current.append(item)
            tokens += item.prompt_tokens
        if current:
            packs.append(current)
        return packs

    def pack_request(self, items: Sequence[Work]) -> tuple[list[str], Request]:
        """The pack-local ids and the request of a pack of ``items``."""
        ids = pack_ids(len(items))
        field, words = self._echo_plan(items)
        records = [(rid, w.inputs) for rid, w in zip(ids, items, strict=True)]
        request = Request(
            system=self._system,
            prompt=pack_prompt(records, field, words, self._reads_schema),
            schema=pack_schema(self.task, ids, self.id_style, field, words),
            max_output_tokens=self._max_output_tokens(len(items)),
            timeout=self.timeout,
            logprobs=self.logprobs,
        )
        return ids, request

    def single_request(self, item: Work, rejected: str | None = None) -> Request:
        """The request of one row on its own (object schema, no id); ``rejected``: why its previous
        answer was refused, for the model to repair."""
        return Request(
            system=self._system,
            prompt=single_prompt(item.inputs, rejected, self._reads_schema),
            schema=self.task.schema,
            max_output_tokens=self._max_output_tokens(1),
            timeout=self.timeout,
            logprobs=self.logprobs,
        )

    def echoes(self, items: Sequence[Work]) -> list[str] | None:
        """What each packed answer must echo of its row (None without the echo check)."""
        field, words = self._echo_plan(items)
        return [echo_text(w.inputs.get(field), words) for w in items] if field else None

    def _echo_plan(self, items: Sequence[Work]) -> tuple[str | None, int]:
        """The input field and number of words a pack's answers echo (no field without the echo check)."""
        return cheapest_echo([w.inputs for w in items], self.task.inputs) if self.echo else (None, 0)

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
        by_id = dict(zip(ids, items, strict=True))
        try:
            payload, broken = parse_items(reply.text)
        except AnswerError as exc:
            return Checked(invalid=dict.fromkeys(items, explain(reply, str(exc))))
        expected = echoes if echoes is not None else self.echoes(items)
        wanted = dict(zip(ids, expected, strict=True)) if expected is not None and self.echo else None
        check = check_pack(payload, ids, self._fields, self._validator, wanted, missing=broken)
        inputs = {rid: w.inputs for rid, w in by_id.items() if w.rows}  # not a batch job's stand-ins
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
        try:
            payload = parse_answer(reply.text, dict)
        except AnswerError as exc:
            return Checked(invalid={item: explain(reply, str(exc))})
        values, problem = self.check_values(payload)
        problem = problem or self.foreign_script(values, item)
        if problem is None and not repair and item.rows:
            problem = copied(values, self._summaries, item.inputs)
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
        return foreign_script(values, self._text_fields, item.inputs, self._task_scripts)

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
