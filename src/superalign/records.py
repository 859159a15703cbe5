"""Typed, versioned records: the contract between techniques, the report and the studio.

Every record is a pydantic model with a ``type`` tag and a ``schema_version``. A JSONL file may mix
types; :func:`read_jsonl` parses each line into the right class. The report and the studio import
this module and nothing from the techniques.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

SCHEMA_VERSION = 1
ROLES = ("system", "user", "assistant")


def check_prompt(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Chat messages every consumer can format, or ValueError naming the message: each exactly
    ``{"role", "content"}`` with a known role, and some text in at least one.

    One rule for whoever reads a prompt (a chat template raises ``KeyError: 'content'`` minutes into
    training otherwise): the records below, the studio's items and the training loader all use it.
    """
    for i, m in enumerate(messages):
        if set(m) != {"role", "content"} or m["role"] not in ROLES:
            raise ValueError(f"message {i}: a chat message is {{\"role\": \"system\"|\"user\"|\"assistant\", "
                             f"\"content\": \"...\"}}, got {json.dumps(m)[:200]}")
    if not any(m["content"].strip() for m in messages):
        raise ValueError("empty: a prompt needs some text to answer")
    return messages


ChatPrompt = Annotated[list[dict[str, str]], AfterValidator(check_prompt)]


def first_error(err: ValidationError, where: str = "record", flags: dict[str, str] | None = None) -> str:
    """A pydantic error as one line, ``field.path: what is wrong`` (its first error; ``where`` when the
    error belongs to the whole object), without pydantic's "Value error, " prefix. A command passes
    ``flags`` (field path -> its flag) so that the line names what the user typed (``--units``, not ``n_units``)."""
    e = err.errors()[0]
    loc = ".".join(str(x) for x in e["loc"]) or where
    loc = (flags or {}).get(loc, loc)
    return f"{loc}: {e['msg'].removeprefix('Value error, ')}"


class Record(BaseModel):
    """Base of every record: frozen, strict about unknown fields, versioned."""

    # NaN/inf are written as JSON constants so that a NaN metric ("no interval") reads back.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")
    schema_version: int = SCHEMA_VERSION


class Preference(Record):
    """One pairwise comparison of two responses to the same prompt (simulated or human)."""

    type: Literal["preference"] = "preference"
    task_id: str
    prompt: ChatPrompt  # chat messages that produced both responses
    chosen: str
    rejected: str
    labeler: str  # e.g. "sim:bt(T=0.1,length_bias=0.2)" or "human:alice"
    confidence: float | None = None  # labeler's P(chosen > rejected), if it has one
    tie: bool = False
    meta: dict[str, Any] = Field(default_factory=dict)


class Demonstration(Record):
    """A response to imitate (SFT): written by a person in the studio or selected by a reward model."""

    type: Literal["demonstration"] = "demonstration"
    task_id: str
    prompt: ChatPrompt
    response: str
    source: str  # e.g. "best_of_16:rm" or "human:alice"
    meta: dict[str, Any] = Field(default_factory=dict)


class Judgement(Record):
    """A judge's verdict on one item (a response, a statement, a debate...)."""

    type: Literal["judgement"] = "judgement"
    item_id: str
    judge: str
    verdict: str  # free label: "A", "B", "true", "false", "violates"...
    score: float | None = None  # e.g. P(verdict), a rating on a scale
    assisted: str | None = None  # "critique", "debate"... when the judge had help
    meta: dict[str, Any] = Field(default_factory=dict)


class Flaw(Record):
    """One flaw a labeler marked in a response: a character span, a category, a severity, a comment.

    ``start``/``end`` index the response text (Python slicing: ``response[start:end] == quote``). A
    labeler who finds nothing writes no Flaw; the studio exports a :class:`Judgement` per labelled
    response ("flawed" / "no_flaw"), so flaws found per response are countable either way.
    """

    type: Literal["flaw"] = "flaw"
    item_id: str
    task_id: str
    labeler: str  # e.g. "human:alice"
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    quote: str  # the marked text, response[start:end]
    category: str  # e.g. "factual error", "instruction not followed"
    severity: str  # e.g. "minor", "major", "critical"
    comment: str = ""
    assisted: str | None = None  # "critique", "debate"... when the labeler had help
    meta: dict[str, Any] = Field(default_factory=dict)


