"""What a run gives back: the rows, the failures, and the figures of the run."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from enrichkit.providers.base import Usage

CallKind = Literal["packed", "single", "fallback", "repair", "batch", "audit", "agreement"]


@dataclass
class ModelStats:
    calls: int = 0
    rows: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class Cost:
    """What tokens cost at ``prices.json``'s rates, in US$ (an estimate: the provider's bill is the truth):
    at the standard price (``live_usd``) and at the batch and flex price (``batch_usd``); ``mode`` says
    which one the run pays (``usd``); ``free``: the local model's tokens, which cost nothing. A batch run's
    ``live_rows`` finished live: their tokens (in both totals) cost ``live_part_usd`` at the live price, not
    ``live_part_batch_usd``."""

    live_usd: float
    batch_usd: float
    mode: str = "live"
    free: bool = False
    live_rows: int = 0
    live_part_usd: float = 0.0
    live_part_batch_usd: float = 0.0

    @property
    def usd(self) -> float:
        if self.mode in ("batch", "flex"):
            return self.batch_usd - self.live_part_batch_usd + self.live_part_usd
        return self.live_usd

    def __str__(self) -> str:
        """The receipt's wording: ``est. cost $0.0014 (batch price $0.0007)``."""
        if self.free:
            return "cost $0 (local model)"
        if not self.live_usd and not self.batch_usd:
            return "cost $0"
        if self.mode == "batch" and self.live_rows:
            batch_part = self.batch_usd - self.live_part_batch_usd
            return (
                f"est. cost {usd(self.usd)} ({usd(batch_part)} at the batch price"
                f" + {usd(self.live_part_usd)} live for {self.live_rows:,} rows)"
            )
        if self.mode in ("batch", "flex"):
            return f"est. cost {usd(self.batch_usd)} at the {self.mode} price ({usd(self.live_usd)} live)"
        return f"est. cost {usd(self.live_usd)} (batch price {usd(self.batch_usd)})"


