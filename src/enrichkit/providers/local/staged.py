"""A single row's answer decoded in stages: the JSON the schema fixes is written into the prompt, and
only what the model chooses is decoded.

A grammar-constrained answer spends about 10 of its ~25 decoded tokens on text the schema forces (the
braces, the keys and their quotes, the rest of an enum value once its first token fixes it), each one
forward pass of the model. Here that text is prompt, processed in one batch after the row's tokens
that the slot already holds (``cache_prompt``), and llama.cpp decodes only:

- a free-text value, up to its closing quote: a grammar of its words (``word_pattern``, without the
  JSON quote, which ends the value) and the quote; the quote is a ``stop``, so the call ends without
  decoding it;
- a closed value (the strings of an ``enum`` or a ``const``, a boolean, an integer between a
  ``minimum`` and ``maximum`` at most ``MAX_INTEGERS`` apart), one token a call under a grammar of
  the values still possible, until one is left: its rest is written, not decoded.

Each grammar also lets the last token run on into the JSON that follows (``"`` ``,"next":"`` or
``"}``), as the whole answer's grammar does, so the model ends a value on the same tokens. Where
a request's schema is not one this can write (a pack, a nullable or nested field, a number or an
open integer, free text with a pattern or length limit), ``plan`` is None and the answer is asked as a whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from enrichkit.providers.base import ALTERNATIVES, Reply, Token, Usage
from enrichkit.providers.chat import error_of
from enrichkit.providers.local.grammar import word_pattern
from enrichkit.providers.local.priors import ALTERNATIVES as PRIOR_ALTERNATIVES
from enrichkit.providers.local.priors import Priors, Tally, allowed_shares, context
from enrichkit.providers.logprobs import from_entries

_TOP = frozenset(["type", "properties", "required", "additionalProperties", "description", "title"])
_TEXT = frozenset(["type", "maxWords", "description", "title"])
_CLOSED = frozenset(["type", "enum", "const", "description", "title", "debias"])
_INTEGER = frozenset(["type", "minimum", "maximum", "description", "title"])
_BOOLEAN = frozenset(["type", "description", "title"])

MAX_INTEGERS = 100  # an integer field of more values than this (a year, a price) is asked as a whole

JSON_TEXT = '[^"\\\\\\x00-\\x1f]'
"""What a character of free text may be as JSON writes it unescaped: no quote, backslash or control."""


@dataclass(frozen=True)
class Value:
    """One field of the answer: the JSON before its value (``key``), and the value's grammar: free
    text's regular expression (``text``) or the closed values as JSON writes them (``forms``; a
    string's without its opening quote, which ends ``key``)."""

    key: str
    text: str | None = None
    forms: tuple[str, ...] = ()
    no_copy: bool = False  # free text that is to be decoded under ``no_copy``: a summary, not a copy
    debias: bool = False  # a closed value chosen with the model's lean taken out (``priors``)


def no_copy(window: int) -> dict[str, Any]:
    """llama.cpp's DRY ("don't repeat yourself") sampler set so that a summary says the row in other
    words: a token that would go on with a run of tokens already among the last ``window`` (the
    prompt, which holds the record) loses 3 logits at a run of one token, twice as many at each
    further token. A run starts again after a quote, colon, newline or asterisk (llama.cpp's own
    breakers), so the JSON keys cost nothing. Measured in the README ("Own words, by the sampler")."""
    return {"dry_multiplier": 3.0, "dry_base": 2.0, "dry_allowed_length": 1, "dry_penalty_last_n": window}


