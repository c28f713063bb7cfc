"""When a run's single rows prove it cannot succeed: the one time a provider's replies stop a run."""

from __future__ import annotations

REPAIRS = 2  # a row on its own is asked again this often while its answers are invalid or refused

STOP_AFTER = 3


class StopEvidence:
    """The single rows' refusals and invalid answers since the last answer: ``refused`` and ``invalid``
    say why the run must stop, or None. One refusal or invalid answer is a row's failure, never the run's."""

    def __init__(self) -> None:
        self._refused: list[tuple[str, str]] = []  # (row key, refusal) of single-row refusals since an answer
        self._invalid: list[str] = []  # the rows of invalid single answers while nothing is valid

    def answered(self) -> None:
        """A row on its own got a valid answer: the requests work."""
        self._refused.clear()

    def refused(self, key: str, refusal: str) -> str | None:
        """Stop when single rows got the same refusal of the request as often as ``STOP_AFTER`` rows with
        their retries would, from ``STOP_AFTER`` rows or more, with no answer in between."""
        self._refused.append((key, refusal))
        recent = self._refused[-STOP_AFTER * (1 + REPAIRS) :]
        same = len(recent) == STOP_AFTER * (1 + REPAIRS) and len({r for _, r in recent}) == 1
        if same and len({k for k, _ in recent}) >= STOP_AFTER:
            return f"the provider refused the request for {STOP_AFTER} rows in a row: {refusal}"
        return None

    def invalid(self, key: str, problem: str) -> str | None:
        """Stop when rows on their own, on the last tier, got as many invalid answers as ``STOP_AFTER`` rows
        with their repairs would, from ``STOP_AFTER`` rows or more (the caller asks only while not one
        row of the run is valid)."""
        self._invalid.append(key)
        if len(self._invalid) >= STOP_AFTER * (1 + REPAIRS) and len(set(self._invalid)) >= STOP_AFTER:
            return (
                f"no answer satisfies the task's schema: {len(self._invalid)} answers for"
                f" {len(set(self._invalid))} rows on their own were invalid and none was valid (last: {problem})"
            )
        return None
