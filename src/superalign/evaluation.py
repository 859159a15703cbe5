"""Answer world tasks with a model and score the answers against gold: shared by every stage.

The technique under test only ever sees ``Task.messages``; the gold evaluator scores what it wrote.
"""

from __future__ import annotations

from superalign.progress import NullProgress, Progress
from superalign.records import Evaluation


def evaluate_greedy(lm, tasks: list, evaluator, *, stage: str, max_new_tokens: int, batch_size: int = 8,
                    progress: Progress | None = None, label: str | None = None) -> list[Evaluation]:
    """Greedy answers to ``tasks`` (all of one kind), each scored by ``evaluator`` into an Evaluation.

    ``label`` names the policy in the records (e.g. ``"smollm2-135m-instruct+dpo"``); default ``lm.name``.
    """
    from superalign.models.generation import greedy

    if not tasks:
        return []
    label = label or lm.name
    advance = (progress or NullProgress()).task(f"{stage}: {tasks[0].kind} ({label})", len(tasks))
    responses = greedy(lm, [t.messages for t in tasks], max_new_tokens=max_new_tokens, batch_size=batch_size,
                       progress=advance)
    return score_responses(tasks, responses, evaluator, stage=stage, label=label)


def score_responses(tasks: list, responses: list[str], evaluator, *, stage: str, label: str) -> list[Evaluation]:
    """Score given responses (one per task) against gold, as Evaluation records."""
    out = []
    for task, response in zip(tasks, responses, strict=True):
        score = evaluator.score(task, response)
        out.append(Evaluation(stage=stage, model=label, task_id=task.id, kind=task.kind, category=task.category,
                              prompt=list(task.messages), response=response, gold=score.gold,
                              passed=score.passed, details=score.details))
    return out