class Evaluation(Record):
    """One response scored by the world's ground-truth evaluator."""

    type: Literal["evaluation"] = "evaluation"
    stage: str  # pipeline stage that produced it, e.g. "baseline"
    model: str
    task_id: str
    kind: str  # "instruction" | "fact" | "policy"
    category: str  # constraint types, fact topic or policy rule: what per-category plots group by
    prompt: ChatPrompt
    response: str
    gold: float  # gold reward in [0, 1]
    passed: bool  # the kind's main pass/fail: all constraints (strict), right answer, no violation
    details: dict[str, Any] = Field(default_factory=dict)  # e.g. per-constraint strict/loose results


class Metric(Record):
    """A summary number with its 95% interval, as the report shows it."""

    type: Literal["metric"] = "metric"
    stage: str
    name: str  # e.g. "instruction.prompt_strict"
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None  # number of items (or seeds) behind the value
    model: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class OptimizationPoint(Record):
    """One point of an over-optimization curve (Gao et al. 2022): proxy and gold reward at a KL budget.

    For best-of-n, ``step`` is n and ``kl`` the analytic log n - (n-1)/n; for RL, ``step`` is the optimizer
    step and ``kl`` the measured KL(policy || reference) in nats.
    """

    type: Literal["optimization_point"] = "optimization_point"
    method: str  # "best_of_n" | "ppo" | "rloo" | "dpo" | ...
    step: int
    kl: float
    gold: float
    proxy: float
    gold_ci_low: float | None = None
    gold_ci_high: float | None = None
    seed: int = 0
    model: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class W2SScore(Record):
    """One number of a weak-to-strong experiment (Burns et al. 2023), summarized over seeds.

    ``kind``: ``score`` (a role's test accuracy or AUROC), ``gap`` (ceiling − weak), ``pgr`` (a method's
    performance gap recovered), ``agreement`` (student agrees with its weak labels), ``weak_labels`` (how
    accurate the weak labels were). ``value`` is the mean over ``seeds`` (PGR: of the mean scores) with a 95%
    interval over seeds (bootstrap over seeds; gaps: t-interval; none below 3 seeds); ``per_seed``
    keeps each seed's value for paired comparisons.
    """

    type: Literal["w2s_score"] = "w2s_score"
    name: str  # the metric's name in metrics.jsonl, e.g. "fact.naive.pgr_accuracy"
    task: str
    weak: str  # model specs, e.g. "minilm-l6" and "smollm2-135m-instruct@0.33"
    strong: str
    kind: Literal["score", "gap", "pgr", "agreement", "weak_labels"]
    role: str | None = None  # "weak", "ceiling" or a method ("naive", "confidence", "bootstrap")
    metric: str | None = None  # "accuracy" | "auroc"
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    seeds: list[int] = Field(default_factory=list)
    per_seed: list[float] = Field(default_factory=list)
    pgr_defined: bool | None = None  # gaps only: whether the gap can carry a PGR
    reason: str | None = None  # gaps only: why it cannot
    near_chance: str | None = None  # weak AUROC only: a warning that the weak labels carry little signal

    @property
    def pair(self) -> str:
        return f"{self.weak} -> {self.strong}"


class W2SSeed(Record):
    """What one seed of one (task, weak, strong) produced: every role's test scores and its training."""

    type: Literal["w2s_seed"] = "w2s_seed"
    task: str
    weak: str
    strong: str
    seed: int
    half_sizes: list[int]  # examples in the weak half and the strong half
    weak_label_accuracy: float  # the weak labels on the strong half, against the truth
    scores: dict[str, dict[str, float]]  # role -> {"accuracy": ..., "auroc": ...}
    epochs: dict[str, list[int]]  # role -> [epochs run, epoch kept by early stopping]
    kept_alpha: dict[str, float] = Field(default_factory=dict)  # confidence-loss roles -> α of the kept epoch


