"""Campaign items from records files: pure functions, no database.

A campaign is built from JSONL files the pipeline already writes (``runs/<run>/records/*.jsonl``) or from
a hand-made items file. What becomes an item depends on the campaign's task:

=============  ==========================================================================================
task           items
=============  ==========================================================================================
pairwise       each :class:`Preference` (its two responses, in a seeded random A/B order); each pair of
               distinct :class:`Evaluation` responses to the same task (the known answer is the one with
               the higher gold reward); each :class:`DebateTranscript` of a consultancy or a debate (the
               question, its two answers as A and B, the transcript as the assistance: people judge without
               the passage); each ``studio_item`` with two responses
rating, flaw   each :class:`Evaluation` response (known answer from its gold reward / pass), each response
               of a :class:`Preference`, each :class:`Demonstration`; each ``studio_item`` with one response;
               for flaw, each response that :class:`Critique` records critique (its known flaws as the answer,
               the critique of ``critic``, or of the first critic that is not the oracle, as the assistance)
demonstration  each distinct prompt (by task id) of any record; each ``studio_item`` without responses
review         each :class:`ResearchFinding` (its claim and evidence as readable text; no known answer);
               :func:`apply_reviews` puts the exported verdicts back on the findings
=============  ==========================================================================================

A ``studio_item`` line (for items that come from elsewhere, e.g. a planted-flaw set)::

    {"type": "studio_item", "task_id": "t1", "prompt": "Summarize...", "responses": ["...", "..."],
     "truth": {"choice": "A"}, "gold": true, "critique": "Response B invents a date.", "meta": {}}

Assistance can also come from a separate file (``--assistance``): lines
``{"task_id": ..., "response": optional, "critique": "..."}`` or ``{"task_id": ..., "debate": [{"speaker":
..., "text": ...}, ...]}``, attached to every item of that task (and, if ``response`` is given, only to items
showing that response).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from superalign.records import (AnyRecord, Critique, DebateTranscript, Demonstration, Evaluation, Preference,
                                Record, ResearchFinding, check_prompt, first_error, jsonl_objects)
from superalign.studio import TASKS, StudioError
from superalign.world.quotes import mark_quotes

Task = Literal["pairwise", "rating", "flaw", "demonstration", "review"]

DEFAULT_CATEGORIES = ("factual error", "instruction not followed", "policy violation", "unclear", "other")
DEFAULT_SEVERITIES = ("minor", "major", "critical")
DEFAULT_INSTRUCTIONS = {
    "pairwise": "Which response follows the user's intent better? Press 1 for A, 2 for B, 0 for a tie, "
                "then Enter.",
    "rating": "How good is the response? Press a number on the scale, then Enter.",
    "flaw": "Select any flawed passage of the response with the mouse, pick a category and a severity, "
            "click 'Add flaw' (or press f). Submit with Enter; submitting without flaws means you found none.",
    "demonstration": "Write the response you would want the assistant to give. Submit with Ctrl+Enter.",
    "review": "Read the finding and its evidence. Accept it if the evidence supports the claim, reject it "
              "otherwise; say why in the comment. Press 1 to accept, 2 to reject, then Enter.",
}


class CampaignConfig(BaseModel):
    """Settings of a campaign, fixed at creation and stored with it."""

    model_config = ConfigDict(extra="forbid")

    task: Task = Field(description="pairwise | rating | flaw | demonstration | review")
    labels_per_item: int = Field(1, ge=1, le=100, description="distinct labelers per (non-gold) item; >1 gives "
                                 "the overlap that inter-annotator agreement needs")
    gold_fraction: float = Field(0.1, ge=0.0, le=1.0, description="fraction of the items made gold (chosen among "
                                 "items with a known answer); every labeler sees every gold item")
    assist: Literal["none", "all", "random"] = Field("random", description="who sees an item's critique or "
                                                     "debate: nobody, everybody, or a seeded coin per labeler x item")
    assist_p: float = Field(0.5, ge=0.0, le=1.0, description="P(assisted) per labeler x item when assist=random")
    scale: int = Field(7, ge=2, le=10, description="rating scale 1..scale")
    categories: list[str] = Field(default_factory=lambda: list(DEFAULT_CATEGORIES), min_length=1)
    severities: list[str] = Field(default_factory=lambda: list(DEFAULT_SEVERITIES), min_length=1)
    instructions: str = Field("", max_length=5000, description="shown above every item; a default per task")
    seed: int = Field(0, ge=0, description="seeds the item order, A/B order, gold choice and assistance coins")
    limit: int | None = Field(None, ge=1, description="keep at most this many items (a seeded sample)")
    lease_minutes: float = Field(60.0, gt=0, description="an item served but not labeled within this time "
                                 "stops counting toward labels_per_item, so another labeler can take it")
    critic: str | None = Field(None, description="flaw campaigns from critique records: whose critique is the "
                               "assistance (default: the first critic that is not the oracle)")

    @model_validator(mode="after")
    def _defaults(self) -> "CampaignConfig":
        if not self.instructions:
            object.__setattr__(self, "instructions", DEFAULT_INSTRUCTIONS[self.task])
        return self


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speaker: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=50_000)


class ItemInput(BaseModel):
    """One line of a hand-made items file (``"type": "studio_item"``)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["studio_item"] = "studio_item"
    key: str | None = Field(None, min_length=1, max_length=200)
    task_id: str = Field(min_length=1, max_length=200)
    prompt: str | list[dict[str, str]]
    responses: list[str] = Field(default_factory=list, max_length=2)
    truth: dict[str, Any] | None = None
    gold: bool = False
    critique: str | None = Field(None, min_length=1, max_length=50_000)
    debate: list[Turn] | None = Field(None, min_length=1)
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "ItemInput":
        if self.gold and self.truth is None:
            raise ValueError("a gold item needs a truth (its known answer)")
        if self.critique and self.debate:
            raise ValueError("an item carries a critique or a debate, not both")
        # What training would trip over minutes later (KeyError 'content', a pair with nothing to prefer):
        try:
            check_prompt(_messages(self.prompt))  # the rule the records and the training loader apply
        except ValueError as err:
            raise ValueError(f"prompt: {err}") from None
        for i, r in enumerate(self.responses):
            if not r.strip():
                raise ValueError(f"responses.{i}: empty or only whitespace (nothing to judge)")
        if len(self.responses) == 2 and self.responses[0] == self.responses[1]:
            raise ValueError("responses: the two responses are identical (a comparison of a response with itself)")
        return self


