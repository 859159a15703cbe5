"""Automated interpretability: train a sparse autoencoder on a layer, then explain units and score the explanations.

``run(config, lm)``:

1. a corpus the project generates: the user turns of the world's tasks (instructions, fact questions,
   policy requests) and its true/false statements, one window per text (its first ``window`` tokens);
2. an SAE (:mod:`superalign.autointerp.sae`) on ``layers.{layer}.resid_post`` of most windows, and its
   quality on the others (reconstruction, variance explained, dead latents, the LM's loss with it spliced in);
3. units: ``n_units`` MLP neurons (``layers.{layer}.mlp.act``, drawn at random) and ``n_units`` SAE
   latents (drawn at random among those active in at least 5 windows): no cherry-picking;
4. each unit explained from its top windows and scored on windows the explainer never saw
   (:mod:`superalign.autointerp.explain`), beside a random baseline: another unit's explanation.

Records: one :class:`~superalign.records.UnitExplanation` per unit; metrics for the SAE's quality and the mean
scores per family against the baseline, with bootstrap intervals over units.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class InterpError(ValueError):
    """Bad interpretability input (a layer the model lacks, a corpus too small): one line, before any work."""


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    layer: int | None = Field(None, description="layers.N.resid_post for the SAE and layers.N.mlp.act for the "
                              "neurons (default: the middle layer)")
    sae_kind: str = Field("topk", pattern="^(topk|relu)$")
    expansion: int = Field(4, ge=1, description="latents per residual dimension")
    k: int = Field(32, ge=1, description="active latents per token (TopK)")
    l1: float = Field(3e-3, ge=0, description="L1 weight (ReLU SAE)")
    epochs: int = Field(10, ge=1)
    n_sae_windows: int = Field(2000, ge=8, description="windows whose tokens train the SAE")
    n_eval_windows: int = Field(200, ge=4, description="held-out windows for its quality (64 for the spliced loss)")
    n_interp_windows: int = Field(400, ge=8, description="windows the units are explained and scored on")
    window: int = Field(32, ge=4, description="tokens per window")
    n_units: int = Field(16, ge=1, description="units explained per family (neurons, SAE latents)")
    n_top: int = Field(12, ge=2, description="top windows shown to the explainer (and held out for scoring)")
    batch_size: int = Field(16, ge=1)
    seed: int = 0
    world_seed: int = 0


# The implementation imports torch: loaded on first use, so that reading a pipeline config stays light.
_LAZY = ("Result", "check", "corpus", "explain_units", "quality_metrics", "run", "sample_units",
         "summary_metrics", "unit_data", "windows")


def __getattr__(name: str):
    if name in _LAZY:
        from superalign.autointerp import study

        return getattr(study, name)
    raise AttributeError(f"module 'superalign.autointerp' has no attribute {name!r}")


__all__ = ["Config", "InterpError", *_LAZY]
