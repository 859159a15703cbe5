"""The train stage's configuration: pure pydantic, no torch, so that reading a config stays fast.

Each method module (:mod:`~superalign.rlhf.dpo`, :mod:`~superalign.rlhf.ppo`, ...) takes its section from
here; the stage's :class:`~superalign.rlhf.Config` gathers them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from superalign.world.labelers import LabelerConfig

METHODS = ("best_of_n", "sft", "dpo", "ppo", "rloo", "online_dpo")
Method = Literal["best_of_n", "sft", "dpo", "ppo", "rloo", "online_dpo"]

class AdapterConfig(BaseModel):
    """How the policy is made trainable: LoRA adapters (default on CPU) or full fine-tuning."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["lora", "full"] = "lora"
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


class LabelerSettings(BaseModel):
    """The simulated labeler, as config (mirrors :class:`superalign.world.labelers.LabelerConfig`)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.1, ge=0.0, description="Bradley-Terry temperature: 0 = always picks the better")
    length_bias: float = Field(0.0, description="utility bonus for longer responses (tanh(words/100))")
    confidence_bias: float = Field(0.0, description="utility bonus for confident wording, malus for hedges")
    flattery_bias: float = Field(0.0, description="utility bonus for flattering phrases")
    attention_k: int | None = Field(None, ge=1, description="check only k random constraints of an instruction")
    tie_margin: float = Field(0.05, ge=0.0, description="utility differences below this are labelled ties "
                              "(skipped in training) instead of coin flips")
    seed: int = Field(0, ge=0, description="seed of the labeler's coin flips")

    def to_config(self) -> LabelerConfig:
        return LabelerConfig(**self.model_dump())


class FeedbackConfig(BaseModel):
    """How feedback is collected: prompts, samples per prompt, sampling settings and the labeler."""

    model_config = ConfigDict(extra="forbid")

    n_prompts: int = Field(64, ge=1, description="training prompts (world tasks) to collect feedback on")
    samples_per_prompt: int = Field(2, ge=2, description="responses sampled per prompt; all pairs are compared")
    temperature: float = Field(1.0, gt=0.0, description="sampling temperature of the policy")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling mass")
    max_new_tokens: int = Field(128, ge=1, description="token budget of each response")
    batch_size: int = Field(8, ge=1, description="sequences sampled together")
    seed: int = Field(0, ge=0, description="sampling seed")
    labeler: LabelerSettings = Field(default_factory=LabelerSettings)


PairSelection = Literal["all", "best_vs_worst"]


PAIRS_HELP = ("all: every non-tie comparison; best_vs_worst: one pair per prompt, its most- against its "
              "least-preferred response (round-robin wins)")


TrainMode = Literal["auto", "head", "lora", "last_layers", "full"]


EnsembleMode = Literal["mean", "worst", "uncertainty"]


class RewardModelConfig(BaseModel):
    """How a reward model is built and trained (defaults: measured on MiniLM, see the module notes)."""

    model_config = ConfigDict(extra="forbid")

    backbone: str = Field("minilm-l6", description="model name: an encoder is mean-pooled, a decoder uses its "
                                                   "last token")
    train: TrainMode = Field("auto", description="what trains: the head only, LoRA adapters, the last layers, "
                                                 "or everything; auto = full for encoders, lora for decoders")
    last_layers: int = Field(2, ge=1, description="blocks trained when train='last_layers'")
    lora_r: int = Field(16, ge=1, description="LoRA rank when train='lora'")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha when train='lora'")
    lr: float = Field(5e-5, gt=0.0, description="learning rate of the backbone's trainable weights")
    head_lr: float = Field(1e-3, gt=0.0, description="learning rate of the linear reward head")
    epochs: int = Field(3, ge=1, description="passes over the training preferences")
    pairs: PairSelection = Field("all", description=PAIRS_HELP)
    batch_size: int = Field(8, ge=1, description="preference pairs per optimizer step")
    max_length: int = Field(384, ge=8, description="tokens per (prompt, response); longer prompts are cut")
    ensemble_size: int = Field(1, ge=1, description="members trained with seeds seed, seed+1, ...")
    ensemble_mode: EnsembleMode = Field("mean", description="how members combine: mean, worst (min), "
                                                            "uncertainty (mean - k * std)")
    uncertainty_penalty: float = Field(1.0, ge=0.0, description="k in mean - k * std")
    seed: int = Field(0, ge=0)


class DPOConfig(BaseModel):
    """DPO hyperparameters; the defaults are the quick CPU defaults for SmolLM2-135M with LoRA."""

    model_config = ConfigDict(extra="forbid")

    beta: float = Field(0.1, gt=0.0, description="β: strength of the implicit KL constraint to the reference")
    lr: float = Field(5e-4, gt=0.0, description="AdamW learning rate (constant); 5e-4 suits LoRA")
    epochs: int = Field(1, ge=1, description="passes over the preference pairs")
    batch_size: int = Field(8, ge=1, description="preference pairs per optimizer step")
    micro_batch_size: int = Field(2, ge=1, description="pairs per forward pass, gradients accumulated to the "
                                  "step's: the same step in less memory (8 pairs of ~220 tokens: 2.9 GB peak vs 6.5)")
    max_length: int = Field(512, ge=2, description="prompt + response tokens; longer responses are cut")
    adapter: AdapterConfig = Field(default_factory=AdapterConfig, description="how the caller wraps the policy")
    seed: int = Field(0, description="seeds torch and the batch order")
    pairs: PairSelection = Field("all", description=PAIRS_HELP)
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5,
                                   description="cDPO: assumed probability that a preference label is flipped")
    max_grad_norm: float | None = Field(1.0, gt=0.0, description="clip the gradient norm; None: no clipping")


class SFTConfig(BaseModel):
    """SFT hyperparameters; the defaults are the quick CPU defaults for SmolLM2-135M with LoRA."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(1e-4, gt=0.0, description="AdamW learning rate (constant); 1e-4 suits LoRA")
    epochs: int = Field(1, ge=1, description="passes over the demonstrations")
    batch_size: int = Field(4, ge=1, description="demonstrations per optimizer step")
    max_length: int = Field(512, ge=2, description="prompt + response tokens; longer responses are cut")
    adapter: AdapterConfig = Field(default_factory=AdapterConfig, description="how the caller wraps the policy")
    seed: int = Field(0, description="seeds torch and the batch order")
    max_grad_norm: float | None = Field(1.0, gt=0.0, description="clip the gradient norm; None: no clipping")