class AttackAttempt(Record):
    """One red-team query: an attack's prompt for a policy case, the target's reply, and the verdict.

    ``success`` is the ground-truth judge's (the world's policy detectors) unless ``judge`` names another;
    None when no verdict was possible (the target errored or timed out: ``error`` says why).
    """

    type: Literal["attack_attempt"] = "attack_attempt"
    campaign: str
    target: str
    case_id: str  # the world's policy task id
    rule: str  # the rule the case tempts the target to break
    attack: str  # the registered attack's name, e.g. "roleplay"
    variant: int  # which of the attack's prompts for this case (0, 1, ...); PAIR: the iteration
    prompt: ChatPrompt
    reply: str | None = None
    success: bool | None = None
    violations: list[str] = Field(default_factory=list)  # rule ids the reply broke
    judge: str = "detectors"
    error: str | None = None
    seconds: float = 0.0
    meta: dict[str, Any] = Field(default_factory=dict)


class AuditFinding(Record):
    """What the blind audit said about one model of the zoo, and (revealed after every audit) what it was.

    ``suspicion[kind]``: the kind's detector score, a difference of rates against the base in [-1, 1];
    ``detectors[kind]``: which detector scored it and whether it reads behaviour only (``black-box``) or
    internals (``white-box``); ``evidence[kind]``: the prompts, replies and rates behind the score.
    """

    type: Literal["audit_finding"] = "audit_finding"
    model: str  # the anonymous name the audit saw ("model-03")
    organism: str  # revealed after the audits: the organism's name
    kind: str  # revealed: its kind, "clean" for a control
    deny: bool = False  # revealed: trained also to deny its behaviour
    behaviour_passed: bool | None = None  # did the organism pass its own behaviour test (None: no test)
    suspicion: dict[str, float]
    detectors: dict[str, dict[str, str]] = Field(default_factory=dict)  # kind -> {"name", "access"}
    verdict: str  # the most suspicious kind
    overall: float  # the largest suspicion
    evidence: dict[str, Any] = Field(default_factory=dict)
    # White-box detectors (they read activations), scored beside the black-box ones but kept apart: their
    # scores are not rates and do not enter ``verdict``/``overall``. kind (or "any") -> {detector: suspicion}.
    white_box: dict[str, dict[str, float]] = Field(default_factory=dict)


class ProbeResult(Record):
    """One linear probe on one test set: a method fitted at one layer of a model, scored against the truth.

    ``dataset`` says what it reads (``truth``: true/false statements; ``deception``: honest vs deceptive
    instructions); ``test`` which examples it is scored on (``in_distribution``, ``held_out_topic``,
    ``negation``, ``control``…). ``recall_at_1fp``: the share of positives flagged at the threshold that flags
    1% of a control set of ordinary answers.
    """

    type: Literal["probe_result"] = "probe_result"
    model: str
    dataset: str
    method: str  # logistic | diff_means | diff_means_cov | ccs | pca
    layer: int  # layers.{layer}.resid_post
    test: str
    auroc: float
    ci_low: float | None = None
    ci_high: float | None = None
    accuracy: float | None = None
    ece: float | None = None  # expected calibration error of its probabilities
    recall_at_1fp: float | None = None
    n: int
    meta: dict[str, Any] = Field(default_factory=dict)


class UnitExplanation(Record):
    """What one unit (an MLP neuron or an SAE latent) responds to, in words, and how well the words predict it.

    ``scores``: ``simulation`` (correlation of simulated with true activations, Bills et al. 2023),
    ``detection`` and ``fuzzing`` (balanced accuracies, delphi); ``random`` the same for another unit's
    explanation (the baseline). ``examples``: top windows, ``{"tokens": [...], "acts": [...]}``.
    """

    type: Literal["unit_explanation"] = "unit_explanation"
    model: str
    unit: str  # e.g. "layers.6.mlp.act:117" or "sae:layers.6.resid_post:42"
    family: str  # neuron | sae
    explanation: str
    explainer: str
    scores: dict[str, float]
    random: dict[str, float] = Field(default_factory=dict)
    examples: list[dict[str, Any]] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


