"""The debate study end to end, and the accuracy scoring that simulated, model and human judges share."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from superalign.debate import Config, DebateError
from superalign.debate.prompts import LETTERS, judge_view
from superalign.debate.protocols import run_protocol
from superalign.debate.roles import ChatDebater, ChatJudge, ModelDebater, ModelJudge, OracleDebater, SimulatedJudge
from superalign.progress import NullProgress, Progress
from superalign.records import DebateTranscript, Judgement, Metric, Preference, Record
from superalign.stats import bootstrap_ci
from superalign.world.passages import DebateQuestion, debate_questions


@dataclass
class Study:
    transcripts: list[DebateTranscript]
    judgements: list[Judgement]
    metrics: list[Metric]
    summary: dict = field(default_factory=dict)

    def records(self) -> list[Record]:
        return [*self.transcripts, *self.judgements]


def _setups(config: Config, lm, chat_debaters: Sequence) -> dict[str, object]:
    """setup name -> debater, weakest first: the model by best-of-n, then chat roles, then the oracle."""
    selector = ModelJudge(lm, batch_size=config.batch_size)
    out: dict[str, object] = {}
    for n in config.best_of:
        out[f"bo{n}"] = ModelDebater(lm, n, selector if n > 1 else None, config.max_new_tokens, config.temperature,
                                     config.batch_size, config.seed)
    for role in chat_debaters:
        debater = role if isinstance(role, ChatDebater) else ChatDebater(role)
        out[debater.name if debater.name not in out else f"{debater.name} (chat)"] = debater
    if config.oracle:
        out["oracle"] = OracleDebater()
    return out


def _judges(config: Config, lm, questions: list[DebateQuestion], chat_judges: Sequence) -> dict[str, object]:
    out: dict[str, object] = {}
    if "simulated" in config.judges:
        judge = SimulatedJudge(questions, config.judge_skill, config.seed)
        out[judge.name] = judge
    if "model" in config.judges:
        out[lm.name] = ModelJudge(lm, batch_size=config.batch_size)
    for role in chat_judges:
        judge = role if isinstance(role, ChatJudge) else ChatJudge(role)
        out[judge.name if judge.name not in out else f"{judge.name} (chat)"] = judge  # never overwrite the model's
    return out


def run(config: Config, lm, *, chat_debaters: Sequence = (), chat_judges: Sequence = (), stage: str = "debate",
        progress: Progress | None = None, log: Callable[[str], None] = lambda m: None) -> Study:
    """Argue every question under every protocol and setup; judge every transcript with every judge; score."""
    progress = progress or NullProgress()
    questions = debate_questions(config.world_seed, "test", config.n_questions)
    setups = _setups(config, lm, chat_debaters)
    judges = _judges(config, lm, questions, chat_judges)
    transcripts: list[DebateTranscript] = []
    seconds: dict[str, float] = {}
    if "naive" in config.protocols:
        transcripts += run_protocol("naive", questions, OracleDebater(), seed=config.seed, setup="none")
    argued = [p for p in config.protocols if p != "naive"]
    advance = progress.task("debates", len(setups) * len(argued))
    for name, debater in setups.items():
        start = time.perf_counter()
        for protocol in argued:
            log(f"debate: {protocol} by {name} on {len(questions)} questions")
            transcripts += run_protocol(protocol, questions, debater, config.rounds, config.order, config.seed, name)
            advance(1)
        seconds[name] = time.perf_counter() - start
    judgements = judge_transcripts(transcripts, questions, judges, progress)
    metrics = accuracy_metrics(judgements, stage, lm.name)
    summary = {"n_questions": len(questions), "setups": list(setups), "judges": list(judges),
               "protocols": list(config.protocols), "rounds": config.rounds, "order": config.order,
               "seconds": seconds, "quotes": quote_stats(transcripts, questions),
               "consultancy": consultancy_split(judgements)}
    return Study(transcripts=transcripts, judgements=judgements, metrics=metrics, summary=summary)


def judge_transcripts(transcripts: Sequence[DebateTranscript], questions: Sequence[DebateQuestion],
                      judges: dict[str, object], progress: Progress | None = None) -> list[Judgement]:
    """Every judge's verdict on every transcript, as records (a failed verdict is recorded as ``failed``)."""
    by_id = {q.id: q for q in questions}
    views = [judge_view(by_id[t.question_id], t.turns, t.protocol) for t in transcripts]
    qids = [t.question_id for t in transcripts]
    advance = (progress or NullProgress()).task("judging", len(judges))
    out = []
    for name, judge in judges.items():
        for t, v in zip(transcripts, judge.judge_many(qids, views)):
            out.append(Judgement(item_id=t.id, judge=name, verdict="failed" if v.choice is None else LETTERS[v.choice],
                                 score=v.p_a, assisted=None if t.protocol == "naive" else t.protocol,
                                 meta={"question_id": t.question_id, "protocol": t.protocol, "setup": t.setup,
                                       "correct": None if v.choice is None else v.choice == t.correct,
                                       "consultant_honest": None if t.consultant_side is None
                                       else t.consultant_side == t.correct, "error": v.error}))
        advance(1)
    return out


