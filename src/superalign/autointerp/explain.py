"""Explain → simulate → score (Bills et al. 2023), with delphi's detection and fuzzing (Paulo et al. 2024).

A unit's record is a set of windows (token strings) with its activation on every token. An explainer
reads the top windows and writes an explanation; a simulator predicts, from the explanation alone, the
activation of every token of unseen windows. Scores, on windows the explainer never saw:

- ``simulation``: Pearson correlation of simulated with true activations over the tokens of the top
  windows and random windows together (Bills et al.'s "all at once" score);
- ``detection``: does the simulator find any activation in a window? Balanced accuracy over activating and
  non-activating windows;
- ``fuzzing``: in activating windows, highlight the truly active tokens or as many random ones; is the
  highlight right? The simulator says yes when every highlighted token is one it predicts
  active. Balanced accuracy.

Two explainers. :class:`OfflineExplainer` searches simple hypotheses (token sets, bigrams, the preceding
token, regular expressions over the token's text, position) and simulates them exactly: a CPU with no large
model gets real scores. :class:`ChatExplainer` / :class:`ChatSimulator` ask any chat role (a local model,
an OpenAI-compatible endpoint) with the prompt templates below.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Windows = list[list[str]]  # token strings per window
Acts = list[np.ndarray]  # activation per token, one array per window

REGEXES = {
    "digits": r"\d",
    "capitalised words": r"^\s?[A-Z][a-z]",
    "punctuation": r"^\s?[^\w\s]+\s?$",
    "line breaks": r"\n",
    "words starting with a space": r"^ [a-zA-Z]",
    "word pieces (no leading space)": r"^[a-z]+$",
}


@dataclass(frozen=True)
class Hypothesis:
    """A predicate over (window, position): active or not. ``text`` is its explanation in words."""

    kind: str  # tokens | after | bigram | regex | position
    values: tuple
    text: str

    def predict(self, window: list[str]) -> np.ndarray:
        """[len(window)] of 0/1"""
        out = np.zeros(len(window))
        for i, tok in enumerate(window):
            prev = window[i - 1] if i else None
            if self.kind == "tokens":
                hit = tok in self.values
            elif self.kind == "after":
                hit = prev in self.values
            elif self.kind == "bigram":
                hit = (prev, tok) in self.values
            elif self.kind == "regex":
                hit = re.search(self.values[0], tok) is not None
            else:  # position: the first n tokens
                hit = i < self.values[0]
            out[i] = float(hit)
        return out


@dataclass
class Explanation:
    text: str
    simulate: Callable[[Windows], Acts]  # per-token predicted activations of unseen windows


def _quote(tokens) -> str:
    return ", ".join(repr(t) for t in tokens)


def candidates(windows: Windows, acts: Acts, max_set: int = 8) -> list[Hypothesis]:
    """Hypotheses suggested by the data: the tokens (and preceding tokens, and bigrams) with the highest
    mean activation, as sets of 1, 2, 3, 5 and ``max_set``; every regular expression; the first 1–5 positions."""
    by: dict[str, dict] = {"tokens": defaultdict(list), "after": defaultdict(list), "bigram": defaultdict(list)}
    for window, a in zip(windows, acts):
        for i, tok in enumerate(window):
            by["tokens"][tok].append(a[i])
            if i:
                by["after"][window[i - 1]].append(a[i])
                by["bigram"][(window[i - 1], tok)].append(a[i])
    out = []
    words = {"tokens": "the tokens {}", "after": "tokens right after {}", "bigram": "the token pairs {}"}
    for kind, table in by.items():
        ranked = sorted((k for k, v in table.items() if len(v) >= 2 or kind == "tokens"),
                        key=lambda k: -float(np.mean(table[k])))
        for n in sorted({1, 2, 3, 5, max_set}):
            top = tuple(ranked[:n])
            if top:
                shown = _quote(top) if kind != "bigram" else ", ".join(f"{a!r}→{b!r}" for a, b in top)
                out.append(Hypothesis(kind, top, words[kind].format(shown)))
    out += [Hypothesis("regex", (rx,), f"{name} (/{rx}/)") for name, rx in REGEXES.items()]
    # windows start at a text's second token (the first is an attention sink, left out everywhere)
    out += [Hypothesis("position", (n,), f"the first {n} token{'s' if n > 1 else ''} after a text's first")
            for n in (1, 2, 3, 5)]
    return list(dict.fromkeys(out))


def correlation(pred: Acts, true: Acts) -> float:
    """Pearson correlation over every token of every window (0 when either side is constant)."""
    p, t = np.concatenate(pred), np.concatenate(true)
    if p.std() == 0 or t.std() == 0:
        return 0.0
    return float(np.corrcoef(p, t)[0, 1])


class OfflineExplainer:
    """Picks the hypothesis whose exact simulation correlates best with the unit on the explanation windows."""

    name = "offline"

    def explain(self, windows: Windows, acts: Acts) -> Explanation:
        best = max(candidates(windows, acts), key=lambda h: correlation([h.predict(w) for w in windows], acts))
        return hypothesis_explanation(best)


def hypothesis_explanation(h: Hypothesis) -> Explanation:
    return Explanation(h.text, lambda windows: [h.predict(w) for w in windows])


EXPLAIN_TEMPLATE = """We are studying one unit of a neural network. It activates on some tokens of short texts.
Below are texts, one token per line as "token<TAB>activation" (0 to 10; 0 means inactive).

