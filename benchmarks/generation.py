"""Benchmark: load time, sampling speed and a training step, fp32 vs bf16 autocast, side by side.

Run by hand:  python benchmarks/generation.py [--model smollm2-135m-instruct] [--repeats 2]
Prints a table of seconds and tokens/s and the bf16/fp32 ratio. The default of
`superalign.models.generation.default_autocast` was chosen from these numbers.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from superalign.models import GenerationConfig, completion_logprobs, generate_ids, load
from superalign.models.generation import autocast_context

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain photosynthesis in two sentences.",
    "List three prime numbers.",
    "Give me a tip for learning to code.",
    "What is 12 times 7?",
    "Describe a cat to someone who has never seen one.",
    "Why is the sky blue?",
]


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_generation(lm, batch: int, new_tokens: int, autocast: bool, repeats: int) -> dict:
    prompts = [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(batch)]
    config = GenerationConfig(max_new_tokens=new_tokens, batch_size=batch, seed=0, bf16_autocast=autocast)
    counted = {}

    def run():  # tokens each reply really has, through its end of turn
        counted["tokens"] = sum(min(len(x) + 1, new_tokens) for x in generate_ids(lm, prompts, config))

    seconds = _best(run, repeats)
    return {"seconds": seconds, "tokens_per_s": counted["tokens"] / seconds, "tokens": counted["tokens"]}


def bench_train_step(lm, tokens: int, autocast: bool, repeats: int) -> dict:
    model = lm.model
    batch, seq = 4, tokens // 4
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))
    model.train()

    def run():
        model.zero_grad(set_to_none=True)
        with autocast_context(model, autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()

    seconds = _best(run, repeats)
    model.zero_grad(set_to_none=True)
    model.eval()
    return {"seconds": seconds, "tokens": tokens}


def bench_logprobs(lm, batch: int, autocast: bool, repeats: int) -> dict:
    """Scoring speed and values (to report the bf16 error of summed completion log-probs)."""
    prompts = [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(batch)]
    completions = [f"Here is a careful answer, number {i}, written in a few plain sentences." for i in range(batch)]
    values = {}

    def run():
        values["lp"] = completion_logprobs(lm, prompts, completions, batch_size=batch, bf16_autocast=autocast)

    seconds = _best(run, repeats)
    return {"seconds": seconds, "values": values["lp"].tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    from superalign.models.precision import describe

    print(f"machine: {describe()}", flush=True)  # ISA, native bf16, threads, the precision chosen

    start = time.perf_counter()
    lm = load(args.model)
    results: dict = {"model": args.model, "load_seconds": time.perf_counter() - start,
                     "threads": torch.get_num_threads()}
    for batch in (1, 16):
        for autocast in (False, True):
            key = f"generate_b{batch}_{'bf16' if autocast else 'fp32'}"
            results[key] = bench_generation(lm, batch, args.new_tokens, autocast, args.repeats)
            print(key, results[key], flush=True)
    for autocast in (False, True):
        key = f"train_step_1024tok_{'bf16' if autocast else 'fp32'}"
        results[key] = bench_train_step(lm, 1024, autocast, args.repeats)
        print(key, results[key], flush=True)
    for autocast in (False, True):
        key = f"logprobs_b16_{'bf16' if autocast else 'fp32'}"
        results[key] = bench_logprobs(lm, 16, autocast, args.repeats)
        print(key, {k: v for k, v in results[key].items() if k != "values"}, flush=True)
    diff = (torch.tensor(results["logprobs_b16_bf16"].pop("values"))
            - torch.tensor(results["logprobs_b16_fp32"].pop("values"))).abs()
    results["logprobs_bf16_abs_error"] = {"max": diff.max().item(), "mean": diff.mean().item()}
    for name in ("generate_b1", "generate_b16", "train_step_1024tok", "logprobs_b16"):
        fp32, bf16 = results[f"{name}_fp32"]["seconds"], results[f"{name}_bf16"]["seconds"]
        results[f"{name}_bf16_speedup"] = fp32 / bf16
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
