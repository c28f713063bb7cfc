"""The answer tokens' log-probabilities from llama.cpp (``Reply.tokens``).

llama.cpp reports each generated token's log-probability in the model's own distribution over the
whole vocabulary: before the grammar and the sampling (measured: tokens the grammar forbids, such as
``black`` beside an enum of colours, are among the alternatives, and a token the grammar forces can
have a low one). That is the probability the model gave the token, which is what a confidence reads;
llama.cpp's ``post_sampling_probs`` are not used: at temperature 0 every chosen token has 1, and above
it the grammar's mask is in them only where the sampler had to re-sample.

An answer decoded in stages (``staged.py``) also holds text the provider wrote rather than the model
decoded: the JSON around the values (log-probability 0, no alternatives), the rest of a closed value
once its first tokens fixed it (log-probability 0, itself its only alternative: a confidence reads no
rival there), and the start of the token that ended a free-text value (llama.cpp gives no entry for
the token that held the stop; log-probability 0). No reading uses the probability of free text or syntax.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import Any

from enrichkit.providers.base import ALTERNATIVES, Token, Tokens
from enrichkit.providers.logprobs import top_of

ASK = {"logprobs": True, "top_logprobs": ALTERNATIVES}
"""What a chat-completions body adds to have them returned, with the most likely tokens at each step
(``Token.top``; ``top_logprobs`` 0 returns none)."""


def answer_tokens(doc: Mapping[str, Any]) -> Tokens | None:
    """The tokens of a chat completion ``doc``'s answer with their log-probabilities, spelling its text
    as generated (before the provider trims it); None when it has none, or they do not spell the text.

    A token is cut from its bytes: one that ends inside a character (UTF-8 split across tokens) is
    joined to the next, their log-probabilities added (the probability of writing both); a token of no
    bytes (the end of generation) is not part of the text and is left out."""
    choices = doc.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) else {}
    message, logprobs = choice.get("message"), choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    text = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, list) or not isinstance(text, str):
        return None
    if not all(isinstance(e, Mapping) and isinstance(e.get("logprob"), int | float) for e in content):
        return None
    written = [e for e in content if e.get("bytes")]
    pieces = [e.get("token") for e in written]
    if all(isinstance(p, str) and p for p in pieces) and "".join(pieces) == text:  # no character split
        return Tokens(pieces, [e["logprob"] for e in written], lambda index: top_of(written[index]))
    return _from_bytes(written, text)


def _from_bytes(written: list[Mapping[str, Any]], text: str) -> Tokens | None:
    """The tokens cut from their bytes, a character split across tokens joined into one (without
    alternatives: they were for a part of it)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tokens: list[Token] = []
    pending, parts = 0.0, 0
    for entry in written:
        raw = entry["bytes"]
        if not isinstance(raw, list):
            return None
        pending, parts = pending + entry["logprob"], parts + 1
        if piece := decoder.decode(bytes(raw)):
            tokens.append(Token(piece, pending, top_of(entry) if parts == 1 and piece == entry.get("token") else ()))
            pending, parts = 0.0, 0
    if "".join(t.text for t in tokens) + decoder.decode(b"", final=True) != text:
        return None
    return Tokens.of(tokens)
