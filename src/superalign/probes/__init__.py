"""Truth, deception and defection probes: read a model's own representation of truth from its activations.

``run(config, lm)`` reads the residual stream (``layers.N.resid_post``, through the final norm, at the last
token) for the probe datasets (:mod:`superalign.probes.data`) at a sweep of layers, fits every method of
:mod:`superalign.probes.methods` on the training statements, and scores each on:

- ``in_distribution``: statements of the training topics it never saw (test split);
- ``held_out_topic``: statements of topics left out of training;
- ``negation``: the negated statements ("… is not …"), trained on affirmative ones only (CCS trains on
  statement/negation pairs by construction: its negation score is not a transfer test);
- AUROC with a bootstrap interval, accuracy, calibration (ECE) and recall at 1% false positives on a
  control set of ordinary answers (the model's own replies to instructions).

Then, at the layer the validation statements pick, two monitors: the truth probe on the model's own
answers to fact questions of the held-out topics, per token and per answer (does it flag the wrong ones?),
and a deception probe
from honest-vs-deceptive instruction pairs. Activations are cached per (model, layer, text) when a cache
directory is given. Ground truth (labels, right answers) is read from the world, as any probe benchmark does.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

class ProbeError(ValueError):
    """Bad probe input (a layer the model lacks, an unknown topic or method): one line, before any work."""


METHODS = ("logistic", "diff_means", "diff_means_cov", "ccs", "pca")
TESTS = ("in_distribution", "held_out_topic", "negation")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    layers: list[int] | None = Field(None, description="layers to sweep (layers.N.resid_post); default: 8 spread "
                                     "over the depth")
    methods: list[str] = Field(default_factory=lambda: list(METHODS))
    heldout_topics: list[str] = Field(default_factory=lambda: ["animals", "elements"])
    n_train: int | None = Field(None, ge=4, description="training statements (None: every one of the train split)")
    n_control: int = Field(32, ge=0, description="ordinary answers (the model's replies to instructions) that set "
                           "the 1%-false-positive threshold")
    n_monitor: int = Field(40, ge=0, description="fact questions the model answers for the monitor")
    n_deception: int | None = Field(120, ge=2, description="true statements per split for the deception pairs")
    max_new_tokens: int = Field(48, ge=1)
    batch_size: int = Field(16, ge=1)
    world_seed: int = 0

    @field_validator("methods")
    @classmethod
    def _known(cls, methods: list[str]) -> list[str]:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ProbeError(f"unknown probe method {unknown[0]!r}: one of {', '.join(METHODS)}")
        return methods


# The implementation imports torch: loaded on first use, so that reading a pipeline config stays light.
_LAZY = ("Reader", "Result", "answer_control", "check", "default_layers", "defection_monitor", "defection_probe", "evaluate",
         "monitor", "prompt_scores", "recall_at_fp", "run", "score_examples")


def __getattr__(name: str):
    if name in _LAZY:
        from superalign.probes import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module 'superalign.probes' has no attribute {name!r}")


__all__ = ["Config", "METHODS", "ProbeError", "TESTS", *_LAZY]