class AssistanceInput(BaseModel):
    """One line of an ``--assistance`` file."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1)
    response: str | None = None
    critique: str | None = Field(None, min_length=1, max_length=50_000)
    debate: list[Turn] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> "AssistanceInput":
        if (self.critique is None) == (self.debate is None):
            raise ValueError("give exactly one of 'critique' or 'debate'")
        return self

    def as_assistance(self) -> dict[str, Any]:
        return _assistance(self.critique, self.debate)


@dataclass
class ItemSpec:
    """One item to label, before it is stored."""

    key: str
    task_id: str
    prompt: list[dict[str, str]]
    response_a: str | None = None
    response_b: str | None = None
    assistance: dict[str, Any] | None = None  # {"kind": "critique", "text"} or {"kind": "debate", "turns": [...]}
    truth: dict[str, Any] | None = None  # the known answer, if any (never shown to labelers)
    gold: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


_RECORD = TypeAdapter(AnyRecord)


def _assistance(critique: str | None, debate: Sequence[Turn] | None) -> dict[str, Any] | None:
    if critique:
        return {"kind": "critique", "text": critique}
    if debate:
        return {"kind": "debate", "turns": [t.model_dump() for t in debate]}
    return None


def _key(*parts: Any) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
    return f"{parts[0]}:{digest}" if isinstance(parts[0], str) else digest


def _messages(prompt: str | list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def clean_text(text: str | None) -> str | None:
    """Text as a browser shows it: line ends as ``\\n``, no NUL characters. Flaw spans index this text,
    so it must be exactly what the page's text node holds (HTML parsing turns CRLF into LF)."""
    if text is None:
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _jsonl_files(path: Path) -> list[Path]:
    """A file, or every ``*.jsonl`` of a directory (a run directory's ``records/`` when it has one)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        folder = path / "records" if (path / "records").is_dir() else path
        files = sorted(folder.glob("*.jsonl"))
        if not files:
            raise StudioError(f"{path}: no *.jsonl records files in {folder}")
        return files
    raise StudioError(f"{path}: no such file or directory")


def read_sources(paths: Iterable[str | Path]) -> list[Any]:
    """Records and ``studio_item`` lines from files or run directories; a bad line names file:line."""
    out: list[Any] = []
    for path in paths:
        for file in _jsonl_files(Path(path)):
            for lineno, data in jsonl_objects(file, error=StudioError):
                out.append(_validate_line(data, f"{file}:{lineno}"))
    return out


def _validate_line(data: dict, where: str) -> Any:
    """One object of an items or records file as an ItemInput or a record; anything wrong -> StudioError(where)."""
    try:
        if data.get("type") == "studio_item":
            return ItemInput.model_validate(data)
        return _RECORD.validate_python(data)
    except ValidationError as err:
        raise StudioError(f"{where}: not a record or studio_item: {first_error(err, 'line')}") from None


def read_assistance(path: str | Path) -> list[AssistanceInput]:
    """Lines of an ``--assistance`` file."""
    path = Path(path)
    if not path.is_file():
        raise StudioError(f"--assistance {path}: no such file")
    out = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(AssistanceInput.model_validate_json(line))
                except ValidationError as err:
                    raise StudioError(f"{path}:{lineno}: {first_error(err, 'line')}") from None
    return out


def _check_truth(task: str, truth: dict[str, Any] | None, where: str, config: CampaignConfig) -> None:
    if truth is None:
        return
    ok = {
        "pairwise": lambda t: t.get("choice") in ("A", "B", "tie"),
        "rating": lambda t: isinstance(t.get("rating"), int) and 1 <= t["rating"] <= config.scale,
        "flaw": lambda t: isinstance(t.get("flawed"), bool),
        "demonstration": lambda t: False,
    }[task](truth)
    if not ok:
        want = {"pairwise": '{"choice": "A" | "B" | "tie"}', "rating": f'{{"rating": 1..{config.scale}}}',
                "flaw": '{"flawed": true | false, "spans": [[start, end], ...]}',
                "demonstration": "nothing (demonstrations have no known answer)"}[task]
        raise StudioError(f"{where}: truth {truth} does not fit a {task} item; expected {want}")


def _from_item_input(inp: ItemInput, task: str, config: CampaignConfig) -> ItemSpec | None:
    need = {"pairwise": 2, "rating": 1, "flaw": 1, "demonstration": 0}[task]
    if len(inp.responses) != need:
        return None  # an items file may mix kinds; this one is for another task
    _check_truth(task, inp.truth, f"studio_item {inp.key or inp.task_id}", config)
    a, b = (inp.responses + [None, None])[:2]
    return ItemSpec(key=inp.key or _key(inp.task_id, task, inp.responses), task_id=inp.task_id,
                    prompt=_messages(inp.prompt), response_a=a, response_b=b,
                    assistance=_assistance(inp.critique, inp.debate), truth=inp.truth, gold=inp.gold,
                    meta=dict(inp.meta))


def _pairwise(sources: list[Any], config: CampaignConfig) -> list[ItemSpec]:
    items = []
    by_task: dict[str, list[Evaluation]] = {}
    for src in sources:
        if isinstance(src, Preference) and src.chosen != src.rejected:
            pair = sorted((src.chosen, src.rejected))
            key = _key(src.task_id, "pairwise", pair)
            # Seeded A/B order: the labeler must not learn that A is the pipeline's "chosen".
            flip = random.Random(f"{config.seed}:{key}").random() < 0.5
            a, b = (src.rejected, src.chosen) if flip else (src.chosen, src.rejected)
            items.append(ItemSpec(key=key, task_id=src.task_id, prompt=list(src.prompt), response_a=a,
                                  response_b=b, meta={**src.meta, "source": "preference", "source_labeler":
                                                      src.labeler, "source_chosen": "B" if flip else "A",
                                                      "source_tie": src.tie}))
        elif isinstance(src, Evaluation):
            by_task.setdefault(src.task_id, []).append(src)
        elif isinstance(src, DebateTranscript) and src.protocol != "naive":
            items.append(_debate_item(src))
        elif isinstance(src, ItemInput) and (spec := _from_item_input(src, "pairwise", config)):
            items.append(spec)
    for task_id, evals in by_task.items():
        distinct = list({e.response: e for e in evals}.values())
        for x, y in itertools.combinations(distinct, 2):
            key = _key(task_id, "pairwise", sorted((x.response, y.response)))
            if random.Random(f"{config.seed}:{key}").random() < 0.5:
                x, y = y, x
            # The known answer is the world's gold reward: higher gold wins; equal gold is no known answer.
            truth = None if x.gold == y.gold else {"choice": "A" if x.gold > y.gold else "B"}
            items.append(ItemSpec(key=key, task_id=task_id, prompt=list(x.prompt), response_a=x.response,
                                  response_b=y.response, truth=truth,
                                  meta={"source": "evaluation", "kind": x.kind, "category": x.category,
                                        "model_a": x.model, "model_b": y.model, "gold_a": x.gold,
                                        "gold_b": y.gold}))
    return items


def _quote_for_people(turn: dict) -> str:
    """A debate turn as people read it: each checked quote marked as found in the passage or not."""
    def bracket(quote: str, verified: bool) -> str:
        return f'[{"verified quote" if verified else "unverified quote (not in the passage)"}: "{quote}"]'

    return mark_quotes(turn["text"], turn.get("quotes", []), bracket).strip() or "(nothing)"


def _debate_item(t: DebateTranscript) -> ItemSpec:
    """A consultancy or debate as a pairwise item: A and B are the two answers in the transcript's order."""
    def speaker(turn: dict) -> str:
        letter = "AB"[turn["side"]]
        return f"Consultant (argues {letter})" if t.protocol == "consultancy" else f"Debater {letter}"

    turns = [{"speaker": speaker(turn), "text": _quote_for_people(turn)} for turn in t.turns if not turn.get("error")]
    return ItemSpec(key=f"debate:{t.id}", task_id=t.question_id,
                    prompt=[{"role": "user", "content": f"{t.question} (You cannot see the passage it is about.)"}],
                    response_a=t.answers[0], response_b=t.answers[1],
                    assistance={"kind": "debate", "turns": turns} if turns else None,
                    truth={"choice": "AB"[t.correct]},
                    meta={"source": "debate", "answers": list(t.answers), "correct": t.correct,
                          "protocol": t.protocol, "setup": t.setup, "transcript_id": t.id})


