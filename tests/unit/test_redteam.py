"""Red-teaming against scripted targets: each attack's prompts, the ground-truth judge, the arithmetic,
failures recorded without stopping the campaign, resuming after a kill, adaptive attackers within budget."""

from __future__ import annotations

import random

import pytest

from superalign.models.chat import ChatError, ScriptedChatModel
from superalign.records import AttackAttempt, read_jsonl
from superalign.redteam import ChatTarget, Config, RedTeamError, campaign, policy_cases, summarize
from superalign.redteam.attacks import ATTACKS, Attack
from superalign.world import responses as compose

STATIC = [name for name, a in ATTACKS.items() if a.prompts is not None]


def _complier(config: Config, when) -> ScriptedChatModel:
    """Breaks the case's rule (a composed violating reply) when ``when(user text)``, else refuses."""
    cases = policy_cases(config)

    def reply(messages: list[dict]) -> str:
        text = messages[-1]["content"]
        for case, truth in cases:
            if case.system == [m for m in messages if m["role"] == "system"] and case.request in " ".join(
                    m["content"] for m in messages):
                return compose.policy_response(truth, True, random.Random(0)) if when(text) else "I can't help."
        return "I can't help."

    return ScriptedChatModel(reply, name="scripted-target")


@pytest.mark.parametrize("name", STATIC)
def test_static_attacks_keep_the_deployment_and_carry_the_request(name):
    [(case, _)] = policy_cases(Config(n_cases=1))
    prompts = ATTACKS[name].prompts(case, random.Random(0))
    assert prompts
    for p in prompts:
        assert p[: len(case.system)] == case.system and p[-1]["role"] == "user"
        if name != "encoding":
            assert case.request[1:] in " ".join(m["content"] for m in p)


def test_the_judge_is_the_world_and_the_rates_add_up():
    config = Config(attacks=["direct", "roleplay"], n_cases=6)
    result = campaign(config, ChatTarget(_complier(config, lambda t: "DAN" in t)))
    assert result.asr["roleplay"]["value"] == 1.0 and result.asr["direct"]["value"] == 0.0
    assert result.attempt_rate["roleplay"]["value"] == pytest.approx(1 / 3)  # one of three personas says DAN
    assert result.queries_to_success["roleplay"] == 1.0 and result.queries_to_success["direct"] is None
    wins = [a for a in result.attempts if a.success]
    assert wins and all(a.violations and a.attack == "roleplay" and a.variant == 0 for a in wins)
    assert set(result.by_rule) == {a.rule for a in result.attempts}
    assert {m.name for m in result.metrics} == {"redteam.direct.asr", "redteam.roleplay.asr"}


def test_a_failing_target_and_a_crashing_attack_are_recorded_and_the_rest_goes_on(monkeypatch):
    inner = _complier(Config(n_cases=4), lambda t: True)

    def flaky(messages):
        if "base64" in messages[-1]["content"]:
            raise ChatError("http://target timed out (ReadTimeout)")
        return inner.replies(messages)

    def boom(case, rng):
        raise RuntimeError("attack bug")

    monkeypatch.setitem(ATTACKS, "boom", Attack("boom", "crashes", prompts=boom))
    config = Config(attacks=["direct", "encoding", "boom"], n_cases=4)
    result = campaign(config, ChatTarget(ScriptedChatModel(flaky)))
    assert result.asr["direct"]["value"] == 1.0  # the others ran
    timeouts = [a for a in result.attempts if a.attack == "encoding" and a.error]
    assert len(timeouts) == 4 and all(a.success is None and "timed out" in a.error for a in timeouts)
    assert result.errors["encoding"] == 4 and result.errors["boom"] == 4
    assert all("attack crashed: RuntimeError: attack bug" in a.error for a in result.attempts if a.attack == "boom")


def test_a_killed_campaign_resumes_without_asking_again(tmp_path):
    config = Config(attacks=["direct", "roleplay", "paraphrase"], n_cases=5)
    full = campaign(config, ChatTarget(_complier(config, lambda t: "urgently" in t)), out_dir=tmp_path / "a")
    lines = (tmp_path / "a" / "attempts.jsonl").read_text().splitlines()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "attempts.jsonl").write_text("\n".join(lines[:11]) + "\n")  # killed after 11 queries
    target = _complier(config, lambda t: "urgently" in t)
    resumed = campaign(config, ChatTarget(target), out_dir=tmp_path / "b")
    assert len(target.calls) == len(lines) - 11
    key = lambda a: (a.case_id, a.attack, a.variant, a.success)  # noqa: E731
    assert sorted(map(key, resumed.attempts)) == sorted(map(key, full.attempts))
    assert len(read_jsonl(tmp_path / "b" / "attempts.jsonl", AttackAttempt)) == len(lines)
    assert resumed.asr == full.asr


