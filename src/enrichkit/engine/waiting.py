"""Batch mode's wait for its jobs: when to look again, and the line that says how they stand."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

from enrichkit.providers.base import JobStatus

FIRST_LOOK = 1.0
"""Seconds before the first look at a job (a small job may be done at once)."""

SHOWN_JOBS = 2


def looks(poll: float) -> Iterator[float]:
    """Seconds before each next look at running jobs: ``FIRST_LOOK``, then doubling up to ``poll``."""
    delay = min(FIRST_LOOK, poll)
    while True:
        yield delay
        delay = min(delay * 2, poll)


def status_line(statuses: Sequence[JobStatus], unknown: int, elapsed: float, next_look: float) -> str:
    """What the run waits for: the jobs and their states, the requests answered and failed so far (where the
    provider says), the time waited and the next look; ``unknown``: jobs the provider could not report just now."""
    names = [s.name for s in statuses]
    shown = ", ".join(names[:SHOWN_JOBS]) + (f" and {len(names) - SHOWN_JOBS} more" if len(names) > SHOWN_JOBS else "")
    states: Counter[str] = Counter(s.state for s in statuses)
    if unknown:
        states["not reported"] += unknown
    parts = [f"batch job{'s' if len(names) != 1 else ''} {shown}: {', '.join(_counted(states))}"]
    if statuses and all(s.requests is not None for s in statuses):
        total = sum(s.requests or 0 for s in statuses)
        answered = sum(s.answered or 0 for s in statuses)
        failed = sum(s.failed or 0 for s in statuses)
        parts.append(f"{answered:,}/{total:,} requests done, {failed:,} failed")
    parts += [f"waited {_duration(elapsed)}", f"next look in {_duration(next_look)}"]
    parts.append("Ctrl-C is safe: re-run to re-attach")
    return " · ".join(parts)


def _counted(states: Counter[str]) -> list[str]:
    if len(states) == 1:
        return list(states)
    return [f"{n} {state}" for state, n in states.most_common()]


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
