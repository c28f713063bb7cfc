"""A small model's lean to some values of a closed field whatever the row, taken out as it decides.

Asked the demo's task, the embedded model put a quarter of its first-token probability on ``Data``
(``Data & Science`` or ``Database & Storage``) on the average row, far above the share of rows in those
groups, and chose them for rows of other groups. For an enum the task marks ``debias`` (its values about
equally common), ``Priors`` keeps, per decision (a model and task's prompt, the field, what is written of
its value), the mean over the rows seen of the model's distribution over the tokens the value allows
there (its ``prior``), and biases each new decision by ``-log prior`` (llama.cpp's ``logit_bias``): the
value chosen is the one this row makes likelier than the rows do on average ("batch calibration", Zhou
et al. 2023, the batch being the rows seen so far). The decision's confidence is read from the same
corrected distribution.

It is the task's word, not a default, because the correction assumes no value truly holds most rows:
where one does, it takes rows away from it (measured in the README, "Label bias").

The prior starts uniform (``SHRINK`` rows' worth) and follows the rows: the first rows of a new task are
barely corrected, and the prior is kept on disk beside the prompt prefixes (``FILE``), so the next run of
the task starts with it. A token's prior is floored at ``FLOOR``, and a prior counts at most ``MEMORY``
rows, older rows fading.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enrichkit.providers.local.jsonfile import write_json

STRENGTH = 1.0
"""How much of the lean is taken out: each token's logit moves by ``-STRENGTH * log prior``."""

SHRINK = 4.0
"""Rows' worth of a uniform prior that a decision's prior starts from."""

FLOOR = 0.02
"""The least prior a token is given: it gains at most -STRENGTH * log(0.02) = 3.9 logits."""

MEMORY = 500
"""The rows a prior counts at most; beyond, each row weighs as the older ones fade."""

ALTERNATIVES = 20
"""The alternatives asked at a corrected decision (llama.cpp's raw distribution's most likely tokens)."""

MAX_DECISIONS = 2000
"""Decisions kept on disk; the least used go first."""

FILE = "priors.json"


@dataclass
class Prior:
    """One decision's tokens: the sum over the rows of each token's share of the allowed alternatives,
    its id, and the rows counted."""

    shares: dict[str, float] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    rows: float = 0.0

    def of(self, token: str) -> float:
        """The prior of ``token``: its mean share, shrunk to the uniform over the tokens seen."""
        uniform = 1 / max(len(self.shares), 1)
        mean = (self.shares.get(token, 0.0) + SHRINK * uniform) / (self.rows + SHRINK)
        return max(mean, FLOOR)


@dataclass
class Tally:
    """What one run's debiased choices did (for its receipt): the answers chosen with a prior of at least
    one row, and those whose value is not the one the model itself liked best."""

    answers: int = 0
    turned: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, turned: bool) -> None:
        with self._lock:
            self.answers += 1
            self.turned += turned


def context(*parts: str) -> str:
    """The key of one decision: the model and task's prompt, the value's key and what is written of it."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class Priors:
    """The priors of the decisions of one model (``path``: kept there, None: in memory only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._priors: dict[str, Prior] = self._read()
        self._unsaved = 0
        self._observed: set[str] = set()  # the decisions this process counted rows into

    def _read(self) -> dict[str, Prior]:
        """The priors on disk; nothing where the file is missing or not one this wrote."""
        if self.path is None:
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return {key: Prior(dict(p["shares"]), dict(p["ids"]), float(p["rows"])) for key, p in doc.items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}

    def bias(self, key: str) -> list[tuple[int, float]]:
        """llama.cpp's ``logit_bias`` for the decision ``key``: each token seen there, ``-log prior``
        (empty before any row)."""
        with self._lock:
            prior = self._priors.get(key)
            if prior is None or not prior.rows:
                return []
            return [(prior.ids[t], -STRENGTH * math.log(prior.of(t))) for t in prior.shares]

    def corrected(self, key: str, shares: Mapping[str, float]) -> dict[str, float]:
        """``shares`` (a row's distribution over the allowed tokens) divided by the decision's prior and
        normalised: the distribution the choice was made on, as the bias applied it."""
        with self._lock:
            prior = self._priors.get(key)
            if prior is None or not prior.rows:
                return dict(shares)
            weights = {t: p / prior.of(t) ** STRENGTH if t in prior.shares else p for t, p in shares.items()}
        total = sum(weights.values())
        return {t: w / total for t, w in weights.items()} if total > 0 else dict(shares)

    def observe(self, key: str, shares: Mapping[str, float], ids: Mapping[str, int]) -> bool:
        """One row's distribution over the allowed tokens at decision ``key`` (its raw shares, before any
        bias), into the decision's prior; whether the prior had rows before it (the row's choice was
        corrected)."""
        with self._lock:
            prior = self._priors.setdefault(key, Prior())
            had = prior.rows > 0
            if prior.rows >= MEMORY:
                fade = (MEMORY - 1) / prior.rows
                prior.shares = {t: s * fade for t, s in prior.shares.items()}
                prior.rows *= fade
            for token, share in shares.items():
                prior.shares[token] = prior.shares.get(token, 0.0) + share
                prior.ids[token] = ids[token]
            prior.rows += 1
            self._unsaved += 1
            self._observed.add(key)
            return had

    def save_every(self, decisions: int) -> None:
        """``save`` once ``decisions`` have been counted since the last."""
        if self._unsaved >= decisions:
            self.save()

    def save(self) -> None:
        """Write the priors (the ``MAX_DECISIONS`` most used) to ``path``, atomically; a disk that
        refuses loses only what they learned. The decisions this process counted no row into are taken
        from the file as it is now (another run's learning, on another task, is kept and taken up)."""
        with self._lock:
            if self.path is None or not self._unsaved:
                return
            on_disk = self._read()
            self._priors = {
                **on_disk,
                **{k: p for k, p in self._priors.items() if k in self._observed or k not in on_disk},
            }
            kept = sorted(self._priors.items(), key=lambda item: -item[1].rows)[:MAX_DECISIONS]
            doc = {key: {"shares": p.shares, "ids": p.ids, "rows": p.rows} for key, p in kept}
            self._unsaved = 0
        with contextlib.suppress(OSError):
            write_json(self.path, doc)


def allowed_shares(entry: Mapping[str, Any], rests: Iterable[str]) -> tuple[dict[str, float], dict[str, int]] | None:
    """The shares of the tokens a value allows at one decision (``rests``: what is left of each value
    still possible), among llama.cpp's alternatives in ``entry`` (with their ids; the chosen token too),
    or None where the entry has no usable alternatives."""
    rests = [r for r in rests if r]
    top = entry.get("top_logprobs")
    if not isinstance(top, list):
        return None
    probs: dict[str, float] = {}
    ids: dict[str, int] = {}
    for alt in [*top, entry]:
        if not isinstance(alt, Mapping):
            continue
        text, logprob, token_id = alt.get("token"), alt.get("logprob"), alt.get("id")
        if not isinstance(text, str) or not text or type(token_id) is not int:
            continue
        if not isinstance(logprob, int | float) or text in probs:
            continue
        if any(rest.startswith(text) or text.startswith(rest) for rest in rests):
            probs[text], ids[text] = math.exp(logprob), token_id
    total = sum(probs.values())
    if total <= 0:
        return None
    return {t: p / total for t, p in probs.items()}, ids
