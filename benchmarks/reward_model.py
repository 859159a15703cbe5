"""Benchmark: one reward-model training step, ours vs TRL 1.16's RewardTrainer (default config), same data.

Run by hand:  python benchmarks/reward_model.py [--quick] [--steps 3]

Backbone SmolLM2-135M with a scalar head (TRL: AutoModelForSequenceClassification, num_labels=1), 8
preference pairs per optimizer step (TRL's default per-device batch), ~1,000 real tokens per step.
Each trainer runs in its own child process so that its peak RSS is its own. Reported per trainer:
seconds per step, real (non-padding) tokens/s, the ratio to TRL, model FLOP/s as a fraction of this
machine's bf16 matmul rate (measured here with a large torch.matmul) and peak RSS. Writes
benchmarks/results/reward_model.json.

Model FLOPs per token: 6N for full fine-tuning (forward 2N, backward 4N), 4N with frozen base weights
(LoRA: no weight gradients), N = parameters without the embedding (Kaplan et al. 2020, §2.1).
Gradient checkpointing (TRL's default) recomputes the forward; that work is not counted as useful.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hardware import matmul_gflops, peak_rss_mb

MODEL = "smollm2-135m-instruct"
PAIRS_PER_STEP = 8  # TRL's default per_device_train_batch_size
RESULTS = Path(__file__).resolve().parent / "results" / "reward_model.json"
FILLER = ("The answer is short and clear . It follows every rule of the prompt and says nothing more than "
          "it needs to , in plain words that anyone can read quickly .").split()


def make_pairs(n: int):
    """n preference pairs on world instruction prompts; responses sized for ~1,000 tokens per 8 pairs."""
    from superalign.records import Preference
    from superalign.world import World

    tasks = World(0).tasks("instruction", n, split="train")
    pairs = []
    for i, task in enumerate(tasks):
        words_c, words_r = 4 + (i * 7) % 10, 3 + (i * 5) % 10
        chosen = " ".join(FILLER[(i + k) % len(FILLER)] for k in range(words_c))
        rejected = " ".join(FILLER[(3 * i + k) % len(FILLER)] for k in range(words_r))
        pairs.append(Preference(task_id=task.id, prompt=task.messages, chosen=chosen, rejected=rejected,
                                labeler="bench"))
    return pairs


def _non_embedding_params(model: torch.nn.Module) -> int:
    skip = ("embed", "lm_head", "score", "head", "lora_")  # LoRA's own FLOPs are ~5% here: not counted
    return sum(p.numel() for n, p in model.named_parameters() if not any(s in n for s in skip))


# ---------------------------------------------------------------------------------------------------
# Workers (each in its own process)


def worker_ours(train: str, n_pairs: int, steps: int) -> dict:
    from superalign.models import load
    from superalign.models.generation import default_autocast
    from superalign.rlhf.reward_model import RewardModelConfig, _pair_batches, build_reward_model, pair_loss

    import random

    prefs = make_pairs(n_pairs)
    config = RewardModelConfig(backbone=MODEL, train=train, batch_size=PAIRS_PER_STEP)
    rm = build_reward_model(load(MODEL), config)
    chosen = rm.encode([p.prompt for p in prefs], [p.chosen for p in prefs])
    rejected = rm.encode([p.prompt for p in prefs], [p.rejected for p in prefs])
    params = [p for p in rm.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    autocast = default_autocast(rm.backbone, "train")
    lengths = [max(len(c), len(r)) for c, r in zip(chosen, rejected)]
    batches = _pair_batches(lengths, PAIRS_PER_STEP, random.Random(0))
    rm.eval()
    times, tokens, losses = [], [], []
    for step in range(steps + 1):  # step 0 warms up (allocations, first-call overheads)
        idx = batches[step % len(batches)]
        start = time.perf_counter()
        out = pair_loss(rm, [chosen[i] for i in idx], [rejected[i] for i in idx], autocast)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step > 0:
            times.append(time.perf_counter() - start)
            tokens.append(out.tokens)
            losses.append(out.loss.item())
    return {"seconds_per_step": sum(times) / len(times), "tokens_per_step": sum(tokens) / len(tokens),
            "tokens_per_s": sum(tokens) / sum(times), "losses": losses,
            "n_params": _non_embedding_params(rm.backbone), "full": train == "full", "peak_rss_mb": peak_rss_mb()}


def worker_trl(n_pairs: int, steps: int) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from superalign.models.sources import model_dir

    path = model_dir(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    prefs = make_pairs(n_pairs)
    data = Dataset.from_list([{"prompt": p.prompt, "chosen": [{"role": "assistant", "content": p.chosen}],
                               "rejected": [{"role": "assistant", "content": p.rejected}]} for p in prefs])
    seen_tokens: list[int] = []
    collator = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)

    def counting_collator(examples):  # the default collator, plus a count of real tokens per step
        batch = collator(examples)
        seen_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    class Clock(TrainerCallback):
        def __init__(self):
            self.begin, self.times, self.losses = 0.0, [], []

        def on_step_begin(self, args, state, control, **kw):
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self.begin)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        # Default config: only run control is set (steps, no saving/reporting, log every step) and use_cpu,
        # which transformers demands on a CPU-only machine for TRL's default bf16=True.
        args = RewardConfig(output_dir=out, max_steps=steps + 1, save_strategy="no", report_to="none",
                            logging_steps=1, disable_tqdm=True, use_cpu=True)
        trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                                data_collator=counting_collator, callbacks=[clock])
        trainer.train()
    times = clock.times[1:]
    # The collator may run ahead of the steps (prefetch): take the batches of the measured steps.
    tokens = seen_tokens[1:steps + 1]
    return {"seconds_per_step": sum(times) / len(times), "tokens_per_step": sum(tokens) / len(tokens),
            "tokens_per_s": sum(tokens) / sum(times), "losses": clock.losses[1:],
            "n_params": _non_embedding_params(model.model), "full": True, "peak_rss_mb": peak_rss_mb(),
            "config": {"per_device_train_batch_size": args.per_device_train_batch_size,
                       "gradient_checkpointing": args.gradient_checkpointing, "bf16": args.bf16,
                       "learning_rate": args.learning_rate}}


def _run_worker(name: str, n_pairs: int, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--pairs", str(n_pairs), "--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 measured step each (a smoke run)")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per trainer (after 1 warm-up)")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--worker", choices=["ours_full", "ours_lora", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    from superalign.models.precision import describe

    print(f"machine: {describe()}", flush=True)  # ISA, native bf16, threads, the precision chosen
    steps = 1 if args.quick else args.steps

    if args.worker:
        if args.worker == "trl":
            result = worker_trl(args.pairs, steps)
        else:
            result = worker_ours(args.worker.removeprefix("ours_"), args.pairs, steps)
        print(json.dumps(result))
        return

    peak = matmul_gflops(torch.bfloat16) * 1e9
    rows = {}
    for name in ("trl", "ours_full", "ours_lora"):
        rows[name] = _run_worker(name, args.pairs, steps)
        print(f"{name}: {rows[name]['seconds_per_step']:.2f} s/step", flush=True)
    peak = max(peak, matmul_gflops(torch.bfloat16) * 1e9)  # measured before and after: on a shared machine, the better one
    trl_rate = rows["trl"]["tokens_per_s"]
    print(f"\nbf16 matmul peak: {peak / 1e9:.0f} GFLOP/s; {PAIRS_PER_STEP} pairs/step; "
          f"threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'trainer':<12}{'s/step':>8}{'tok/step':>10}{'tok/s':>8}{'vs TRL':>8}{'% peak':>8}{'RSS MB':>8}  losses")
    for name, r in rows.items():
        flops_per_token = (6 if r["full"] else 4) * r["n_params"]
        r["ratio_vs_trl"] = r["tokens_per_s"] / trl_rate
        r["fraction_of_bf16_peak"] = r["tokens_per_s"] * flops_per_token / peak
        print(f"{name:<12}{r['seconds_per_step']:>8.2f}{r['tokens_per_step']:>10.0f}{r['tokens_per_s']:>8.0f}"
              f"{r['ratio_vs_trl']:>8.2f}{100 * r['fraction_of_bf16_peak']:>8.1f}{r['peak_rss_mb']:>8.0f}  "
              f"{[round(x, 3) for x in r['losses']]}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"model": MODEL, "pairs_per_step": PAIRS_PER_STEP, "steps": steps,
                                   "bf16_matmul_flops": peak, "threads": torch.get_num_threads(),
                                   "load_average": os.getloadavg(), "trainers": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
