"""Benchmark: activation capture, ours (`token_activations` through the internals vocabulary) vs nnsight vs plain
HF `output_hidden_states`, on the same model and the same tokens, one variant per fresh process.

    python benchmarks/activations.py [--texts 256] [--layers 4 12 20] [--repeats 3] [--traces 30]

The workload is the probes' and the SAE's: the world's statements and task prompts (train split), each read
in full, batch 16, the residual stream after the named blocks (`layers.N.resid_post`). Measured per variant:
tokens per second (best of `repeats`), peak RSS of its process, the RSS growth over `traces` repeated traces of
one batch (bounded memory is what nnsight's and TransformerLens' users ask for), and the largest absolute
difference from HF's own hidden states (outputs identical to plain HF). Ours runs only the blocks up to the
deepest layer asked for; the others run the whole model (the ratio says what that is worth).
Writes benchmarks/results/activations.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from hardware import matmul_gflops, peak_rss_mb

from superalign.models import load
from superalign.models.activations import resid_post, token_activations
from superalign.models.generation import pad_id, right_pad
from superalign.models.precision import describe

RESULTS = Path(__file__).parent / "results" / "activations.json"
MODEL = "smollm2-135m-instruct"


def workload(lm, n: int) -> list[list[int]]:
    from superalign import autointerp

    return autointerp.windows(lm, autointerp.corpus(), 64)[:n]


def batches(rows: list[list[int]], pad: int, size: int = 16):
    for start in range(0, len(rows), size):
        chunk = rows[start:start + size]
        yield chunk, right_pad(chunk, pad)


def capture(variant: str, lm, rows: list[list[int]], layers: list[int]) -> list[dict[int, torch.Tensor]]:
    """Per batch: layer -> [b, s, d] activations (padded positions included), by one of the three routes."""
    names = [resid_post(layer) for layer in layers]
    out = []
    if variant == "ours":
        for chunk, _ in batches(rows, pad_id(lm.tokenizer)):
            acts = token_activations(lm, chunk, names, batch_size=len(chunk))
            out.append({layer: acts[name] for layer, name in zip(layers, names)})
        return out
    if variant == "hf":
        with torch.no_grad():
            for _, batch in batches(rows, pad_id(lm.tokenizer)):
                hidden = lm.model(**batch, output_hidden_states=True).hidden_states
                out.append({layer: hidden[layer + 1] for layer in layers})
        return out
    from nnsight import LanguageModel

    model = LanguageModel(lm.model, tokenizer=lm.tokenizer)
    with torch.no_grad():
        for _, batch in batches(rows, pad_id(lm.tokenizer)):
            saved = {}
            with model.trace(dict(batch)):  # nnsight re-runs this block's source: a plain loop, no comprehension
                for layer in layers:
                    saved[layer] = model.model.layers[layer].output.save()
            out.append({layer: (v[0] if isinstance(v, tuple) else v) for layer, v in saved.items()})
    return out


def flops_per_token(lm, variant: str, layers: list[int]) -> float:
    """2 · (weights a token passes through): ours stops after the deepest layer asked for; HF and nnsight run
    every block and the LM head. Attention over the context is left out (short windows: a few percent)."""
    from superalign.models.internals import block_stack

    blocks = block_stack(lm.model)[2]
    used = blocks if variant != "ours" else list(blocks)[: max(layers) + 1]
    n = sum(p.numel() for b in used for p in b.parameters())
    if variant != "ours":
        n += lm.model.get_output_embeddings().weight.numel()
    return 2.0 * n


def measure(variant: str, n_texts: int, layers: list[int], repeats: int, traces: int) -> dict:
    """One variant in this process: speed, memory, agreement with HF."""
    torch.manual_seed(0)
    lm = load(MODEL)
    rows = workload(lm, n_texts)
    tokens = sum(len(r) for r in rows)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        got = capture(variant, lm, rows, layers)
        best = min(best, time.perf_counter() - start)
    reference = capture("hf", lm, rows[:16], layers)[0]
    mine = got[0]
    diff = 0.0
    for layer in layers:  # compare real tokens only
        for i, row in enumerate(rows[:16]):
            a = mine[layer][i][: len(row)]
            diff = max(diff, float((a - reference[layer][i, : len(row)]).abs().max()))
    del got
    before = peak_rss_mb()
    for _ in range(traces):
        capture(variant, lm, rows[:16], layers)
    return {"variant": variant, "seconds": best, "tokens": tokens, "tokens_per_s": tokens / best,
            "gflop_per_token": flops_per_token(lm, variant, layers) / 1e9,
            "max_abs_diff_vs_hf": diff, "peak_rss_mb": peak_rss_mb(), "rss_growth_over_traces_mb": peak_rss_mb() - before,
            "traces": traces}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 12, 20])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--traces", type=int, default=30)
    parser.add_argument("--variant", choices=["ours", "hf", "nnsight"], help="(internal) measure one variant")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.texts, args.layers, args.repeats, args.traces)))
        return
    rows = []
    for variant in ("ours", "nnsight", "hf"):  # a fresh process each: peak RSS is the variant's own
        cmd = [sys.executable, __file__, "--variant", variant, "--texts", str(args.texts), "--repeats",
               str(args.repeats), "--traces", str(args.traces), "--layers", *map(str, args.layers)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    by = {r["variant"]: r for r in rows}
    limit = matmul_gflops(torch.float32)  # the readouts run in fp32 (probes and SAEs want full precision)
    for r in rows:
        r["fraction_of_fp32_limit"] = r["tokens_per_s"] * r["gflop_per_token"] / limit
    summary = {"model": MODEL, "layers": args.layers, "texts": args.texts, "precision": describe("cpu"),
               "fp32_matmul_gflops": limit,
               "rows": rows, "ours_over_nnsight": by["ours"]["tokens_per_s"] / by["nnsight"]["tokens_per_s"],
               "ours_over_hf": by["ours"]["tokens_per_s"] / by["hf"]["tokens_per_s"]}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    print(f"{'variant':<9} {'tokens/s':>9} {'of fp32 limit':>14} {'peak RSS MB':>12} {'RSS growth MB':>14} "
          f"{'max |diff| vs HF':>17}")
    for r in rows:
        print(f"{r['variant']:<9} {r['tokens_per_s']:>9.0f} {r['fraction_of_fp32_limit']:>14.0%} "
              f"{r['peak_rss_mb']:>12.0f} {r['rss_growth_over_traces_mb']:>14.1f} {r['max_abs_diff_vs_hf']:>17.2e}")
    print(f"ours / nnsight: {summary['ours_over_nnsight']:.2f}x   ours / HF hidden states: {summary['ours_over_hf']:.2f}x"
          f"   ({summary['precision']})")


if __name__ == "__main__":
    main()
