"""The critique study end to end, and the scoring that simulated judges and studio exports share."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from superalign.critique import Config, CritiqueError
from superalign.critique.critics import (ChatCritic, ModelCritic, OracleCritic, fit_threshold, score_critique,
                                         train_critic)
from superalign.critique.judges import LimitedJudge, model_flaw_scores
from superalign.progress import NullProgress, Progress
from superalign.records import Critique, Flaw, Judgement, Metric, Record
from superalign.stats import auroc_interval, bootstrap_ci, bootstrap_diff, paired_bootstrap_diff
from superalign.world.flaws import FlawItem, KnownFlaw, flaw_items, match_flags, score_answers

UNAIDED = "unaided"


@dataclass
class Study:
    critiques: list[Critique]
    judgements: list[Record]  # the judges' Judgement and Flaw records
    metrics: list[Metric]
    summary: dict = field(default_factory=dict)

    def records(self) -> list[Record]:
        return [*self.critiques, *self.judgements]


def test_items(config: Config) -> list[FlawItem]:
    return _items(config, "test", config.n_test)


def train_items(config: Config) -> list[FlawItem]:
    return _items(config, "train", config.training.n_train)


def calibration_items(config: Config) -> list[FlawItem]:
    """Responses of the validation split (other topics, cases and coding tasks than train and test) on which
    model critics fit their decision threshold."""
    return _items(config, "validation", config.n_test)


def check(config: Config) -> None:
    """Every split this config reads can give what it asks, before any model loads (CritiqueError if not)."""
    test_items(config)
    if "trained" in config.critics:
        train_items(config)
    if config.decision == "calibrated" and {"model", "trained"} & set(config.critics):
        calibration_items(config)


def _items(config: Config, split: str, n: int) -> list[FlawItem]:
    try:
        items = flaw_items(config.world_seed, split, n, config.kinds, config.flawed_fraction)
    except ValueError as err:
        raise CritiqueError(str(err)) from None
    if sum(i.flawed for i in items) < 2 or sum(not i.flawed for i in items) < 1:
        raise CritiqueError(f"{split}: {len(items)} responses give too few flawed or clean ones to measure "
                            "anything; raise n_test or change flawed_fraction")
    return items


def run(config: Config, lm, *, chat_critics: Sequence = (), stage: str = "critique",
        progress: Progress | None = None, log: Callable[[str], None] = lambda m: None) -> Study:
    """Critique the test responses with every critic, judge them with and without each critique, score."""
    progress = progress or NullProgress()
    items = test_items(config)
    critics, summary = _critics(config, lm, chat_critics, progress, log)
    critiques: list[Critique] = []
    for name, critic in critics.items():
        start = time.perf_counter()
        written = critic.critique(items, progress.task(f"critiques by {name}", len(items)))
        critiques += [score_critique(i, name, text, error) for i, (text, error) in zip(items, written)]
        summary.setdefault("seconds", {})[name] = time.perf_counter() - start
    judge = LimitedJudge(**config.judge.model_dump())
    judgements = judge_all(judge, items, critiques)
    metrics = critic_metrics(critiques, items, stage, lm.name) + decision_metrics(critics, items, stage, lm.name)
    metrics += judge_metrics(score_judgements(judgements), stage, lm.name, judge.name)
    if config.model_judge:
        metrics += _model_judge(lm, items, critiques, config, stage, progress)
    if config.generator:
        metrics += _generator(lm, items, config, stage, progress)
    summary.update(n_items=len(items), n_flawed=sum(i.flawed for i in items), judge=judge.name,
                   critics=list(critics), by_kind=_by_kind(critiques))
    return Study(critiques=critiques, judgements=judgements, metrics=metrics, summary=summary)


def _critics(config: Config, lm, chat_critics: Sequence, progress: Progress, log) -> tuple[dict, dict]:
    """name -> critic, in the config's order, then the chat roles; trains the critic when it is asked for, and
    fits each model critic's decision threshold on the validation split (``decision: calibrated``)."""
    out: dict = {}
    summary: dict = {"thresholds": {}}
    calibration = calibration_items(config) if config.decision == "calibrated" else []
    for name in config.critics:
        if name == "oracle":
            out["oracle"] = OracleCritic()
            continue
        model = lm
        if name == "trained":
            train = train_items(config)
            start = time.perf_counter()
            model, history = train_critic(lm, train, config.training, progress=progress, log=log)
            summary["training"] = {"history": history, "n": len(train), "seconds": time.perf_counter() - start}
        critic = ModelCritic(model, config.max_new_tokens, config.batch_size)
        if calibration:
            critic.threshold = fit_threshold(critic.flaw_scores(calibration), [i.flawed for i in calibration])
            summary["thresholds"][critic.name] = critic.threshold
        out[critic.name] = critic
    for role in chat_critics:
        critic = role if isinstance(role, ChatCritic) else ChatCritic(role)
        name = critic.name if critic.name not in out else f"{critic.name} (chat)"  # never overwrite the model's
        out[name] = critic
    return out, summary