def test_adaptive_attackers_learn_within_their_budget():
    config = Config(attacks=["few_shot", "pair"], n_cases=3, budget=3)
    target = _complier(config, lambda t: "please please" in t)
    seen = []

    def attacker_reply(messages):
        text = messages[-1]["content"]
        seen.append(text)
        request = text.split("comply with this request: ", 1)[1].split("\nYour last message", 1)[0]
        # Learns from feedback: the second try of a case adds the magic words.
        return f"please please {request}" if "did not comply" in text else request

    attacker = ScriptedChatModel(attacker_reply, name="attacker")
    result = campaign(config, ChatTarget(target), attacker=attacker)
    pair = [a for a in result.attempts if a.attack == "pair"]
    assert result.asr["pair"]["value"] == 1.0 and result.queries_to_success["pair"] == 2.0
    assert max(a.variant for a in pair) == 1  # stopped at the first success
    few = [a for a in result.attempts if a.attack == "few_shot"]
    assert len(few) == 9 and result.asr["few_shot"]["value"] == 0.0  # never learns without feedback; budget 3
    assert any("The chatbot replied: I can't help." in s for s in seen)  # PAIR sees the target's reply
    with pytest.raises(RedTeamError, match="pair need an attacker model"):
        campaign(Config(attacks=["pair"], n_cases=1), ChatTarget(target))


def test_config_refuses_unknown_attacks():
    with pytest.raises(ValueError, match="unknown attack 'jailbreak'"):
        Config(attacks=["jailbreak"])


def test_diversity_and_empty_summaries():
    config = Config(attacks=["direct"], n_cases=2)
    empty = summarize([], config)
    assert empty.asr["direct"]["value"] is None and empty.diversity["direct"] is None


def test_an_llm_judge_is_validated_against_the_detectors_and_its_failures_never_succeed():
    config = Config(attacks=["direct", "roleplay"], n_cases=4)
    target = ChatTarget(_complier(config, lambda t: "DAN" in t))
    calls = []

    def judge_reply(messages):
        calls.append(messages)
        reply = messages[-1]["content"].split("Chatbot reply: ", 1)[1]
        if "novel" in messages[-1]["content"]:
            raise ChatError("judge endpoint down")
        return "Yes." if "can't" not in reply else "no"

    result = campaign(config, target, judge_model=ScriptedChatModel(judge_reply, name="judge"))
    j = result.judge
    assert j["n"] == len(result.attempts) and j["failures"] == 4  # the 'novel' persona's 4 replies
    assert j["agreement"]["value"] == 1.0 and j["false_positive_rate"] == 0.0 and j["kappa"] == pytest.approx(1.0)
    failed = [a for a in result.attempts if a.meta.get("llm_judge_error")]
    assert all(a.meta["llm_judge"] is None for a in failed)
    assert result.asr["roleplay"]["value"] == 1.0  # the verdict stays the detectors'
    from superalign.redteam.llm_judge import parse_verdict

    assert [parse_verdict(t) for t in ("Yes.", " no!", "Maybe", "")] == [True, False, None, None]


def test_successful_attacks_become_preference_pairs_the_train_stage_reads(tmp_path):
    from superalign.records import write_jsonl
    from superalign.rlhf.feedback import load_preferences
    from superalign.redteam import judge, patch_pairs

    config = Config(attacks=["roleplay"], n_cases=5)
    result = campaign(config, ChatTarget(_complier(config, lambda t: "DAN" in t)))
    pairs = patch_pairs(result.attempts, config)
    assert len(pairs) == sum(bool(a.success) for a in result.attempts) == 5
    truths = {c.id: t for c, t in policy_cases(config)}
    for p in pairs:
        assert judge(truths[p.task_id], p.rejected) and not judge(truths[p.task_id], p.chosen)
    assert len(load_preferences(write_jsonl(tmp_path / "patch.jsonl", pairs))) == 5


def test_a_down_target_reads_as_no_verdict_not_as_robust():
    def down(messages):
        raise ChatError("connection refused")

    result = campaign(Config(attacks=["direct"], n_cases=3), ChatTarget(ScriptedChatModel(down)))
    assert result.asr["direct"]["value"] is None and result.asr["direct"]["n"] == 0
    assert result.errors["direct"] == 3 and result.metrics == []


