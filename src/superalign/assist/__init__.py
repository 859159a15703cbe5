"""Stage "assist": can AI help a weaker judge evaluate what it cannot evaluate alone?

Two studies on the pipeline's model (:mod:`superalign.critique` and :mod:`superalign.debate`):

- **critiques**: responses with planted flaws (false facts, broken instructions, policy violations, bugs in
  coding tasks with hidden tests); the model as it is, the model trained as a critic (LoRA SFT on the world's
  critiques of other responses) and the oracle critique each quote a flaw; a simulated judge of limited
  attention and the model itself look for flaws with and without each critique. Flaws found, their uplift
  (paired), false flags, and the generator-discriminator-critique gap, all with intervals.
- **debate**: hidden-information questions judged naively, after a consultant, and after a debate, by the
  model's debaters (greedy and best-of-n) and the oracle debater, for a simulated judge and the model as judge:
  accuracy per protocol with intervals, and how it moves with debater skill.

Records: critiques, debate transcripts, and the judges' judgements and flaws; the studio turns critiques and
transcripts into items for people (``superalign studio create ... --task flaw|pairwise RUN_DIR``), and its export
scores with the same code (``superalign critique score`` / ``superalign debate score``).

The stage does not read the train stage: it measures assistance with the pipeline's model, so that its numbers
do not move when training changes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from superalign.context import RunContext
from superalign.critique import Config as CritiqueConfig
from superalign.debate import Config as DebateConfig
from superalign.records import Metric, Record

STAGE = "assist"

# smoke: a tiny random model, the plumbing in seconds; quick: the embedded model in about 9 minutes on 2 cores
# (docs/assist.md); full: more responses, questions and rounds.
PROFILES: dict[str, dict] = {
    # smoke keeps the debate's batches of 16 its snapshot was taken with (a batch's shape moves scores in their
    # 7th digit).
    "smoke": {"critique": {"n_test": 8, "max_new_tokens": 8, "training": {"n_train": 8, "epochs": 1, "max_length": 2048}},
              "debate": {"n_questions": 4, "rounds": 1, "best_of": [1, 2], "max_new_tokens": 8, "batch_size": 16}},
    "quick": {"debate": {"rounds": 1}},
    "full": {"critique": {"n_test": 200, "training": {"n_train": 600, "epochs": 3}},
             "debate": {"n_questions": 200, "rounds": 2, "best_of": [1, 4, 16]}},
}
PROFILES["standard"] = {"critique": {"n_test": 96}, "debate": {"n_questions": 80, "rounds": 2}}


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m-instruct", description="the model that critiques, debates and judges")
    seed: int = Field(0, ge=0, description="seed of the task world, the judges' draws and the sampling")
    critique: CritiqueConfig = Field(default_factory=CritiqueConfig)
    debate: DebateConfig = Field(default_factory=DebateConfig)

    def sections(self) -> tuple[CritiqueConfig, DebateConfig]:
        """The two studies' configs with the stage's seed as their world and sampling seed."""
        seeds = {"world_seed": self.seed, "seed": self.seed}
        training = self.critique.training.model_copy(update={"seed": self.seed})
        return (self.critique.model_copy(update={**seeds, "training": training}),
                self.debate.model_copy(update=seeds))


class Result(BaseModel):
    model: str
    metrics: list[Metric]
    critiques: list = Field(default_factory=list)  # Critique, Judgement and Flaw records
    debates: list = Field(default_factory=list)  # DebateTranscript and Judgement records
    details: dict = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def records(self) -> list[Record]:
        return [*self.critiques, *self.debates]

    def summary(self) -> dict:
        # "seconds": the stage's time in its parts, as the time table shows it (superalign.report.times)
        parts = {name: round(self.details[key]["seconds"], 1) for name, key in (("critiques", "critique"),
                                                                                 ("debate", "debate"))
                 if "seconds" in self.details.get(key, {})}
        return {"model": self.model, **self.details, "notes": self.notes,
                "metrics": {m.name: m.value for m in self.metrics}, "seconds": parts}


def check(config: Config, pipeline=None) -> None:
    """Before any work: enough flawed and clean responses in every split the critique study reads (building them
    takes a fraction of a second)."""
    from superalign.critique.study import check as check_critique

    critique_config, _ = config.sections()
    if critique_config.enabled:
        check_critique(critique_config)


def run(config: Config, ctx: RunContext | None = None) -> Result:
    """The critique study, then the debate study, on the pipeline's model."""
    import time

    from superalign import critique, debate
    from superalign.critique.study import gap_summary

    ctx = ctx or RunContext()
    lm = ctx.load(config.model, train=True)  # fp32: the critic trains a LoRA on it
    critique_config, debate_config = config.sections()
    metrics, records, details, notes = [], {"critiques": [], "debates": []}, {}, []
    if critique_config.enabled:
        start = time.perf_counter()
        ctx.log(f"assist: critiques on {critique_config.n_test} responses by {', '.join(critique_config.critics)}")
        study = critique.run(critique_config, lm, stage=STAGE, progress=ctx.progress, log=ctx.log)
        metrics += study.metrics
        records["critiques"] = study.records()
        details["critique"] = {**study.summary, "gap": gap_summary(study.metrics, lm.name),
                               "seconds": time.perf_counter() - start}
        notes += _critique_notes(study.metrics, lm.name)
    if debate_config.enabled:
        start = time.perf_counter()
        ctx.log(f"assist: debates on {debate_config.n_questions} questions")
        study = debate.run(debate_config, lm, stage=STAGE, progress=ctx.progress, log=ctx.log)
        metrics += study.metrics
        records["debates"] = study.records()
        details["debate"] = {**study.summary, "seconds": time.perf_counter() - start}
        notes += _debate_notes(study.metrics, lm.name)
    return Result(model=config.model, metrics=metrics, critiques=records["critiques"], debates=records["debates"],
                  details=details, notes=notes)


