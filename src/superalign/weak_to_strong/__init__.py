"""Stage "generalize": does weak supervision generalize to a stronger model? (Burns et al. 2023)

For each task and (weak, strong) pair, over several seeds: a weak supervisor trained on ground truth
labels the strong student's half with soft labels; the strong student learns from them - naively,
with the auxiliary confidence loss, or by bootstrapping through intermediate models - and is compared
with the weak supervisor and with the strong ceiling trained on ground truth. The headline number is
the performance gap recovered, PGR = (student − weak) / (ceiling − weak), on accuracy and AUROC, of the
mean scores over seeds with a bootstrap interval over seeds, or "undefined" with the reason when the gap
cannot carry it.

Models are named by spec strings ``NAME[:MODE][@LAYER]``: ``minilm-l6`` (a linear probe on frozen
features, the fast mode), ``tiny-llama-2m:full`` (full fine-tuning), ``smollm2-135m-instruct:lora``,
``smollm2-135m-instruct@19`` (probe on ``layers.19.resid_post``, the residual stream after the 20th
block, numbered as in :mod:`superalign.models.internals`) or ``@0.66`` (two thirds of the depth).

Same shape as every stage (:mod:`superalign.stages`): ``Config``, ``Result``, ``run(config, ctx) -> Result``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from superalign.context import RunContext
from superalign.progress import Progress
from superalign.records import Metric, W2SScore, W2SSeed
from superalign.stages import InputMissing, Inputs
from superalign.world.binary import WORLD_TASKS
from superalign.world.vault import TaskDataError as W2SDataError

STAGE = "generalize"

# Profiles: overrides of Config's defaults (see superalign.config).
PROFILES: dict[str, dict] = {
    # tiny random models: checks the plumbing, not the science (PGR is usually undefined here)
    "smoke": {"weak": "tiny-gpt2", "tasks": ["fact", "reward"], "n_seeds": 2, "n_train": 48, "n_test": 24,
              "max_length": 96, "train": {"epochs": 4}},
    # The strong probe reads a third of the way up (after 10 of SmolLM2's 30 blocks, layers.9): as accurate as the top on these
    # tasks (measured) at a third of the cost. Sizes keep frozen features, almost all of the time, to minutes
    # on 2 cores.
    "quick": {"weak": "minilm-l6", "strong_layer": 0.33, "n_seeds": 5, "max_length": 192,
              "task_sizes": {"fact": [600, 300], "policy": [800, 320], "instruction": [240, 120],
                             "reward": [240, 120]}},
}
PROFILES["standard"] = PROFILES["quick"]  # standard differs from quick in the train stage only
METHODS = ("naive", "confidence", "bootstrap")
Method = Literal["naive", "confidence", "bootstrap"]
WorldTask = Literal["fact", "instruction", "policy", "reward"]
MODES = ("probe", "full", "lora")
_SPEC = re.compile(r"^(?P<name>.+?)(?::(?P<mode>probe|full|lora))?(?:@(?P<layer>\d+(?:\.\d+)?))?$")


@dataclass(frozen=True)
class ModelSpec:
    """A model and how it is trained: ``NAME[:probe|full|lora][@LAYER]`` (layer: ``layers.N`` index or fraction)."""

    name: str
    mode: str = "probe"
    layer: float | int | None = None

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        m = _SPEC.match(str(text).strip())
        if not m or not m.group("name"):
            raise ValueError(f"model spec {text!r}: expected NAME[:probe|full|lora][@LAYER]")
        raw = m.group("layer")
        layer: float | int | None = None
        if raw is not None:
            layer = float(raw) if "." in raw else int(raw)
            if isinstance(layer, float) and not 0 < layer <= 1:
                raise ValueError(f"model spec {text!r}: a fractional layer must be in (0, 1]")
            if isinstance(layer, int) and layer < 0:
                raise ValueError(f"model spec {text!r}: layer must be >= 0 (layers.N.resid_post, N from 0)")
        return cls(m.group("name"), m.group("mode") or "probe", layer)

    def resolve_layer(self, n_layers: int) -> int | None:
        """The layer N of ``layers.N.resid_post`` to read (None: the model's last hidden state).

        A fraction f reads after round(f * n_layers) blocks: 0.33 of SmolLM2's 30 is ``layers.9``.
        """
        if self.layer is None:
            return None
        if isinstance(self.layer, float):
            return max(1, round(self.layer * n_layers)) - 1
        if self.layer >= n_layers:
            raise W2SDataError(f"model {self.name} has layers 0..{n_layers - 1}; layer {self.layer} does not exist")
        return self.layer


class TrainSettings(BaseModel):
    """Optimization of one classifier (probe or fine-tuning).

    Probe defaults were chosen on ground-truth probes of the quick profile's features (MiniLM and SmolLM2
    block 10, 100-300 training examples, 3 seeds): lr 1e-3 or 30 epochs underfit (e.g. policy 0.78 vs
    0.86 for MiniLM), a larger L2 (0.3-1) hurt on policy, patience 4 stopped too early on noisy
    validation sets of 20-60 examples. Batch size 32 is the paper's.
    """

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(1e-2, gt=0, description="learning rate of the head (LoRA/full backbone weights use finetune_lr)")
    finetune_lr: float = Field(5e-5, gt=0, description="learning rate of backbone weights (full or LoRA)")
    epochs: int = Field(60, ge=1, description="maximum passes over the training set")
    batch_size: int = Field(32, ge=2, description="examples per step (the confidence loss thresholds per batch)")
    l2: float = Field(0.03, ge=0, description="L2 penalty on the probe head's weights (sum of squares)")
    val_fraction: float = Field(0.2, ge=0, lt=0.9, description="share of the training set held out for early stopping")
    patience: int = Field(8, ge=0, description="epochs without a better validation loss before stopping "
                                                "(0: never stop)")
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)


class DatasetConfig(BaseModel):
    """A labelled file on disk (JSONL or CSV), used as one more task."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    text_column: str = "text"
    label_column: str = "label"
    text_b_column: str | None = Field(None, description="second text for pairwise tasks (is text better than text_b?)")
    group_column: str | None = Field(None, description="rows sharing a value stay in the same split")
    test_fraction: float = Field(0.25, gt=0, lt=1)


class ConfidenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alpha_max: float = Field(0.5, ge=0, le=1, description="final weight of the hardened self-labels "
                                                          "(paper: 0.75 for the largest students, 0.5 otherwise)")
    warmup_frac: float = Field(0.2, ge=0, le=1, description="share of training over which α rises linearly")


class StudentSettings(BaseModel):
    """Where the strong students' training differs from the weak model's and the ceiling's (None: the same)."""

    model_config = ConfigDict(extra="forbid")

    lr: float | None = Field(None, gt=0, description="the students' head learning rate")
    epochs: int | None = Field(None, ge=1, description="the students' maximum epochs")
    l2: float | None = Field(None, ge=0, description="the students' L2 penalty")

    def apply(self, train: TrainSettings) -> TrainSettings:
        return train.model_copy(update={k: v for k, v in self.model_dump().items() if v is not None})


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m-instruct", description="the strong model (used when `strong` is not set)")
    seed: int = Field(0, ge=0, description="seed of the world and of the first run; seeds are seed, seed+1, ...")
    weak: str = Field("minilm-l6", description="weak supervisor spec NAME[:MODE][@LAYER]")
    strong: str | None = Field(None, description="strong model spec; default: `model` as a linear probe")
    strong_layer: float | int | None = Field(None, description="layer N (layers.N.resid_post) or fraction of "
                                                                  "depth the default strong probe reads; None: "
                                                                  "the last hidden state")
    pairs: list[list[str]] = Field(default_factory=list,
                                   description="sweep: [[weak, strong], ...] instead of weak/strong")
    intermediates: list[str] = Field(default_factory=list, description="bootstrapping chain between weak and strong")
    tasks: list[WorldTask] = Field(default_factory=lambda: list(WORLD_TASKS))
    dataset: DatasetConfig | None = Field(None, description="a labelled file to run as one more task")
    methods: list[Method] = Field(default_factory=lambda: ["naive", "confidence"])
    n_seeds: int = Field(3, ge=1, description="seeds per (task, pair); PGR intervals are over these")
    n_train: int = Field(800, ge=8, description="training pool per task, split in half each seed")
    n_test: int = Field(400, ge=4, description="held-out test examples per task")
    task_sizes: dict[WorldTask, list[int]] = Field(default_factory=dict, description="per-task [n_train, n_test] "
                                                   "(instruction and reward count prompts)")
    max_length: int = Field(256, ge=8, description="tokens per text (decoders keep the end)")
    feature_batch_size: int = Field(16, ge=1)
    bf16: bool = Field(False, description="bf16 autocast for frozen features: faster on a CPU, but features then move "
                                          "by ~2e-3 between runs (measured), enough to change probe results")
    train: TrainSettings = Field(default_factory=TrainSettings)
    student: StudentSettings = Field(default_factory=StudentSettings)
    confidence: ConfidenceConfig = Field(default_factory=ConfidenceConfig)
    bootstrap_loss: Literal["naive", "confidence"] = Field("naive", description="loss along the bootstrapping chain")
    min_gap: float = Field(0.02, ge=0, description="smallest ceiling-weak gap for which PGR is reported")
    eval_server: str | None = Field(None, description="URL of an evaluation server (superalign.eval_server) that "
                                                      "holds the world tasks: texts come from it, and every label "
                                                      "read and score goes through it (the task sizes are its own)")

    @field_validator("weak", "strong", "intermediates")
    @classmethod
    def _specs_parse(cls, value):
        for v in [value] if isinstance(value, str) else (value or []):
            ModelSpec.parse(v)
        return value

    @field_validator("strong_layer")
    @classmethod
    def _layer_ok(cls, value):
        if value is not None:
            ModelSpec.parse(f"model@{value}")
        return value

    @field_validator("task_sizes")
    @classmethod
    def _sizes_ok(cls, value):
        for name, size in value.items():
            if len(size) != 2 or min(size) < 4:
                raise ValueError(f"task_sizes.{name}: expected [n_train, n_test], each >= 4, got {size!r}")
        return value

    @field_validator("pairs")
    @classmethod
    def _pairs_parse(cls, value):
        for pair in value:
            if len(pair) != 2:
                raise ValueError(f"each pair is [weak, strong], got {pair!r}")
            for v in pair:
                ModelSpec.parse(v)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        if "bootstrap" in self.methods and not self.intermediates:
            raise ValueError("methods includes bootstrap, which needs at least one model in `intermediates`")
        if not self.tasks and self.dataset is None:
            raise ValueError("no task: list world tasks in `tasks` or give a `dataset`")
        if not self.methods:
            raise ValueError("methods is empty: choose from naive, confidence, bootstrap")
        if self.eval_server is not None and self.dataset is not None:
            raise ValueError("eval_server serves world tasks only: leave out `dataset`")
        return self

    def resolved_pairs(self) -> list[tuple[str, str]]:
        """The (weak, strong) spec pairs to run."""
        if self.pairs:
            return [(w, s) for w, s in self.pairs]
        return [(self.weak, self.strong or self.default_strong())]

    def default_strong(self) -> str:
        """``model`` as a probe, read at ``strong_layer`` when set."""
        return self.model if self.strong_layer is None else f"{self.model}@{self.strong_layer}"

    def model_names(self) -> list[str]:
        """Every model the stage loads (for the 'is it pulled?' check before any work)."""
        specs = [s for pair in self.resolved_pairs() for s in pair] + list(self.intermediates)
        return list(dict.fromkeys(ModelSpec.parse(s).name for s in specs))


