"""What a zoo costs to train, counted before training it: demonstrations, SFT steps and tokens per organism, and the
least time any kernel could take (docs/stress.md, "What the cold zoo costs at the least").

    python experiments/stress/zoo_cost.py                    # the quick profile's zoo
    python experiments/stress/zoo_cost.py --profile standard

A LoRA SFT step costs at least 4·N FLOPs per token: the forward (2·N) and the backward to the activations (2·N);
the frozen weights get no gradient. N counts the non-embedding parameters (the embedding is a lookup; the tied LM
head runs on response positions only, a small extra left out, so the bound stays a lower bound).
"""

import argparse

from superalign import stress
from superalign.config import load_config
from superalign.models import load
from superalign.models.finetune import _batches, encode_demos
from superalign.organisms import build_data

# Matmul rates of the two kinds of 2-core CPU (docs/pipeline.md): fp32 on AVX2 only, bf16 with AVX-512 BF16.
RATES = {"AVX2 fp32": 125e9, "AVX-512 BF16 bf16": 400e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args()
    config = load_config(args.profile).stress
    lm = load(config.model, device="cpu")
    n = sum(p.numel() for name, p in lm.model.named_parameters() if "embed" not in name)
    print("| organism | demonstrations | epochs | SFT steps | tokens per epoch | of which response |")
    print("|---|---|---|---|---|---|")
    steps = tokens = padded = 0
    for name in config.zoo:
        organism = stress.organism_config(config, name)
        encoded = encode_demos(lm, build_data(organism).train, organism.training.max_length)
        batches = _batches(lm, encoded, organism.training.batch_size)
        epochs = organism.training.epochs
        real = sum(len(p) + len(r) for p, r in encoded)
        print(f"| {name} | {len(encoded)} | {epochs} | {len(batches) * epochs} | {real:,} | "
              f"{sum(len(r) for _, r in encoded):,} |")
        steps += len(batches) * epochs
        tokens += real * epochs
        padded += sum(b.input_ids.numel() for b in batches) * epochs
    flops = 4 * n * tokens
    print(f"\nzoo: {steps:,} SFT steps, {tokens:,} tokens over all epochs ({padded:,} with padding); "
          f"N = {n / 1e6:.1f}M non-embedding parameters; {flops:.2e} FLOPs")
    for machine, rate in RATES.items():
        print(f"at 100% of {machine} ({rate / 1e9:.0f} GFLOP/s): {flops / rate / 60:.1f} min")


if __name__ == "__main__":
    main()