def accuracy_metrics(judgements: Sequence[Judgement], stage: str = "debate", model: str = "") -> list[Metric]:
    """Judge accuracy per protocol, setup and judge (bootstrap over questions); failed verdicts are left out
    of the accuracy and counted in ``meta.failed``."""
    groups: dict[tuple[str, str, str], list[Judgement]] = {}
    for j in judgements:
        groups.setdefault((j.meta["protocol"], j.meta["setup"], j.judge), []).append(j)
    out = []
    for (protocol, setup, judge), rows in groups.items():
        scored = [float(j.meta["correct"]) for j in rows if j.meta.get("correct") is not None]
        failed = len(rows) - len(scored)
        if not scored:
            continue
        iv = bootstrap_ci(scored)
        name = f"accuracy.{protocol}.{judge}" if protocol == "naive" else f"accuracy.{protocol}.{setup}.{judge}"
        out.append(Metric(stage=stage, name=name, value=iv.value, ci_low=iv.low, ci_high=iv.high, n=iv.n, model=model,
                          meta={"protocol": protocol, "setup": setup, "judge": judge, "failed": failed}))
    return out


def consultancy_split(judgements: Sequence[Judgement]) -> dict:
    """Consultancy accuracy when the consultant argued the right answer and when it argued the wrong one."""
    out: dict = {}
    for j in judgements:
        honest = j.meta.get("consultant_honest")
        if honest is None or j.meta.get("correct") is None:
            continue
        row = out.setdefault(f"{j.meta['setup']}|{j.judge}", {"honest": [], "dishonest": []})
        row["honest" if honest else "dishonest"].append(float(j.meta["correct"]))
    return {k: {side: (sum(v) / len(v) if v else None) for side, v in row.items()} for k, row in out.items()}


def quote_stats(transcripts: Sequence[DebateTranscript], questions: Sequence[DebateQuestion]) -> dict:
    """Per setup: turns with a verified quote, and turns whose quote proves the answer they argue for."""
    by_id = {q.id: q for q in questions}
    out: dict = {}
    for t in transcripts:
        for turn in t.turns:
            row = out.setdefault(t.setup, {"turns": 0, "verified": 0, "decisive": 0, "failed": 0})
            row["turns"] += 1
            row["failed"] += bool(turn.get("error"))
            verified = [q for q in turn["quotes"] if q["status"] != "unverified"]
            row["verified"] += bool(verified)
            row["decisive"] += any(by_id[t.question_id].decisive_for(q["start"], q["end"]) == turn["side"]
                                   for q in verified)
    return out


def studio_verdicts(records: Sequence[Record]) -> list[Judgement]:
    """People's choices in a studio debate campaign (pairwise items whose two responses are the answers) as
    Judgements, so :func:`accuracy_metrics` scores them like any judge."""
    out = []
    for r in records:
        if not isinstance(r, Preference) or r.meta.get("source") != "debate" or r.tie:
            continue
        answers = r.meta["answers"]
        if r.chosen not in answers:
            raise DebateError(f"studio record for {r.task_id}: the chosen response is not one of the answers")
        choice = answers.index(r.chosen)
        # What the person was shown: an item whose turns all failed carries no assistance, so it is naive.
        assisted = bool((r.meta.get("studio") or {}).get("assistance"))
        protocol = r.meta["protocol"] if assisted else "naive"
        out.append(Judgement(item_id=r.meta.get("transcript_id", r.task_id), judge=r.labeler, verdict=LETTERS[choice],
                             assisted=None if protocol == "naive" else protocol,
                             meta={"question_id": r.task_id, "protocol": protocol,
                                   "setup": r.meta["setup"] if assisted else "none",
                                   "correct": choice == r.meta["correct"], "consultant_honest": None}))
    return out


__all__ = ["Study", "accuracy_metrics", "consultancy_split", "judge_transcripts", "quote_stats", "run",
           "studio_verdicts"]