class Result(BaseModel):
    model: str  # the strong model(s)
    metrics: list[Metric]
    notes: list[str] = Field(default_factory=list)  # warnings: gaps too small, one-class test sets...
    tasks: list[dict] = Field(default_factory=list)  # name, description, sizes, class balance, how it was built
    scores: list[W2SScore] = Field(default_factory=list)  # every number of the PGR table, with its seeds
    table: list[dict] = Field(default_factory=list)  # one row per (task, pair, method), for results.json and the CLI
    seeds: list[W2SSeed] = Field(default_factory=list)  # per-seed scores and fit reports
    seconds: float = 0.0

    def records(self) -> list:
        return [*self.scores, *self.seeds]

    def summary(self) -> dict:
        return {"model": self.model, "tasks": self.tasks, "table": self.table, "notes": self.notes,
                "seconds": round(self.seconds, 1)}


# --- models: spec -> classifier ------------------------------------------------------------------------


class ModelBank:
    """Builds classifiers from specs; loads each backbone once and caches frozen features per text."""

    def __init__(self, config: Config, ctx: RunContext | None = None, cache_dir: str | os.PathLike | None = None):
        from superalign.models.activations import ActivationCache

        self.config = config
        self.ctx = ctx or RunContext()
        self.cache = ActivationCache(cache_dir)
        self._models: dict[str, object] = {}

    def lm(self, name: str):
        """A frozen backbone for probe features, loaded once, on the run's device and dtype."""
        if name not in self._models:
            self._models[name] = self.ctx.load(name)
        return self._models[name]

    def feature_key(self, spec: ModelSpec) -> str:
        from superalign.models import sources
        from superalign.models import activations as Fe

        lm = self.lm(spec.name)
        pooling = Fe.resolve_pooling("auto", lm.kind)
        param = next(lm.model.parameters())  # bf16 on a GPU, fp32 on a CPU: the features differ
        return (f"v{Fe.READOUT_VERSION}|{spec.name}|{sources.fingerprint(spec.name)}|{param.dtype}|"
                f"{param.device.type}|layer={spec.resolve_layer(Fe.n_layers(lm))}|{pooling}|"
                f"len={self.config.max_length}|bf16={self._autocast(lm)}")

    def _autocast(self, lm) -> bool:
        return self.config.bf16

    def features(self, spec: ModelSpec, texts: list[str], advance=None):
        """Frozen features [n, d] of ``texts`` (cached)."""
        from superalign.models import activations as Fe

        lm = self.lm(spec.name)
        layer = spec.resolve_layer(Fe.n_layers(lm))

        def compute(missing: list[str]):
            return Fe.extract(lm, missing, layer, Fe.resolve_pooling("auto", lm.kind), self.config.max_length,
                              self.config.feature_batch_size, self._autocast(lm), advance)

        return self.cache.get(self.feature_key(spec), texts, compute)

    def featurizer(self, spec: ModelSpec, pairwise: bool):
        def featurize(examples):
            first = self.features(spec, [e.texts[0] for e in examples])
            return first - self.features(spec, [e.texts[1] for e in examples]) if pairwise else first

        return featurize

    def make(self, spec_text: str, pairwise: bool, train: TrainSettings | None = None):
        """A fresh, untrained classifier for ``spec_text`` (trained with ``train``, default the config's)."""
        from superalign.models import activations as Fe
        from superalign.weak_to_strong.classifier import FinetuneClassifier, ProbeClassifier

        spec = ModelSpec.parse(spec_text)
        train = train or self.config.train
        if spec.mode == "probe":
            return ProbeClassifier(self.featurizer(spec, pairwise), pairwise, train)
        n_layers = Fe.n_layers(self.lm(spec.name))
        return FinetuneClassifier(lambda: self.ctx.load(spec.name, train=True), pairwise, train,
                                  spec.mode, spec.resolve_layer(n_layers), "auto", self.config.max_length)

    def make_student(self, spec_text: str, pairwise: bool):
        """A fresh student: the config's training settings with ``student``'s changes."""
        return self.make(spec_text, pairwise, self.config.student.apply(self.config.train))