def _critique_notes(metrics: list[Metric], model: str) -> list[str]:
    """What the critique numbers say in words: does the trained critic help the judge, beyond its interval?"""
    by = {m.name: m for m in metrics}
    out = []
    for m in metrics:
        if m.name.startswith("judge.") and m.name.endswith(".uplift") and m.meta.get("judge", "").startswith("sim"):
            critic = m.name[len("judge."):-len(".uplift")]
            if critic == "oracle":
                continue
            verdict = "helps" if m.ci_low > 0 else "does not measurably help" if m.ci_high >= 0 else "hurts"
            alone, aided = by.get("judge.unaided.false_flags"), by.get(f"judge.{critic}.false_flags")
            cost = f"; false flags per response {alone.value:.2f} -> {aided.value:.2f}" if alone and aided else ""
            out.append(f"critiques by {critic} {verdict} the limited judge: {m.value:+.2f} flaws found per flawed "
                       f"response [{m.ci_low:+.2f}, {m.ci_high:+.2f}]{cost}")
    return out


def _debate_notes(metrics: list[Metric], model: str) -> list[str]:
    """Does debate by the model beat the naive judge, for each judge? Said plainly when it does not."""
    by = {m.name: m for m in metrics}
    out = []
    for m in metrics:
        if m.meta.get("protocol") != "debate" or m.meta.get("setup") == "oracle":
            continue
        naive = by.get(f"accuracy.naive.{m.meta['judge']}")
        if naive is None:
            continue
        beats = m.ci_low > naive.ci_high
        out.append(f"debate by {model} ({m.meta['setup']}) {'helps' if beats else 'does not measurably help'} "
                   f"{m.meta['judge']}: {m.value:.2f} [{m.ci_low:.2f}, {m.ci_high:.2f}] vs naive {naive.value:.2f}")
    return out


__all__ = ["Config", "PROFILES", "Result", "STAGE", "check", "run"]
