"""Reward models: a scalar head on a pretrained backbone, trained with the Bradley-Terry loss on preferences.

Two shapes, one class:
- an encoder backbone (MiniLM): prompt and response as a sentence pair, mean-pooled, then a linear head;
- a decoder backbone (SmolLM2): the chat-formatted conversation, the hidden state of its last token
  (the end-of-turn token) into a linear head — InstructGPT's recipe (Ouyang et al. 2022, §3.5).

The reward is centred after training (mean 0 over the training responses) so that ensemble members,
whose Bradley-Terry scores are only defined up to a constant, can be compared and combined.

Defaults, measured once on the 2-core CPU (shared, heavily loaded; /tmp scratch run, not a test):
SmolLM2-135M-Instruct sampled 3 responses (temperature 1, top-p 0.95, 80 new tokens) for 80 training
instruction prompts of World(0); a LabelerConfig(temperature=0.1) labeler gave 240 preferences, split by
prompt 70/15/15 (168 / 36 / 36 pairs; 16 test pairs have different gold). MiniLM-L6 heads, 3 epochs:

    train        lr (body / head)   test acc   acc where gold differs   gold agreement   time
    full         5e-5 / 1e-3         0.75         0.81                     0.81           489 s
    last 2 + norm 1e-4 / 1e-3        0.67         0.75                     0.75           249 s
    head only    - / 1e-2, 5 ep      0.53         0.69                     0.69           239 s
    (times include validation each epoch; head-only timed before features were cached, now one pass.
     The labeler agrees with gold on all 16 of those pairs; "longer wins" scores 0.44 on the test set.)

So encoders train fully by default (lr 5e-5, head 1e-3). Intervals are wide at this size (16-36 pairs).
Decoders default to LoRA (r=16), which keeps a 135M backbone's optimizer state small.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from superalign.models import LoadedModel, load
from superalign.models.backbone import backbone_of, blocks, pool_hidden
from superalign.models.generation import (
    autocast_context,
    default_autocast,
    end_of_turn_id,
    eval_mode,
    pad_id,
    prompt_ids,
    right_pad,
)
from superalign.progress import NullProgress, Progress
from superalign.records import Preference
from superalign.rlhf.common import check_finite
from superalign.rlhf.feedback import FeedbackDataError, select_pairs, usable
from superalign.world import GoldEvaluator, Task
from superalign.rlhf.config import EnsembleMode, RewardModelConfig, TrainMode  # noqa: F401 - re-exported

CHECKPOINT_META = "reward_model.json"
CHECKPOINT_WEIGHTS = "reward_model.pt"


class TokenizerMismatch(ValueError):
    """A reward-model checkpoint met a backbone whose tokenizer differs from the one it was trained with."""


# ---------------------------------------------------------------------------------------------------
# The math


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Mean of −log σ(r_chosen − r_rejected) over pairs.

    Bradley-Terry preference likelihood as a reward-model loss: Christiano et al. 2017 (eq. 1), Ouyang et
    al. 2022 (InstructGPT, eq. 1). logsigmoid keeps it finite for large margins.
    """
    return -nn.functional.logsigmoid(r_chosen - r_rejected).mean()