# --- the stage -----------------------------------------------------------------------------------------


def build_tasks(config: Config) -> list:
    """The configured world tasks and the dataset file, each checked for two classes."""
    from superalign.world.binary import world_task
    from superalign.world.vault import check_task

    sizes = {name: config.task_sizes.get(name, [config.n_train, config.n_test]) for name in config.tasks}
    if config.eval_server is not None:  # the labels stay on the server; only texts come here
        from superalign.world.remote import remote_task

        tasks = [remote_task(config.eval_server, name) for name in config.tasks]
    else:
        tasks = [world_task(name, config.seed, *sizes[name]) for name in config.tasks]
    if config.dataset is not None:
        tasks.append(file_task(config))
    for task in tasks:
        check_task(task)
    return tasks


def file_task(config: Config):
    """The task of the configured dataset file (its columns, labels and both classes checked as it loads)."""
    from superalign.world.binary import load_file_task

    d = config.dataset
    return load_file_task(d.path, d.text_column, d.label_column, d.text_b_column, d.group_column, d.test_fraction,
                          config.seed, n_max=config.n_train + config.n_test)


def _objectives(config: Config) -> dict:
    from superalign.weak_to_strong.classifier import Objective

    conf = Objective("confidence", config.confidence.alpha_max, config.confidence.warmup_frac)
    return {"ce": Objective("ce"), "confidence": conf, "bootstrap": conf if config.bootstrap_loss == "confidence"
            else Objective("ce")}


def _prefetch(bank: ModelBank, tasks: list, specs: list[str], progress: Progress) -> None:
    """Compute every frozen feature up front, one progress bar per (model, task)."""
    for spec_text in dict.fromkeys(specs):
        spec = ModelSpec.parse(spec_text)
        if spec.mode != "probe":
            continue
        for task in tasks:
            texts = list(dict.fromkeys(t for e in [*task.pool, *task.test] for t in e.texts))
            missing = bank.cache.missing(bank.feature_key(spec), texts)
            if missing:
                advance = progress.task(f"{STAGE}: features {spec.name} ({task.name})", len(missing))
                bank.features(spec, missing, advance)