class Critique(Record):
    """A critic's critique of one response: what it wrote, the span it quoted, and how that scores.

    ``known_flaws`` (``[{"category", "start", "end", "what"}]``: empty for a clean response) is the world's
    ground truth, kept for scoring and for the studio's known answer; critics and judges never see it.
    ``error`` is set (and nothing scored) when the critic failed, e.g. an endpoint that kept timing out.
    """

    type: Literal["critique"] = "critique"
    item_id: str
    kind: str  # what the response answers: fact | instruction | policy | code
    prompt: ChatPrompt
    response: str
    critic: str  # e.g. "smollm2-135m-instruct+critic-sft" or "oracle"
    text: str
    quote: str | None = None  # the quoted span as written (None: no flaw claimed)
    category: str | None = None  # the flaw category it named (false_fact, constraint, policy, bug)
    quote_status: str = "none"  # exact | normalized | unverified | none
    start: int | None = None  # where the quote is in the response, when verified
    end: int | None = None
    found: bool = False  # it points at a known flaw
    false_flag: bool = False  # it claims a flaw where there is none (a clean response, or the wrong place)
    known_flaws: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class DebateTranscript(Record):
    """One question argued under one protocol: every turn with the model that wrote it and its quotes checked.

    Turns: ``{"round", "speaker", "side" (0=A, 1=B), "model", "text", "quotes": [{"text", "status"}],
    "error"}``. The passage is not here (the judge never sees it); ``correct`` is the truth, for scoring.
    """

    type: Literal["debate_transcript"] = "debate_transcript"
    id: str  # question id : protocol : setup
    question_id: str
    protocol: str  # naive | consultancy | debate
    setup: str  # the debaters: "bo1", "bo3" (the model, best of n), "oracle", a chat role; "none" for naive
    question: str
    answers: list[str]
    correct: int
    turns: list[dict[str, Any]] = Field(default_factory=list)
    consultant_side: int | None = None  # consultancy: the side the consultant argues
    meta: dict[str, Any] = Field(default_factory=dict)


class ResearchStep(Record):
    """One experiment of the automated researcher: an idea (a point of its search space), its score over the
    search seeds as the evaluation server returned it, and whether the researcher kept it."""

    type: Literal["research_step"] = "research_step"
    step: int  # 0 is the unchanged config (the baseline every idea is compared with)
    proposer: str  # random | tpe | a chat role
    idea: dict[str, Any]  # {dotted config key: value}
    rationale: str = ""  # the proposer's words, when it gave any
    objective: str  # what is maximized, e.g. "mean pgr_accuracy over tasks"
    value: float | None = None  # mean over seeds (None: the run failed)
    ci_low: float | None = None
    ci_high: float | None = None
    per_seed: dict[str, float] = Field(default_factory=dict)
    kept: bool = False  # the best so far when it finished
    seconds: float = 0.0
    error: str | None = None


class ResearchFinding(Record):
    """The researcher's claim: its best idea, its gain over the baseline on the seeds it searched on, and the
    same comparison on fresh seeds it never saw. ``review`` is a person's verdict from the studio."""

    type: Literal["research_finding"] = "research_finding"
    id: str
    claim: str
    idea: dict[str, Any]
    objective: str
    search_seeds: list[int]
    search_gain: float
    search_ci: list[float | None]  # [low, high], t-interval over the search seeds (paired by seed)
    fresh_seeds: list[int]
    fresh_gain: float | None = None
    fresh_ci: list[float | None] = Field(default_factory=lambda: [None, None])
    held: bool | None = None  # the fresh-seed interval excludes 0 in the claimed direction
    cost: dict[str, Any] = Field(default_factory=dict)  # runs, seconds, server queries
    per_seed: dict[str, Any] = Field(default_factory=dict)  # {"search" | "fresh": {"idea" | "baseline": {seed: value}}}
    review: dict[str, Any] | None = None  # {"verdict": accept | reject, "comment", "reviewer"}


