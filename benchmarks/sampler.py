"""Benchmark: our sampler vs HF `generate`, side by side in one process, against the machine's FLOP limit.

    python benchmarks/sampler.py [--batch 64] [--new-tokens 96] [--repeats 3]
    python benchmarks/sampler.py --samples-per-prompt 4   # the feedback's batch: 16 prompts x 4 samples
    python benchmarks/sampler.py --device cuda --random-init smollm2-135m   # a GPU, no weights needed

The workload is the train stage's: the world's instruction prompts (train split), sampled at temperature
0.7 with per-row seeds, at most 96 new tokens, one batch of 64 (64 prompts; with `--samples-per-prompt k`,
64 / k prompts k times each, as the feedback and best-of-n batches are). Measured, alternating `repeats` times and
keeping each variant's best time (the machine is shared):
  ours       `generate_ids` in the machine's precision (bf16 where the CPU has native bf16, else fp32)
  ours_fp32  the same in fp32 (only where the machine's precision is bf16)
  hf         HF `model.generate(do_sample=True)` in the same precision (bf16 autocast or fp32)
  hf_fp32    HF `model.generate` with HF's defaults (fp32)
Tokens count through each reply's end of turn. The FLOP limit is the best measured matmul rate over
2·N FLOPs per token (N = parameters, the tied LM head counted once). Also: greedy agreement of ours and
of HF's bf16 with HF's fp32 greedy output, peak RSS, load average and the CPU's capability.
Writes benchmarks/results/sampler.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from hardware import matmul_gflops, peak_rss_mb

from superalign.models import GenerationConfig, generate_ids, load
from superalign.models.generation import autocast_context, default_autocast, left_pad, pad_id, prompt_ids, stop_token_ids
from superalign.models.precision import describe
from superalign.models.sources import LoadedModel
from superalign.world import World

RESULTS = Path(__file__).parent / "results" / "sampler.json"
SHAPES = {  # random-init models for a GPU machine (the embedded weights do not travel there)
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3),
    "smollm2-360m": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                         num_key_value_heads=5),
}


def random_init(shape: str, device: str) -> tuple[LoadedModel, list[list[int]]]:
    """A SmolLM2-shaped Llama with random weights, and 64 random prompts of 40-90 tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from superalign.models.tokenizer import byte_tokenizer

    config = LlamaConfig(vocab_size=49152, tie_word_embeddings=True, head_dim=64, rope_theta=100000.0,
                         max_position_embeddings=8192, **SHAPES[shape])
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device).eval()
    lengths = torch.randint(40, 90, (256,)).tolist()
    prompts = [torch.randint(300, 49152, (n,)).tolist() for n in lengths]
    return LoadedModel(name=shape, model=model, tokenizer=byte_tokenizer(), kind="decoder"), prompts


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() lists a tied weight once


def count_tokens(rows: list[list[int]], stops: set[int], limit: int) -> int:
    """New tokens through each row's end of turn, the stop token included (HF keeps it and pads after it,
    ours cuts before it): a row that ended before `limit` sampled its reply and one stop token."""
    def real(row: list[int]) -> int:
        n = next((j for j, t in enumerate(row) if t in stops), len(row))  # tokens before the stop
        return min(n + 1, limit) if n < limit else limit

    return sum(real(r) for r in rows)