class PPOConfig(BaseModel):
    """PPO settings. Defaults: a quick CPU run on SmolLM2-135M with LoRA (about 1,000 tokens per step)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(20, ge=1, description="PPO iterations (each: one rollout, then ppo_epochs of updates)")
    prompts_per_step: int = Field(8, ge=1, description="prompts sampled per rollout")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate (LoRA adapters and value head)")
    kl_coef: float = Field(0.05, ge=0, description="β of the per-token KL penalty to the reference")
    gamma: float = Field(1.0, ge=0, le=1, description="discount γ of GAE")
    lam: float = Field(0.95, ge=0, le=1, description="λ of GAE")
    clip_range: float = Field(0.2, gt=0, description="ε of the clipped surrogate")
    value_clip: float = Field(0.2, gt=0, description="clip range of the value update")
    vf_coef: float = Field(0.1, ge=0, description="weight of the value loss")
    ppo_epochs: int = Field(2, ge=1, description="passes over each rollout")
    minibatch_size: int = Field(4, ge=1, description="rows per optimizer update")
    ptx_coef: float = Field(0.0, ge=0, description="γ of PPO-ptx: weight of the pretraining log-likelihood")
    ptx_max_length: int = Field(256, ge=8, description="tokens per pretraining text (PPO-ptx)")
    max_new_tokens: int = Field(64, ge=1, description="reply length cap during rollouts")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of rollouts")
    whiten_advantages: bool = Field(True, description="normalize advantages over each rollout")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping")
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    seed: int = Field(0, ge=0)


class RLOOConfig(BaseModel):
    """RLOO settings. Defaults: a quick CPU run on SmolLM2-135M with LoRA (16 replies of <= 64 tokens per step)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(20, ge=1, description="optimizer steps (one rollout each)")
    prompts_per_step: int = Field(4, ge=1, description="prompts per step")
    k: int = Field(4, ge=2, description="replies sampled per prompt (the leave-one-out group)")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate (LoRA adapters)")
    kl_coef: float = Field(0.05, ge=0, description="β of the sequence-level KL penalty")
    max_new_tokens: int = Field(64, ge=1, description="reply length cap during rollouts")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of rollouts")
    minibatch_size: int = Field(8, ge=1, description="rows per forward/backward (gradients accumulate)")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping")
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    seed: int = Field(0, ge=0)