def run(config: Config, ctx: RunContext | None = None, cache_dir: str | os.PathLike | None = None) -> Result:
    """Run the protocol for every task x pair x seed and summarize (see the module docstring).

    Frozen features are cached in ``cache_dir`` (default: the superalign home's ``features/``, shared by
    every run: keyed by the model's weights and the text).
    """
    from superalign.weak_to_strong.metrics import as_metric, summarize
    from superalign.weak_to_strong.protocol import run_seed

    start = time.perf_counter()
    ctx = ctx or RunContext()
    progress = ctx.progress
    if cache_dir is None and ctx.cache_dir is not None:
        from superalign.models.sources import home

        cache_dir = home() / "features"
    tasks = build_tasks(config)
    pairs = config.resolved_pairs()
    bank = ModelBank(config, ctx, cache_dir)
    _prefetch(bank, tasks, [s for p in pairs for s in p] + list(config.intermediates), progress)
    objectives = _objectives(config)
    seeds = [config.seed + i for i in range(config.n_seeds)]
    advance = progress.task(f"{STAGE}: training", len(tasks) * len(pairs) * len(seeds) * (2 + len(config.methods)))
    outcomes = []
    for task in tasks:
        for weak, strong in pairs:
            for seed in seeds:
                outcomes.append(run_seed(task, weak, strong, seed, bank.make, list(config.methods), objectives,
                                         config.intermediates, advance, bank.make_student))
    scores, notes = summarize(outcomes, config.min_gap)
    task_info = [{"name": t.name, "description": t.description, "pool": len(t.pool), "test": len(t.test),
                  "test_negatives_positives": list(t.vault.class_counts(t.test)), "pairwise": t.pairwise,
                  "notes": t.notes} for t in tasks]
    strong_names = ", ".join(dict.fromkeys(s for _, s in pairs))
    return Result(model=strong_names, metrics=[as_metric(s) for s in scores], scores=scores, notes=notes,
                  tasks=task_info, table=pgr_table(scores, list(config.methods)),
                  seeds=[seed_record(o) for o in outcomes], seconds=time.perf_counter() - start)


def inputs(config: Config) -> Inputs:
    """Every model of every pair and of the bootstrapping chain, the dataset file when given, and the tasks an
    evaluation server serves (their texts' fingerprints: another world behind the same URL is another input)."""
    extra = {}
    if config.eval_server is not None:
        from superalign.world.remote import EvalClient, ServerUnreachable

        try:
            with EvalClient(config.eval_server) as client:
                served = client.tasks()
        except ServerUnreachable as err:
            raise InputMissing(f"generalize: {err}") from None
        missing = [t for t in config.tasks if t not in served]
        if missing:
            raise InputMissing(f"generalize: the evaluation server at {config.eval_server} does not serve "
                               f"{', '.join(missing)} (it serves {', '.join(served) or 'nothing'})")
        extra = {f"served:{t}": served[t] for t in config.tasks}
    # The file's columns, labels and classes are read before any model loads (the pipeline checks that it exists
    # first); the stage reads it again, which costs little next to a model.
    checks = [lambda: file_task(config)] if config.dataset is not None else []
    return Inputs(models=config.model_names(), files=[config.dataset.path] if config.dataset is not None else [],
                  extra=extra, checks=checks)


def pgr_table(scores: list[W2SScore], methods: list[str]) -> list[dict]:
    """One row per (task, pair, method): weak, ceiling and student scores, PGR as [value, low, high] or None."""
    from superalign.weak_to_strong.metrics import pgr_rows

    table = []
    for row in pgr_rows(scores):
        for method in methods:
            entry = {"task": row["task"], "pair": row["pair"], "method": method}
            for metric in ("accuracy", "auroc"):
                for role, key in (("weak", "weak"), ("ceiling", "ceiling"), (method, "student")):
                    m = row["scores"].get((role, metric))
                    entry[f"{key}_{metric}"] = m.value if m else None
                p = row["pgr"].get((method, metric))
                entry[f"pgr_{metric}"] = [p.value, p.ci_low, p.ci_high] if p else None
            table.append(entry)
    return table


def seed_record(o) -> W2SSeed:
    """What one seed of one (task, pair) produced: scores, weak-label accuracy, epochs run and kept."""
    return W2SSeed(task=o.task, weak=o.weak, strong=o.strong, seed=o.seed, half_sizes=list(o.n_half),
                   weak_label_accuracy=o.weak_label_accuracy,
                   scores={r: {k: float(getattr(t.scores, k)) for k in ("accuracy", "auroc")} for r, t in o.models.items()},
                   epochs={r: [t.report.epochs, t.report.best_epoch] for r, t in o.models.items()},
                   kept_alpha={r: t.report.kept_alpha for r, t in o.models.items() if t.report.kept_alpha is not None})


__all__ = ["Config", "ConfidenceConfig", "DatasetConfig", "METHODS", "ModelSpec", "Result", "STAGE", "StudentSettings",
           "TrainSettings",
           "W2SDataError", "run"]
