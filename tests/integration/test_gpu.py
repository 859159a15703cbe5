"""With CUDA present, every stage places its models on the GPU (skipped on a machine without one).

Runs the whole smoke profile (tiny models) with ``--device auto`` and records where each loaded model's
weights are; a GPU machine runs it as is: ``pytest tests/integration/test_gpu.py``.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_every_stage_loads_its_models_on_the_gpu(tmp_path, monkeypatch):
    import superalign.models
    import superalign.rlhf.reward_model
    from superalign import cli
    from superalign.models import sources

    placed: list[tuple[str, str, str]] = []  # (model, device type, dtype)
    real = sources.load

    def recording_load(name, dtype=None, device="cpu"):
        lm = real(name, dtype=dtype, device=device)
        param = next(lm.model.parameters())
        placed.append((name, param.device.type, str(param.dtype)))
        return lm

    for module in (sources, superalign.models, superalign.rlhf.reward_model):
        monkeypatch.setattr(module, "load", recording_load)
    monkeypatch.setenv("SUPERALIGN_HOME", str(tmp_path / "home"))
    assert cli.main(["run", "--profile", "smoke", "--out", str(tmp_path / "runs")]) == 0
    names = {name for name, _, _ in placed}
    assert {"tiny-llama", "tiny-encoder", "tiny-gpt2"} <= names  # baseline/train policy, reward model, weak model
    assert all(device == "cuda" for _, device, _ in placed), placed
    assert any(dtype == "torch.bfloat16" for _, _, dtype in placed)  # inference in bf16 on a GPU