def combine_rewards(scores: torch.Tensor, mode: EnsembleMode, penalty: float = 1.0) -> torch.Tensor:
    """Combine member rewards [members, n] into one reward [n].

    mean; worst = min over members (worst-case optimization); uncertainty = mean − k·std (uncertainty-
    weighted optimization). Coste et al. 2023, "Reward Model Ensembles Help Mitigate Overoptimization", §3.
    std is the population std (ddof=0): it is 0 for a single member.
    """
    if scores.ndim != 2 or scores.shape[0] < 1:
        raise ValueError(f"expected member scores [members, n], got shape {tuple(scores.shape)}")
    if mode == "mean":
        return scores.mean(0)
    if mode == "worst":
        return scores.min(0).values
    if mode == "uncertainty":
        return scores.mean(0) - penalty * scores.std(0, unbiased=False)
    raise ValueError(f"ensemble mode must be mean, worst or uncertainty, not {mode!r}")


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of what makes token ids mean something: the vocabulary, special tokens, chat template."""
    vocab = sorted(tokenizer.get_vocab().items())
    payload = json.dumps({"vocab": vocab, "special": sorted(map(str, tokenizer.all_special_tokens)),
                          "template": getattr(tokenizer, "chat_template", None) or ""}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------
# Tokenizing (prompt, response) pairs


def _prompt_text(messages: list[dict]) -> str:
    """An encoder's view of a chat prompt: the turns' texts, one per line (the system turn too: it matters)."""
    return "\n".join(m["content"] for m in messages)


def _encode(lm: LoadedModel, pooling: str, prompts: list[list[dict]], responses: list[str],
            max_length: int) -> list[list[int]]:
    """Token ids per (prompt, response), at most ``max_length`` long, keeping the response's end."""
    tok = lm.tokenizer
    if pooling == "mean":
        # Sentence pair; only the prompt is cut when too long (the response is what is judged) — unless the
        # response alone leaves no room for a prompt token, where the tokenizer would raise: both are cut then.
        limit = min(max_length, getattr(lm.model.config, "max_position_embeddings", max_length))
        texts = [_prompt_text(p) for p in prompts]
        room = limit - tok.num_special_tokens_to_add(pair=True) - 1
        long = {i for i, ids in enumerate(tok(responses, add_special_tokens=False)["input_ids"]) if len(ids) > room}
        return [tok(text, response, truncation="longest_first" if i in long else "only_first",
                    max_length=limit)["input_ids"] for i, (text, response) in enumerate(zip(texts, responses))]
    eot = end_of_turn_id(lm)
    rows = []
    for messages, response in zip(prompts, responses):
        ids = prompt_ids(lm, messages) + tok(response, add_special_tokens=False)["input_ids"] + [eot]
        rows.append(ids[-max_length:])  # cut from the left: the last token is where the reward is read
    return rows


# ---------------------------------------------------------------------------------------------------
# The model