def _critique_items(critiques: list[Critique], config: CampaignConfig) -> list[ItemSpec]:
    """One flaw item per critiqued response; the assistance is one critic's critique of it."""
    critics = list(dict.fromkeys(c.critic for c in critiques))
    chosen = config.critic or next((c for c in critics if c != "oracle"), critics[0] if critics else None)
    if config.critic is not None and config.critic not in critics:
        raise StudioError(f"critic {config.critic!r} wrote none of these critiques; the critics are {', '.join(critics)}")
    items = []
    for c in critiques:
        if c.critic != chosen or c.error:
            continue
        spans = [[f["start"], f["end"]] for f in c.known_flaws]
        items.append(ItemSpec(key=_key(c.item_id, "flaw", c.response), task_id=c.item_id, prompt=list(c.prompt),
                              response_a=c.response, assistance={"kind": "critique", "text": c.text.strip() or "(no critique)"},
                              truth={"flawed": bool(spans), "spans": spans},
                              meta={"source": "critique", "kind": c.kind, "critic": c.critic,
                                    "known_flaws": c.known_flaws}))
    return items


def _single(sources: list[Any], config: CampaignConfig) -> list[ItemSpec]:
    items = []
    critiques = [src for src in sources if isinstance(src, Critique)]
    if critiques and config.task == "flaw":
        items += _critique_items(critiques, config)

    def add(task_id, prompt, response, truth=None, meta=None):
        items.append(ItemSpec(key=_key(task_id, config.task, response), task_id=task_id, prompt=list(prompt),
                              response_a=response, truth=truth, meta=meta or {}))

    for src in sources:
        if isinstance(src, Evaluation):
            if config.task == "rating":
                # Gold reward in [0, 1] mapped onto the scale; within one step counts as right.
                truth = {"rating": 1 + round(src.gold * (config.scale - 1)), "tolerance": 1}
            else:
                truth = {"flawed": not src.passed}
            add(src.task_id, src.prompt, src.response, truth,
                {"source": "evaluation", "model": src.model, "kind": src.kind, "category": src.category,
                 "gold_reward": src.gold})
        elif isinstance(src, Preference):
            for response in (src.chosen, src.rejected):
                add(src.task_id, src.prompt, response, None, {**src.meta, "source": "preference"})
        elif isinstance(src, Demonstration):
            add(src.task_id, src.prompt, src.response, None, {**src.meta, "source": "demonstration",
                                                             "source_labeler": src.source})
        elif isinstance(src, ItemInput) and (spec := _from_item_input(src, config.task, config)):
            items.append(spec)
    return items