def timed(fn) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--random-init", choices=sorted(SHAPES), help="a random-init model of this shape instead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--samples-per-prompt", type=int, default=1, help="each prompt this many times in the batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not 1 <= args.samples_per_prompt <= args.batch or args.batch % args.samples_per_prompt:
        parser.error(f"--samples-per-prompt must divide --batch ({args.batch}), got {args.samples_per_prompt}")

    load_before = os.getloadavg()
    if args.random_init:
        lm, token_prompts = random_init(args.random_init, args.device)
        chats = None
    else:
        lm = load(args.model, device=args.device)
        k = args.samples_per_prompt
        chats = [t.messages for t in World(0).tasks("instruction", args.batch // k, split="train") for _ in range(k)]
        token_prompts = [prompt_ids(lm, m) for m in chats]
    token_prompts = token_prompts[: args.batch]
    stops = set(stop_token_ids(lm)) if chats else set()
    bf16 = default_autocast(lm.model, "generate")
    print(f"machine: {describe(args.device)}; load {load_before[0]:.2f}; model {lm.name}, "
          f"{n_params(lm.model) / 1e6:.1f}M parameters; batch {args.batch} x <= {args.new_tokens} new tokens",
          flush=True)

    def ours(use_bf16: bool, greedy: bool = False):
        config = GenerationConfig(max_new_tokens=args.new_tokens, batch_size=args.batch, seed=0,
                                  temperature=0.0 if greedy else args.temperature, do_sample=not greedy,
                                  bf16_autocast=use_bf16)
        if chats is not None:
            return generate_ids(lm, chats, config)
        from superalign.models import generation  # token prompts: the same batch path, no chat template
        return generation._generate_batch(lm, token_prompts, list(range(len(token_prompts))), config, use_bf16)

    batch = {k: v.to(args.device) for k, v in left_pad(token_prompts, pad_id(lm.tokenizer)).items()}
    width = batch["input_ids"].shape[1]

    def hf(use_bf16: bool, greedy: bool = False):
        torch.manual_seed(0)
        kwargs = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=args.temperature, top_p=1.0,
                                                           top_k=0)
        if not stops:  # random-init: no end of turn, every row runs the full length
            kwargs["min_new_tokens"] = args.new_tokens
        with torch.no_grad(), autocast_context(lm.model, use_bf16):
            out = lm.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                    max_new_tokens=args.new_tokens, eos_token_id=sorted(stops) or None,
                                    pad_token_id=pad_id(lm.tokenizer), **kwargs)
        return out[:, width:].tolist()

    variants = {"ours": lambda: ours(bf16), "hf": lambda: hf(bf16)}
    if bf16:
        variants |= {"ours_fp32": lambda: ours(False), "hf_fp32": lambda: hf(False)}
    ours(bf16)  # warm-up (packs the weights once; the pack is counted separately below)
    best: dict[str, float] = {}
    tokens: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            seconds, rows = timed(fn)
            if seconds < best.get(name, float("inf")):
                best[name], tokens[name] = seconds, count_tokens(rows, stops, args.new_tokens)
    from superalign.models import sampler
    sampler._LAST[:] = [None, None, None]
    pack_s, _ = timed(lambda: sampler.packed_model(lm.model, torch.bfloat16 if bf16 else torch.float32))

    rate = {"bf16": matmul_gflops(torch.bfloat16), "fp32": matmul_gflops(torch.float32)}
    limit = max(rate.values()) * 1e9 / (2 * n_params(lm.model))  # tokens/s at the best matmul rate
    results = {"machine": describe(args.device), "load_before": load_before[0], "load_after": os.getloadavg()[0],
               "model": lm.name, "params": n_params(lm.model), "batch": args.batch, "new_tokens": args.new_tokens,
               "samples_per_prompt": args.samples_per_prompt,
               "temperature": args.temperature, "precision": "bf16" if bf16 else "fp32", "matmul_gflops": rate,
               "flop_limit_tok_s": limit, "pack_seconds": pack_s, "peak_rss_mb": peak_rss_mb()}
    for name in variants:
        tok_s = tokens[name] / best[name]
        results[name] = {"seconds": best[name], "tokens": tokens[name], "tok_s": tok_s, "of_limit": tok_s / limit}
    if chats is not None:
        results["greedy_agreement"] = greedy_agreement(ours, hf, bf16, stops)
    for name in variants:
        r = results[name]
        print(f"{name:10s} {r['seconds']:7.2f} s  {r['tok_s']:7.1f} tok/s  {100 * r['of_limit']:5.1f}% of the limit "
              f"({limit:.0f} tok/s)  ratio to hf: {r['tok_s'] / results['hf']['tok_s']:.2f}x")
    print(json.dumps({k: v for k, v in results.items() if k not in variants}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


def greedy_agreement(ours, hf, bf16: bool, stops: set[int]) -> dict:
    """Share of rows whose greedy reply equals HF's fp32 greedy reply token for token (up to the stop)."""
    def cut(row: list[int]) -> list[int]:
        return next((row[:j] for j, t in enumerate(row) if t in stops), row)

    reference = [cut(r) for r in hf(False, greedy=True)]

    def agree(rows: list[list[int]]) -> float:
        return sum(cut(a) == b for a, b in zip(rows, reference)) / len(reference)

    out = {"ours_fp32_vs_hf_fp32": agree(ours(False, greedy=True))}
    if bf16:
        out["ours_bf16_vs_hf_fp32"] = agree(ours(True, greedy=True))
        out["hf_bf16_vs_hf_fp32"] = agree(hf(True, greedy=True))
    return out


if __name__ == "__main__":
    main()
