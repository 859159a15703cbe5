"""The exploration behind the quick profile's train settings (README, stage "train"), reproducible.

    python recipes/rlhf/explore_dpo.py sample            # 128 train prompts x 4 samples at T=0.7 + greedy start
    python recipes/rlhf/explore_dpo.py dpo all 2         # DPO on every non-tie comparison, 2 epochs
    python recipes/rlhf/explore_dpo.py dpo best_vs_worst 3
    python recipes/rlhf/explore_dpo.py rm [BACKBONE LR]  # reward model (default MiniLM), held-out-prompt accuracy;
                                                         # saved under rm_BACKBONE_LR
    python recipes/rlhf/explore_dpo.py rloo 16 8 0.7 2e-4 0.1 [RM_DIR]
                    # RLOO (STEPS PROMPTS_PER_STEP TEMPERATURE LR KL_COEF) against the stage's reward model,
                    # gold on 96 unused train prompts 4 times (about 30 min)

Uses the stage's own pieces (sample_responses, SimulatedLabeler, train_dpo, greedy, bootstrap_ci) on cached
samples, so variants cost a training run each instead of a full stage. Unlike the stage, DPO here trains on
all 128 prompts' comparisons (the stage keeps 20% of prompts for the reward model's held-out accuracy).
Writes JSON under ``$SUPERALIGN_EXPLORE_DIR`` (default ``runs/explore_dpo``). About an hour on a quiet
2-core CPU for the first four commands.
"""

import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np

from superalign.models import greedy, load
from superalign.rlhf import Config, split_tasks
from superalign.rlhf.common import AdapterConfig, make_trainable
from superalign.rlhf.dpo import DPOConfig, train_dpo
from superalign.rlhf.feedback import FeedbackConfig, best_vs_worst, sample_responses, split_by_prompt, usable
from superalign.rlhf.reward_model import RewardModelConfig, load_reward_model, train_reward_model
from superalign.rlhf.rloo import RLOOConfig, train_rloo
from superalign.stats import bootstrap_ci
from superalign.world import World
from superalign.world.labelers import LabelerConfig, SimulatedLabeler

OUT = Path(os.environ.get("SUPERALIGN_EXPLORE_DIR", "runs/explore_dpo"))
N_PROMPTS, K, TEMPERATURE, MAX_NEW = 128, 4, 0.7, 96
N_TEST = 96
MODEL = "smollm2-135m-instruct"


def setup():
    world = World(0)
    config = Config()
    config.eval.n_instruction = N_TEST
    return world.evaluator(), split_tasks(world, config.heldout_types, config), config.heldout_types


def _gold(lm, evaluator, tasks) -> np.ndarray:
    answers = greedy(lm, [t.messages for t in tasks], max_new_tokens=128, batch_size=16)
    return np.array([evaluator.score(t, r).gold for t, r in zip(tasks, answers)])


def sample() -> None:
    evaluator, tasks, _ = setup()
    lm = load(MODEL)
    train = tasks["train"][:N_PROMPTS]
    responses = sample_responses(lm, train, K, FeedbackConfig(temperature=TEMPERATURE, max_new_tokens=MAX_NEW,
                                                              batch_size=16))
    OUT.mkdir(parents=True, exist_ok=True)
    json.dump({"ids": [t.id for t in train], "responses": responses,
               "start_gold": _gold(lm, evaluator, tasks["test"]).tolist()},
              open(OUT / "samples.json", "w"))


def preferences(evaluator, tasks) -> tuple[list, np.ndarray]:
    cached = json.load(open(OUT / "samples.json"))
    by_id = {t.id: t for t in tasks["train"]}
    labeler = SimulatedLabeler(LabelerConfig(temperature=0.1, tie_margin=0.05), evaluator)
    return [labeler.prefer(by_id[tid], a, b) for tid, rs in zip(cached["ids"], cached["responses"])
            for a, b in itertools.combinations(rs, 2) if a != b], np.array(cached["start_gold"])


def dpo(pairs: str, epochs: int) -> dict:
    evaluator, tasks, heldout_types = setup()
    prefs, gold0 = preferences(evaluator, tasks)
    train = best_vs_worst(prefs) if pairs == "best_vs_worst" else usable(prefs)
    policy = make_trainable(load(MODEL), AdapterConfig())
    result = train_dpo(policy, train, DPOConfig(lr=5e-4, beta=0.1, epochs=epochs))
    gain = _gold(policy, evaluator, tasks["test"]) - gold0
    held = np.array([any(h in t.category.split("+") for h in heldout_types) for t in tasks["test"]])
    ci, ci_held = bootstrap_ci(gain), bootstrap_ci(gain[held])
    return {"pairs": pairs, "epochs": epochs, "n_pairs": len(train), "steps": result.steps,
            "start_gold": float(gold0.mean()), "gain": [ci.value, ci.low, ci.high],
            "gain_heldout_types": [ci_held.value, ci_held.low, ci_held.high, int(held.sum())]}


