"""Debaters (the model, best-of-n, the oracle, any chat role) and judges (simulated, the model, any chat role).

A debater answers a batch of :class:`Request` s (it sees the passage); a judge answers a batch of
:class:`~superalign.debate.prompts.JudgeView` s (it never does). A chat role that keeps failing gives a turn
or a verdict with ``error`` set: recorded, never counted as an argument or a judgement.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from superalign.debate.prompts import JudgeView, debater_messages, judge_messages, parse_verdict
from superalign.models.chat import ChatModel, ask
from superalign.world.passages import DebateQuestion
from superalign.world.quotes import normalize_quote
from superalign.world.text import stable_seed


@dataclass
class Request:
    question: DebateQuestion
    side: int
    turns: list[dict]
    protocol: str


@dataclass
class Verdict:
    choice: int | None  # 0 (A), 1 (B); None when the judge failed
    p_a: float | None = None  # its probability of A, when it has one
    error: str | None = None
    raw: str = ""


# -- judges ----------------------------------------------------------------------------------------------


class SimulatedJudge:
    """A judge of limited understanding. For each verified quote it understands what the quote says with
    probability ``skill``: a quote that states the asked fact counts 1 for that answer. Otherwise it goes by the
    surface: a quote that names the asked person and one answer counts 1/2 for that answer. Unverified quotes
    and bare claims count nothing. More support wins; a tie is a coin flip (seeded per question).

    Its "understanding" is the world's annotation of the passage's sentences (who, what relation, what
    object); it reads quotes through it, never the passage's text."""

    def __init__(self, questions: Sequence[DebateQuestion], skill: float = 0.5, seed: int = 0):
        self.questions = {q.id: q for q in questions}
        self.skill, self.seed = skill, seed
        self.name = f"sim:skill={skill:g}"

    def _draw(self, *parts) -> float:
        return random.Random(stable_seed("debate-judge", self.seed, *parts)).random()

    def support(self, qid: str, view: JudgeView) -> list[float]:
        question = self.questions[qid]
        subject = normalize_quote(question.subject)
        answers = [normalize_quote(a) for a in view.answers]
        support = [0.0, 0.0]
        for t, turn in enumerate(view.turns):
            for k, q in enumerate(turn.get("quotes", []) if not turn.get("error") else []):
                if q["status"] == "unverified":
                    continue
                if self._draw(qid, view.protocol, t, k, "understand") < self.skill:
                    proved = question.decisive_for(q["start"], q["end"])
                    if proved is not None:
                        support[proved] += 1.0
                    continue
                text = f" {normalize_quote(q['text'])} "
                named = [i for i, a in enumerate(answers) if f" {a} " in text]
                if f" {subject} " in text and len(named) == 1:
                    support[named[0]] += 0.5
        return support

    def judge_many(self, qids: Sequence[str], views: Sequence[JudgeView]) -> list[Verdict]:
        out = []
        for qid, view in zip(qids, views):
            s = self.support(qid, view)
            if s[0] == s[1]:
                choice = int(self._draw(qid, view.protocol, "coin") < 0.5)
                out.append(Verdict(choice, 0.5))
            else:
                choice = 0 if s[0] > s[1] else 1
                out.append(Verdict(choice, 1.0 - choice))
        return out


class ModelJudge:
    """A local model as the judge: P(A) from the log-probabilities of the replies "A" and "B"."""

    def __init__(self, lm, batch_size: int = 8, name: str | None = None):
        self.lm, self.batch_size = lm, batch_size
        self.name = name or lm.name

    def p_a(self, views: Sequence[JudgeView]) -> list[float]:
        from superalign.models.generation import first_token_logprobs

        prompts = [judge_messages(v) for v in views]
        if not prompts:
            return []
        logp = first_token_logprobs(self.lm, prompts, ["A", "B"], batch_size=self.batch_size)  # [n, 2]
        return [1.0 / (1.0 + math.exp(float(b - a))) for a, b in logp.tolist()]

    def judge_many(self, qids: Sequence[str], views: Sequence[JudgeView]) -> list[Verdict]:
        return [Verdict(0 if p >= 0.5 else 1, p) for p in self.p_a(views)]


