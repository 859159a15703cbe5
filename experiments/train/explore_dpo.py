"""The exploration behind the quick profile's train settings (README, stage "train"), reproducible.

    python experiments/train/explore_dpo.py sample            # 128 train prompts x 4 samples at T=0.7 + greedy start
    python experiments/train/explore_dpo.py dpo all 2         # DPO on every non-tie comparison, 2 epochs
    python experiments/train/explore_dpo.py dpo best_vs_worst 3
    python experiments/train/explore_dpo.py rm [BACKBONE LR]  # reward model (default MiniLM), held-out-prompt accuracy;
                                                         # saved under rm_BACKBONE_LR
    python experiments/train/explore_dpo.py rloo 16 8 0.7 2e-4 0.1 [RM_DIR]
                    # RLOO (STEPS PROMPTS_PER_STEP TEMPERATURE LR KL_COEF) against the stage's reward model,
                    # gold on the 96 dev prompts 4 times (about 30 min)
    python experiments/train/explore_dpo.py rm_bvw [SIZE MODE]  # the stage's 80% split, best-vs-worst pairs, 6 epochs
                    # (an ensemble of SIZE combined by MODE); accuracy on the 54 pairs of the other 20%
    python experiments/train/explore_dpo.py probe RM_DIR  # best-of-4 pick's gold gain on trained vs unseen prompts
    python experiments/train/explore_dpo.py online_dpo 8 32 RM_DIR [labeler [EPOCHS [BETA [LR]]]]
                    # online DPO, ROUNDS PROMPTS_PER_ROUND (1 DPO pass per round unless EPOCHS);
                    # "labeler": the simulated labeler picks each round's pairs instead of the reward model

Selection never sees the test prompts the stage reports on: every gain here is measured on a dev set, the
last 96 prompts of World(0)'s validation split (the stage's over-optimization curve uses the first
``eval.n_curve`` <= 104 of them), and the test split is removed before anything runs. World seeds 0 and 1 were
used for tuning; the train page reports its headline on seeds 2-4, never looked at while tuning. (Until
2026-11-27 this script measured on the test prompts; the quick profile's DPO settings were chosen that way.)

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
from superalign.rlhf.feedback import (
    FeedbackConfig,
    best_vs_worst,
    collect_preferences,
    sample_responses,
    split_by_prompt,
    usable,
)
from superalign.rlhf.online_dpo import OnlineDPOConfig, train_online_dpo
from superalign.rlhf.reward_model import (
    RewardModelConfig,
    load_reward_model,
    preference_accuracy,
    train_reward_model,
)
from superalign.rlhf.rloo import RLOOConfig, train_rloo
from superalign.stats import bootstrap_ci
from superalign.world import World
from superalign.world.labelers import LabelerConfig, SimulatedLabeler

OUT = Path(os.environ.get("SUPERALIGN_EXPLORE_DIR", "runs/explore_dpo"))
N_PROMPTS, K, TEMPERATURE, MAX_NEW = 128, 4, 0.7, 96
N_TEST = 96
MODEL = "smollm2-135m-instruct"


def setup():
    """The evaluator, the stage's task splits with ``dev`` in place of ``test``, and the held-out types."""
    world = World(0)
    config = Config()
    tasks = split_tasks(world, config.heldout_types, config)
    tasks.pop("test")  # selection on the reported prompts biases the headline: a KeyError, not a habit
    tasks["dev"] = world.tasks("instruction", None, split="validation")[-N_TEST:]
    return world.evaluator(), tasks, config.heldout_types


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
               "start_gold": _gold(lm, evaluator, tasks["dev"]).tolist()},
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
    gain = _gold(policy, evaluator, tasks["dev"]) - gold0
    held = np.array([any(h in t.category.split("+") for h in heldout_types) for t in tasks["dev"]])
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


def stage_rm_bvw(size: int = 1, mode: str = "worst") -> dict:
    """The quick profile's reward model on the cached samples: best-vs-worst pairs of the stage's 80% split."""
    evaluator, tasks, _ = setup()
    prefs, _ = preferences(evaluator, tasks)
    splits = split_by_prompt(prefs, seed=0)
    path = OUT / ("rm_bvw" if size == 1 else f"rm_bvw_{mode}{size}")
    config = RewardModelConfig(backbone="minilm-l6", epochs=6, max_length=256, pairs="best_vs_worst",
                               ensemble_size=size, ensemble_mode=mode)
    train_reward_model(splits.train, splits.validation, config).model.save(path)
    held = usable(splits.validation) + usable(splits.test)
    return {"rm": str(path), "held_out_pairs": len(held), "accuracy": preference_accuracy(load_reward_model(path), held)}


def probe(rm_dir: str) -> list[dict]:
    """How much gold the reward model's pick among each prompt's 4 cached samples adds over a random one,
    on prompts it trained on and on unseen ones (vs the oracle's pick)."""
    evaluator, tasks, _ = setup()
    prefs, _ = preferences(evaluator, tasks)
    trained = {p.task_id for p in split_by_prompt(prefs, seed=0).train}
    rm, by_id = load_reward_model(rm_dir), {t.id: t for t in tasks["train"]}
    cached = json.load(open(OUT / "samples.json"))
    rows = {True: [], False: []}
    for tid, rs in zip(cached["ids"], cached["responses"]):
        scores = np.asarray(rm.score([by_id[tid].messages] * len(rs), rs), dtype=float)
        gold = np.array([evaluator.score(by_id[tid], r).gold for r in rs])
        rows[tid in trained].append((gold[scores.argmax()] - gold.mean(), gold.max() - gold.mean()))
    return [{"trained_prompts": seen, "n": len(r), "pick_gain": float(np.mean([a for a, _ in r])),
             "oracle_gain": float(np.mean([b for _, b in r]))} for seen, r in rows.items()]


