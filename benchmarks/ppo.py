"""Benchmark: RL rollouts, a PPO step and an RLOO step on SmolLM2-135M, side by side with the alternatives.

    python benchmarks/ppo.py [--quick] [--no-trl] [--experiment]

In the same run, on the same prompts (world instruction tasks, train split):
  1. rollout sampling: ours (`generate_ids`, bf16 autocast, per-prompt seeded streams) vs plain
     `model.generate` (HF defaults: fp32, do_sample), batch 16;
  2. one PPO step (8 prompts x <= 64 new tokens, about 1,000 tokens): time and tokens/s; TRL has no PPO;
  3. one RLOO step (4 prompts x k=4 x <= 64 new tokens) vs TRL 1.16 `RLOOTrainer` with its default config
     (bf16, gradient checkpointing, lr 1e-6...) apart from the batch shape, lengths, LoRA and offline
     logging, which are set to match ours;
  4. the machine's bf16 matmul rate (a big torch.matmul), and each step as a fraction of it; peak RSS.
The reward is the world's gold reward (a cheap stand-in for the reward model of the stage).
`--experiment` also runs ~10 PPO and RLOO steps and reports whether the gold reward rises.
Prints a table; writes benchmarks/results/ppo.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from hardware import matmul_gflops, peak_rss_mb

from superalign.models import GenerationConfig, generate_ids, load
from superalign.models.generation import end_of_turn_id, left_pad, prompt_ids
from superalign.rlhf.common import make_trainable
from superalign.rlhf.ppo import PPOConfig, train_ppo
from superalign.rlhf.rloo import RLOOConfig, train_rloo
from superalign.world import World

MODEL = "smollm2-135m-instruct"
RESULTS = Path(__file__).parent / "results" / "ppo.json"


# --- measurement helpers ---------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the next phase's peak is its own; Linux only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def phase_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


class StepTimes:
    """A `Progress` that records when each step finished."""

    def __init__(self):
        self.times: list[float] = []

    def task(self, description: str, total: int):
        self.times.append(time.perf_counter())
        return lambda n=1: self.times.append(time.perf_counter())

    def durations(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:])]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- the workload ------------------------------------------------------------------------------------


def instruction_prompts(n: int) -> tuple[list, list[list[dict]]]:
    tasks = World(0).tasks("instruction", n, split="train")
    return tasks, [t.messages for t in tasks]


def gold_reward(tasks):
    """RewardFn from the world's gold evaluator (matches prompts back to tasks by their messages)."""
    evaluator = World(0).evaluator()
    by_prompt = {json.dumps(t.messages): t for t in tasks}

    def reward(prompts, responses):
        return torch.tensor([evaluator.score(by_prompt[json.dumps(p)], r).gold for p, r in zip(prompts, responses)])

    return reward


def bench_sampling(lm, prompts, new_tokens: int, repeats: int = 2) -> dict:
    """Ours (generate_ids, bf16 autocast) vs HF model.generate (fp32 defaults), same prompts, one batch.

    The two alternate `repeats` times and the best time of each is kept (a shared machine is noisy).
    """
    batch = len(prompts)
    config = GenerationConfig(max_new_tokens=new_tokens, batch_size=batch, seed=0)
    tok = lm.tokenizer
    enc = left_pad([prompt_ids(lm, p) for p in prompts], int(tok.pad_token_id if tok.pad_token_id is not None
                                                               else tok.eos_token_id))
    lm.model.eval()
    generate_ids(lm, prompts[:2], GenerationConfig(max_new_tokens=2, batch_size=2))  # warm-up
    ours_s = hf_s = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        ids = generate_ids(lm, prompts, config)
        ours_s = min(ours_s, time.perf_counter() - start)
        torch.manual_seed(0)
        start = time.perf_counter()
        with torch.no_grad():
            out = lm.model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                    do_sample=True, max_new_tokens=new_tokens, eos_token_id=end_of_turn_id(lm),
                                    pad_token_id=tok.pad_token_id)
        hf_s = min(hf_s, time.perf_counter() - start)
    # Tokens each reply really has, through its end of turn (HF pads a finished row; ours drops it).
    ours_tokens = sum(min(len(x) + 1, new_tokens) for x in ids)
    eot = end_of_turn_id(lm)
    hf_tokens = sum(row.index(eot) + 1 if eot in row else len(row)
                    for row in out[:, enc["input_ids"].shape[1]:].tolist())
    return {"batch": batch, "ours_s": ours_s, "ours_tokens": ours_tokens, "ours_tok_s": ours_tokens / ours_s,
            "hf_s": hf_s, "hf_tokens": hf_tokens, "hf_tok_s": hf_tokens / hf_s}