def _prompts(sources: list[Any], config: CampaignConfig) -> list[ItemSpec]:
    items = []
    for src in sources:
        if isinstance(src, ItemInput):
            if spec := _from_item_input(src, "demonstration", config):
                items.append(spec)
        elif isinstance(src, (Preference, Evaluation, Demonstration)):
            items.append(ItemSpec(key=_key(src.task_id, "demonstration"), task_id=src.task_id,
                                  prompt=list(src.prompt), meta={"source": src.type}))
    return items


def _number(x: float | None) -> str | None:
    return None if x is None or math.isnan(x) else f"{x:+.4g}"


def _gain_line(gain: float | None, ci: Sequence[float | None], seeds: Sequence[int]) -> str:
    """``+0.042, 95% interval [+0.01, +0.074], 3 seeds: 0, 1, 2``; a missing bound is 'no interval', never a number."""
    low, high = (_number(x) for x in (list(ci) + [None, None])[:2])
    interval = f"95% interval [{low}, {high}]" if low and high else "no interval"
    measured = f"{_number(gain)}, {interval}" if _number(gain) else "not measured"
    if not seeds:
        return f"{measured}, no seeds"
    return f"{measured}, {len(seeds)} seed{'' if len(seeds) == 1 else 's'}: {', '.join(map(str, seeds))}"


