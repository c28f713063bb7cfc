"""When a run's single rows prove it cannot succeed: the one time a provider's replies stop a run.

Such a stop comes after paid calls, so it is a stop of the run, never an error of the user's: the run
keeps what it has (the output holds every row, the failures file the rest) and the receipt says what the
model kept doing, with a hint of what to try (``CannotSucceed``).
"""

from __future__ import annotations

from collections import Counter

from enrichkit.engine.reasons import reason_kind
from enrichkit.errors import FatalProviderError

REPAIRS = 2  # a row on its own is asked again this often while its answers are invalid or refused

STOP_AFTER = 3


class CannotSucceed(FatalProviderError):
    """The evidence that the run cannot succeed, and ``hint``: what the user may try instead."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.hint = hint


class StopEvidence:
    """The single rows' refusals and invalid answers since the last valid single answer: ``refused`` and
    ``invalid`` say why the run must stop, or None. One refusal or invalid answer is a row's failure,
    never the run's."""

    def __init__(self) -> None:
        self._refused: list[tuple[str, str]] = []  # (row key, refusal) of single-row refusals since an answer
        self._invalid: list[tuple[str, str]] = []  # (row key, why) of invalid single answers since an answer

    def answered(self) -> None:
        """A row on its own got a valid answer: the requests work, and the schema can be satisfied."""
        self._refused.clear()
        self._invalid.clear()

    def refused(self, key: str, refusal: str) -> CannotSucceed | None:
        """Stop when single rows got the same refusal of the request as often as ``STOP_AFTER`` rows with
        their retries would, from ``STOP_AFTER`` rows or more, with no answer in between."""
        self._refused.append((key, refusal))
        recent = self._refused[-STOP_AFTER * (1 + REPAIRS) :]
        same = len(recent) == STOP_AFTER * (1 + REPAIRS) and len({r for _, r in recent}) == 1
        if same and len({k for k, _ in recent}) >= STOP_AFTER:
            return CannotSucceed(
                f"the provider refused the request for {STOP_AFTER} rows in a row: {refusal}",
                "the request itself is refused, whatever the row: try a simpler output schema or another --model",
            )
        return None

    def invalid(self, key: str, problem: str, valid_rows: int) -> CannotSucceed | None:
        """Stop when rows on their own, on the last model, got as many invalid answers as ``STOP_AFTER``
        rows with their repairs would, from ``STOP_AFTER`` rows or more, with no valid single answer in
        between, while fewer rows of the run (``valid_rows``: answered validly in this run, packed or
        not) were valid than rows failed that way: most rows cannot pass, and walking each down the
        whole ladder would pay for nothing. A re-run asks only the rows that failed (the valid ones are
        cache hits), so the same rule stops it as early."""
        self._invalid.append((key, problem))
        rows = len({k for k, _ in self._invalid})
        if len(self._invalid) < STOP_AFTER * (1 + REPAIRS) or rows < STOP_AFTER or valid_rows >= rows:
            return None
        kinds = Counter(reason_kind(why) for _, why in self._invalid)
        kind, times = kinds.most_common(1)[0]
        valid = f"only {valid_rows:,} row{'s' if valid_rows != 1 else ''} of this run" if valid_rows else "none"
        were = "was" if valid_rows < 2 else "were"
        return CannotSucceed(
            f"no answer satisfies the task's schema: {len(self._invalid)} answers for {rows} rows on their own"
            f" were invalid, and {valid} {were} valid (last: {problem})",
            f"the model keeps breaking `{kind}` ({times} of {len(self._invalid)} answers): say the limit in"
            " the field's description, loosen it in the task, or try another --model (or --fallback-model)",
        )
