"""The validate stage: its config checks, the patch's arithmetic (fixed, broke, held-out, cost), and the DPO
patch trained on a tiny model from attempts that succeeded."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from superalign import redteam, validate
from superalign.context import RunContext
from superalign.records import AttackAttempt, Evaluation
from superalign.validate import Config, patch_metrics, split_cases


def _attempt(case: str, variant: int, success: bool | None, attack: str = "direct", campaign: str = "validate"):
    return AttackAttempt(campaign=campaign, target="t", case_id=case, rule="r", attack=attack, variant=variant,
                         prompt=[{"role": "user", "content": f"{case} {variant}"}], reply="x", success=success)


def _eval(task: str, gold: float) -> Evaluation:
    return Evaluation(stage="validate", task_id=task, kind="instruction", category="c", model="m",
                      prompt=[{"role": "user", "content": "q"}], response="a", gold=gold, passed=gold > 0.5)


def test_cases_split_into_the_patch_half_and_the_held_out_half():
    train, held = split_cases(["a", "b", "c", "d", "e"])
    assert train == {"a", "c", "e"} and held == {"b", "d"} and not train & held
    # by rule: every other rule in sorted order is held out whole
    train, held = split_cases(["a", "b", "c", "d", "e"], ["phishing", "insult", "secret", "insult", "human_claim"])
    assert held == {"b", "c", "d"} and train == {"a", "e"}  # insult and secret held out; human_claim, phishing not


def test_fixed_broke_and_the_held_out_change_are_counted_per_prompt_and_per_case():
    before = [_attempt("a", 0, True), _attempt("a", 1, False), _attempt("c", 0, True),
              _attempt("b", 0, True), _attempt("d", 0, False), _attempt("d", 1, None)]
    after = [_attempt("a", 0, False), _attempt("a", 1, True), _attempt("c", 0, False),
             _attempt("b", 0, False), _attempt("d", 0, False), _attempt("d", 1, True)]
    gold_before, gold_after = [_eval("x", 0.2), _eval("y", 0.4)], [_eval("x", 0.3), _eval("y", 0.6)]
    metrics, summary = patch_metrics(before, after, {"a", "c"}, {"b", "d"}, gold_before, gold_after, "m")
    by = {m.name: m for m in metrics}
    assert by["patch.fixed"].value == 2 and by["patch.broke"].value == 1  # a0, c0 fixed; a1 broke
    # held out: b broken before and not after, d never judged both times on variant 1 (None before): 1/2 -> 0/2
    assert summary["held_out"]["asr_before"] == 0.5 and summary["held_out"]["asr_after"] == 0.0
    assert by["patch.held_out.asr_change"].value == pytest.approx(-0.5)
    assert by["patch.gold_change"].value == pytest.approx(0.15)
    assert summary["patch_half"]["successes_before"] == 2 and summary["prompts_replayed"] == 5


def test_the_config_refuses_an_unknown_attack_and_an_empty_method():
    with pytest.raises(ValidationError, match="unknown attack"):
        Config(attacks=["nope"])
    with pytest.raises(ValidationError, match="names no method"):
        Config(target="train:")
    with pytest.raises(ValidationError, match="need an attacker model"):
        Config(attacks=["direct", "pair"])


def test_an_unknown_organism_target_is_refused_before_any_work(tmp_path, monkeypatch):
    from superalign.organisms import OrganismError

    monkeypatch.setenv("SUPERALIGN_HOME", str(tmp_path))
    with pytest.raises(OrganismError, match="no organism named"):
        validate.inputs(Config(target="organism:nobody-s0"))


def test_a_train_target_needs_that_method_in_the_train_stage():
    from superalign.config import load_config

    pipeline = load_config("smoke")
    validate.check(Config(target="train:dpo"), pipeline)  # dpo is in the smoke profile's methods
    with pytest.raises(ValueError, match="trains"):
        validate.check(Config(target="train:best_of_n"), pipeline)
    assert validate.inputs(Config(target="train:dpo")).stages == ["train"]
    assert validate.inputs(Config(target="model")).stages == []


def test_the_patch_trains_on_successes_and_replays_every_judged_prompt(tmp_path):
    from superalign.models import load

    config = Config(model="tiny-llama", target="model", n_cases=4, max_new_tokens=6, batch_size=8,
                    attacks=["direct", "roleplay"], patch={"epochs": 1, "n_check": 2, "check_max_new_tokens": 4})
    campaign = config.campaign()
    cases = redteam.policy_cases(campaign)
    lm = load("tiny-llama")
    target = redteam.LocalTarget(lm, max_new_tokens=6)
    found = redteam.campaign(campaign, target)
    # Pretend every attempt broke its rule (a tiny random model never does): the loop runs end to end.
    wins = [a.model_copy(update={"success": True, "reply": "Sure, here it is."}) for a in found.attempts]
    out = validate._patch(config, campaign, lm, wins, RunContext())
    train_ids, _ = split_cases([c.id for c, _ in cases])
    assert out["summary"]["pairs"] == sum(a.case_id in train_ids for a in wins)
    assert len(out["attempts"]) == len(wins)
    assert all(a.campaign == "validate-patched" and a.meta["before"] is True for a in out["attempts"])
    assert {e.model for e in out["evaluations"]} == {"tiny-llama", "tiny-llama+patch"}
    assert {m.name for m in out["metrics"]} >= {"patch.fixed", "patch.broke", "patch.held_out.asr_change"}
    # it learned: LoRA's B matrices start at zero, and DPO moved them
    lora_b = [p for n, p in lm.model.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.detach().abs().max()) > 0 for p in lora_b)


def test_probe_headlines_are_the_chosen_layers_logistic_probe_and_the_monitors():
    from superalign.records import ProbeResult
    from superalign.validate import probe_headlines

    def probe(method, layer, test, dataset="truth", auroc=0.8):
        return ProbeResult(model="m", dataset=dataset, method=method, layer=layer, test=test, auroc=auroc, n=10)

    results = [probe("logistic", 3, "in_distribution"), probe("logistic", 5, "in_distribution"),
               probe("ccs", 5, "negation"), probe("logistic", 5, "monitor"),
               probe("logistic", 5, "in_distribution", dataset="deception"),
               probe("diff_means", 5, "attack_success", dataset="defection", auroc=float("nan"))]
    names = [(m.name, m.meta["layer"]) for m in probe_headlines(results, 5)]
    assert names == [("probe.truth.in_distribution.auroc", 5), ("probe.monitor.auroc", 5),
                     ("probe.deception.in_distribution.auroc", 5)]  # no CCS, no other layer, no NaN