def plan(schema: Mapping[str, Any], word_class: str, summaries: Collection[str] = ()) -> tuple[Value, ...] | None:
    """The values of a single row's answer in order, or None where ``schema`` is not one this writes:
    an object of free text with ``maxWords`` and of closed values, nothing else. The free text of
    ``summaries`` is decoded under ``no_copy``; an enum marked ``debias`` (three strings or more, the
    task's word that its values are about equally common) is chosen with the model's lean taken out
    (``priors``)."""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not properties or not set(schema) <= _TOP:
        return None
    if schema.get("additionalProperties", False) is not False:
        return None
    values = []
    for n, (name, sub) in enumerate(properties.items()):
        key = ("{" if n == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":"
        if not isinstance(sub, Mapping):
            return None
        if (forms := _literals(sub)) is not None:
            values.append(Value(key, forms=forms))
            continue
        if sub.get("type", "string") != "string":
            return None
        strings = [*sub.get("enum", []), *([sub["const"]] if "const" in sub else [])]
        if set(sub) <= _TEXT and isinstance(words := sub.get("maxWords"), int) and words > 0:
            words_class = f"[{word_class}]&&{JSON_TEXT}"
            text = word_pattern(words, words_class)[1:-1]
            values.append(Value(key + '"', text=text, no_copy=name in summaries))
        elif set(sub) <= _CLOSED and strings and all(isinstance(s, str) for s in strings):
            forms = tuple(dict.fromkeys(json.dumps(s, ensure_ascii=False)[1:] for s in strings))
            values.append(Value(key + '"', forms=forms, debias=sub.get("debias") is True and len(forms) >= 3))
        else:
            return None
    return tuple(values)


def _literals(sub: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The values of a boolean, or of an integer of at most ``MAX_INTEGERS`` values, as JSON writes
    them; None for any other field."""
    kind, low, high = sub.get("type"), sub.get("minimum"), sub.get("maximum")
    if kind == "boolean" and set(sub) <= _BOOLEAN:
        return ("true", "false")
    if kind != "integer" or not set(sub) <= _INTEGER or type(low) is not int or type(high) is not int:
        return None
    return tuple(str(i) for i in range(low, high + 1)) if 0 <= high - low < MAX_INTEGERS else None


def _regex(text: str) -> str:
    """``text`` as a regular expression of itself (ASCII punctuation escaped, as llguidance reads it)."""
    return "".join("\\" + c if c.isascii() and not c.isalnum() and c != " " else c for c in text)


def _run_on(after: str) -> str:
    """A regular expression of any start of ``after`` (the text a value's last token may run into)."""
    out = ""
    for char in reversed(after):
        out = f"({_regex(char)}{out})?"
    return out


def grammar(value: Value, written: str, after: str) -> str:
    """The llguidance grammar of the rest of ``value`` (closed: after ``written``), its closing quote
    and any start of ``after``."""
    if value.text is not None:
        rx = value.text.replace("/", "\\/") + '"' + _run_on(after)  # a slash would end the regular expression
    else:
        rests = [form[len(written) :] for form in value.forms if form.startswith(written)]
        rx = "(" + "|".join(_regex(rest) for rest in rests if rest) + ")" + _run_on(after)
        if "" in rests:  # a value written, which a longer one may go on (1, 10): on, or into the JSON after it
            rx = f"({rx}|{_regex(after[0])}{_run_on(after[1:])})"
    return f"%llguidance {{}}\nstart: /{rx}/\n"


Complete = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Staged:
    """One answer as it is written: its text, tokens (None without log-probabilities), usage, and the
    prompt of the next call (the chat prompt, then token ids and text)."""

    prompt: list[str | int]
    logprobs: bool
    budget: int
    text: str = ""
    tokens: list[Token] | None = None
    usage: Usage = field(default_factory=Usage)

    def write(self, text: str, forced: bool = False) -> None:
        """Text the schema fixes, into the answer and the prompt (``forced``: the rest of a closed value,
        which the grammar would allow alone: its own only alternative, probability 1)."""
        self.text += text
        self.prompt.append(text)
        if self.tokens is not None:
            self.tokens.append(Token(text, 0.0, ((text, 0.0),) if forced else ()))

    def call(self, complete: Complete, body: dict[str, Any]) -> tuple[str, list[Mapping[str, Any]], bool]:
        """One completion after the answer so far: its text, its tokens' entries (empty without
        log-probabilities), and whether it stopped at the token limit rather than its stop."""
        pieces: list[str | int] = []
        for piece in self.prompt:  # adjacent text joined: a list of strings alone would be several prompts
            if pieces and isinstance(piece, str) and isinstance(pieces[-1], str):
                pieces[-1] += piece
            else:
                pieces.append(piece)
        prompt = pieces[0] if len(pieces) == 1 else pieces
        body = {"n_probs": ALTERNATIVES if self.logprobs else 0, **body, "prompt": prompt}
        doc = complete(body)
        if isinstance(doc.get("error"), Mapping):
            error = doc["error"]
            status = error.get("code")
            raise error_of(status if isinstance(status, int) else 500, error, "llama.cpp", str(doc.get("model", "")))
        usage = doc.get("usage") if isinstance(doc.get("usage"), Mapping) else {}
        assert isinstance(usage, Mapping)
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens", 0) if isinstance(details, Mapping) else 0
        prompt_tokens, output = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        first = self.usage.prompt_tokens == 0
        self.usage = Usage(
            prompt_tokens=self.usage.prompt_tokens + (prompt_tokens if first else prompt_tokens - cached),
            output_tokens=self.usage.output_tokens + output,
            cached_tokens=cached if first else self.usage.cached_tokens,
        )
        self.budget -= output
        choice = doc["choices"][0]
        logprobs = choice.get("logprobs")
        entries = logprobs.get("content") if isinstance(logprobs, Mapping) else None
        listed = list(entries) if isinstance(entries, list) else []
        return str(choice.get("text") or ""), listed, choice.get("finish_reason") == "length"

    def generated(self, text: str, entries: list[Mapping[str, Any]]) -> None:
        """What the model wrote, into the answer, its tokens and the prompt (as the token ids it
        decoded where the entries spell it, else as text)."""
        self.text += text
        tokens = from_entries(entries, text) if entries else None
        spelled = "".join(t.text for t in tokens) if tokens is not None else None
        ids = [e.get("id") for e in entries]
        if tokens is None or spelled is None or not text.startswith(spelled) or not are_ids(ids):
            self.prompt.append(text)
            self.tokens = None  # not spelled out: no reading rather than a wrong one
            return
        self.prompt.extend(ids)
        rest = text[len(spelled) :]  # the start of the token that held the stop: llama.cpp leaves it out
        if rest:
            self.prompt.append(rest)
        if self.tokens is not None:
            self.tokens.extend(tokens)
            if rest:
                self.tokens.append(Token(rest, 0.0))


def are_ids(values: list[Any]) -> TypeGuard[list[int]]:
    return all(type(v) is int for v in values)


def answer(
    complete: Complete,
    prompt: str,
    values: tuple[Value, ...],
    body: dict[str, Any],
    logprobs: bool,
    budget: int,
    sampling: Mapping[str, Any] | None = None,
    priors: Priors | None = None,
    task: str = "",
    tally: Tally | None = None,
) -> Reply:
    """The answer to the chat ``prompt`` (rendered, ending where the assistant's reply starts), written
    value by value; ``body``: what every call sends besides (sampling, cache); ``sampling``: what the
    calls of a ``no_copy`` value send besides (None: nothing); ``priors``: where a ``debias`` value's
    decisions are corrected and counted (None: not corrected), ``task`` naming the model and prompt;
    ``tally``: where an answer with a corrected choice is counted, and whether the choice turned."""
    staged = Staged([prompt], logprobs, budget, tokens=[] if logprobs else None)
    pending = ""  # JSON the last token already wrote past its value
    corrected: list[bool] = []  # per corrected decision: whether it chose other than the model's best
    for n, value in enumerate(values):
        after = values[n + 1].key if n + 1 < len(values) else "}"
        staged.write(value.key[len(pending) :])
        if value.text is not None:
            if staged.budget <= 0:
                return _cut(staged)
            extra = sampling if value.no_copy and sampling else {}
            text, entries, cut = staged.call(complete, {**body, **extra, "grammar": grammar(value, "", after),
                                                        "stop": ['"'], "n_predict": staged.budget})  # fmt: skip
            staged.generated(text, entries)
            if cut:
                return _cut(staged, True)
            staged.write('"')
            pending = ""
            continue
        written = ""
        while True:
            left = [form for form in value.forms if form.startswith(written)]
            done = max((form for form in value.forms if written.startswith(form)), key=len, default=None)
            if done is not None and (len(written) > len(done) or left == [done]):
                pending = written[len(done) :]
                if not after.startswith(pending):
                    return _cut(staged)
                break
            if len(left) == 1 and done is None:
                staged.write(left[0][len(written) :], forced=True)
                pending = ""
                break
            if not left or staged.budget <= 0:  # no value fits what was written (no grammar) or no tokens left
                return _cut(staged)
            step = {**body, "grammar": grammar(value, written, after), "n_predict": 1}
            debiasing = priors if value.debias else None
            decision = context(task, value.key, written) if debiasing is not None else ""
            if debiasing is not None:
                step = {**step, "n_probs": PRIOR_ALTERNATIVES, "logit_bias": debiasing.bias(decision)}
            piece, entries, _ = staged.call(complete, step)
            if not piece:
                return _cut(staged)
            if debiasing is not None and entries:
                rests = [form[len(written) :] for form in left]
                entry, turned = _debiased(debiasing, decision, entries[0], rests)
                entries = [entry, *entries[1:]]
                if turned is not None:
                    corrected.append(turned)
            staged.generated(piece, entries)
            written += piece
    staged.write("}"[len(pending) :])
    if tally is not None and corrected:
        tally.count(any(corrected))
    return Reply(staged.text, "stop", staged.usage, tokens=None if staged.tokens is None else tuple(staged.tokens))


def _debiased(
    priors: Priors, decision: str, entry: Mapping[str, Any], rests: list[str]
) -> tuple[Mapping[str, Any], bool | None]:
    """``entry`` (the token chosen at ``decision``) counted into its prior, its log-probability and
    alternatives now those the choice was made on (the shares of the allowed tokens, corrected by the
    prior before this row), as it was where its alternatives say nothing of the allowed tokens; and
    whether the token chosen is other than the one the model itself gave most (None: the choice was
    not corrected, there being no prior yet or nothing read)."""
    if (read := allowed_shares(entry, rests)) is None:
        return entry, None
    shares, ids = read
    corrected = priors.corrected(decision, shares)
    had = priors.observe(decision, shares, ids)
    chosen = entry.get("token")
    if not isinstance(chosen, str) or chosen not in corrected:
        return entry, None
    top = [{"id": ids[t], "token": t, "logprob": math.log(q)} for t, q in corrected.items() if q > 0]
    turned = chosen != max(shares, key=lambda t: shares[t]) if had else None
    return {**entry, "logprob": math.log(corrected[chosen]), "top_logprobs": top}, turned


def _cut(staged: Staged, length: bool = False) -> Reply:
    """The answer as far as it got: out of tokens, or at a value the schema does not allow (a grammar
    llama.cpp could not use)."""
    tokens = None if staged.tokens is None else tuple(staged.tokens)
    if length or staged.budget <= 0:
        return Reply(staged.text, "max_tokens", staged.usage, "length", tokens)
    return Reply(staged.text, "other", staged.usage, "no allowed value", tokens)