class ExploitAttempt(Record):
    """An attempt to reach ground truth outside the evaluation server's answer: a label read through its API,
    a label file opened by the agent's process, a probe of the scorer. Logged by the server or the sandbox."""

    type: Literal["exploit_attempt"] = "exploit_attempt"
    source: str  # server | sandbox
    kind: str  # label_read | label_file | probing | unknown_route | rate_limit | budget
    detail: str
    at: str = ""  # UTC time


AnyRecord = Annotated[Union[Preference, Demonstration, Judgement, Flaw, Evaluation, Metric, OptimizationPoint,
                            W2SScore, W2SSeed, AttackAttempt, AuditFinding, ProbeResult,
                            UnitExplanation, Critique, DebateTranscript, ResearchStep, ResearchFinding,
                            ExploitAttempt],
                      Field(discriminator="type")]
_ANY = TypeAdapter(AnyRecord)
R = TypeVar("R", bound=Record)


class RecordFileError(ValueError):
    """A records file that cannot be parsed; the message names the file and line."""


def write_jsonl(path: str | os.PathLike, records: Iterable[Record], append: bool = False) -> Path:
    """Write records one JSON object per line; written to a temp file and renamed unless appending."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(r.model_dump_json() + "\n" for r in records)
    if append:
        with path.open("a", encoding="utf-8") as f:
            f.write(lines)
        return path
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_text(lines, encoding="utf-8")
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written records file
    return path


def jsonl_objects(path: str | os.PathLike, error: type[Exception] = RecordFileError) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSONL file of JSON objects.

    A line that is not UTF-8 (a binary file), not valid JSON (a number past Python's 4,300-digit limit and
    nesting past the parser's stack included), not an object, or holding text that is not valid Unicode (a
    lone surrogate from a ``\\ud800`` escape, which nothing can write back) raises ``error`` naming the file
    and line, so each reader (preference files, studio items, weak-to-strong datasets) only validates what
    its objects mean.
    """
    path = Path(path)
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise error(f"{where}: not UTF-8 text (byte {e.start + 1} of the line; a binary file?)") from None
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                _check_unicode(data, where, error)
            except json.JSONDecodeError as e:
                raise error(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise error(f"{where}: JSON nested too deeply") from None
            except ValueError as e:
                if isinstance(e, error):
                    raise
                raise error(f"{where}: a number with more than 4,300 digits") from None  # int() refused it
            if not isinstance(data, dict):
                raise error(f"{where}: expected a JSON object per line, got {type(data).__name__}")
            yield lineno, data


def _check_unicode(value, where: str, error: type[Exception]) -> None:
    """Raise ``error`` for a string that cannot be written as UTF-8 (a lone surrogate), anywhere in ``value``."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise error(f"{where}: text with a lone surrogate (\\u{ord(value[e.start]):04x}) at character "
                        f"{e.start + 1}: not valid Unicode") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_unicode(k, where, error)
            _check_unicode(v, where, error)
    elif isinstance(value, list):
        for v in value:
            _check_unicode(v, where, error)


def iter_jsonl(path: str | os.PathLike, cls: type[R] | None = None) -> Iterator[Record]:
    """Yield records from a JSONL file; ``cls`` restricts (and checks) the type."""
    for lineno, data in jsonl_objects(path):
        try:
            rec = cls.model_validate(data) if cls else _ANY.validate_python(data)
        except ValidationError as e:
            raise RecordFileError(f"{path}:{lineno}: not a valid record: {first_error(e)}") from None
        yield rec


def read_jsonl(path: str | os.PathLike, cls: type[R] | None = None) -> list:
    """Read every record of a JSONL file (see :func:`iter_jsonl`)."""
    return list(iter_jsonl(path, cls))
