"""The three protocols, batched over questions: naive, consultancy, debate (simultaneous or sequential).

Turn order, per round: consultancy, the consultant alone; debate, A then B. Simultaneous: both debaters of a
round see the turns of earlier rounds only; sequential: B also sees A's turn of the same round. The
consultant's side is drawn per question (seeded), so half the time it argues for the wrong answer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from superalign.debate.prompts import LETTERS, checked_quotes
from superalign.debate.roles import Request
from superalign.records import DebateTranscript
from superalign.world.passages import DebateQuestion
from superalign.world.text import stable_seed


def consultant_side(question: DebateQuestion, seed: int) -> int:
    return random.Random(stable_seed("consultant", seed, question.id)).randrange(2)


def _speakers(protocol: str, question: DebateQuestion, seed: int) -> list[int]:
    """The sides that speak each round, in order."""
    if protocol == "naive":
        return []
    if protocol == "consultancy":
        return [consultant_side(question, seed)]
    return [0, 1]


def run_protocol(protocol: str, questions: Sequence[DebateQuestion], debater, rounds: int = 2,
                 order: str = "simultaneous", seed: int = 0, setup: str | None = None) -> list[DebateTranscript]:
    """Every question argued under ``protocol`` by ``debater`` (both sides of a debate: self-play)."""
    turns: dict[str, list[dict]] = {q.id: [] for q in questions}
    setup = setup or getattr(debater, "name", "none")
    for r in range(1, rounds + 1 if protocol != "naive" else 1):
        before = {qid: list(t) for qid, t in turns.items()}  # what a simultaneous turn may see
        for position in range(2):
            asked = [(q, _speakers(protocol, q, seed)[position]) for q in questions
                     if position < len(_speakers(protocol, q, seed))]
            if not asked:
                continue
            seen = before if order == "simultaneous" else turns
            requests = [Request(q, side, list(seen[q.id]), protocol) for q, side in asked]
            for (q, side), (text, error) in zip(asked, debater.argue(requests)):
                turns[q.id].append({"round": r, "speaker": "consultant" if protocol == "consultancy" else LETTERS[side],
                                    "side": side, "model": getattr(debater, "model", debater.name), "text": text,
                                    "quotes": checked_quotes(q, text) if not error else [], "error": error})
    return [DebateTranscript(id=f"{q.id}:{protocol}:{setup}", question_id=q.id, protocol=protocol, setup=setup,
                             question=q.question, answers=list(q.answers), correct=q.correct, turns=turns[q.id],
                             consultant_side=consultant_side(q, seed) if protocol == "consultancy" else None)
            for q in questions]


__all__ = ["consultant_side", "run_protocol"]
