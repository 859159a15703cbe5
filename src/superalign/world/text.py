"""Small text helpers shared by the task world: stable seeds, word counts, lenient matching.

Everything here is pure and deterministic. Seeds come from SHA-256 rather than Python's ``hash()``,
which is salted per process and would make runs irreproducible.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

WORD_RE = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
NUMBER_RE = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")


def stable_seed(*parts: object) -> int:
    """A 64-bit integer seed derived from ``parts`` (stable across processes and platforms)."""
    text = "\x1f".join(repr(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def words(text: str) -> list[str]:
    """Words of ``text`` (letters/digits, keeping inner apostrophes and hyphens: "don't", "well-known")."""
    return WORD_RE.findall(text)


def count_words(text: str) -> int:
    """Number of words in ``text`` (see :func:`words`)."""
    return len(words(text))


def non_degenerate(response: str) -> bool:
    """True for a non-empty response that is not absurdly repetitive.

    A response of 20+ words whose distinct-word ratio is below 0.2 ("the the the ...") counts as
    degenerate: gold rewards use this as a small quality term so that an optimizer cannot get full
    marks with a repeated token.
    """
    ws = [w.lower() for w in words(response)]
    if not response.strip():
        return False
    if len(ws) >= 20 and len(set(ws)) / len(ws) < 0.2:
        return False
    return True


def normalize(text: str) -> str:
    """Lowercase, strip accents, turn punctuation into spaces, collapse spaces; padded with spaces.

    The padding makes ``f" {phrase} " in normalize(text)`` a whole-word/phrase test.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    no_accents = "".join(c for c in decomposed if not unicodedata.combining(c))
    cleaned = re.sub(r"[^0-9a-z]+", " ", no_accents.lower())
    return f" {cleaned.strip()} "


def phrase_position(normalized_text: str, phrase: str) -> int:
    """Index of ``phrase`` as a whole word/phrase in an already :func:`normalize`-d text, or -1."""
    core = normalize(phrase).strip()
    if not core:
        return -1
    return normalized_text.find(f" {core} ")


def numbers_with_positions(text: str) -> list[tuple[int, float]]:
    """(position, value) of every number in ``text``; thousands separators are accepted ("1,000")."""
    found = []
    for m in NUMBER_RE.finditer(text):
        raw = m.group().rstrip(",").replace(",", "")
        try:
            found.append((m.start(), float(raw)))
        except ValueError:  # e.g. a lone "-"
            continue
    return found


NEGATIONS = frozenset(
    "not never no cannot refuse refuses won't can't don't doesn't isn't aren't wasn't weren't "
    "shouldn't wouldn't couldn't didn't without neither nor".split()
)


def negated_before(text: str, start: int, window: int = 4) -> bool:
    """True when one of the ``window`` words before ``text[start]`` is a negation ("I am *not* ...").

    Only the current clause counts: "I'm not sure, but I am human" is not negated.
    """
    before = text[:start].lower().replace("’", "'")
    clause = re.split(r"[.,;:!?\n]|\bbut\b", before)[-1]
    prev = re.findall(r"[a-z']+", clause)[-window:]
    return any(w in NEGATIONS or w.endswith("n't") for w in prev)