def decision_metrics(critics: dict, items: Sequence[FlawItem], stage: str, model: str) -> list[Metric]:
    """Each model critic's own discriminator: AUROC of its P(Quote) - P(No) over flawed vs clean test responses."""
    labels = [i.flawed for i in items]
    return [_metric(stage, f"critique.{name}.decision.auroc", auroc_interval(labels, critic.flaw_scores(items)),
                    model, critic=name, what="its P(claiming a flaw), flawed vs clean")
            for name, critic in critics.items() if isinstance(critic, ModelCritic)]


def judge_all(judge: LimitedJudge, items: Sequence[FlawItem], critiques: Sequence[Critique]) -> list[Record]:
    """The judge on every response unaided, then with each critic's critique of it."""
    by_id = {i.id: i for i in items}
    out: list[Record] = []
    for item in items:
        out += judge.judge(item)
    for c in critiques:
        out += judge.judge(by_id[c.item_id], c)
    return out


def _condition(j: Judgement) -> str:
    return (j.meta.get("critic") or "critique") if j.assisted else UNAIDED


def score_judgements(records: Sequence[Record]) -> dict[str, dict[str, list]]:
    """Judgement and Flaw records (a simulated judge's, or people's from a studio export) scored against the
    known flaws in each Judgement's meta: ``{condition: {"found": [fraction of known flaws found, per flawed
    response], "false_flags": [flags on no flaw, per response], "items": [item id per found entry]}}``,
    the condition being ``unaided`` or the critic whose critique was shown."""
    flags: dict[tuple, list[tuple[int, int, str]]] = {}
    for r in records:
        if isinstance(r, Flaw):
            key = (r.item_id, r.labeler, r.assisted, r.meta.get("critic"))
            flags.setdefault(key, []).append((r.start, r.end, r.category))
    out: dict[str, dict[str, list]] = {}
    for j in records:
        if not isinstance(j, Judgement) or "known_flaws" not in j.meta:
            continue
        known = [KnownFlaw(f["category"], f["start"], f["end"], "") for f in j.meta["known_flaws"]]
        item = FlawItem(j.item_id, j.meta.get("kind", ""), [], "", known)
        # A studio export's flaws do not name the critic (each person labels an item once): fall back to none.
        mine = flags.get((j.item_id, j.judge, j.assisted, j.meta.get("critic")))
        score = match_flags(item, mine if mine is not None else flags.get((j.item_id, j.judge, j.assisted, None), []))
        row = out.setdefault(_condition(j), {"found": [], "false_flags": [], "items": [], "judges": []})
        row["false_flags"].append(score.false_flags)
        if known:
            row["found"].append(score.n_found / len(known))
            row["items"].append(j.item_id)
            row["judges"].append(j.judge)
    return out


def _metric(stage: str, name: str, iv, model: str, **meta) -> Metric:
    return Metric(stage=stage, name=name, value=iv.value, ci_low=iv.low, ci_high=iv.high, n=iv.n, model=model,
                  meta=meta)


def judge_metrics(scored: dict[str, dict[str, list]], stage: str, model: str, judge: str) -> list[Metric]:
    """Flaws found per flawed response and false flags per response, per condition, and each critique's uplift
    over unaided (paired by response and judge where both were judged, else unpaired)."""
    out = []
    base = scored.get(UNAIDED)
    for condition, row in scored.items():
        if row["found"]:
            out.append(_metric(stage, f"judge.{condition}.found", bootstrap_ci(row["found"]), model, judge=judge,
                               what="share of planted flaws the judge found"))
        out.append(_metric(stage, f"judge.{condition}.false_flags", bootstrap_ci(row["false_flags"]), model,
                           judge=judge, rate=False, what="flags on no flaw, per response"))
        if condition == UNAIDED or not base or not row["found"] or not base["found"]:
            continue
        before = dict(zip(zip(base["items"], base["judges"]), base["found"]))
        pairs = [(v, before[k]) for k, v in zip(zip(row["items"], row["judges"]), row["found"]) if k in before]
        if len(pairs) == len(row["found"]) and len(pairs) >= 2:
            iv = paired_bootstrap_diff([a for a, _ in pairs], [b for _, b in pairs])
        else:
            iv = bootstrap_diff(row["found"], base["found"])
        out.append(_metric(stage, f"judge.{condition}.uplift", iv, model, judge=judge, rate=False,
                           what="flaws found with the critique minus without"))
    return out


