"""Judges who look for flaws, with and without a critique: a simulated judge of limited attention, and the model.

:class:`LimitedJudge` (Saunders et al. 2022's setting, made programmatic): it reads the first ``k`` sentences
(lines of code) and notices a flaw in a sentence it reads with probability ``p_detect``; now and then it flags
a clean one (``p_false``). A critique whose quote is verified in the response sends it to the quoted
sentence: if the flaw is there it confirms it with ``p_verify``, if not it is misled with ``p_misled``. An
unverified quote is ignored. Its random draws are per (seed, item, sentence) and shared between the unaided and
the assisted reading, so the two differ only by what the critique changed (a paired comparison).

The model judge asks the model whether the response is flawed (``Yes``/``No`` log-probabilities), with and
without a critique shown: a weaker judge that reads everything, and the discriminator of the G-D-C gap.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from superalign.records import Critique, Flaw, Judgement
from superalign.world.flaws import FlawItem
from superalign.world.quotes import overlaps
from superalign.world.text import stable_seed


class LimitedJudge:
    def __init__(self, k: int = 2, p_detect: float = 0.8, p_verify: float = 0.9, p_misled: float = 0.2,
                 p_false: float = 0.02, seed: int = 0):
        self.k, self.p_detect, self.p_verify, self.p_misled, self.p_false = k, p_detect, p_verify, p_misled, p_false
        self.seed = seed
        self.name = f"sim:limited(k={k})"

    def _draw(self, item: FlawItem, unit: int, what: str) -> float:
        return random.Random(stable_seed("limited-judge", self.seed, item.id, unit, what)).random()

    def flags(self, item: FlawItem, critique: Critique | None = None) -> list[tuple[int, int, str | None]]:
        """The spans it flags: ``(start, end, category)``, one per flagged sentence."""
        flagged: dict[int, str | None] = {}
        for u, span in enumerate(item.units[: self.k]):
            flaw = next((f for f in item.flaws if overlaps((f.start, f.end), span)), None)
            if flaw is not None and self._draw(item, u, "detect") < self.p_detect:
                flagged[u] = flaw.category
            elif flaw is None and self._draw(item, u, "false") < self.p_false:
                flagged[u] = None
        if critique is not None and critique.start is not None and not critique.error:
            pointed = [u for u, span in enumerate(item.units) if overlaps(span, (critique.start, critique.end))]
            for u in pointed:
                flaw = next((f for f in item.flaws if overlaps((f.start, f.end), item.units[u])), None)
                p = self.p_verify if flaw is not None else self.p_misled
                if u not in flagged and self._draw(item, u, "pointed") < p:
                    flagged[u] = flaw.category if flaw is not None else critique.category
        return [(*item.units[u], category) for u, category in sorted(flagged.items())]

    def judge(self, item: FlawItem, critique: Critique | None = None) -> list[Judgement | Flaw]:
        """Its verdict on one response as the studio exports a person's: a Judgement and one Flaw per flag."""
        flags = self.flags(item, critique)
        assisted = "critique" if critique is not None else None
        meta = {"critic": critique.critic if critique is not None else None, "kind": item.kind,
                "known_flaws": [{"start": f.start, "end": f.end, "category": f.category} for f in item.flaws]}
        out: list[Judgement | Flaw] = [Judgement(item_id=item.id, judge=self.name, verdict="flawed" if flags
                                                 else "no_flaw", score=float(len(flags)), assisted=assisted,
                                                 meta=meta)]
        out += [Flaw(item_id=item.id, task_id=item.id, labeler=self.name, start=s, end=e,
                     quote=item.response[s:e], category=c or "other", severity="major", assisted=assisted,
                     meta={"critic": meta["critic"]}) for s, e, c in flags]
        return out


def model_flaw_scores(lm, items: Sequence[FlawItem], critiques: Sequence[Critique | None] | None = None,
                      batch_size: int = 8):
    """The model's belief that each response is flawed: log p(Yes) - log p(No), with a critique shown where
    one is given. Returns a numpy array [n]."""
    from superalign.critique.prompts import judge_messages
    from superalign.models.generation import first_token_logprobs

    critiques = critiques or [None] * len(items)
    prompts = [judge_messages(i.prompt, i.response, c.text if c is not None and c.text else None)
               for i, c in zip(items, critiques)]
    logp = first_token_logprobs(lm, prompts, ["Yes", "No"], batch_size=batch_size)  # [n, 2]
    return (logp[:, 0] - logp[:, 1]).numpy()


__all__ = ["LimitedJudge", "model_flaw_scores"]
