"""Critics (the model, the trained critic, the oracle, any chat role) and how a critique is scored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from superalign.critique.prompts import NO_FLAW, critic_messages, gold_critique, parse_critique

QUOTE_START = "Quote"  # the first word of a critique that claims a flaw
from superalign.models.chat import ChatModel, ask
from superalign.models.sources import LoadedModel
from superalign.progress import Advance, Progress
from superalign.records import Critique, Demonstration
from superalign.world.flaws import FlawItem, match_flags
from superalign.world.quotes import check_quote



class ModelCritic:
    """A local model writing critiques in batches.

    ``threshold`` None: greedy, so the first token decides whether it claims a flaw at all. With a threshold (see
    :func:`fit_threshold`): it claims a flaw where its own log p("Quote") - log p("No") at the start of the reply
    (:meth:`flaw_scores`, its discriminator) is above the threshold, and then writes the quote greedily after a
    forced 'Quote: "'; elsewhere it says "No flaw.". This separates deciding from locating (Saunders et al. 2022
    score "critiqueability" apart from the critique itself): a small model that cannot yet decide may still point.
    """

    def __init__(self, lm: LoadedModel, max_new_tokens: int = 48, batch_size: int = 16, name: str | None = None,
                 threshold: float | None = None):
        self.lm, self.max_new_tokens, self.batch_size = lm, max_new_tokens, batch_size
        self.name = name or lm.name
        self.threshold = threshold
        self._scores: dict[str, float] = {}  # item id -> flaw score

    def flaw_scores(self, items: Sequence[FlawItem]):
        """log p("Quote") - log p("No") as the first token of its critique, per item (numpy [n]). Kept per item
        id: deciding and the decision's AUROC read the same scores, computed once."""
        import numpy as np

        from superalign.models.generation import first_token_logprobs

        new = [i for i in items if i.id not in self._scores]
        if new:
            logp = first_token_logprobs(self.lm, [critic_messages(i.prompt, i.response) for i in new],
                                        [QUOTE_START, NO_FLAW], batch_size=self.batch_size)
            self._scores.update(zip((i.id for i in new), (logp[:, 0] - logp[:, 1]).tolist()))
        return np.array([self._scores[i.id] for i in items])

    def critique(self, items: Sequence[FlawItem], advance: Advance | None = None) -> list[tuple[str, str | None]]:
        from superalign.models.generation import greedy

        prompts = [critic_messages(i.prompt, i.response) for i in items]
        if self.threshold is None:
            texts = greedy(self.lm, prompts, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                           progress=advance)
            return [(t, None) for t in texts]
        claims = [i for i, score in enumerate(self.flaw_scores(items)) if score > self.threshold]
        out = [(NO_FLAW, None)] * len(items)
        if claims:
            from superalign.models.generation import GenerationConfig, generate

            config = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False, temperature=0.0,
                                      batch_size=self.batch_size)
            texts = generate(self.lm, [prompts[i] for i in claims], config, reply_prefix='Quote: "')
            for i, text in zip(claims, texts):
                out[i] = (text, None)
        if advance is not None:
            advance(len(items))
        return out


def fit_threshold(scores, flawed) -> float:
    """The threshold on a critic's flaw scores with the best balanced accuracy on labelled (train) responses:
    the midpoint between the two scores where the best cut falls."""
    import numpy as np

    scores, flawed = np.asarray(scores, dtype=float), np.asarray(flawed, dtype=bool)
    order = np.unique(scores)
    cuts = np.r_[order[0] - 1.0, (order[1:] + order[:-1]) / 2, order[-1] + 1.0]
    def balanced(cut: float) -> float:
        claim = scores > cut
        return 0.5 * (claim[flawed].mean() + (~claim[~flawed]).mean())
    return float(max(cuts, key=balanced))


class ChatCritic:
    """Any chat role (a bigger local model, an OpenAI-compatible endpoint); a call that keeps failing is
    recorded as a failed critique, never scored."""

    def __init__(self, role: ChatModel, max_new_tokens: int = 128, tries: int = 3):
        self.role, self.max_new_tokens, self.tries = role, max_new_tokens, tries
        self.name = role.name

    def critique(self, items: Sequence[FlawItem], advance: Advance | None = None) -> list[tuple[str, str | None]]:
        out = []
        for item in items:
            reply = ask(self.role, critic_messages(item.prompt, item.response), tries=self.tries,
                        max_new_tokens=self.max_new_tokens)
            out.append((reply.raw if reply.ok else "", reply.error or None))
            if advance is not None:
                advance(1)
        return out


class OracleCritic:
    """The world's own critique (the known flaw, quoted exactly): the ceiling a critic can reach."""

    name = "oracle"

    def critique(self, items: Sequence[FlawItem], advance: Advance | None = None) -> list[tuple[str, str | None]]:
        if advance is not None:
            advance(len(items))
        return [(gold_critique(*_first_flaw(i)), None) for i in items]


def _first_flaw(item: FlawItem) -> tuple[str | None, str | None]:
    if not item.flaws:
        return None, None
    f = item.flaws[0]
    return item.response[f.start:f.end], f.category


def score_critique(item: FlawItem, critic: str, text: str, error: str | None = None) -> Critique:
    """The critique as a record: its quote located in the response and matched against the known flaws."""
    base = dict(item_id=item.id, kind=item.kind, prompt=item.prompt, response=item.response, critic=critic,
                text=text, known_flaws=[asdict(f) for f in item.flaws])
    if error:
        return Critique(**base, error=error)
    quote, category = parse_critique(text)
    if quote is None:
        return Critique(**base)
    check = check_quote(item.response, quote)
    if not check.verified:
        # A flaw claimed at a place the response does not contain: it helps nobody and misleads.
        return Critique(**base, quote=quote, category=category, quote_status="unverified", false_flag=True)
    score = match_flags(item, [(check.start, check.end, category)])
    return Critique(**base, quote=quote, category=category, quote_status=check.status, start=check.start,
                    end=check.end, found=bool(score.found), false_flag=score.false_flags > 0)


def training_demos(items: Sequence[FlawItem]) -> list[Demonstration]:
    """The critic's SFT data: each train response with the world's critique of it (its flaw quoted, or none)."""
    return [Demonstration(task_id=i.id, prompt=critic_messages(i.prompt, i.response),
                          response=gold_critique(*_first_flaw(i)), source="world:critique")
            for i in items]


def train_critic(lm: LoadedModel, items: Sequence[FlawItem], training, progress: Progress | None = None,
                 log=lambda m: None) -> tuple[LoadedModel, list[dict]]:
    """A LoRA on ``lm`` trained by SFT on the world's critiques of ``items``; returns it (merged, in eval mode,
    named ``<model>+critic-sft``) and the training history. ``lm``'s own weights are left as they were."""
    import copy

    import torch

    from superalign.models.finetune import train_sft
    from superalign.models.training import make_trainable

    base = LoadedModel(name=lm.name, model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer, kind=lm.kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(training.seed)
        policy = make_trainable(base, training.adapter)
    demos = training_demos(items)
    log(f"critique: training the critic on {len(demos)} critiques ({sum(i.flawed for i in items)} of flawed responses)")
    result = train_sft(policy, demos, training, progress=progress)
    model = policy.model.merge_and_unload() if hasattr(policy.model, "merge_and_unload") else policy.model
    return (LoadedModel(name=f"{lm.name}+critic-sft", model=model.eval(), tokenizer=lm.tokenizer, kind=lm.kind),
            result.history)


__all__ = ["ChatCritic", "ModelCritic", "fit_threshold", "OracleCritic", "score_critique", "train_critic", "training_demos"]
