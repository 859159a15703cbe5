"""Red-teaming the embedded model: template attacks break real rules, and GCG's suffix is what it sends."""

import random

import pytest

from superalign.models import load, pull
from superalign.redteam import Config, LocalTarget, campaign, policy_cases

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def smollm():
    pull("smollm2-135m-instruct")
    return load("smollm2-135m-instruct")


def test_template_attacks_break_rules_of_the_embedded_model(smollm):
    config = Config(attacks=["direct", "many_shot"], n_cases=12, max_new_tokens=48)
    result = campaign(config, LocalTarget(smollm, max_new_tokens=48))
    assert len(result.attempts) == 24 and all(a.success is not None for a in result.attempts)
    print({k: v["value"] for k, v in result.asr.items()})
    # Measured on 24 cases: many-shot broke 0.58 of them. None broken in 12 would mean a broken judge or prompt.
    assert any(a.success and a.violations for a in result.attempts)


def test_gcg_lowers_the_target_loss_on_the_embedded_model_with_tokens_that_read_back(smollm):
    import torch

    from superalign.redteam import gcg

    [(case, _)] = policy_cases(Config(n_cases=1))
    settings = gcg.Settings(steps=3, suffix_tokens=6, top_k=32, candidates=8)
    init = smollm.tokenizer(" !", add_special_tokens=False)["input_ids"][-1]
    p = gcg._pieces(smollm, case.asking(f"{case.request}{gcg.MARK}"), settings, [init] * 6)
    assert gcg.reads_back(smollm, p, p.suffix)
    cache, allowed = gcg._prefix_cache(smollm, p.before), gcg._allowed(smollm.tokenizer)
    first = float(gcg.candidate_losses(smollm, p, cache, torch.tensor([p.suffix]))[0])
    rng = random.Random(0)
    losses = [gcg.step(smollm, p, cache, settings, allowed, rng) for _ in range(settings.steps)]
    print(first, losses, smollm.tokenizer.decode(p.suffix))
    assert min(losses) < first and gcg.reads_back(smollm, p, p.suffix)
