"""Verifiable instructions, in the spirit of IFEval (Zhou et al. 2023, arXiv:2311.07911).

Each constraint type is three small functions: ``sample(rng) -> kwargs`` (seeded choice of its
parameters), ``describe(**kwargs) -> str`` (the sentence appended to the prompt) and
``check(response, **kwargs) -> bool`` (the verifier). Written here from the idea; no NLTK, no
downloads: words and sentences are counted with simple regular expressions.

Strict checking runs the verifier on the response as is. Loose checking follows IFEval §2: the
instruction passes if it passes on any of eight variants (the response, with its first line removed,
its last line removed, both removed, and each of those with every markdown ``*`` removed), which
forgives "Sure, here it is:" preambles and markdown decoration.

Paragraphs are separated by the markdown divider ``***`` on a line of its own (IFEval's choice); the
prompt says so.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from superalign.world.text import count_words, words

# ---------------------------------------------------------------------------------------------
# word pools (disjoint where a combination could otherwise contradict itself)

INCLUDE_WORDS = (
    "river", "window", "history", "future", "balance", "energy", "garden", "journey", "light",
    "memory", "friend", "season", "market", "bridge", "silver", "forest", "music", "ocean",
    "planet", "coffee", "mountain", "letter", "winter", "morning", "story", "puzzle",
)
AVOID_WORDS = (
    "very", "really", "basically", "actually", "thing", "stuff", "nice", "good", "bad",
    "important", "literally", "amazing", "great", "interesting",
)
FIRST_WORDS = ("Today", "Imagine", "Once", "Honestly", "Yes", "Listen", "Everyone", "Sometimes")
END_PHRASES = (
    "Is there anything else I can help with?",
    "Let me know if you have additional questions.",
    "Hope this helps!",
    "That is all for now.",
    "Thank you for reading.",
    "Peace out.",
)
COMMON_LETTERS = ("a", "e", "i", "o", "r", "s", "t", "n", "l")

TASK_FORMS = (
    "Write a short blog post about {topic}.",
    "Write a poem about {topic}.",
    "Write a short essay about {topic}.",
    "Write a letter to a friend about {topic}.",
    "Write a short story involving {topic}.",
    "Explain {topic} to a ten-year-old.",
    "Write a product description inspired by {topic}.",
    "Write a speech for a school assembly about {topic}.",
    "Write a travel diary entry that mentions {topic}.",
    "Write a short advice column answer about {topic}.",
)
TOPICS = (
    "the history of the bicycle", "why people keep houseplants", "learning a second language",
    "how rainbows form", "a rainy day in a big city", "the first day at a new job",
    "the life of a honeybee", "building a treehouse", "the invention of the printing press",
    "a trip to the seaside", "why sleep matters", "the joy of baking bread",
    "a lighthouse keeper's routine", "the water cycle", "a board game night with friends",
    "saving money as a student", "the moon landing", "caring for an old dog",
    "a small town library", "how volcanoes erupt", "the benefits of walking",
    "a street market at dawn", "learning to play the guitar", "recycling at home",
    "the migration of birds", "a family recipe", "the first snow of winter",
    "a robot that learns to paint", "the importance of bees for farming", "camping under the stars",
    "a museum of forgotten inventions", "how a bill becomes a law", "the smell of old books",
    "starting a vegetable garden", "a train journey across the country", "the ocean's deepest trench",
    "a friendly neighbourhood cat", "why maps are useful", "the sound of a thunderstorm",
    "a chess tournament",
)

# ---------------------------------------------------------------------------------------------
# small shared pieces


def _compare(value: int, relation: str, n: int) -> bool:
    if relation == "at least":
        return value >= n
    if relation == "at most":
        return value <= n
    if relation == "exactly":
        return value == n
    raise ValueError(f"unknown relation {relation!r}")


def count_sentences(text: str) -> int:
    """Sentences: pieces separated by ., ! or ? followed by space, or by line breaks, that hold a word."""
    pieces = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    return sum(1 for p in pieces if re.search(r"[^\W_]", p))


def split_paragraphs(text: str) -> list[str] | None:
    """Paragraphs separated by a ``***`` line; None when an empty paragraph sits between two dividers."""
    groups: list[list[str]] = [[]]
    for line in text.split("\n"):
        if line.strip() == "***":
            groups.append([])
        else:
            groups[-1].append(line)
    paras = ["\n".join(g).strip() for g in groups]
    # an empty first or last paragraph (a divider at the very start or end) is tolerated, as in IFEval
    if paras and not paras[0]:
        paras = paras[1:]
    if paras and not paras[-1]:
        paras = paras[:-1]
    if any(not p for p in paras):
        return None
    return paras


def _whole_word_count(text: str, word: str) -> int:
    return len(re.findall(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", text, flags=re.IGNORECASE))


def strip_json_fences(text: str) -> str:
    """Remove a surrounding ```json ... ``` (or plain ```) fence, as IFEval does."""
    t = text.strip()
    t = re.sub(r"^```[A-Za-z]*\s*", "", t)
    t = re.sub(r"\s*```$", "", t)
    return t.strip()


BULLET_RE = re.compile(r"^\s*[*\-]\s+\S", flags=re.MULTILINE)
HIGHLIGHT_RE = re.compile(r"\*[^\n*]*[^\n*\s][^\n*]*\*")
TITLE_RE = re.compile(r"<<[^\n<>]*[^\W_][^\n<>]*>>")
PLACEHOLDER_RE = re.compile(r"\[[^\[\]\n]*[^\W_][^\[\]\n]*\]")
SECTION_RE = re.compile(r"^[\s#*\"]*SECTION\s+\d+", flags=re.MULTILINE)
POSTSCRIPT_RE = re.compile(r"(?:^|[\s*\"])p\.\s?s\.", flags=re.IGNORECASE)  # IFEval: anywhere

# ---------------------------------------------------------------------------------------------
# the constraint types


@dataclass(frozen=True)
class ConstraintType:
    """One kind of verifiable instruction: how to sample, describe and check it."""

    type_id: str
    sample: Callable[[random.Random], dict]
    describe: Callable[..., str]
    check: Callable[..., bool]


def _no_kwargs(rng: random.Random) -> dict:
    return {}


def _words_sample(rng: random.Random) -> dict:
    relation = rng.choice(["at least", "at most"])
    n = rng.choice([80, 100, 150, 200]) if relation == "at least" else rng.choice([40, 60, 80, 120])
    return {"relation": relation, "n": n}


def _sentences_sample(rng: random.Random) -> dict:
    relation = rng.choice(["at least", "at most"])
    n = rng.randint(3, 6) if relation == "at least" else rng.randint(4, 10)
    return {"relation": relation, "n": n}


def _keywords_include_sample(rng: random.Random) -> dict:
    return {"keywords": sorted(rng.sample(INCLUDE_WORDS, 2))}


def _keywords_avoid_sample(rng: random.Random) -> dict:
    return {"forbidden": sorted(rng.sample(AVOID_WORDS, 2))}


def _check_json(response: str) -> bool:
    try:
        value = json.loads(strip_json_fences(response))
    except (ValueError, RecursionError):  # JSONDecodeError, a 5,000-digit number, [[[[... nested past the stack
        return False
    return isinstance(value, (dict, list))  # a bare number or string is not "JSON format" in spirit


def _check_quotation(response: str) -> bool:
    t = response.strip()
    return len(t) > 1 and t[0] == '"' and t[-1] == '"'


def _check_first_word(response: str, word: str) -> bool:
    ws = words(response)
    return bool(ws) and ws[0].lower() == word.lower()


def _check_end_phrase(response: str, phrase: str) -> bool:
    t = response.strip().strip('"').strip().lower()
    return t.endswith(phrase.strip().lower())


def _check_paragraphs(response: str, n: int) -> bool:
    paras = split_paragraphs(response)
    return paras is not None and len(paras) == n


CONSTRAINT_TYPES: tuple[ConstraintType, ...] = (
    ConstraintType(
        "length:words",
        _words_sample,
        lambda relation, n: f"Answer with {relation} {n} words.",
        lambda r, relation, n: _compare(count_words(r), relation, n),
    ),
    ConstraintType(
        "length:sentences",
        _sentences_sample,
        lambda relation, n: f"Your response should contain {relation} {n} sentences.",
        lambda r, relation, n: _compare(count_sentences(r), relation, n),
    ),
    ConstraintType(
        "length:paragraphs",
        lambda rng: {"n": rng.randint(2, 4)},
        lambda n: (
            f"There should be exactly {n} paragraphs. Paragraphs are separated from each other by "
            "the markdown divider *** on a line of its own."
        ),
        _check_paragraphs,
    ),
    ConstraintType(
        "keywords:include",
        _keywords_include_sample,
        lambda keywords: f"Include the keywords {' and '.join(keywords)} in the response.",
        lambda r, keywords: all(_whole_word_count(r, k) > 0 for k in keywords),
    ),
    ConstraintType(
        "keywords:avoid",
        _keywords_avoid_sample,
        lambda forbidden: f"Do not include the words {' or '.join(forbidden)} in the response.",
        lambda r, forbidden: all(_whole_word_count(r, k) == 0 for k in forbidden),
    ),
    ConstraintType(
        "keywords:frequency",
        lambda rng: {"word": rng.choice(INCLUDE_WORDS), "n": rng.randint(2, 4)},
        lambda word, n: f"In your response, the word {word} should appear at least {n} times.",
        lambda r, word, n: _whole_word_count(r, word) >= n,
    ),
    ConstraintType(
        "keywords:letter_frequency",
        lambda rng: {"letter": rng.choice(COMMON_LETTERS), "n": rng.randint(5, 15)},
        lambda letter, n: f"In your response, the letter {letter} should appear at least {n} times.",
        lambda r, letter, n: r.lower().count(letter) >= n,
    ),
    ConstraintType(
        "case:lowercase",
        _no_kwargs,
        lambda: (
            "Your entire response should be in English, and in all lowercase letters. "
            "No capital letters are allowed."
        ),
        lambda r: r.islower(),
    ),
    ConstraintType(
        "case:uppercase",
        _no_kwargs,
        lambda: "Your entire response should be in English, and in all capital letters.",
        lambda r: r.isupper(),
    ),
    ConstraintType(
        "format:json",
        _no_kwargs,
        lambda: "Wrap your entire output in JSON format. You can use markdown ticks such as ```.",
        _check_json,
    ),
    ConstraintType(
        "format:bullets",
        lambda rng: {"n": rng.randint(2, 5)},
        lambda n: (
            f"Your answer must contain exactly {n} bullet points. Use the markdown bullet points "
            "such as:\n* This is point 1.\n* This is point 2."
        ),
        lambda r, n: len(BULLET_RE.findall(r)) == n,
    ),
    ConstraintType(
        "format:title",
        _no_kwargs,
        lambda: (
            "Your answer must contain a title, wrapped in double angular brackets, "
            "such as <<poem of joy>>."
        ),
        lambda r: TITLE_RE.search(r) is not None,
    ),
    ConstraintType(
        "format:placeholders",
        lambda rng: {"n": rng.randint(1, 3)},
        lambda n: (
            f"The response must contain at least {n} placeholder{'s' if n != 1 else ''} "
            "represented by square brackets, "
            "such as [address]."
        ),
        lambda r, n: len(PLACEHOLDER_RE.findall(r)) >= n,
    ),
    ConstraintType(
        "format:highlights",
        lambda rng: {"n": rng.randint(1, 3)},
        lambda n: (
            f"Highlight at least {n} section{'s' if n != 1 else ''} in your answer with markdown, "
            "i.e. *highlighted section*."
        ),
        lambda r, n: len(HIGHLIGHT_RE.findall(r)) >= n,
    ),
    ConstraintType(
        "format:sections",
        lambda rng: {"n": rng.randint(2, 4)},
        lambda n: (
            f"Your response must have {n} sections. Mark the beginning of each section with "
            "SECTION X, such as: SECTION 1."
        ),
        lambda r, n: len(SECTION_RE.findall(r)) == n,
    ),
    ConstraintType(
        "format:quotation",
        _no_kwargs,
        lambda: "Wrap your entire response with double quotation marks.",
        _check_quotation,
    ),
    ConstraintType(
        "content:postscript",
        _no_kwargs,
        lambda: "At the end of your response, please explicitly add a postscript starting with P.S.",
        lambda r: POSTSCRIPT_RE.search(r) is not None,
    ),
    ConstraintType(
        "punctuation:no_comma",
        _no_kwargs,
        lambda: "In your entire response, refrain from the use of any commas.",
        lambda r: "," not in r,
    ),
    ConstraintType(
        "start:first_word",
        lambda rng: {"word": rng.choice(FIRST_WORDS)},
        lambda word: f"The very first word of your response should be the word {word}.",
        _check_first_word,
    ),
    ConstraintType(
        "end:phrase",
        lambda rng: {"phrase": rng.choice(END_PHRASES)},
        lambda phrase: (
            f"Finish your response with this exact phrase: {phrase} "
            "No other words should follow this phrase."
        ),
        _check_end_phrase,
    ),
)
CONSTRAINTS: dict[str, ConstraintType] = {c.type_id: c for c in CONSTRAINT_TYPES}
TYPE_IDS: tuple[str, ...] = tuple(CONSTRAINTS)

# Pairs that cannot (or can hardly) hold together; JSON combines only with the listed types.
_CONFLICT_PAIRS = (
    ("case:lowercase", "case:uppercase"),
    ("case:lowercase", "format:sections"),  # SECTION is written in capitals
    ("length:words", "length:sentences"),
    ("length:sentences", "format:sections"),  # headers and bullet lines count as sentences
    ("length:sentences", "format:bullets"),
    ("length:paragraphs", "format:sections"),
    ("start:first_word", "format:title"),
    ("start:first_word", "format:sections"),
)
_JSON_COMPATIBLE = frozenset(
    {
        "length:words", "keywords:include", "keywords:avoid", "keywords:frequency",
        "keywords:letter_frequency", "case:lowercase", "case:uppercase", "format:placeholders",
    }
)


def compatible(a: str, b: str) -> bool:
    """Whether constraint types ``a`` and ``b`` may appear in the same prompt."""
    if a == b:
        return False
    if "format:json" in (a, b):
        other = b if a == "format:json" else a
        return other in _JSON_COMPATIBLE
    return (a, b) not in _CONFLICT_PAIRS and (b, a) not in _CONFLICT_PAIRS


# Each type's compatible types, tabled once: sampling a world's prompts asked compatible() ~10^5 times.
_COMPATIBLE_WITH = {a: frozenset(b for b in TYPE_IDS if compatible(a, b)) for a in TYPE_IDS}


# ---------------------------------------------------------------------------------------------
# instructions and checking


@dataclass(frozen=True)
class Instruction:
    """One constraint with its parameters, e.g. ``Instruction("length:words", {"relation": "at least", "n": 100})``."""

    type_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        """The sentence that asks for this constraint in the prompt."""
        return CONSTRAINTS[self.type_id].describe(**self.kwargs)

    def check(self, response: str) -> bool:
        """Strict check: the response as is (an empty response never passes)."""
        return bool(response.strip()) and CONSTRAINTS[self.type_id].check(response, **self.kwargs)

    def check_loose(self, response: str) -> bool:
        """Loose check (IFEval): passes if the strict check passes on any :func:`loose_variants`."""
        return any(self.check(v) for v in loose_variants(response))


def loose_variants(response: str) -> list[str]:
    """IFEval's eight variants: as is / first line removed / last removed / both, each also without ``*``."""
    lines = response.split("\n")
    cut = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    return cut + [v.replace("*", "") for v in cut]


def sample_instructions(rng: random.Random, k: int) -> list[Instruction]:
    """Up to ``k`` mutually compatible instructions with seeded parameters (order = prompt order)."""
    chosen: list[str] = []
    while len(chosen) < k:
        options = [t for t in TYPE_IDS if all(t in _COMPATIBLE_WITH[c] for c in chosen)]
        if not options:
            break
        chosen.append(rng.choice(options))
    return [Instruction(t, CONSTRAINTS[t].sample(rng)) for t in chosen]


def render_prompt(base: str, instructions: Sequence[Instruction]) -> str:
    """The user prompt: the writing task followed by each instruction's description.

    A description that ends in a multi-line example is followed by a line break, not a space.
    """
    text, previous = base, base
    for d in (i.description for i in instructions):
        text += ("\n" if "\n" in previous else " ") + d
        previous = d
    return text


@dataclass(frozen=True)
class InstructionCase:
    """Ground truth of one instruction task: its prompt and the instructions to verify."""

    prompt: str
    instructions: tuple[Instruction, ...]

    @property
    def category(self) -> str:
        return "+".join(sorted(i.type_id for i in self.instructions))


def generate_instruction_cases(seed: int, n: int) -> list[InstructionCase]:
    """``n`` distinct instruction prompts (1-3 constraints each over the topic pool), seeded."""
    rng = random.Random(f"instruction-cases-{seed}")
    cases: list[InstructionCase] = []
    seen: set[str] = set()
    while len(cases) < n:
        base = rng.choice(TASK_FORMS).format(topic=rng.choice(TOPICS))
        k = rng.choices([1, 2, 3], weights=[0.3, 0.4, 0.3])[0]
        instructions = tuple(sample_instructions(rng, k))
        prompt = render_prompt(base, instructions)
        if prompt in seen:
            continue
        seen.add(prompt)
        cases.append(InstructionCase(prompt, instructions))
    return cases


def check_all(instructions: Sequence[Instruction], response: str) -> dict[str, dict[str, bool]]:
    """``{"strict": {type_id: bool}, "loose": {type_id: bool}}`` for one response."""
    return {
        "strict": {i.type_id: i.check(response) for i in instructions},
        "loose": {i.type_id: i.check_loose(response) for i in instructions},
    }


# ---------------------------------------------------------------------------------------------
# metrics (IFEval §3: prompt-level and instruction-level accuracy, strict and loose)


def prompt_followed(details: dict, mode: str = "strict") -> bool:
    """Prompt level: every instruction of one response followed. ``details`` is :func:`check_all`'s output."""
    return all(details[mode].values())


def instructions_followed(details: dict, mode: str = "strict", types: Sequence[str] | None = None) -> tuple[int, int]:
    """Instruction level: (followed, asked) in one response, optionally only for constraint ``types``."""
    checks = [ok for t, ok in details[mode].items() if types is None or t in types]
    return sum(checks), len(checks)


def per_type_results(all_details: Sequence[dict], mode: str = "strict") -> dict[str, list[bool]]:
    """Every response's result per constraint type id, sorted by type id."""
    if mode not in ("strict", "loose"):
        raise ValueError(f"mode must be 'strict' or 'loose', not {mode!r}")
    passed: dict[str, list[bool]] = {}
    for d in all_details:
        for type_id, ok in d.get(mode, {}).items():
            passed.setdefault(str(type_id), []).append(bool(ok))
    return dict(sorted(passed.items()))


def _instruction_details(scores: Sequence[Any]) -> list[dict]:
    details = [s.details for s in scores if "strict" in s.details and "loose" in s.details]
    if not details:
        raise ValueError("instruction_metrics needs at least one Score of an instruction task")
    return details


def instruction_metrics(scores: Sequence[Any]) -> dict[str, float]:
    """Prompt- and instruction-level accuracy, strict and loose, over instruction-task Scores (or Evaluations).

    Scores of other kinds are ignored. Returns keys ``prompt_strict``, ``prompt_loose``,
    ``instruction_strict``, ``instruction_loose``.
    """
    details = _instruction_details(scores)
    out: dict[str, float] = {}
    for mode in ("strict", "loose"):
        followed, asked = zip(*(instructions_followed(d, mode) for d in details))
        out[f"prompt_{mode}"] = sum(prompt_followed(d, mode) for d in details) / len(details)
        out[f"instruction_{mode}"] = sum(followed) / sum(asked) if sum(asked) else 0.0
    return out


def per_type_accuracy(scores: Sequence[Any], mode: str = "strict") -> dict[str, float]:
    """Accuracy per constraint type id (``mode`` = "strict" or "loose"), sorted by type id."""
    return {t: sum(v) / len(v) for t, v in per_type_results(_instruction_details(scores), mode).items()}