{examples}

In one short phrase, what does this unit respond to? Answer with the phrase only."""

SIMULATE_TEMPLATE = """A unit of a neural network responds to: {explanation}
For each token of the text below, predict its activation from 0 (none) to 10 (strongest).
Reply with one line per token, "token<TAB>activation", in the same order.

{tokens}"""


def format_examples(windows: Windows, acts: Acts) -> str:
    """Texts as token<TAB>activation lines, activations scaled to 0–10 by the largest shown."""
    top = max((float(a.max()) for a in acts), default=0.0) or 1.0
    blocks = []
    for window, a in zip(windows, acts):
        lines = [f"{tok!r}\t{max(0, round(10 * float(v) / top))}" for tok, v in zip(window, a)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def parse_simulation(reply: str, n_tokens: int) -> np.ndarray:
    """The predicted activation per token from "token<TAB>number" lines (missing or unreadable lines are 0)."""
    values = []
    for line in reply.splitlines():
        found = re.search(r"\t\s*(\d+(?:\.\d+)?)\s*$", line)
        if found:
            values.append(min(10.0, float(found.group(1))))
    values = (values + [0.0] * n_tokens)[:n_tokens]
    return np.asarray(values)


class ChatSimulator:
    """Any chat role predicts per-token activations from an explanation."""

    def __init__(self, chat, explanation: str, max_new_tokens: int = 256):
        self.chat, self.explanation, self.max_new_tokens = chat, explanation, max_new_tokens

    def __call__(self, windows: Windows) -> Acts:
        out = []
        for window in windows:
            tokens = "\n".join(repr(t) for t in window)
            prompt = SIMULATE_TEMPLATE.format(explanation=self.explanation, tokens=tokens)
            out.append(parse_simulation(self.chat.chat([{"role": "user", "content": prompt}], self.max_new_tokens),
                                        len(window)))
        return out


class ChatExplainer:
    """Any chat role explains from the top windows; the same role (or ``simulator``) simulates."""

    def __init__(self, chat, simulator=None, max_new_tokens: int = 48):
        self.chat, self.simulator, self.max_new_tokens = chat, simulator or chat, max_new_tokens
        self.name = f"chat:{getattr(chat, 'name', 'model')}"

    def explain(self, windows: Windows, acts: Acts) -> Explanation:
        prompt = EXPLAIN_TEMPLATE.format(examples=format_examples(windows, acts))
        text = self.chat.chat([{"role": "user", "content": prompt}], self.max_new_tokens).strip().splitlines()
        text = text[0].strip() if text else "(no explanation)"
        return Explanation(text, ChatSimulator(self.simulator, text))


@dataclass
class UnitData:
    """One unit's windows, split: the explainer sees ``explain``; the scores use ``top`` and ``random``
    (windows it never saw); ``threshold`` is where the unit counts as active."""

    explain_windows: Windows
    explain_acts: Acts
    top_windows: Windows
    top_acts: Acts
    random_windows: Windows
    random_acts: Acts
    threshold: float


def balanced_accuracy(pred: list[bool], truth: list[bool]) -> float:
    """Mean of the accuracies on each class; NaN unless both classes are present (one class alone would
    reward a simulator that always says yes, or always no)."""
    pos = [p for p, t in zip(pred, truth) if t]
    neg = [not p for p, t in zip(pred, truth) if not t]
    if not pos or not neg:
        return float("nan")
    return float((np.mean(pos) + np.mean(neg)) / 2)


def score(explanation: Explanation, unit: UnitData, seed: int = 0) -> dict[str, float]:
    """Simulation, detection and fuzzing scores of an explanation on the unit's held-out windows."""
    rng = np.random.default_rng(seed)
    windows = unit.top_windows + unit.random_windows
    acts = unit.top_acts + unit.random_acts
    sim = explanation.simulate(windows)
    out = {"simulation": correlation(sim, acts)}
    peak = max((float(s.max()) for s in sim if len(s)), default=0.0)
    active = [s > 0.5 * peak if peak > 0 else np.zeros(len(s), bool) for s in sim]  # what the simulator calls active
    # detection: activating windows (max ≥ threshold) against quiet ones
    labels = [float(a.max()) >= unit.threshold for a in acts]
    out["detection"] = balanced_accuracy([bool(m.any()) for m in active], labels)
    # fuzzing: each activating window twice, with its true active tokens highlighted and with random ones
    preds, truth = [], []
    for m, a in zip(active, acts):
        hot = np.flatnonzero(a >= unit.threshold)
        if not hot.size:
            continue
        fake = rng.choice(len(a), size=hot.size, replace=False)
        for marked, right in ((hot, True), (fake, set(fake) == set(hot))):
            preds.append(bool(m[marked].all()))
            truth.append(right)
    out["fuzzing"] = balanced_accuracy(preds, truth)
    return out


__all__ = ["ChatExplainer", "ChatSimulator", "EXPLAIN_TEMPLATE", "Explanation", "Hypothesis", "OfflineExplainer",
           "SIMULATE_TEMPLATE", "UnitData", "balanced_accuracy", "candidates", "correlation", "format_examples",
           "hypothesis_explanation", "parse_simulation", "score"]
