"""Which precision a device computes fastest: bf16 where the hardware has it, fp32 elsewhere.

2-core CPUs differ (issue 14): with AVX-512 BF16 or AMX, bf16 matrix multiplies run about 2.3x faster
than fp32 (≈ 400 vs 178 GFLOP/s measured); on AVX2-only CPUs bf16 is emulated and sampling under it
ran 2.5x slower than fp32. So bf16 is used only where the CPU has native bf16 instructions (or a GPU
supports it). `SUPERALIGN_BF16=1|0` forces the choice either way (benchmarks compare both).
"""

from __future__ import annotations

import functools
import os

import torch

BF16_ENV = "SUPERALIGN_BF16"


@functools.cache
def cpu_features() -> dict[str, object]:
    """What this CPU offers PyTorch: its vector ISA level and native bf16 instructions."""
    probe = lambda name: bool(getattr(torch.cpu, name, lambda: False)())  # noqa: E731 (private, may vanish)
    return {
        "isa": torch.backends.cpu.get_cpu_capability(),  # "AVX2", "AVX512", ...
        "avx512_bf16": probe("_is_avx512_bf16_supported"),
        "amx": probe("_is_amx_tile_supported"),
        "threads": torch.get_num_threads(),
    }


def cpu_has_fast_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AVX-512 BF16 or AMX tiles)."""
    features = cpu_features()
    return bool(features["avx512_bf16"] or features["amx"])


def fast_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 compute is faster than fp32 on `device` (the `SUPERALIGN_BF16` variable overrides)."""
    forced = os.environ.get(BF16_ENV, "").strip()
    if forced in {"0", "1"}:
        return forced == "1"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_fast_bf16()


def describe(device: torch.device | str = "cpu") -> str:
    """One line for logs and benchmark output, e.g. 'cpu AVX512 (bf16 native: yes), 2 threads -> bf16'."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"cuda {name} -> {'bf16' if fast_bf16(device) else 'fp32'}"
    f = cpu_features()
    native = "yes" if cpu_has_fast_bf16() else "no"
    return f"cpu {f['isa']} (bf16 native: {native}), {f['threads']} threads -> {'bf16' if fast_bf16(device) else 'fp32'}"