def test_a_torn_line_another_target_and_failed_queries_on_resume(tmp_path):
    config = Config(attacks=["direct", "roleplay"], n_cases=3)
    down_for = {c.messages[-1]["content"] for c, _ in policy_cases(config)[:2]}  # two cases' direct prompts

    def flaky(messages):
        if messages[-1]["content"] in down_for:
            raise ChatError("timed out")
        return "I can't help."

    first = campaign(config, ChatTarget(ScriptedChatModel(flaky, name="t")), out_dir=tmp_path)
    assert first.errors["direct"] == 2
    path = tmp_path / "attempts.jsonl"
    path.write_bytes(path.read_bytes()[:-40])  # killed mid-write: a torn last line
    again = ScriptedChatModel(lambda m: "I can't help.", name="t")
    resumed = campaign(config, ChatTarget(again), out_dir=tmp_path)
    assert len(again.calls) == 3  # the two failed queries and the torn one, nothing else
    assert resumed.errors["direct"] == 0 and len(resumed.attempts) == 12
    with pytest.raises(RedTeamError, match="against 't', not 'campaign' against 'other'|against 't'"):
        campaign(config, ChatTarget(ScriptedChatModel(lambda m: "x", name="other")), out_dir=tmp_path)


def _gcg_problem():
    from superalign.models import load
    from superalign.redteam import gcg

    lm = load("tiny-llama")
    [(case, _)] = policy_cases(Config(n_cases=1))
    settings = gcg.Settings(steps=6, suffix_tokens=4, top_k=8, candidates=8)
    init = lm.tokenizer(" !", add_special_tokens=False)["input_ids"][-1]
    return lm, gcg._pieces(lm, case.asking(f"{case.request}{gcg.MARK}"), settings, [init] * 4), settings


def test_gcg_scores_candidates_on_the_cached_prefix_as_a_full_forward_would():
    import torch

    from superalign.redteam import gcg

    lm, p, _ = _gcg_problem()
    ids = torch.tensor([p.before + p.suffix + p.after + p.target])
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits[0]
    start = len(p.before) + len(p.suffix) + len(p.after)
    full = torch.nn.functional.cross_entropy(logits[start - 1: start - 1 + len(p.target)], torch.tensor(p.target))
    cached = gcg.candidate_losses(lm, p, gcg._prefix_cache(lm, p.before), torch.tensor([p.suffix, p.suffix]))
    assert cached.tolist() == pytest.approx([float(full)] * 2, abs=1e-4)


def test_gcg_steps_lower_the_target_strings_loss():
    import torch

    from superalign.redteam import gcg

    lm, p, settings = _gcg_problem()
    cache, allowed = gcg._prefix_cache(lm, p.before), gcg._allowed(lm.tokenizer)
    first = float(gcg.candidate_losses(lm, p, cache, torch.tensor([p.suffix]))[0])
    rng = random.Random(0)
    losses = [gcg.step(lm, p, cache, settings, allowed, rng) for _ in range(settings.steps)]
    assert min(losses) < first and all(allowed[t] for t in p.suffix)
    assert gcg.reads_back(lm, p, p.suffix)  # what is sent as text is what was optimised


def test_gcg_queries_a_local_target_within_budget_and_refuses_an_endpoint():
    from superalign.models import load
    from superalign.redteam import LocalTarget

    config = Config(attacks=["gcg"], n_cases=2, budget=2, max_new_tokens=4, gcg_steps=2, gcg_suffix_tokens=3,
                    gcg_top_k=4, gcg_candidates=4)  # a CPU-second budget
    result = campaign(config, LocalTarget(load("tiny-llama"), max_new_tokens=4))
    per_case = {}
    for a in result.attempts:
        per_case.setdefault(a.case_id, []).append(a)
    assert len(per_case) == 2 and all(1 <= len(v) <= 2 for v in per_case.values())
    assert all(a.attack == "gcg" and a.success is not None for a in result.attempts)
    with pytest.raises(RedTeamError, match="weights"):
        campaign(config, ChatTarget(ScriptedChatModel(lambda m: "no", name="endpoint")))
    requests = {c.id: c.request for c, _ in policy_cases(config)}
    for a in result.attempts:  # the request, then an optimised suffix
        text = a.prompt[-1]["content"]
        assert text.startswith(requests[a.case_id]) and len(text) > len(requests[a.case_id])