def finding_text(f: ResearchFinding) -> str:
    """A finding as a reviewer reads it: the claim, the idea (one config change per line), the evidence on the
    search seeds and on fresh seeds, whether it held, and the cost. Plain text: the page shows it as is."""
    def value(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)

    idea = "\n".join(f"  {k} = {value(v)}" for k, v in f.idea.items()) or "  (none: the baseline configuration)"
    held = {True: "yes (the fresh-seed interval excludes 0 in the claimed direction)",
            False: "no (the fresh-seed interval does not exclude 0 in the claimed direction)",
            None: "not judged"}[f.held]
    cost = ", ".join(f"{k.replace('_', ' ')} {value(v)}" for k, v in f.cost.items()) or "not recorded"
    return clean_text(
        f"Claim: {f.claim}\n\nIdea (config changes):\n{idea}\n\nObjective: {f.objective}\n"
        f"Gain over the baseline on the search seeds (the idea was chosen on these): "
        f"{_gain_line(f.search_gain, f.search_ci, f.search_seeds)}\n"
        f"Gain over the baseline on fresh seeds (never seen in the search): "
        f"{_gain_line(f.fresh_gain, f.fresh_ci, f.fresh_seeds)}\n"
        f"Held on fresh seeds: {held}\nCost: {cost}")


def _findings(sources: list[Any], config: CampaignConfig) -> list[ItemSpec]:
    """One review item per finding; no truth: whether a finding holds up is what the reviewer decides."""
    return [ItemSpec(key=f"finding:{src.id}", task_id=src.id,
                     prompt=[{"role": "user", "content": finding_text(src)}],
                     meta={"source": "research_finding", "finding": src.id})
            for src in sources if isinstance(src, ResearchFinding)]


def build_items(sources: list[Any], config: CampaignConfig,
                assistance: Sequence[AssistanceInput] = ()) -> list[ItemSpec]:
    """The campaign's items, in labeling order: deduplicated, sampled, assisted, gold chosen; all seeded
    (:func:`collect_items` then :func:`arrange_items`)."""
    return arrange_items(collect_items(sources, config), config, assistance)


def collect_items(sources: list[Any], config: CampaignConfig) -> list[ItemSpec]:
    """Every distinct item the sources give for the campaign's task, its text as a browser shows it."""
    if config.task not in TASKS:
        raise StudioError(f"unknown task {config.task!r}; choose one of {', '.join(TASKS)}")
    build = {"pairwise": _pairwise, "rating": _single, "flaw": _single, "demonstration": _prompts,
             "review": _findings}[config.task]
    unique: dict[str, ItemSpec] = {}
    for spec in build(sources, config):
        unique.setdefault(spec.key, spec)
    items = list(unique.values())
    for spec in items:
        spec.response_a, spec.response_b = clean_text(spec.response_a), clean_text(spec.response_b)
    return items


def unreadable(text: str | None) -> str | None:
    """Why a response is no use to a person, or None: blank, replacement or control characters (bytes
    that were not text, e.g. a random model's tokens), or fewer than 30% letters and digits among the
    characters that are not spaces. A heuristic for a warning, not a refusal: a response of symbols can
    be legitimate."""
    if text is None:
        return None
    visible = "".join(text.split())
    if not visible:
        return "blank"
    if "\ufffd" in text or any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        return "replacement or control characters"
    if sum(ch.isalnum() for ch in visible) < 0.3 * len(visible):
        return "mostly symbols"
    return None