def critic_metrics(critiques: Sequence[Critique], items: Sequence[FlawItem], stage: str, model: str) -> list[Metric]:
    """Per critic: planted flaws its quote points at, false flags on clean responses, verified quotes, right
    categories, and failures (an endpoint that never answered)."""
    out = []
    flawed = {i.id for i in items if i.flawed}
    for critic in dict.fromkeys(c.critic for c in critiques):
        mine = [c for c in critiques if c.critic == critic and not c.error]
        failed = sum(1 for c in critiques if c.critic == critic and c.error)
        on_flawed = [c for c in mine if c.item_id in flawed]
        on_clean = [c for c in mine if c.item_id not in flawed]
        claims = [c for c in mine if c.quote is not None]
        if on_flawed:
            out.append(_metric(stage, f"critique.{critic}.found", bootstrap_ci([float(c.found) for c in on_flawed]),
                               model, critic=critic, failed=failed, what="planted flaws its quote points at"))
        if on_clean:
            out.append(_metric(stage, f"critique.{critic}.false_flags",
                               bootstrap_ci([float(c.quote is not None) for c in on_clean]), model, critic=critic,
                               what="clean responses it claims a flaw in"))
        if claims:
            out.append(_metric(stage, f"critique.{critic}.verified",
                               bootstrap_ci([float(c.quote_status != "unverified") for c in claims]), model,
                               critic=critic, what="claimed flaws whose quote is in the response"))
        found = [c for c in on_flawed if c.found]
        if found:
            right = [float(any(f["category"] == c.category for f in c.known_flaws)) for c in found]
            out.append(_metric(stage, f"critique.{critic}.category", bootstrap_ci(right), model, critic=critic,
                               what="found flaws it named the right category of"))
    return out


def _model_judge(lm, items, critiques, config: Config, stage: str, progress: Progress) -> list[Metric]:
    """AUROC of the model's P(flawed) over flawed vs clean responses, unaided and with each critique shown."""
    labels = [i.flawed for i in items]
    advance = progress.task("model judge", 1 + len({c.critic for c in critiques}))
    out = []
    scores = model_flaw_scores(lm, items, batch_size=config.batch_size)
    advance(1)
    out.append(_metric(stage, "model_judge.unaided.auroc", auroc_interval(labels, scores), lm.name, judge=lm.name,
                       what="the model's P(flawed), flawed vs clean (the discriminator)"))
    for critic in dict.fromkeys(c.critic for c in critiques):
        mine = {c.item_id: c for c in critiques if c.critic == critic}
        shown = [mine.get(i.id) for i in items]
        scores = model_flaw_scores(lm, items, [c if c is not None and not c.error else None for c in shown],
                                   batch_size=config.batch_size)
        advance(1)
        out.append(_metric(stage, f"model_judge.{critic}.auroc", auroc_interval(labels, scores), lm.name,
                           judge=lm.name, critic=critic, what="the model's P(flawed) with this critique shown"))
    return out


def _generator(lm, items, config: Config, stage: str, progress: Progress) -> list[Metric]:
    """G of the G-D-C gap: the model's own greedy answers to the test prompts, right by the world's truth."""
    from superalign.models.generation import greedy

    scorable = [i for i in dict((i.source, i) for i in items if i.kind != "fact").values()]
    if not scorable:
        return []
    answers = greedy(lm, [i.prompt for i in scorable], max_new_tokens=160, batch_size=config.batch_size,
                     progress=progress.task("generator answers", len(scorable)))
    right = [float(ok) for ok in score_answers(scorable, answers, config.world_seed) if ok is not None]
    return [_metric(stage, "gap.generator", bootstrap_ci(right), lm.name,
                    what="the model's own answers to the test prompts (code, instruction, policy) that are right")]


def gap_summary(metrics: Sequence[Metric], model_name: str) -> dict:
    """The generator-discriminator-critique numbers side by side (Saunders et al. 2022 §5)."""
    by = {m.name: m.value for m in metrics}
    return {"generator": by.get("gap.generator"), "discriminator": by.get("model_judge.unaided.auroc"),
            "critique": {n[len("critique."):-len(".found")]: v for n, v in by.items()
                         if n.startswith("critique.") and n.endswith(".found")}}


def _by_kind(critiques: Sequence[Critique]) -> dict:
    """critic -> kind -> share of flawed responses whose flaw it found."""
    out: dict = {}
    for c in critiques:
        if c.known_flaws and not c.error:
            out.setdefault(c.critic, {}).setdefault(c.kind, []).append(float(c.found))
    return {critic: {kind: float(np.mean(v)) for kind, v in kinds.items()} for critic, kinds in out.items()}


def critique_metrics(records: Sequence[Record], stage: str = "critique", model: str = "") -> list[Metric]:
    """Metrics of any records file that holds judgements (e.g. a studio export): the same scoring as the study."""
    scored = score_judgements(records)
    judges = sorted({r.judge for r in records if isinstance(r, Judgement)})
    return [m for m in judge_metrics(scored, stage, model, ",".join(judges)) if not math.isnan(m.value)]


__all__ = ["Study", "UNAIDED", "calibration_items", "check", "critic_metrics", "critique_metrics", "gap_summary", "judge_all", "judge_metrics",
           "run", "score_judgements"]
