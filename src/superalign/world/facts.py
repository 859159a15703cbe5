"""A small knowledge base shipped as Python data, with questions and true/false statements.

Topics: country capitals, chemical element symbols, animal classes (fixed data) and number
comparisons, unit conversions (generated from a seed, exact integers).

Questions are checked leniently: case, accents and punctuation are ignored, aliases are accepted and
the answer must appear as a whole word or phrase. Where the question offers options (animal classes,
the two numbers of a comparison, the capitals and symbols the knowledge base knows), the *first*
option mentioned in the response is taken as the answer, so "Paris, not Lyon" counts but listing
every option does not; a comparison's two numbers restated side by side ("the GCD of 438 and 333") are
not an answer either. Limitation: "bats are not birds, they are mammals" reads as "birds".

Statements come in fours per fact: the true claim, a false claim with a plausible wrong object
(another capital, a neighbouring number...), and the negation of each. A negated statement has the
opposite label of the claim it negates, and shares its ``pair_id``: 50/50 balance by construction.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from superalign.world.text import normalize, numbers_with_positions, phrase_position

# (country as written in a sentence, capital, extra aliases of the capital)
CAPITALS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("France", "Paris", ()), ("Germany", "Berlin", ()), ("Italy", "Rome", ()),
    ("Spain", "Madrid", ()), ("Portugal", "Lisbon", ()), ("the United Kingdom", "London", ()),
    ("Ireland", "Dublin", ()), ("the Netherlands", "Amsterdam", ()), ("Belgium", "Brussels", ()),
    ("Switzerland", "Bern", ("Berne",)), ("Austria", "Vienna", ()), ("Poland", "Warsaw", ()),
    ("the Czech Republic", "Prague", ()), ("Hungary", "Budapest", ()), ("Greece", "Athens", ()),
    ("Sweden", "Stockholm", ()), ("Norway", "Oslo", ()), ("Denmark", "Copenhagen", ()),
    ("Finland", "Helsinki", ()), ("Iceland", "Reykjavik", ("Reykjavík",)), ("Russia", "Moscow", ()),
    ("Ukraine", "Kyiv", ("Kiev",)), ("Turkey", "Ankara", ()), ("Egypt", "Cairo", ()),
    ("Kenya", "Nairobi", ()), ("Nigeria", "Abuja", ()), ("Ethiopia", "Addis Ababa", ()),
    ("Morocco", "Rabat", ()), ("Ghana", "Accra", ()), ("South Africa", "Pretoria", ()),
    ("Japan", "Tokyo", ()), ("China", "Beijing", ("Peking",)), ("India", "New Delhi", ()),
    ("Pakistan", "Islamabad", ()), ("Bangladesh", "Dhaka", ("Dacca",)), ("Thailand", "Bangkok", ()),
    ("Vietnam", "Hanoi", ()), ("Indonesia", "Jakarta", ()), ("the Philippines", "Manila", ()),
    ("South Korea", "Seoul", ()), ("Iran", "Tehran", ("Teheran",)), ("Iraq", "Baghdad", ()),
    ("Saudi Arabia", "Riyadh", ()), ("Afghanistan", "Kabul", ()), ("Nepal", "Kathmandu", ()),
    ("Australia", "Canberra", ()), ("New Zealand", "Wellington", ()), ("Canada", "Ottawa", ()),
    ("the United States", "Washington, D.C.", ("Washington", "Washington DC")),
    ("Mexico", "Mexico City", ()), ("Cuba", "Havana", ()), ("Brazil", "Brasília", ("Brasilia",)),
    ("Argentina", "Buenos Aires", ()), ("Chile", "Santiago", ()), ("Peru", "Lima", ()),
    ("Colombia", "Bogotá", ("Bogota",)), ("Venezuela", "Caracas", ()), ("Uruguay", "Montevideo", ()),
    ("Romania", "Bucharest", ()), ("Bulgaria", "Sofia", ()), ("Serbia", "Belgrade", ()),
    ("Croatia", "Zagreb", ()), ("Jamaica", "Kingston", ()), ("Mongolia", "Ulaanbaatar", ("Ulan Bator",)),
)

# (element, symbol, aliases of the element name)
ELEMENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("hydrogen", "H", ()), ("helium", "He", ()), ("lithium", "Li", ()), ("beryllium", "Be", ()),
    ("boron", "B", ()), ("carbon", "C", ()), ("nitrogen", "N", ()), ("oxygen", "O", ()),
    ("fluorine", "F", ()), ("neon", "Ne", ()), ("sodium", "Na", ()), ("magnesium", "Mg", ()),
    ("aluminium", "Al", ("aluminum",)), ("silicon", "Si", ()), ("phosphorus", "P", ()),
    ("sulfur", "S", ("sulphur",)), ("chlorine", "Cl", ()), ("argon", "Ar", ()), ("potassium", "K", ()),
    ("calcium", "Ca", ()), ("titanium", "Ti", ()), ("chromium", "Cr", ()), ("manganese", "Mn", ()),
    ("iron", "Fe", ()), ("cobalt", "Co", ()), ("nickel", "Ni", ()), ("copper", "Cu", ()),
    ("zinc", "Zn", ()), ("gallium", "Ga", ()), ("arsenic", "As", ()), ("selenium", "Se", ()),
    ("bromine", "Br", ()), ("krypton", "Kr", ()), ("rubidium", "Rb", ()), ("strontium", "Sr", ()),
    ("silver", "Ag", ()), ("tin", "Sn", ()), ("antimony", "Sb", ()), ("iodine", "I", ()),
    ("xenon", "Xe", ()), ("caesium", "Cs", ("cesium",)), ("barium", "Ba", ()), ("tungsten", "W", ()),
    ("platinum", "Pt", ()), ("gold", "Au", ()), ("mercury", "Hg", ()), ("lead", "Pb", ()),
    ("bismuth", "Bi", ()), ("radium", "Ra", ()), ("uranium", "U", ()), ("plutonium", "Pu", ()),
    ("zirconium", "Zr", ()),
)
# Symbols that are also English words (or one letter) cannot be found reliably in free text, so
# their question is asked the other way round ("Which element has the symbol He?").
_WORDLIKE_SYMBOLS = frozenset({"he", "be", "as", "co", "ne", "na", "ba", "ti", "se", "pt", "ga"})

ANIMAL_CLASSES = ("mammal", "bird", "reptile", "fish", "amphibian", "insect")
_CLASS_PLURALS = {"mammal": "mammals", "bird": "birds", "reptile": "reptiles", "fish": "fishes",
                  "amphibian": "amphibians", "insect": "insects"}
ANIMALS: dict[str, tuple[str, ...]] = {
    "mammal": ("dolphin", "whale", "bat", "elephant", "kangaroo", "horse", "tiger", "platypus",
               "giraffe", "rabbit", "otter", "hedgehog"),
    "bird": ("eagle", "penguin", "ostrich", "owl", "parrot", "sparrow", "flamingo", "hummingbird",
             "pelican", "crow", "swan", "emu"),
    "reptile": ("snake", "crocodile", "lizard", "turtle", "tortoise", "iguana", "chameleon", "gecko",
                "Komodo dragon", "alligator", "cobra"),
    "fish": ("shark", "salmon", "tuna", "goldfish", "trout", "seahorse", "eel", "cod", "catfish",
             "swordfish", "clownfish"),
    "amphibian": ("frog", "toad", "salamander", "newt", "axolotl", "caecilian"),
    "insect": ("ant", "bee", "butterfly", "beetle", "mosquito", "dragonfly", "grasshopper",
               "ladybug", "moth", "wasp", "termite", "cricket"),
}

# (larger unit, smaller unit, how many smaller units in one larger unit)
CONVERSIONS: tuple[tuple[str, str, int], ...] = (
    ("meters", "centimeters", 100), ("kilometers", "meters", 1000), ("hours", "minutes", 60),
    ("minutes", "seconds", 60), ("days", "hours", 24), ("weeks", "days", 7),
    ("kilograms", "grams", 1000), ("feet", "inches", 12), ("yards", "feet", 3),
    ("liters", "milliliters", 1000), ("years", "months", 12), ("centimeters", "millimeters", 10),
)

TOPICS = ("capitals", "elements", "animals", "comparisons", "conversions")


def _article(noun: str) -> str:
    return f"an {noun}" if noun[0].lower() in "aeiou" else f"a {noun}"


# ---------------------------------------------------------------------------------------------
# questions


@dataclass(frozen=True)
class FactQuestion:
    """Ground truth of one question: the expected answer, its aliases and the competing options."""

    topic: str
    question: str
    answer: str
    aliases: tuple[str, ...]  # every accepted spelling, the answer included
    options: tuple[tuple[str, ...], ...] = ()  # alias groups of the competing answers (first wins)
    numeric: bool = False  # answer is a number: matched by value among the numbers of the response

    def check(self, response: str) -> bool:
        """Whether ``response`` gives the right answer (lenient, see the module docstring)."""
        if not response.strip():
            return False
        if self.numeric:
            return self._check_numeric(response)
        text = normalize(response)
        positions = [p for a in self.aliases if (p := phrase_position(text, a)) >= 0]
        if not positions:
            return False
        first_right = min(positions)
        wrong = [p for group in self.options for a in group if (p := phrase_position(text, a)) >= 0]
        return not wrong or first_right <= min(wrong)

    def _check_numeric(self, response: str) -> bool:
        target = float(self.answer)
        others = {float(o[0]) for o in self.options}
        found = numbers_with_positions(response)
        i = 0
        while i < len(found):
            value = found[i][1]
            if i + 1 < len(found) and _restates_options(response, found[i], found[i + 1], others | {target}):
                i += 2  # "the GCD of 438 and 333": the question's numbers restated, not an answer
                continue
            if value == target:
                return True
            if value in others:  # a competing option was named first
                return False
            i += 1
        return False


# Between two numbers that merely restate a comparison's options: "438 and 333", "438, 333", "438 or 333".
_RESTATED = re.compile(r"\S+\s*,?\s*(?:(?:and|or|vs\.?|versus|&)\s+)?", re.IGNORECASE)


def _restates_options(response: str, first: tuple[int, float], second: tuple[int, float], options: set[float]) -> bool:
    """Whether two successive numbers of `response` are both options, joined by no more than "and"/"or"/a comma.

    Without this, echoing the question ("we need the GCD of 438 and 333") answered it whenever the larger
    number came first in the question: half the comparisons passed without an answer.
    """
    if len(options) != 2 or {first[1], second[1]} != options:
        return False
    return _RESTATED.fullmatch(response[first[0]:second[0]]) is not None


def capital_questions() -> list[FactQuestion]:
    groups = [(cap,) + aliases for _, cap, aliases in CAPITALS]
    out = []
    for i, (country, cap, _) in enumerate(CAPITALS):
        out.append(FactQuestion(
            "capitals", f"What is the capital of {country}?", cap, groups[i],
            tuple(g for j, g in enumerate(groups) if j != i),
        ))
    return out


def element_questions() -> list[FactQuestion]:
    names = [(name,) + aliases for name, _, aliases in ELEMENTS]
    symbols = [(sym,) for _, sym, _ in ELEMENTS if len(sym) == 2 and sym.lower() not in _WORDLIKE_SYMBOLS]
    out = []
    for i, (name, sym, _) in enumerate(ELEMENTS):
        if len(sym) == 2 and sym.lower() not in _WORDLIKE_SYMBOLS:
            out.append(FactQuestion(
                "elements", f"What is the chemical symbol for {name}?", sym, (sym,),
                tuple(s for s in symbols if s != (sym,)),
            ))
        else:
            out.append(FactQuestion(
                "elements", f"Which chemical element has the symbol {sym}?", name, names[i],
                tuple(g for j, g in enumerate(names) if j != i),
            ))
    return out


def animal_questions() -> list[FactQuestion]:
    listed = ", ".join(ANIMAL_CLASSES[:-1]) + " or " + ANIMAL_CLASSES[-1]
    out = []
    for cls, animals in ANIMALS.items():
        for animal in animals:
            out.append(FactQuestion(
                "animals", f"Is {_article(animal)} a {listed}? Answer with the class.", cls,
                (cls, _CLASS_PLURALS[cls]),
                tuple((c, _CLASS_PLURALS[c]) for c in ANIMAL_CLASSES if c != cls),
            ))
    return out


def comparison_pairs(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """``n`` distinct unordered pairs (larger, smaller) of numbers between 10 and 999."""
    pairs: set[tuple[int, int]] = set()
    ordered = []
    while len(ordered) < n:
        a, b = rng.sample(range(10, 1000), 2)
        key = (max(a, b), min(a, b))
        if key not in pairs:
            pairs.add(key)
            ordered.append((a, b))  # shown in this order; the answer is max(a, b)
    return ordered


def comparison_questions(rng: random.Random, n: int) -> list[FactQuestion]:
    out = []
    for a, b in comparison_pairs(rng, n):
        big, small = max(a, b), min(a, b)
        out.append(FactQuestion(
            "comparisons", f"Which number is larger: {a} or {b}?", str(big), (str(big),),
            ((str(small),),), numeric=True,
        ))
    return out


def conversion_items(rng: random.Random, n: int) -> list[tuple[int, str, str, int]]:
    """``n`` distinct (amount, larger unit, smaller unit, factor) items; amounts 2-99."""
    seen = set()
    out = []
    while len(out) < n:
        big, small, factor = rng.choice(CONVERSIONS)
        amount = rng.randint(2, 99)
        if (amount, big) in seen:
            continue
        seen.add((amount, big))
        out.append((amount, big, small, factor))
    return out


def conversion_questions(rng: random.Random, n: int) -> list[FactQuestion]:
    out = []
    for amount, big, small, factor in conversion_items(rng, n):
        value = amount * factor
        out.append(FactQuestion(
            "conversions", f"How many {small} are in {amount} {big}? Answer with a number.",
            str(value), (str(value),), numeric=True,
        ))
    return out


def generate_questions(seed: int, n_comparisons: int = 250, n_conversions: int = 250) -> list[FactQuestion]:
    """All fact questions of ``World(seed)``: fixed topics plus seeded comparisons and conversions."""
    rng = random.Random(f"fact-questions-{seed}")
    return (
        capital_questions() + element_questions() + animal_questions()
        + comparison_questions(rng, n_comparisons) + conversion_questions(rng, n_conversions)
    )


# ---------------------------------------------------------------------------------------------
# true/false statements


@dataclass(frozen=True)
class Statement:
    """A true/false statement. Its label is the truth (probes train and test on these)."""

    id: str
    text: str
    topic: str
    label: bool
    negated: bool
    fact_id: str  # the four statements of one fact share it; splits never separate them
    pair_id: str  # a statement and its negation share it (and have opposite labels)


@dataclass(frozen=True)
class _Claim:
    """A fact with a right and a wrong object, and how to phrase (and negate) a claim about it."""

    topic: str
    key: str
    right: str
    wrong: str
    affirm: str  # "{obj}" is replaced by the object
    negate: str


def _capital_claims(rng: random.Random) -> list[_Claim]:
    caps = [c for _, c, _ in CAPITALS]
    return [
        _Claim("capitals", country, cap, rng.choice([c for c in caps if c != cap]),
               f"The capital of {country} is {{obj}}.", f"The capital of {country} is not {{obj}}.")
        for country, cap, _ in CAPITALS
    ]


def _element_claims(rng: random.Random) -> list[_Claim]:
    syms = [s for _, s, _ in ELEMENTS]
    return [
        _Claim("elements", name, sym, rng.choice([s for s in syms if s != sym]),
               f"The chemical symbol for {name} is {{obj}}.", f"The chemical symbol for {name} is not {{obj}}.")
        for name, sym, _ in ELEMENTS
    ]


def _animal_claims(rng: random.Random) -> list[_Claim]:
    out = []
    for cls, animals in ANIMALS.items():
        for animal in animals:
            wrong = rng.choice([c for c in ANIMAL_CLASSES if c != cls])
            subject = _article(animal)
            subject = subject[0].upper() + subject[1:]
            out.append(_Claim("animals", animal, _article(cls), _article(wrong),
                              f"{subject} is {{obj}}.", f"{subject} is not {{obj}}."))
    return out


def _comparison_claims(rng: random.Random, n: int) -> list[_Claim]:
    out = []
    for a, b in comparison_pairs(rng, n):
        big, small = max(a, b), min(a, b)
        # the object is the ordered pair; phrased "X is larger than Y"
        out.append(_Claim("comparisons", f"{big}>{small}", f"{big}|{small}", f"{small}|{big}",
                          "{0} is larger than {1}.", "{0} is not larger than {1}."))
    return out


def _conversion_claims(rng: random.Random, n: int) -> list[_Claim]:
    out = []
    for amount, big, small, factor in conversion_items(rng, n):
        right = amount * factor
        # plausible mistakes: off by a few units of the larger unit, or by a factor of ten
        wrongs = [right + d * factor for d in (-3, -2, -1, 1, 2, 3) if right + d * factor > 0] + [right * 10]
        wrong = rng.choice(wrongs)
        out.append(_Claim("conversions", f"{amount} {big}", str(right), str(wrong),
                          f"{amount} {big} equal {{obj}} {small}.", f"{amount} {big} do not equal {{obj}} {small}."))
    return out


def _phrase(template: str, obj: str) -> str:
    if "|" in obj:  # comparison objects are "X|Y"
        return template.format(*obj.split("|"))
    return template.replace("{obj}", obj)


def generate_statements(seed: int, n_comparisons: int = 150, n_conversions: int = 120) -> list[Statement]:
    """All true/false statements of ``World(seed)``: four per fact, exactly half of them true."""
    rng = random.Random(f"fact-statements-{seed}")
    claims = (
        _capital_claims(rng) + _element_claims(rng) + _animal_claims(rng)
        + _comparison_claims(rng, n_comparisons) + _conversion_claims(rng, n_conversions)
    )
    out: list[Statement] = []
    for f, claim in enumerate(claims):
        fact_id = f"fact-s{seed}-{f:04d}"
        for which, obj, truth in (("right", claim.right, True), ("wrong", claim.wrong, False)):
            pair_id = f"{fact_id}-{which}"
            for negated in (False, True):
                template = claim.negate if negated else claim.affirm
                out.append(Statement(
                    id=f"stmt-s{seed}-{len(out):05d}", text=_phrase(template, obj), topic=claim.topic,
                    label=truth != negated, negated=negated, fact_id=fact_id, pair_id=pair_id,
                ))
    return out