UNKNOWN_COST = "cost unknown (no price for this model; see ENRICHKIT_PRICES)"


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``1 row``, ``2 rows``, ``0 cache hits``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def usd(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


@dataclass
class BatchRung:
    """The requests a batch-mode run sent at one rung: ``size`` rows a request at most (1: rows on their own)."""

    model: str
    size: int
    requests: int = 0
    rows: int = 0


@dataclass
class Stats:
    """Counts of one run. ``calls`` counts every request sent, refused or not."""

    rows: int = 0
    cache_hits: int = 0
    duplicates: int = 0
    enriched: int = 0
    failed: int = 0
    not_asked: int = 0
    """Of ``failed``: the rows never asked, because the run stopped (or was interrupted) first."""
    partly_cached: int = 0
    """Rows asked for some fields only: their answers to the others were cached (``engine.fieldkeys``)."""
    calls_packed: int = 0
    calls_single: int = 0
    calls_fallback: int = 0
    calls_repair: int = 0
    calls_batch: int = 0
    calls_audit: int = 0
    calls_agreement: int = 0
    """Second packings asked to measure agreement (``engine.agreement``)."""
    retries: int = 0
    repaired: int = 0
    invalid_items: int = 0
    unknown_ids: int = 0
    crosswired: int = 0
    reviewed: int = 0
    """Reviewed values (a person's corrections and accepted answers) served instead of a model's."""
    damaged: int = 0
    """Cache entries found damaged (undecodable, or values no longer fitting the schema): asked again."""
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    seconds: float = 0.0
    mode: str = "live"
    pending: int = 0
    stopped: str = ""
    """Why the run stopped before every row settled (a fatal error, the budget); empty if it did not."""
    interrupted: bool = False
    """Ctrl-C (or SIGTERM) stopped the run: ``stopped`` is ``interrupted``."""
    hint: str = ""
    """What to try after the stop, where the stop says (the limit the model keeps breaking ...)."""
    rate_limit: str = ""
    """The server's rate limit learned from its 429s (e.g. ``~30 requests / 6 s``); empty if none was met."""
    est_cost: Cost | None = None
    """The tokens' cost at ``prices.json``'s rates as the receipt prints it (None: a model has no price)."""
    jobs: list[str] = field(default_factory=list)
    batch_rungs: list[BatchRung] = field(default_factory=list)
    """Batch mode: the requests submitted in jobs, by model and rung."""
    finished_live: int = 0
    """Batch mode: rows finished live at the live price (stragglers, a failed or timed-out job)."""
    live_by_model: dict[str, ModelStats] = field(default_factory=dict)
    """Batch mode: the part of ``by_model`` paid at the live price."""
    waiting: str = ""
    """Batch mode: what the run waits for just now (job, state, requests done, next look); empty when not."""
    by_model: dict[str, ModelStats] = field(default_factory=dict)
    audit: Audit | None = None
    pack_size: PackSize | None = None
    confidence: Confidence | None = None
    """The rows' confidence and flags (None: the run did not add them, ``confidence=False``)."""
    known: dict[str, KnownAnswers] = field(default_factory=dict)
    """``check_against``: per output field, how its answers match the known ones."""
    escalation: Escalation | None = None
    load_seconds: float | None = None
    """How long loading the local model took in this run (None: no local model was loaded)."""
    served_by: int | None = None
    """The pid of the ``enrichkit serve`` whose loaded model the run's local calls went to (None: none)."""
    debiased: dict[str, int] = field(default_factory=dict)
    """A local model's answers to an enum marked ``debias``: ``answers`` chosen with its lean taken out,
    ``turned`` of them other than its own first choice (empty: none)."""

    @property
    def calls(self) -> int:
        return (
            self.calls_packed
            + self.calls_single
            + self.calls_fallback
            + self.calls_repair
            + self.calls_batch
            + self.calls_audit
            + self.calls_agreement
        )

    def count_call(self, model: str, kind: CallKind) -> None:
        setattr(self, f"calls_{kind}", getattr(self, f"calls_{kind}") + 1)
        self.by_model.setdefault(model, ModelStats()).calls += 1

    def count_batch(self, model: str, size: int, rows: int) -> None:
        """One request of ``rows`` rows submitted in a job, at a rung of ``size`` rows on ``model``."""
        rung = next((r for r in self.batch_rungs if (r.model, r.size) == (model, size)), None)
        if rung is None:
            rung = BatchRung(model, size)
            self.batch_rungs.append(rung)
        rung.requests += 1
        rung.rows += rows

    def add_usage(self, model: str, usage: Usage) -> None:
        per = self.by_model.setdefault(model, ModelStats())
        for target in (self, per):
            target.prompt_tokens += usage.prompt_tokens
            target.output_tokens += usage.output_tokens
            target.cached_tokens += usage.cached_tokens

    def snapshot(self) -> Stats:
        """A copy that no longer changes as the run goes on (what a result holds)."""
        return copy.deepcopy(self)

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["calls"] = self.calls
        del doc["waiting"]
        return doc


@dataclass(frozen=True)
class Failure:
    """A row that got no valid answer: never cached, asked again on the next run."""

    row_id: Any
    reason: str
    attempts: int
    inputs: Mapping[str, Any]


@dataclass
class EnrichResult:
    """The rows in input order with the new fields (absent for failed rows), the failures, the figures;
    ``frame``: for a DataFrame or Table input, it with the new columns (null for failed rows)."""

    rows: list[dict[str, Any]]
    failures: list[Failure]
    stats: Stats
    frame: Any = None
    model: type[BaseModel] | None = None  # the task's output model, if it has one

    def to_pandas(self) -> Any:
        """The enriched rows as a pandas DataFrame (``frame`` converted, when the input was one)."""
        from enrichkit.rows import frames

        if self.frame is None:
            return frames.rows_frame(self.rows)
        return frames.to_pandas(self.frame)

    def failures_frame(self, backend: str | None = None) -> Any:
        """The failures as a frame: ``id``, ``reason``, ``attempts`` and the input fields, one row each; of
        ``backend`` (``"pandas"``, ``"polars"``, ``"pyarrow"``), by default the input frame's library, or pandas."""
        from enrichkit.rows import frames

        if backend is None:
            backend = "pandas" if self.frame is None else frames.native_frame(self.frame).implementation
        rows = [{"id": f.row_id, "reason": f.reason, "attempts": f.attempts, **f.inputs} for f in self.failures]
        return frames.rows_frame(rows, backend, ["id", "reason", "attempts"])

    def __repr__(self) -> str:  # a summary: the default repr would print every row
        s = self.stats
        lines = [
            f"EnrichResult: {counted(len(self.rows), 'row')} · {s.cache_hits:,} from the cache"
            f" · {s.enriched:,} newly enriched"
            f" · {len(self.failures) - s.pending:,} failed"
            + (f" · {s.pending:,} waiting in a batch job" if s.pending else ""),
            f"calls: {s.calls:,} ({s.calls_packed:,} packed, {s.calls_single:,} single, {s.calls_repair:,} repair,"
            f" {s.calls_fallback:,} fallback, {s.calls_batch:,} batch) · tokens: {s.prompt_tokens:,} in"
            f" / {s.output_tokens:,} out · {s.est_cost or UNKNOWN_COST} · {s.seconds:.1f} s",
        ]
        if s.stopped:
            lines.append(f"stopped: {s.stopped}" + (f"\nhint: {s.hint}" if s.hint else ""))
        if self.frame is not None:
            lines.append(f"frame: {type(self.frame).__module__.partition('.')[0]}.{type(self.frame).__name__}")
        if self.failures:
            first = self.failures[0]
            more = f" (and {len(self.failures) - 1:,} more)" if len(self.failures) > 1 else ""
            lines.append(f"first failure: row {first.row_id!r}: {first.reason}{more}")
        return "\n".join(lines)

    @property
    def models(self) -> list[BaseModel | None]:
        """Each row's answer as an instance of the task's pydantic model; None for a row without one."""
        if self.model is None:
            raise TypeError("result.models needs a task whose output is a pydantic model (Task(output=Model))")
        names = list(self.model.model_json_schema()["properties"])
        return [
            self.model.model_validate({n: row[n] for n in names if n in row}) if any(n in row for n in names) else None
            for row in self.rows
        ]


@dataclass
class PackSize:
    """The pack sizes an adaptive run used (the report's ``pack_size``)."""

    started: int
    ended: int
    smallest: int


@dataclass(frozen=True)
class FieldAgreement:
    """How one output field's packed answers compare with its single-row answers: ``agreement`` is
    the share of rows that agree (equal, or for free text at least ``SIMILAR`` similar);
    ``similarity`` is the mean similarity of free-text fields (None for exact ones)."""

    agreement: float
    similarity: float | None = None


@dataclass
class Audit:
    """The audit of a run (the report's ``audit``): ``rows`` re-asked singly, ``answered`` of them
    with a valid answer (the others do not count), and the agreement of every output field."""

    fraction: float
    rows: int = 0
    answered: int = 0
    fields: dict[str, FieldAgreement] = field(default_factory=dict)


def merged(before: Audit | None, after: Audit) -> Audit:
    """Two chunks' audits of one run as one: counts added, agreements weighted by answered rows."""
    if before is None:
        return after
    fields: dict[str, FieldAgreement] = {}
    for name in [*before.fields, *(n for n in after.fields if n not in before.fields)]:
        parts = [(a.fields[name], a.answered) for a in (before, after) if name in a.fields and a.answered]
        rows = sum(n for _, n in parts)
        texts = [(f.similarity, n) for f, n in parts if f.similarity is not None]
        fields[name] = FieldAgreement(
            round(sum(f.agreement * n for f, n in parts) / rows, 4),
            round(sum(s * n for s, n in texts) / sum(n for _, n in texts), 4) if texts else None,
        )
    return Audit(after.fraction, before.rows + after.rows, before.answered + after.answered, fields)


BANDS = ((0.9, "≥ 0.9"), (0.6, "0.6-0.9"), (0.0, "< 0.6"))
"""The confidence bands the accuracy against known answers is given by (lowest edge, name)."""

NO_CONFIDENCE = "no confidence"


def band(confidence: float | None) -> str:
    """The name of the band ``confidence`` falls in."""
    if confidence is None:
        return NO_CONFIDENCE
    return next(name for edge, name in BANDS if confidence >= edge)


@dataclass
class Confidence:
    """The output rows' confidence (the report's ``confidence``): ``rows`` with one, ``without`` (answered
    rows with none), their histogram in hundredths (``bins``: [0, 0.01), ..., [0.99, 1), 1), each flag's
    rows, the models that gave no token log-probabilities, and ``measured_by``: what the run measured it
    by (``logprobs``, or the ``agreement`` of two packings where the model gives none; ``by_agreement``
    says why, and for which fields)."""

    rows: int = 0
    without: int = 0
    bins: list[int] = field(default_factory=lambda: [0] * 101)
    flags: dict[str, int] = field(default_factory=dict)
    no_logprobs: list[str] = field(default_factory=list)
    measured_by: str = "logprobs"
    by_agreement: str = ""

    def add(self, confidence: float | None, flags: tuple[str, ...]) -> None:
        if confidence is None:
            self.without += 1
        else:
            self.rows += 1
            self.bins[min(100, int(confidence * 100))] += 1
        for flag in flags:
            self.flags[flag] = self.flags.get(flag, 0) + 1

    @property
    def median(self) -> float | None:
        """The (lower) median confidence, rounded down to the hundredth (None without any)."""
        if not self.rows:
            return None
        seen = 0
        for n, count in enumerate(self.bins):
            seen += count
            if 2 * seen >= self.rows:
                return n / 100
        return 1.0

    def below(self, threshold: float) -> int:
        """The rows whose confidence is below ``threshold`` (to the hundredth)."""
        return sum(self.bins[: round(threshold * 100)])


@dataclass
class KnownAnswers:
    """How one output field's answers match the answers the rows already held in ``column``: overall and
    per confidence band (``bands``: band -> [matched, rows])."""

    column: str
    rows: int = 0
    matched: int = 0
    bands: dict[str, list[int]] = field(default_factory=dict)

    def add(self, matched: bool, confidence: float | None) -> None:
        self.rows += 1
        self.matched += matched
        counts = self.bands.setdefault(band(confidence), [0, 0])
        counts[0] += matched
        counts[1] += 1


@dataclass
class Escalation:
    """The cascade (the report's ``escalation``): ``rows`` below ``below`` asked again on ``model``,
    ``answered`` by it (kept and cached), ``changed`` of them with another closed answer; its calls and
    tokens (also in the run's totals) and their cost (None: no price; in batch mode, at the batch price, rows
    finished live at the live price)."""

    model: str
    below: float
    rows: int = 0
    answered: int = 0
    changed: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    cost: Cost | None = None
    waiting: int = 0
    """Batch mode: rows whose escalation waits in a batch job (they keep their first answer until collected)."""