class RewardModel(nn.Module):
    """A scalar reward on a backbone. ``rm(prompts, responses)`` scores (a :data:`RewardFn`).

    ``forward(input_ids, attention_mask)`` returns differentiable raw rewards [batch] (training);
    :meth:`score` returns centred rewards without gradients.
    """

    def __init__(self, backbone: nn.Module, lm: LoadedModel, config: RewardModelConfig):
        super().__init__()
        self.backbone = backbone  # the base transformer (no LM head): [b, s] -> hidden [b, s, d]
        self.lm = lm  # tokenizer and chat template; lm.model is not used for scoring
        self.config = config
        self.kind = lm.kind
        self.pooling = "mean" if lm.kind == "encoder" else "last"
        hidden = lm.model.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        gen = torch.Generator().manual_seed(config.seed)
        with torch.no_grad():  # HF's init (std 0.02, as TRL's score head): rewards start near 0, loss near log 2;
            # the seed still sets members of an ensemble apart
            self.head.weight.copy_(0.02 * torch.randn(1, hidden, generator=gen))
            self.head.bias.zero_()
        self.register_buffer("offset", torch.zeros(()))  # subtracted by score(): centring
        self.to(next(backbone.parameters()).device)  # head and offset live beside the backbone (a GPU, say)
        self.tokenizer_fingerprint = tokenizer_fingerprint(lm.tokenizer)

    @property
    def tokenizer(self):
        return self.lm.tokenizer

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Backbone features [b, d]: mean over real tokens (encoder) or the last real token (decoder)."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [b, s, d]
        return pool_hidden(hidden, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Raw rewards [b] (not centred), differentiable."""
        pooled = self.pool(input_ids, attention_mask).float()  # [b, d]
        with torch.autocast(pooled.device.type, enabled=False):  # the head in fp32: BT needs precise margins
            return self.head(pooled).squeeze(-1)

    def encode(self, prompts: list[list[dict]], responses: list[str]) -> list[list[int]]:
        """Token ids of each (prompt, response) as the model reads them."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return _encode(self.lm, self.pooling, prompts, responses, self.config.max_length)

    @torch.no_grad()
    def features(self, rows: list[list[int]], batch_size: int = 16) -> torch.Tensor:
        """Pooled backbone features [n, d] (fp32) of pre-tokenized rows, no gradients."""
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        device = next(self.parameters()).device
        out = torch.zeros(len(rows), self.head.in_features)
        with eval_mode(self):
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = {k: v.to(device) for k, v in right_pad([rows[i] for i in idx],
                                                                   pad_id(self.tokenizer)).items()}
                out[idx] = self.pool(**batch).float().cpu()
        return out

    @torch.no_grad()
    def raw_scores(self, rows: list[list[int]], batch_size: int = 16) -> torch.Tensor:
        """Raw rewards [n] of pre-tokenized rows, in fp32, length-bucketed to cut padding."""
        out = torch.zeros(len(rows))
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        device = next(self.parameters()).device
        with eval_mode(self):
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = {k: v.to(device) for k, v in right_pad([rows[i] for i in idx],
                                                                   pad_id(self.tokenizer)).items()}
                out[idx] = self.forward(**batch).float().cpu()
        return out

    def score(self, prompts: list[list[dict]], responses: list[str], batch_size: int = 16) -> torch.Tensor:
        """Centred rewards [n] of each (chat prompt, response), fp32, no gradients."""
        if not responses:
            return torch.zeros(0)
        return self.raw_scores(self.encode(prompts, responses), batch_size) - self.offset.cpu()

    def __call__(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:  # a RewardFn
        return self.score(prompts, responses)

    # -- checkpoints --------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Save the trained weights (LoRA: only adapters and head) and what is needed to rebuild it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        trainable = {n for n, p in self.named_parameters() if p.requires_grad} | {"offset"}
        state = {n: t.detach().cpu() for n, t in self.state_dict().items()
                 if n in trainable or n.startswith("head.")}
        torch.save(state, directory / CHECKPOINT_WEIGHTS)
        meta = {"config": self.config.model_dump(), "kind": self.kind, "train": resolved_train_mode(self.config,
                                                                                                     self.kind),
                "tokenizer_fingerprint": self.tokenizer_fingerprint}
        (directory / CHECKPOINT_META).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, backbone: LoadedModel | None = None, device: str = "cpu") -> "RewardModel":
        """Rebuild a saved reward model on ``backbone`` (default: load the saved backbone name on ``device``).

        Raises :class:`TokenizerMismatch` when the backbone's tokenizer is not the one it was trained with.
        """
        directory = Path(directory)
        meta_path = directory / CHECKPOINT_META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{directory} is not a reward-model checkpoint (no {CHECKPOINT_META})")
        meta = json.loads(meta_path.read_text())
        config = RewardModelConfig.model_validate(meta["config"])
        lm = backbone if backbone is not None else load(config.backbone, device=device)
        found = tokenizer_fingerprint(lm.tokenizer)
        if found != meta["tokenizer_fingerprint"]:
            raise TokenizerMismatch(
                f"the reward model in {directory} was trained with tokenizer {meta['tokenizer_fingerprint']} "
                f"(backbone {config.backbone!r}), but {lm.name!r} has tokenizer {found}: token ids would mean "
                "different things. Load it with the backbone it was trained on, or retrain the reward model.")
        rm = build_reward_model(lm, config)
        state = torch.load(directory / CHECKPOINT_WEIGHTS, map_location="cpu", weights_only=True)
        missing = set(state) - set(rm.state_dict())
        if missing:
            raise ValueError(f"{directory}: checkpoint weights do not fit the rebuilt model: {sorted(missing)[:3]}")
        rm.load_state_dict(state, strict=False)
        return rm.eval()


class RewardEnsemble:
    """Several reward models combined by ``mode`` (see :func:`combine_rewards`); also a RewardFn."""

    def __init__(self, members: list[RewardModel], mode: EnsembleMode = "mean", penalty: float = 1.0):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = members
        self.mode = mode
        self.penalty = penalty

    @property
    def tokenizer(self):
        return self.members[0].tokenizer

    def member_scores(self, prompts: list[list[dict]], responses: list[str], batch_size: int = 16) -> torch.Tensor:
        """Each member's centred rewards, [members, n]."""
        return torch.stack([m.score(prompts, responses, batch_size) for m in self.members])

    def score(self, prompts: list[list[dict]], responses: list[str], batch_size: int = 16) -> torch.Tensor:
        """Combined rewards [n]."""
        return combine_rewards(self.member_scores(prompts, responses, batch_size), self.mode, self.penalty)

    def __call__(self, prompts: list[list[dict]], responses: list[str]) -> torch.Tensor:
        return self.score(prompts, responses)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        for i, m in enumerate(self.members):
            m.save(directory / f"member_{i}")
        (directory / "ensemble.json").write_text(json.dumps({"mode": self.mode, "penalty": self.penalty,
                                                             "members": len(self.members)}))
        return directory

    @classmethod
    def load(cls, directory: str | Path, backbone: LoadedModel | None = None, device: str = "cpu") -> "RewardEnsemble":
        """Load members saved by :meth:`save` (``backbone``, if given, must be a fresh copy per member)."""
        directory = Path(directory)
        meta = json.loads((directory / "ensemble.json").read_text())
        members = [RewardModel.load(directory / f"member_{i}", backbone if i == 0 else None, device)
                   for i in range(meta["members"])]
        return cls(members, meta["mode"], meta["penalty"])


def load_reward_model(directory: str | Path, device: str = "cpu") -> RewardModel | RewardEnsemble:
    """Load whatever :meth:`RewardModel.save` or :meth:`RewardEnsemble.save` wrote to ``directory``."""
    directory = Path(directory)
    if (directory / "ensemble.json").is_file():
        return RewardEnsemble.load(directory, device=device)
    return RewardModel.load(directory, device=device)


# ---------------------------------------------------------------------------------------------------
# Building


def resolved_train_mode(config: RewardModelConfig, kind: str) -> str:
    """``auto`` -> full fine-tuning for encoders (small), LoRA for decoders."""
    if config.train != "auto":
        return config.train
    return "full" if kind == "encoder" else "lora"


def _set_trainable(backbone: nn.Module, mode: str, config: RewardModelConfig) -> nn.Module:
    """Freeze or wrap the backbone for ``mode``; returns the (possibly peft-wrapped) backbone."""
    for p in backbone.parameters():
        p.requires_grad_(mode == "full")
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                          target_modules="all-linear")
        return get_peft_model(backbone, lora)
    if mode == "last_layers":
        name, stack = blocks(backbone)
        n = min(config.last_layers, len(stack))
        for block in list(stack)[len(stack) - n:]:
            for p in block.parameters():
                p.requires_grad_(True)
        # The norm after the last block (Llama `norm`, GPT-2 `ln_f`) shapes what the head sees: train it too.
        for pname, p in backbone.named_parameters():
            outside_blocks = not pname.startswith(name + ".") and "embed" not in pname
            if outside_blocks and ("norm" in pname.lower() or pname.startswith("ln_f")):
                p.requires_grad_(True)
    return backbone