class ChatJudge:
    """Any chat role as the judge; its reply must name A or B (retried, then recorded as a failure)."""

    def __init__(self, role: ChatModel, tries: int = 3):
        self.role, self.tries = role, tries
        self.name = role.name

    def judge_many(self, qids: Sequence[str], views: Sequence[JudgeView]) -> list[Verdict]:
        out = []
        for view in views:
            reply = ask(self.role, judge_messages(view), parse_verdict, tries=self.tries, max_new_tokens=16)
            out.append(Verdict(reply.value, None, reply.error or None, reply.raw))
        return out


# -- debaters --------------------------------------------------------------------------------------------


class ModelDebater:
    """The model arguing: greedy when ``best_of`` is 1, else ``best_of`` sampled arguments of which the one the
    ``selector`` judge finds most convincing for the debater's side is kept (Khan et al. 2024's best-of-n)."""

    def __init__(self, lm, best_of: int = 1, selector: ModelJudge | None = None, max_new_tokens: int = 48,
                 temperature: float = 1.0, batch_size: int = 16, seed: int = 0):
        if best_of > 1 and selector is None:
            raise ValueError("best-of-n needs a selector judge")
        self.lm, self.best_of, self.selector = lm, best_of, selector
        self.max_new_tokens, self.temperature, self.batch_size, self.seed = max_new_tokens, temperature, batch_size, seed
        self.model = lm.name
        self.name = f"{lm.name} bo{best_of}"
        self._calls = 0

    def argue(self, requests: Sequence[Request]) -> list[tuple[str, str | None]]:
        from superalign.debate.prompts import checked_quotes, judge_view
        from superalign.models.generation import GenerationConfig, generate

        prompts = [debater_messages(r.question, r.side, r.turns, r.protocol) for r in requests]
        if self.best_of == 1:
            config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False, temperature=0.0,
                                      batch_size=self.batch_size)
            return [(t, None) for t in generate(self.lm, prompts, config)]
        self._calls += 1
        config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=True, temperature=self.temperature,
                                  batch_size=self.batch_size, seed=stable_seed("debater", self.seed, self._calls))
        n = self.best_of
        texts = generate(self.lm, [p for p in prompts for _ in range(n)], config)  # request i: texts[i*n:(i+1)*n]
        views = []
        for i, r in enumerate(requests):
            for text in texts[i * n:(i + 1) * n]:
                turn = {"side": r.side, "text": text, "quotes": checked_quotes(r.question, text)}
                views.append(judge_view(r.question, [*r.turns, turn], r.protocol))
        p_a = self.selector.p_a(views)
        out = []
        for i, r in enumerate(requests):
            scores = [p if r.side == 0 else 1.0 - p for p in p_a[i * n:(i + 1) * n]]
            out.append((texts[i * n + max(range(n), key=scores.__getitem__)], None))
        return out


class OracleDebater:
    """Quotes the passage's best sentence for its side: the one stating the asked fact when its side is right,
    else the planted distractor that names the asked person with its (wrong) answer. The skilled end of the
    scale, and a scripted role for tests."""

    name = model = "oracle"

    def argue(self, requests: Sequence[Request]) -> list[tuple[str, str | None]]:
        out = []
        for r in requests:
            q, answer = r.question, r.question.answers[r.side]
            best = None
            for (s, e), fact in zip(q.sentences, q.facts):
                if fact is None or fact.subject != q.subject or fact.obj != answer:
                    continue
                if best is None or fact.relation == q.relation:
                    best = q.passage[s:e]
            quote = f" The passage says: <quote>{best}</quote>" if best else ""
            out.append((f"The answer is {answer}.{quote}", None))
        return out


class ChatDebater:
    """Any chat role arguing; a call that keeps failing gives a turn with ``error`` set."""

    def __init__(self, role: ChatModel, max_new_tokens: int = 128, tries: int = 3):
        self.role, self.max_new_tokens, self.tries = role, max_new_tokens, tries
        self.name = self.model = role.name

    def argue(self, requests: Sequence[Request]) -> list[tuple[str, str | None]]:
        out = []
        for r in requests:
            reply = ask(self.role, debater_messages(r.question, r.side, r.turns, r.protocol), tries=self.tries,
                        max_new_tokens=self.max_new_tokens, temperature=0.0)
            out.append((reply.raw if reply.ok else "", reply.error or None))
        return out


__all__ = ["ChatDebater", "ChatJudge", "ModelDebater", "ModelJudge", "OracleDebater", "Request", "SimulatedJudge",
           "Verdict"]