def _dev_curve(evaluator, tasks, policy):
    """An eval hook: greedy gold gain on the dev prompts (never the test set)."""
    dev = tasks["dev"]
    dev0, curve = _gold(policy, evaluator, dev), []

    def hook(step, lm):
        if step == 0:  # the policy is the start: the gain is 0 by construction
            return
        ci = bootstrap_ci(_gold(lm, evaluator, dev) - dev0)
        curve.append({"step": step, "dev_gain": [ci.value, ci.low, ci.high]})
        print(json.dumps(curve[-1]), flush=True)

    return hook, curve


def online_dpo(rounds: int, per_round: int, rm_dir: str, judge: str = "reward_model", epochs: int = 1,
               beta: float = 0.1, lr: float = 5e-4) -> dict:
    """Online DPO against a saved reward model (or with the labeler judging each round), dev curve every 4 rounds.

    Logs each round's mean gold of the samples and of the picked pairs (the experimenter reads gold, the
    method does not), to tell a sampled distribution that improves from greedy answers that do."""
    evaluator, tasks, _ = setup()
    _, gold0 = preferences(evaluator, tasks)
    policy = make_trainable(load(MODEL), AdapterConfig())
    hook, curve = _dev_curve(evaluator, tasks, policy)
    train = tasks["train"][:N_PROMPTS]
    labeler = SimulatedLabeler(LabelerConfig(temperature=0.1, tie_margin=0.05), evaluator)  # as `preferences`
    rounds_gold = []

    def pick(idx, replies):
        pairs = best_vs_worst(collect_preferences([train[i] for i in idx], replies, labeler))
        task = {t.id: t for t in train}
        margin = [evaluator.score(task[p.task_id], p.chosen).gold - evaluator.score(task[p.task_id], p.rejected).gold
                  for p in pairs]
        rounds_gold.append({"sample_gold": float(np.mean([evaluator.score(train[i], r).gold
                                                           for i, rs in zip(idx, replies) for r in rs])),
                            "pair_gold_margin": float(np.mean(margin)) if margin else None})
        print(json.dumps(rounds_gold[-1]), flush=True)
        return pairs

    config = OnlineDPOConfig(rounds=rounds, prompts_per_round=per_round, k=K, max_new_tokens=MAX_NEW, judge=judge,
                             epochs=epochs, beta=beta, lr=lr)
    result = train_online_dpo(policy, [t.messages for t in train], load_reward_model(rm_dir), config,
                              pick=pick if judge == "labeler" else None, eval_hook=hook, eval_every=4)
    ci = bootstrap_ci(_gold(policy, evaluator, tasks["dev"]) - gold0)
    return {"method": "online_dpo", "rounds": rounds, "per_round": per_round, "rm": rm_dir, "judge": judge,
            "epochs": epochs, "beta": beta, "lr": lr, "gain": [ci.value, ci.low, ci.high], "dev_curve": curve,
            "rounds_gold": rounds_gold, "history": result.history}


def rloo(steps: int, per_step: int, temperature: float, lr: float, kl_coef: float, rm_dir: str | None = None) -> dict:
    """RLOO against the stage's reward model (or one saved by `rm`), with the dev curve 4 times, so the number
    of steps can be chosen without the test prompts."""
    evaluator, tasks, heldout_types = setup()
    _, gold0 = preferences(evaluator, tasks)
    rm = load_reward_model(rm_dir) if rm_dir else stage_reward_model(evaluator, tasks)
    policy = make_trainable(load(MODEL), AdapterConfig())
    prompts = [t.messages for t in tasks["train"][:N_PROMPTS]]
    hook, curve = _dev_curve(evaluator, tasks, policy)
    config = RLOOConfig(steps=steps, prompts_per_step=per_step, k=K, lr=lr, temperature=temperature,
                        kl_coef=kl_coef)
    result = train_rloo(policy, prompts, rm, config, eval_hook=hook, eval_every=max(4, steps // 4))
    ci = bootstrap_ci(_gold(policy, evaluator, tasks["dev"]) - gold0)
    return {"method": "rloo", "steps": steps, "per_step": per_step, "temperature": temperature, "lr": lr,
            "kl_coef": kl_coef, "gain": [ci.value, ci.low, ci.high], "dev_curve": curve,
            "history": [{k: h[k] for k in ("step", "proxy", "kl")} for h in result.history],
            "start_gold": float(gold0.mean())}


COMMANDS = {
    "dpo": lambda a: dpo(a[0], int(a[1])),
    "rm": lambda a: reward_model(*(a[:1] or ["minilm-l6"]), float(a[1]) if len(a) > 1 else 5e-5),
    "rloo": lambda a: rloo(int(a[0]), int(a[1]), *map(float, a[2:5]), *a[5:6]),
    "rm_bvw": lambda a: stage_rm_bvw(int(a[0]), a[1]) if a else stage_rm_bvw(),
    "probe": lambda a: probe(a[0]),
    "online_dpo": lambda a: online_dpo(int(a[0]), int(a[1]), *a[2:4], *map(int, a[4:5]), *map(float, a[5:7])),
}

if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "sample":
        sample()
    elif command in COMMANDS:
        out = COMMANDS[command](sys.argv[2:])
        print(json.dumps(out))
        with open(OUT / "results.jsonl", "a") as f:
            f.write(json.dumps(out) + "\n")
    else:
        sys.exit(__doc__)
