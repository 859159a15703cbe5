"""Quote verification: does a quoted span appear in a source text, exactly or up to trivial differences?

Critics quote the flawed span of a response and debaters quote the hidden passage; a judge is shown each
quote as verified or not. Khan et al. (2024) checked quotes exactly, and users of their code found that too
strict (a changed space or a dropped full stop fails an honest quote), so a quote that matches after
normalisation (case, whitespace, punctuation) counts too, shown as such. Anything else is ``unverified``:
fabricated, or paraphrased, which a judge cannot tell apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Status = Literal["exact", "normalized", "unverified"]
MIN_CHARS = 3  # a quote shorter than this (after normalisation) matches almost anything: never verified

# <quote>...</quote> (the debate protocol's markup) or text in straight or curly double quotes.
_TAGGED = re.compile(r"<quote>(.*?)</quote>", re.S | re.I)
_QUOTED = re.compile(r"[\"“”](.+?)[\"“”]", re.S)


@dataclass(frozen=True)
class QuoteCheck:
    """Where a quote was found: ``source[start:end]`` is the matching text (``start`` -1 when unverified)."""

    quote: str
    status: Status
    start: int = -1
    end: int = -1

    @property
    def verified(self) -> bool:
        return self.status != "unverified"


def _normalized_with_map(text: str) -> tuple[str, list[int]]:
    """``text`` lowercased, punctuation dropped, whitespace runs collapsed to one space; with the index in
    ``text`` of each kept character (so that a match maps back to a span of the original)."""
    out, where = [], []
    for i, ch in enumerate(text):
        if ch.isalnum():
            out.append(ch.lower())
            where.append(i)
        elif out and out[-1] != " ":
            out.append(" ")  # punctuation separates words like a space does ("end.Next" -> "end next")
            where.append(i)
    while out and out[-1] == " ":
        out.pop()
        where.pop()
    return "".join(out), where


def normalize_quote(text: str) -> str:
    return _normalized_with_map(text)[0].strip()


def check_quote(source: str, quote: str) -> QuoteCheck:
    """``exact`` if ``quote`` (stripped) is a substring of ``source``; ``normalized`` if it is one after
    normalising both; else ``unverified``."""
    stripped = quote.strip()
    norm_quote = normalize_quote(stripped)
    if len(norm_quote) < MIN_CHARS:
        return QuoteCheck(quote, "unverified")
    at = source.find(stripped)
    if at >= 0:
        return QuoteCheck(quote, "exact", at, at + len(stripped))
    norm_source, where = _normalized_with_map(source)
    at = norm_source.find(norm_quote)
    if at < 0:
        return QuoteCheck(quote, "unverified")
    return QuoteCheck(quote, "normalized", where[at], where[at + len(norm_quote) - 1] + 1)


def extract_quotes(text: str) -> list[str]:
    """Quotes marked in ``text``: ``<quote>...</quote>`` spans if there are any, else double-quoted spans."""
    tagged = [q.strip() for q in _TAGGED.findall(text) if q.strip()]
    if tagged:
        return tagged
    return [q.strip() for q in _QUOTED.findall(text) if q.strip()]


# Verification marks only a checker may write: the judge's tags and the studio's brackets. A speaker who writes
# them itself would forge a verification, so they are stripped (tags) or neutralised (brackets) first.
_FORGED_TAGS = re.compile(r"</?\s*[uv]_quote\s*>", re.I)
_FORGED_BRACKETS = re.compile(r"\[(\s*(?:un)?verified quote)", re.I)


def mark_quotes(text: str, quotes: list[dict], mark) -> str:
    """``text`` with each checked quote (``{"text", "status"}``, in order) replaced by ``mark(quote, verified)``
    wherever it stands in ``<quote>`` tags or double quotes; marks the speaker forged are removed first and
    leftover ``<quote>`` tags dropped (nothing to check there, nothing to show)."""
    text = _FORGED_BRACKETS.sub(r"(\1", _FORGED_TAGS.sub("", text))
    for q in quotes:
        for form in (f"<quote>{q['text']}</quote>", f'"{q["text"]}"', f"“{q['text']}”"):
            if form in text:
                text = text.replace(form, mark(q["text"], q["status"] != "unverified"), 1)
                break
    return re.sub(r"</?quote>", "", text)


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two half-open character spans share at least one character."""
    return a[0] < b[1] and b[0] < a[1]


__all__ = ["MIN_CHARS", "QuoteCheck", "Status", "check_quote", "extract_quotes", "mark_quotes", "normalize_quote",
           "overlaps"]
