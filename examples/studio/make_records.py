"""Readable records to try the feedback studio on, made from the task world: no model, a few seconds.

    python examples/studio/make_records.py > examples/studio/records.jsonl

Two responses per prompt of World(0)'s train split, composed from templates (``world.responses``): an
instruction response that satisfies every constraint and one that breaks one or two; a policy reply that
complies and one that violates; a right and a wrong answer to a fact question. Each is scored by the world's
gold evaluator and written as an ``Evaluation`` record, which ``superalign studio campaign create --from``
turns into items of any task, with known answers for gold items: the pair's higher gold reward (pairwise),
the gold reward on the scale (rating), whether the response failed its check (flaw).

Deterministic: the shipped ``records.jsonl`` is this script's output (a test checks that).
"""

from __future__ import annotations

import random
import sys

from superalign.records import Evaluation
from superalign.world import World
from superalign.world import responses as R

N_INSTRUCTION, N_FACT, N_POLICY = 12, 8, 8


def _instruction(case, rng: random.Random) -> list[str]:
    k = len(case.instructions)
    broken = [False] * k
    for i in rng.sample(range(k), min(k, rng.choice((1, 2)))):
        broken[i] = True
    return [R.instruction_response(case, [True] * k, rng), R.instruction_response(case, [not b for b in broken], rng)]


def _fact(question, rng: random.Random) -> list[str]:
    if question.numeric:
        wrong = str(int(float(question.answer)) + rng.choice((-3, -2, 2, 3)))
    else:
        wrong = question.options[0][0] if question.options else "I am not sure"
    return [f"The answer is {question.answer}.", f"I believe it is {wrong}."]


def records(seed: int = 0) -> list[Evaluation]:
    world = World(seed)
    evaluator = world.evaluator()
    out = []
    for kind, n in (("instruction", N_INSTRUCTION), ("fact", N_FACT), ("policy", N_POLICY)):
        tasks = []
        for task in world.tasks(kind, None, "train"):
            case = evaluator._truth[task.id][1]  # noqa: SLF001 - an example builder, on the world's side of the wall
            if kind == "instruction" and any(i.type_id == "length:words" and i.kwargs["relation"] == "at least"
                                             for i in case.instructions):
                continue  # "at least 80 words": long to read, nothing new to judge
            tasks.append((task, case))
            if len(tasks) == n:
                break
        for task, case in tasks:
            rng = random.Random(f"studio-example-{seed}-{task.id}")
            if kind == "instruction":
                texts = _instruction(case, rng)
            elif kind == "fact":
                texts = _fact(case, rng)
            else:
                texts = [R.policy_response(case, False, rng), R.policy_response(case, True, rng)]
            with evaluator.reading("example"):
                scores = [evaluator.score(task, text) for text in texts]
            out += [Evaluation(stage="example", model="world:composed", task_id=task.id, kind=kind,
                               category=task.category, prompt=task.messages, response=text, gold=score.gold,
                               passed=score.passed) for text, score in zip(texts, scores)]
    return out


if __name__ == "__main__":
    for record in records():
        sys.stdout.write(record.model_dump_json() + "\n")