def build_reward_model(lm: LoadedModel, config: RewardModelConfig) -> RewardModel:
    """A fresh reward model on ``lm`` (whose weights it takes over: pass a copy you do not need)."""
    mode = resolved_train_mode(config, lm.kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # LoRA's random A matrices
        backbone = _set_trainable(backbone_of(lm), mode, config)
    return RewardModel(backbone, lm, config)


# ---------------------------------------------------------------------------------------------------
# Training


@dataclass
class RewardModelResult:
    """A trained reward model (or ensemble), its per-step history and its held-out accuracy."""

    model: RewardModel | RewardEnsemble
    history: list[dict] = field(default_factory=list)  # {"member", "step", "epoch", "loss", "accuracy"}
    validation_accuracy: float = math.nan
    seconds: float = 0.0


def _pair_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Pairs grouped by length (less padding), batch order shuffled each epoch."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


@dataclass
class PairLoss:
    """The Bradley-Terry loss of one batch of pairs (differentiable), its accuracy and its real tokens."""

    loss: torch.Tensor
    accuracy: float
    tokens: int


def pair_loss(rm: RewardModel, chosen: list[list[int]], rejected: list[list[int]], autocast: bool) -> PairLoss:
    """Forward chosen and rejected rows together ([2b, s], one pass) and return the BT loss; no backward."""
    batch = right_pad(chosen + rejected, pad_id(rm.tokenizer))
    with autocast_context(rm.backbone, autocast):
        rewards = rm.forward(**batch)  # [2b] (rm(...) is score(): no gradients)
    r_c, r_r = rewards[:len(chosen)], rewards[len(chosen):]
    return PairLoss(loss=bradley_terry_loss(r_c, r_r), accuracy=(r_c > r_r).float().mean().item(),
                    tokens=int(batch["attention_mask"].sum()))


def _head_pair_loss(rm: RewardModel, f_chosen: torch.Tensor, f_rejected: torch.Tensor) -> PairLoss:
    """The BT loss of the head alone on cached backbone features [b, d]."""
    r_c, r_r = rm.head(f_chosen).squeeze(-1), rm.head(f_rejected).squeeze(-1)
    return PairLoss(loss=bradley_terry_loss(r_c, r_r), accuracy=(r_c > r_r).float().mean().item(), tokens=0)


def _center(rm: RewardModel, rows: list[list[int]], limit: int = 256) -> None:
    """Set the offset to the mean raw reward over (up to ``limit``) training responses."""
    rows = rows[:limit]
    if rows:
        rm.offset.fill_(float(rm.raw_scores(rows).mean()))


def _train_member(train: list[Preference], validation: list[Preference], config: RewardModelConfig,
                  member: int, advance, device: str = "cpu") -> tuple[RewardModel, list[dict]]:
    torch.manual_seed(config.seed)
    rm = build_reward_model(load(config.backbone, device=device), config)
    chosen = rm.encode([p.prompt for p in train], [p.chosen for p in train])
    rejected = rm.encode([p.prompt for p in train], [p.rejected for p in train])
    head = list(rm.head.parameters())
    body = [p for p in rm.backbone.parameters() if p.requires_grad]
    groups = [{"params": head, "lr": config.head_lr}] + ([{"params": body, "lr": config.lr}] if body else [])
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    rng = random.Random(config.seed)
    lengths = [max(len(c), len(r)) for c, r in zip(chosen, rejected)]
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    # Linear decay to 0 after a 10% warmup: the usual fine-tuning schedule (BERT; InstructGPT RM used cosine).
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    autocast = default_autocast(rm.backbone, "train")
    features = None
    if resolved_train_mode(config, rm.kind) == "head":
        features = (rm.features(chosen), rm.features(rejected))  # [n, d] each
    history, step = [], 0
    rm.eval()  # no dropout, as TRL's RewardTrainer (disable_dropout=True): deterministic margins
    for epoch in range(config.epochs):
        for idx in _pair_batches(lengths, config.batch_size, rng):
            if features is not None:  # frozen backbone: the head trains on features computed once
                out = _head_pair_loss(rm, features[0][idx], features[1][idx])
            else:
                out = pair_loss(rm, [chosen[i] for i in idx], [rejected[i] for i in idx], autocast)
            check_finite(step, loss=out.loss.item())
            loss = out.loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            history.append({"member": member, "step": step, "epoch": epoch, "loss": loss.item(),
                            "accuracy": out.accuracy, "tokens": out.tokens})
            advance(1)
        if validation:
            history[-1]["validation_accuracy"] = preference_accuracy(rm, validation)
    _center(rm, chosen + rejected)
    return rm, history


def train_reward_model(train: list[Preference], validation: list[Preference], config: RewardModelConfig,
                       progress: Progress | None = None, device: str = "cpu") -> RewardModelResult:
    """Train a Bradley-Terry reward model (or an ensemble of ``config.ensemble_size``) on ``train``.

    ``config.pairs`` selects the training comparisons (validation keeps all); ties and chosen == rejected
    pairs are dropped. Each member loads its own copy of the backbone and is seeded with ``seed + member``.
    Returns the model (a :class:`RewardEnsemble` when ensemble_size > 1),
    the per-step history and the accuracy on ``validation`` (NaN when it is empty).
    """
    start = time.perf_counter()
    train, validation = usable(select_pairs(train, config.pairs)), usable(validation)
    if not train:
        raise FeedbackDataError("no usable training preferences (all ties or chosen == rejected)")
    steps = math.ceil(len(train) / config.batch_size) * config.epochs * config.ensemble_size
    advance = (progress or NullProgress()).task("training reward model", steps)
    members, history = [], []
    for m in range(config.ensemble_size):
        member_config = config.model_copy(update={"seed": config.seed + m})
        rm, rows = _train_member(train, validation, member_config, m, advance, device)
        members.append(rm)
        history.extend(rows)
    model: RewardModel | RewardEnsemble = members[0]
    if config.ensemble_size > 1:
        model = RewardEnsemble(members, config.ensemble_mode, config.uncertainty_penalty)
    accuracy = preference_accuracy(model, validation) if validation else math.nan
    return RewardModelResult(model=model, history=history, validation_accuracy=accuracy,
                             seconds=time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------
# Measuring


def preference_accuracy(rm: RewardModel | RewardEnsemble, prefs: list[Preference]) -> float:
    """Fraction of (non-tie) preferences where the RM scores chosen above rejected; RM ties count 1/2."""
    prefs = usable(prefs)
    if not prefs:
        return math.nan
    prompts = [p.prompt for p in prefs]
    r_c = rm.score(prompts, [p.chosen for p in prefs])
    r_r = rm.score(prompts, [p.rejected for p in prefs])
    return float(((r_c > r_r).float() + 0.5 * (r_c == r_r).float()).mean())


def gold_agreement(rm: RewardModel | RewardEnsemble, tasks: list[Task], responses: list[list[str]],
                   evaluator: GoldEvaluator) -> float:
    """Pairwise agreement of the RM's ranking with the gold reward, over pairs of a task's responses whose
    gold differs (RM ties count 1/2). NaN when no pair has different gold."""
    if len(tasks) != len(responses):
        raise ValueError(f"{len(tasks)} tasks but {len(responses)} response lists")
    prompts = [t.messages for t, group in zip(tasks, responses) for _ in group]
    flat = [r for group in responses for r in group]
    scores = rm.score(prompts, flat).numpy()
    agree, total, offset = 0.0, 0, 0
    for task, group in zip(tasks, responses):
        gold = np.array([evaluator.score(task, r).gold for r in group])
        s = scores[offset:offset + len(group)]
        offset += len(group)
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                if gold[i] == gold[j]:
                    continue
                total += 1
                d = (s[i] - s[j]) * (gold[i] - gold[j])
                agree += 1.0 if d > 0 else 0.5 if s[i] == s[j] else 0.0
    return agree / total if total else math.nan