def reward_model(backbone: str, lr: float) -> dict:
    evaluator, tasks, _ = setup()
    prefs, _ = preferences(evaluator, tasks)
    splits = split_by_prompt(prefs, fractions=(0.7, 0.1, 0.2), seed=0)
    config = RewardModelConfig(backbone=backbone, epochs=3, lr=lr, max_length=256)
    rm = train_reward_model(splits.train, splits.validation, config).model
    rm.save(OUT / f"rm_{backbone}_{lr:g}")  # for `rloo ... RM_DIR`
    test = usable(splits.test)
    chosen = np.array(rm.score([p.prompt for p in test], [p.chosen for p in test]))
    rejected = np.array(rm.score([p.prompt for p in test], [p.rejected for p in test]))
    ci = bootstrap_ci((chosen > rejected).astype(float))
    return {"backbone": backbone, "lr": lr, "train_pairs": len(usable(splits.train)), "test_pairs": len(test),
            "accuracy": [ci.value, ci.low, ci.high]}


def stage_reward_model(evaluator, tasks):
    """The stage's reward model (80/10/10 prompt split, MiniLM), trained once and cached."""
    path = OUT / "stage_rm"
    if not path.exists():
        prefs, _ = preferences(evaluator, tasks)
        splits = split_by_prompt(prefs, seed=0)
        train_reward_model(splits.train, splits.validation, RewardModelConfig(backbone="minilm-l6", epochs=3,
                                                                               max_length=256)).model.save(path)
    return load_reward_model(path)


def rloo(steps: int, per_step: int, temperature: float, lr: float, kl_coef: float, rm_dir: str | None = None) -> dict:
    """RLOO against the stage's reward model (or one saved by `rm`); greedy gold on 96 unused train prompts (a
    dev set, never the test set) every 4 steps, so the number of steps can be chosen without the test prompts."""
    evaluator, tasks, heldout_types = setup()
    _, gold0 = preferences(evaluator, tasks)
    rm = load_reward_model(rm_dir) if rm_dir else stage_reward_model(evaluator, tasks)
    policy = make_trainable(load(MODEL), AdapterConfig())
    prompts = [t.messages for t in tasks["train"][:N_PROMPTS]]
    dev = tasks["train"][N_PROMPTS:N_PROMPTS + N_TEST]
    dev0 = _gold(policy, evaluator, dev)
    curve = []

    def hook(step, lm):
        ci = bootstrap_ci(_gold(lm, evaluator, dev) - dev0)
        curve.append({"step": step, "dev_gain": [ci.value, ci.low, ci.high]})
        print(json.dumps(curve[-1]), flush=True)

    config = RLOOConfig(steps=steps, prompts_per_step=per_step, k=K, lr=lr, temperature=temperature,
                        kl_coef=kl_coef)
    result = train_rloo(policy, prompts, rm, config, eval_hook=hook, eval_every=max(4, steps // 4))
    ci = bootstrap_ci(_gold(policy, evaluator, tasks["test"]) - gold0)
    return {"method": "rloo", "steps": steps, "per_step": per_step, "temperature": temperature, "lr": lr,
            "kl_coef": kl_coef, "gain": [ci.value, ci.low, ci.high], "dev_curve": curve,
            "history": [{k: h[k] for k in ("step", "proxy", "kl")} for h in result.history],
            "start_gold": float(gold0.mean())}


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "sample":
        sample()
    elif command in ("dpo", "rm"):
        out = (dpo(sys.argv[2], int(sys.argv[3])) if command == "dpo" else
               reward_model(*(sys.argv[2:3] or ["minilm-l6"]), float(sys.argv[3]) if len(sys.argv) > 3 else 5e-5))
        print(json.dumps(out))
        with open(OUT / "results.jsonl", "a") as f:
            f.write(json.dumps(out) + "\n")
    elif command == "rloo":
        out = rloo(int(sys.argv[2]), int(sys.argv[3]), *map(float, sys.argv[4:7]), *sys.argv[7:8])
        print(json.dumps(out))
        with open(OUT / "results.jsonl", "a") as f:
            f.write(json.dumps(out) + "\n")
    else:
        sys.exit(__doc__)
