"""What every benchmark measures about the machine it runs on (matmul rate, peak memory), and the helpers the
trainer benchmarks share (a worker in its own process, a step timer for TRL's trainers)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch

from superalign.models.precision import cpu_has_fast_bf16


def matmul_gflops(dtype: torch.dtype = torch.bfloat16, n: int = 2048, repeats: int = 5) -> float:
    """Measured matmul rate in GFLOP/s (best of ``repeats`` n×n×n products, after a warm-up).

    bf16 on a CPU without native bf16 (AVX2) is emulated at well under 1 GFLOP/s: a 2048 product takes a
    minute there, so it is measured at n = 512 (the rate only shows how slow it is).
    """
    if dtype == torch.bfloat16 and not cpu_has_fast_bf16():
        n = min(n, 512)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(script: str, name: str, args: list[str]) -> dict:
    """Run ``script --worker name ARGS`` in a child process (its own peak RSS, the same threads); its last stdout
    line is the JSON it measured."""
    proc = subprocess.run([sys.executable, script, "--worker", name, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def step_timer(times: list[float]):
    """A transformers ``TrainerCallback`` that appends each optimizer step's seconds to ``times``."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.start)

    return StepTimer()
