"""The agent's process: the research loop, under the sandbox, talking to the evaluation server over HTTP.

    python -m superalign.researcher.agent SPEC.json

The harness (:func:`superalign.researcher.run`) starts it after the server; it installs the sandbox before any
idea is proposed, so neither the proposer nor the experiments it runs can open the server's label files.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from superalign.records import ResearchStep, read_jsonl, write_jsonl
from superalign.researcher.experiment import Setup, evaluate
from superalign.researcher.space import Param, baseline, check_idea, tidy
from superalign.stats import finite_or_none

OBJECTIVE = "PGR of test accuracy over the tasks together, mean over the search seeds"


def research_loop(setup: Setup, proposer, space: list[Param], seeds: list[int], trials: int, minutes: float,
                  steps_path: Path, log: Callable[[str], None] = print) -> list[ResearchStep]:
    """Step 0 runs the unchanged config; then up to ``trials`` ideas, until ``minutes`` are spent. Each step is
    appended to ``steps_path`` as it finishes, and a restarted loop goes on from the steps already there."""
    from superalign.stats import mean_ci_over_seeds

    history = read_jsonl(steps_path, ResearchStep) if steps_path.is_file() else []
    spent = sum(s.seconds for s in history)
    while len(history) <= trials and spent < minutes * 60:
        step = len(history)
        idea, why = (baseline(space), "the unchanged config") if step == 0 else proposer.propose(space, history)
        idea = check_idea(space, tidy(idea))
        log(f"step {step}: {json.dumps(idea, sort_keys=True)} ({why})")
        scores, seconds, error = evaluate(setup, idea, seeds)
        values = [v for v in scores.values() if v is not None]
        ci = mean_ci_over_seeds(values) if len(values) == len(seeds) else None
        best = max((s.value for s in history if s.value is not None), default=None)
        value = ci.value if ci else None
        record = ResearchStep(step=step, proposer="baseline" if step == 0 else proposer.name, idea=idea,
                              rationale=why, objective=OBJECTIVE, value=value, ci_low=finite_or_none(ci.low if ci else None),
                              ci_high=finite_or_none(ci.high if ci else None),
                              per_seed={str(s): v for s, v in scores.items() if v is not None},
                              kept=value is not None and (best is None or value > best), seconds=round(seconds, 1),
                              error=error or (None if ci else "the weak-strong gap is too small on some seed"))
        write_jsonl(steps_path, [record], append=True)
        history.append(record)
        spent += seconds
        log(f"step {step}: {'failed' if value is None else f'{value:.3f}'}{' (kept)' if record.kept else ''}")
    return history


def main(argv: list[str] | None = None) -> int:
    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text(encoding="utf-8"))
    # Native libraries load their files now, before the sandbox refuses anything (torch uses ctypes at import).
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from superalign.eval_server.sandbox import install

    install(spec["forbidden"], spec["sandbox_report"])
    from superalign.context import chat_role
    from superalign.researcher.proposers import make_proposer

    setup = Setup(**spec["setup"])
    role = chat_role(spec["proposer_role"], spec.get("proposer_model"), setup.device, "--proposer-role") \
        if spec["proposer"] == "chat" else None
    proposer = make_proposer(spec["proposer"], spec["seed"], role, len(spec["seeds"]))
    research_loop(setup, proposer, [Param(**p) for p in spec["space"]], spec["seeds"], spec["trials"], spec["minutes"],
                  Path(spec["steps"]), log=lambda message: print(message, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