def bench_ppo(prompts, reward, config: PPOConfig) -> dict:
    reset_peak_rss()
    policy = make_trainable(load(MODEL), config.adapter)
    times = StepTimes()
    result = train_ppo(policy, prompts, reward, config, progress=times)
    steps = times.durations()
    last = result.history[-1]
    return {"step_s": steps[-1], "all_steps_s": steps, "tokens": last["tokens"],
            "response_tokens": last["response_tokens"], "tok_s": last["tokens"] / steps[-1],
            "updates": last["updates"], "peak_rss_mb": phase_peak_mb(), "history": result.history,
            "n_params": n_params(policy.model)}


def bench_rloo(prompts, reward, config: RLOOConfig) -> dict:
    reset_peak_rss()
    policy = make_trainable(load(MODEL), config.adapter)
    times = StepTimes()
    result = train_rloo(policy, prompts, reward, config, progress=times)
    steps = times.durations()
    last = result.history[-1]
    return {"step_s": steps[-1], "all_steps_s": steps, "tokens": last["tokens"],
            "response_tokens": last["response_tokens"], "tok_s": last["tokens"] / steps[-1],
            "peak_rss_mb": phase_peak_mb(), "history": result.history}


def bench_trl_rloo(prompts, reward, config: RLOOConfig, steps: int) -> dict:
    """TRL 1.16 RLOOTrainer, default config except batch shape, lengths, LoRA, steps and logging."""
    import datasets
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import RLOOConfig as TRLConfig, RLOOTrainer

    reset_peak_rss()
    lm = load(MODEL)
    ad = config.adapter
    peft_config = LoraConfig(r=ad.r, lora_alpha=ad.alpha, lora_dropout=ad.dropout, target_modules=ad.target_modules,
                             task_type="CAUSAL_LM")
    n = config.prompts_per_step * config.k
    dataset = datasets.Dataset.from_list([{"prompt": p} for p in prompts])

    def trl_reward(prompts, completions, **kwargs):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        msgs = [[m for m in p if m["role"] != "assistant"] if isinstance(p, list) else p for p in prompts]
        return reward(msgs, texts).tolist()

    class Times(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_begin(self, args, state, control, **kw):
            self.times.append(("begin", time.perf_counter()))

        def on_step_end(self, args, state, control, **kw):
            self.times.append(("end", time.perf_counter()))

    timer = Times()
    with tempfile.TemporaryDirectory() as tmp:
        args = TRLConfig(output_dir=tmp, per_device_train_batch_size=n, num_generations=config.k,
                         max_completion_length=config.max_new_tokens, max_steps=steps, logging_steps=1,
                         report_to="none", save_strategy="no", use_cpu=True, seed=config.seed,
                         beta=config.kl_coef, learning_rate=config.lr)
        trainer = RLOOTrainer(model=lm.model, reward_funcs=trl_reward, args=args, train_dataset=dataset,
                              processing_class=lm.tokenizer, peft_config=peft_config, callbacks=[timer])
        start = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - start
    begins = [t for kind, t in timer.times if kind == "begin"]
    ends = [t for kind, t in timer.times if kind == "end"]
    # generation happens inside the step for RLOO (steps_per_generation = 1): begin -> end covers it all
    step_times = [e - b for b, e in zip(begins, ends)]
    logs = [row for row in trainer.state.log_history if "reward" in row]
    lengths = [row.get("completions/mean_length", 0.0) for row in logs]
    settings = {k: getattr(args, k) for k in ("bf16", "gradient_checkpointing", "learning_rate", "beta",
                                                "num_generations", "per_device_train_batch_size",
                                                "max_completion_length", "num_iterations")}
    return {"step_s": step_times[-1] if step_times else total / steps, "all_steps_s": step_times,
            "completion_mean_length": lengths, "peak_rss_mb": phase_peak_mb(), "settings": settings,
            "log": logs}


def model_flops(n: int, tokens: int, updates_per_token: int) -> float:
    """Matmul FLOPs of an RL step: 2N per forward token; LoRA backward ~2N per token (input grads only).

    Sampling (prefill + decode: one forward per real token) + old/ref scoring passes (2 forwards) +
    `updates_per_token` x (forward + backward): PPO's epochs, 1 for RLOO. Attention scores are left out.
    """
    return 2 * n * tokens + 2 * 2 * n * tokens + updates_per_token * 4 * n * tokens


# --- the real experiment ------------------------------------------------------------------------------


def experiment(steps: int, lr: float, kl_coef: float, new_tokens: int, methods: list[str]) -> dict:
    """~10 steps of PPO and/or RLOO on SmolLM2 against the gold reward; the gold reward per step."""
    tasks, prompts = instruction_prompts(64)
    reward = gold_reward(tasks)
    out = {}
    runs = {
        "rloo": (RLOOConfig(steps=steps, lr=lr, kl_coef=kl_coef, max_new_tokens=new_tokens), train_rloo),
        "ppo": (PPOConfig(steps=steps, lr=lr, kl_coef=kl_coef, max_new_tokens=new_tokens), train_ppo),
    }
    for name, (config, train) in ((m, runs[m]) for m in methods):
        policy = make_trainable(load(MODEL), config.adapter)
        times = StepTimes()
        result = train(policy, prompts, reward, config, progress=times)
        proxy = [row["proxy"] for row in result.history]
        half = len(proxy) // 2
        out[name] = {"lr": lr, "kl_coef": kl_coef, "steps": steps, "max_new_tokens": new_tokens,
                     "step_s": times.durations(),
                     "proxy": proxy, "kl": [row["kl"] for row in result.history],
                     "first_half_mean": sum(proxy[:half]) / max(half, 1),
                     "second_half_mean": sum(proxy[half:]) / max(len(proxy) - half, 1)}
        print(name, json.dumps({k: v for k, v in out[name].items()}, default=float), flush=True)
    return out


# --- main -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter replies (16 tokens), for a smoke run")
    parser.add_argument("--no-trl", action="store_true", help="skip TRL's RLOOTrainer")
    parser.add_argument("--experiment", action="store_true", help="also run ~10 PPO and RLOO steps on gold reward")
    parser.add_argument("--experiment-steps", type=int, default=10)
    parser.add_argument("--experiment-lr", type=float, default=1e-4)
    parser.add_argument("--experiment-kl", type=float, default=0.05)
    parser.add_argument("--experiment-tokens", type=int, default=64)
    parser.add_argument("--experiment-methods", default="rloo,ppo")
    parser.add_argument("--only-experiment", action="store_true", help="skip the benchmark, run the experiment")
    args = parser.parse_args()
    from superalign.models.precision import describe

    print(f"machine: {describe()}", flush=True)  # ISA, native bf16, threads, the precision chosen
    if args.only_experiment:
        out = experiment(args.experiment_steps, args.experiment_lr, args.experiment_kl, args.experiment_tokens,
                         args.experiment_methods.split(","))
        path = RESULTS.with_name("ppo_experiment.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2, default=float))
        print(f"wrote {path}")
        return
    new_tokens = 16 if args.quick else 64
    torch.manual_seed(0)

    results: dict = {"model": MODEL, "threads": torch.get_num_threads(), "new_tokens": new_tokens}
    results["bf16_matmul_gflops"] = peak = matmul_gflops(torch.bfloat16, repeats=3)
    print(f"bf16 matmul: {peak:.0f} GFLOP/s", flush=True)

    tasks, prompts = instruction_prompts(16)
    reward = gold_reward(tasks)
    lm = load(MODEL)
    n = n_params(lm.model)
    results["sampling"] = s = bench_sampling(lm, prompts, new_tokens)
    print("sampling", s, flush=True)

    ppo_config = PPOConfig(steps=2, max_new_tokens=new_tokens)  # step 1 warms up; step 2 is reported
    results["ppo"] = p = bench_ppo(prompts, reward, ppo_config)
    flops = model_flops(n, p["tokens"], ppo_config.ppo_epochs)
    p["fraction_of_bf16_peak"] = flops / p["step_s"] / (peak * 1e9)
    print("ppo", {k: v for k, v in p.items() if k != "history"}, flush=True)

    rloo_config = RLOOConfig(steps=2, max_new_tokens=new_tokens)
    results["rloo"] = r = bench_rloo(prompts, reward, rloo_config)
    r["fraction_of_bf16_peak"] = model_flops(n, r["tokens"], 1) / r["step_s"] / (peak * 1e9)
    r_prompt_toks = r["tokens"] - r["response_tokens"]
    print("rloo", {k: v for k, v in r.items() if k != "history"}, flush=True)

    if not args.no_trl:
        try:
            results["trl_rloo"] = t = bench_trl_rloo(prompts, reward, rloo_config, steps=2)
            seen = [float(row["num_tokens"]) for row in t["log"] if "num_tokens" in row]
            # TRL logs the cumulative prompt + completion tokens; the last step's share is the difference
            trl_tokens = seen[-1] - seen[-2] if len(seen) >= 2 else r_prompt_toks + t["completion_mean_length"][-1] * (
                rloo_config.prompts_per_step * rloo_config.k)
            t["tokens"] = trl_tokens
            t["tok_s"] = trl_tokens / t["step_s"]
            print("trl_rloo", {k: v for k, v in t.items() if k != "log"}, flush=True)
        except Exception as err:  # report, don't hide: the comparison is then marked infeasible
            results["trl_rloo"] = {"error": f"{type(err).__name__}: {err}"}
            print("trl_rloo failed:", results["trl_rloo"]["error"], flush=True)

    if args.experiment:
        results["experiment"] = experiment(args.experiment_steps, args.experiment_lr, args.experiment_kl,
                                           args.experiment_tokens, args.experiment_methods.split(","))
    results["peak_rss_mb"] = peak_rss_mb()

    rows = [("rollout sampling, ours (bf16, generate_ids)", s["ours_s"], s["ours_tok_s"], None, None),
            ("rollout sampling, HF model.generate (fp32)", s["hf_s"], s["hf_tok_s"], None, None),
            ("PPO step (8 prompts)", p["step_s"], p["tok_s"], p["fraction_of_bf16_peak"], p["peak_rss_mb"]),
            ("RLOO step (4 prompts x 4), ours", r["step_s"], r["tok_s"], r["fraction_of_bf16_peak"], r["peak_rss_mb"])]
    t = results.get("trl_rloo", {})
    if "step_s" in t:
        rows.append(("RLOO step, TRL RLOOTrainer (default)", t["step_s"], t["tok_s"], None, t["peak_rss_mb"]))
    print(f"\n{'':46} {'seconds':>8} {'tokens/s':>9} {'of bf16 peak':>13} {'peak RSS MB':>12}")
    for name, sec, tps, frac, rss in rows:
        frac_s = f"{frac:.1%}" if frac is not None else "-"
        rss_s = f"{rss:.0f}" if rss is not None else "-"
        print(f"{name:46} {sec:8.2f} {tps:9.1f} {frac_s:>13} {rss_s:>12}")
    print(f"sampling speed-up ours/HF: {s['ours_tok_s'] / s['hf_tok_s']:.2f}x")
    if "step_s" in t:
        results["rloo_speedup_vs_trl"] = t["step_s"] / r["step_s"]
        print(f"RLOO step speed-up ours/TRL: {results['rloo_speedup_vs_trl']:.2f}x (time per step, same batch)")
    print(f"bf16 matmul peak {peak:.0f} GFLOP/s; process peak RSS {results['peak_rss_mb']:.0f} MB")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=float))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