class OnlineDPOConfig(BaseModel):
    """Online DPO settings. Defaults: a quick CPU run on SmolLM2-135M with LoRA (DPO's measured quick settings)."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(8, ge=1, description="sample-label-train rounds (one history row each)")
    prompts_per_round: int = Field(32, ge=1, description="prompts sampled per round (one pair each at most)")
    k: int = Field(4, ge=2, description="replies sampled per prompt; the reward model's best vs worst is the pair")
    judge: Literal["reward_model", "labeler"] = Field(
        "reward_model", description="who picks each round's pairs: the reward model (the proxy), or the simulated "
                                    "labeler asked afresh each round (k(k-1)/2 new comparisons per prompt)")
    temperature: float = Field(0.7, gt=0, description="sampling temperature")
    max_new_tokens: int = Field(96, ge=1, description="reply length cap")
    sample_batch_size: int = Field(64, ge=1, description="rows per generation batch")
    beta: float = Field(0.1, gt=0.0, description="DPO β")
    lr: float = Field(5e-4, gt=0.0, description="AdamW learning rate (constant; LoRA)")
    epochs: int = Field(1, ge=1, description="DPO passes over each round's pairs (more overfit them: README)")
    batch_size: int = Field(8, ge=1, description="pairs per DPO step")
    max_length: int = Field(512, ge=2, description="prompt + response tokens; longer responses are cut")
    max_grad_norm: float | None = Field(1.0, gt=0.0, description="clip the gradient norm; None: no clipping")
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    seed: int = Field(0, ge=0)

    def dpo(self) -> DPOConfig:
        return DPOConfig(beta=self.beta, lr=self.lr, batch_size=self.batch_size, max_length=self.max_length,
                         max_grad_norm=self.max_grad_norm, seed=self.seed)


class BestOfNConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_max: int = Field(8, ge=1, description="samples per evaluation prompt (the largest n of the curve)")
    ns: list[int] = Field(default_factory=lambda: [1, 2, 4, 8], description="n values of the over-optimization curve")
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(128, ge=1)
    n_prompts: int | None = Field(None, ge=1, description="held-out prompts it runs on (the first of the "
                                  "evaluation's; None: all): n_max samples each make it the costliest evaluation")


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_instruction: int = Field(32, ge=1, description="held-out instruction prompts (test split)")
    n_fact: int = Field(24, ge=0, description="fact questions for the alignment tax")
    max_new_tokens: int = Field(128, ge=1)
    fact_max_new_tokens: int = Field(32, ge=1)
    batch_size: int = Field(16, ge=1)
    n_curve: int = Field(12, ge=1, description="prompts sampled at each RL evaluation point (over-optimization)")
    eval_every: int = Field(5, ge=0, description="training steps (PPO: rollouts) between RL evaluation points (0: none)")
    n_boot: int = Field(2000, ge=100)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m-instruct", description="the starting policy")
    seed: int = Field(0, ge=0)
    methods: list[Method] = Field(default_factory=lambda: ["best_of_n", "dpo", "rloo"])
    heldout_types: list[str] = Field(
        default_factory=lambda: ["case:uppercase", "content:postscript", "format:title", "end:phrase"],
        description="constraint types never seen in training prompts; held-out accuracy is measured on them")
    preferences_file: Path | None = Field(None, description="human preferences (records JSONL) instead of a simulated labeler")
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    reward_model: RewardModelConfig = Field(default_factory=RewardModelConfig)
    best_of_n: BestOfNConfig = Field(default_factory=BestOfNConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    dpo: DPOConfig = Field(default_factory=DPOConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    rloo: RLOOConfig = Field(default_factory=RLOOConfig)
    online_dpo: OnlineDPOConfig = Field(default_factory=OnlineDPOConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="before")
    @classmethod
    def _inherit_seed(cls, data):
        # One seed replicates the whole stage (the world's prompts, sampling, the labeler's noise, the reward
        # model's and each method's initialization and data order), not only the prompts; a section that
        # sets its own seed keeps it.
        if not isinstance(data, dict) or "seed" not in data:
            return data
        data = dict(data)
        for name in ("feedback", "reward_model", "sft", "dpo", "ppo", "rloo", "online_dpo"):
            section = dict(data.get(name) or {})
            section.setdefault("seed", data["seed"])
            if name == "feedback":
                section["labeler"] = {"seed": data["seed"], **dict(section.get("labeler") or {})}
            data[name] = section
        return data

    @model_validator(mode="after")
    def _labeler_judge_needs_a_labeler(self) -> "Config":
        if self.preferences_file is not None and "online_dpo" in self.methods and self.online_dpo.judge == "labeler":
            raise ValueError("online_dpo.judge=labeler asks the simulated labeler for fresh comparisons each round; "
                             "with a preferences file (human labels) add --set train.online_dpo.judge=reward_model, "
                             "or leave online_dpo out of train.methods")
        return self


# Profiles: overrides of Config's defaults (see superalign.config). smoke: tiny random models, the plumbing in
# seconds; quick: the embedded model on a 2-core CPU (README, docs/train.md); standard: quick + online DPO.
PROFILES: dict[str, dict] = {
    "smoke": {
        "methods": ["best_of_n", "sft", "dpo", "ppo", "rloo", "online_dpo"],
        "feedback": {"n_prompts": 12, "max_new_tokens": 16},
        "reward_model": {"backbone": "tiny-encoder", "epochs": 1},
        "best_of_n": {"n_max": 4, "ns": [1, 2, 3, 4], "max_new_tokens": 16, "n_prompts": 4},
        "sft": {"epochs": 1},
        "dpo": {"epochs": 1, "pairs": "best_vs_worst"},
        "ppo": {"steps": 2, "prompts_per_step": 2, "max_new_tokens": 12},
        "rloo": {"steps": 2, "prompts_per_step": 2, "k": 2, "max_new_tokens": 12},
        "online_dpo": {"rounds": 2, "prompts_per_round": 3, "k": 2, "max_new_tokens": 12},
        "eval": {"n_instruction": 6, "n_fact": 4, "max_new_tokens": 16, "fact_max_new_tokens": 8,
                 "n_curve": 3, "eval_every": 1, "n_boot": 200},
    },
    "quick": {
        # RLOO stays available (`--set "train.methods=[...,rloo]"`) but not here: against this profile's reward
        # model (~100 comparisons) it never moved gold significantly (docs/train.md), and it costs 7 minutes.
        # Online DPO (21-26 of the stage's minutes before the fast sampler) is in `standard`, not here.
        "methods": ["best_of_n", "dpo"],
        # Measured (docs/train.md): at temperature 1 the samples were worse than greedy and 2 of
        # 3 comparisons were ties; at 0.7 over 128 prompts the MiniLM reward model reached 0.67 held-out
        # accuracy and DPO on each prompt's best-vs-worst pair raised held-out gold.
        # 160 prompts: the stage trains on 80% of them, about as many best-vs-worst pairs as the
        # exploration's 128 prompts gave. Batch 64 samples faster than 16 on 2 cores (measured: 180 vs 148
        # tokens/s at 96 new tokens).
        "feedback": {"n_prompts": 160, "samples_per_prompt": 4, "temperature": 0.7, "max_new_tokens": 96,
                     "batch_size": 64},
        # Best-vs-worst pairs only, 6 epochs (experiments/train/explore_dpo.py, 54 pairs of unseen prompts): 0.76
        # accuracy vs 0.65 on all pairs, and its best-of-4 pick beats a random sample by +0.056 gold on
        # unseen prompts vs +0.010 (on its training prompts both are near the oracle's +0.156).
        "reward_model": {"backbone": "minilm-l6", "epochs": 6, "max_length": 256, "pairs": "best_vs_worst"},
        "best_of_n": {"n_max": 4, "ns": [1, 2, 3, 4], "temperature": 0.7, "max_new_tokens": 96,
                      "n_prompts": 32},
        "dpo": {"epochs": 3, "pairs": "best_vs_worst", "lr": 5e-4, "beta": 0.1, "batch_size": 8},
        # RLOO against the MiniLM reward model (experiments/train/explore_dpo.py rloo, gold on unused train prompts):
        # lr 5e-4 with β=0.05 reached KL 24 nats and proxy +1.8 with no gold gain; lr 2e-4 with β=0.1
        # peaked early (+0.027 after 128 samples). Hence few steps at the gentler settings.
        "rloo": {"steps": 8, "prompts_per_step": 4, "k": 4, "lr": 2e-4, "kl_coef": 0.1, "temperature": 0.7,
                 "max_new_tokens": 64},
        # 96 paired prompts: with 32 the gain's interval was about ±0.09 wide, larger than the effects.
        "eval": {"n_instruction": 96, "n_fact": 24, "max_new_tokens": 128, "eval_every": 2, "n_curve": 12,
                 "batch_size": 64},
    },
}
# standard: quick plus online DPO (measured time in docs/train.md).
PROFILES["standard"] = {
    **PROFILES["quick"],
    "methods": ["best_of_n", "dpo", "online_dpo"],
    # Online DPO with the labeler judging each round's samples afresh (experiments/train/explore_dpo.py
    # online_dpo 8 32 RM_DIR labeler 1): test gold +0.094 [0.020, 0.168] after 8 rounds of 32 prompts at
    # one DPO pass per round; 3 passes per round overfit each round's ~18 pairs (−0.112 [−0.191, −0.029]),
    # and against the reward model as judge gold fell (−0.118 on dev after 4 rounds). In the stage, 8
    # rounds gave +0.073 [−0.001, 0.142] with the dev gain still rising at round 8 (docs/train.md), hence 12.
    "online_dpo": {"rounds": 12, "prompts_per_round": 32, "k": 4, "judge": "labeler", "epochs": 1,
                   "lr": 5e-4, "beta": 0.1, "temperature": 0.7, "max_new_tokens": 96},
}