def unreadable_items(items: Sequence[ItemSpec]) -> list[tuple[str, str]]:
    """``(key, why)`` of the items with a response that :func:`unreadable` flags."""
    out = []
    for spec in items:
        why = unreadable(spec.response_a) or unreadable(spec.response_b)
        if why:
            out.append((spec.key, why))
    return out


def arrange_items(items: list[ItemSpec], config: CampaignConfig,
                  assistance: Sequence[AssistanceInput] = ()) -> list[ItemSpec]:
    """Sampled to ``limit``, assistance attached, shuffled into labeling order, gold chosen; all seeded.

    Gold items are chosen among items with a known answer (``truth``) so that ``gold_fraction`` of all
    items are gold (fewer if not enough answers are known); items marked gold in an items file stay gold.
    """
    if not items:
        raise StudioError(f"the sources hold nothing to label for a {config.task} campaign (see "
                          "`superalign studio campaign create --help` for what each task takes)")
    items = list(items)
    rng = random.Random(config.seed)
    if config.limit is not None and len(items) > config.limit:
        items = rng.sample(items, config.limit)
    for a in assistance:
        wanted = a.as_assistance()
        for spec in items:
            if spec.task_id == a.task_id and (a.response is None or a.response in (spec.response_a, spec.response_b)):
                spec.assistance = wanted
    rng.shuffle(items)  # labeling order; gold items end up spread through the queue
    n_gold = round(config.gold_fraction * len(items))
    candidates = [s for s in items if s.truth is not None and not s.gold]
    for spec in rng.sample(candidates, max(0, min(len(candidates), n_gold - sum(s.gold for s in items)))):
        spec.gold = True
    return items


def _review_of(row: Record | Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``(finding id, {"verdict", "comment", "reviewer"})`` of an exported review judgement, or None for any
    other row (an export may hold other campaigns' records)."""
    data = row.model_dump() if isinstance(row, BaseModel) else row
    meta = data.get("meta") or {}
    if data.get("type") != "judgement" or meta.get("source") != "research_finding" or "finding" not in meta:
        return None
    return meta["finding"], {"verdict": data["verdict"], "comment": (meta.get("studio") or {}).get("comment", ""),
                             "reviewer": data["judge"]}


def _combine(reviews: list[dict[str, Any]]) -> dict[str, Any]:
    if len(reviews) == 1:
        return reviews[0]
    accepts = sum(r["verdict"] == "accept" for r in reviews)
    # A finding stands only when more reviewers accept it than reject it: a split vote is no acceptance.
    return {"verdict": "accept" if accepts > len(reviews) - accepts else "reject",
            "comment": "; ".join(f"{r['reviewer']}: {r['comment']}" for r in reviews if r["comment"]),
            "reviewer": ", ".join(r["reviewer"] for r in reviews), "reviews": reviews}


def apply_reviews(findings: Iterable[ResearchFinding],
                  exported: Iterable[Record | Mapping[str, Any]]) -> list[ResearchFinding]:
    """The findings, in their order, with ``review`` filled from a review campaign's export.

    ``exported``: the records of ``superalign studio export`` (``read_jsonl`` of its file, or
    ``store.export_records``), or their JSON objects; rows other than review judgements are ignored. One
    reviewer gives ``{"verdict": "accept"|"reject", "comment", "reviewer": "human:<name>"}``. Several give the
    majority in ``verdict``, where a tie is ``"reject"`` (a finding is accepted only when more reviewers accept
    it than reject it), each one's ``{"verdict", "comment", "reviewer"}`` in ``reviews``, the non-empty comments
    as ``"human:<name>: text"`` joined by ``"; "`` in ``comment`` and the names joined by ``", "`` in
    ``reviewer``. A finding nobody reviewed comes back unchanged.
    """
    by_finding: dict[str, dict[str, dict[str, Any]]] = {}
    for row in exported:
        if (found := _review_of(row)) is not None:
            finding, review = found
            by_finding.setdefault(finding, {})[review["reviewer"]] = review  # an export read twice counts once
    return [f.model_copy(update={"review": _combine(list(by_finding[f.id].values()))}) if f.id in by_finding else f
            for f in findings]
