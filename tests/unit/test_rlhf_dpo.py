"""DPO: the loss on hand-computed numbers, its log 2 invariant, learning, divergence and bad input, on tiny-llama."""

import math

import pytest
import torch

from superalign.models import generation, load, sequence_logprobs
from superalign.models.generation import end_of_turn_id, eval_mode, prompt_ids
from superalign.records import Preference
from superalign.rlhf import dpo as dpo_module
from superalign.rlhf.common import AdapterConfig, TrainingDiverged, make_trainable, trainable_state
from superalign.rlhf.dpo import (
    DPOConfig,
    DPOLoss,
    collate_pairs,
    dpo_loss,
    encode_pairs,
    length_buckets,
    reference_logprobs,
    response_logprobs,
    train_dpo,
)

PAD = 258  # tiny-llama's pad id


def _policy():
    """A fresh LoRA policy on tiny-llama: the adapters start at zero, so policy == reference."""
    return make_trainable(load("tiny-llama"), AdapterConfig(r=4, alpha=8))


def _prefs(n: int = 8) -> list[Preference]:
    # A planted preference: answers that agree beat answers that refuse, across varied prompts.
    return [Preference(task_id=f"t{i}", prompt=[{"role": "user", "content": f"question {i}: " + "ab" * (i % 4)}],
                       chosen="yes " * (1 + i % 3), rejected="no thanks" * (1 + i % 2), labeler="test")
            for i in range(n)]


def _dataset_loss(lm, prefs, beta=0.1) -> DPOLoss:
    """The DPO loss of the current policy over all pairs in one batch (no grad)."""
    batch = collate_pairs(encode_pairs(lm, prefs, 512).pairs, PAD)
    ref = reference_logprobs(lm, [batch], autocast=False)[0]
    with torch.no_grad(), eval_mode(lm.model):
        pol = response_logprobs(lm.model, batch.input_ids, batch.attention_mask, batch.completion_mask)
    b = batch.n_pairs
    return dpo_loss(pol[:b], pol[b:], ref[:b], ref[b:], beta)


# --- the loss on raw numbers -------------------------------------------------------------------


@pytest.mark.parametrize("beta,smoothing", [(0.1, 0.0), (0.5, 0.0), (2.0, 0.2)])
def test_loss_is_log2_when_policy_equals_reference(beta, smoothing):
    logps = torch.tensor([-12.5, -3.0, -40.25])
    other = torch.tensor([-7.0, -9.5, -1.0])
    out = dpo_loss(logps, other, logps, other, beta, smoothing)
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert torch.equal(out.chosen_reward, torch.zeros(3)) and torch.equal(out.rejected_reward, torch.zeros(3))
    assert out.accuracy == 0.0  # a zero margin is not a win


def test_loss_hand_computed_with_and_without_label_smoothing():
    # β = 0.5: chosen reward 0.5·(−1 − −2) = 0.5, rejected 0.5·(−3 − −2) = −0.5, margin 1
    pc, pr, rc, rr = torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0])
    out = dpo_loss(pc, pr, rc, rr, beta=0.5)
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-6)  # −log σ(1)
    assert out.chosen_reward.item() == pytest.approx(0.5) and out.rejected_reward.item() == pytest.approx(-0.5)
    assert out.accuracy == 1.0
    # cDPO, ε = 0.1: 0.9·(−log σ(1)) + 0.1·(−log σ(−1))
    smoothed = dpo_loss(pc, pr, rc, rr, beta=0.5, label_smoothing=0.1)
    expected = 0.9 * math.log1p(math.exp(-1.0)) + 0.1 * math.log1p(math.exp(1.0))
    assert smoothed.loss.item() == pytest.approx(expected, abs=1e-6)


def test_loss_gradient_raises_chosen_and_lowers_rejected():
    pc = torch.tensor([-5.0, -6.0], requires_grad=True)
    pr = torch.tensor([-5.0, -4.0], requires_grad=True)
    dpo_loss(pc, pr, torch.tensor([-5.0, -5.0]), torch.tensor([-5.0, -5.0]), beta=0.1).loss.backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()  # descending the loss raises log π(chosen)


def test_batch_mean_over_pairs():
    pc, pr = torch.tensor([0.0, 2.0]), torch.tensor([0.0, 0.0])
    out = dpo_loss(pc, pr, torch.zeros(2), torch.zeros(2), beta=1.0)
    expected = (math.log(2) + math.log1p(math.exp(-2.0))) / 2
    assert out.loss.item() == pytest.approx(expected, abs=1e-6) and out.accuracy == 0.5


# --- data ---------------------------------------------------------------------------------------


def test_collate_puts_chosen_rows_first_and_masks_only_responses():
    lm = load("tiny-llama")
    prefs = _prefs(2)
    pairs = encode_pairs(lm, prefs, 512).pairs
    batch = collate_pairs(pairs, PAD)
    assert batch.input_ids.shape[0] == 4 and batch.n_pairs == 2
    eot = end_of_turn_id(lm)
    for row, (pref, text) in enumerate([(prefs[0], prefs[0].chosen), (prefs[1], prefs[1].chosen),
                                        (prefs[0], prefs[0].rejected), (prefs[1], prefs[1].rejected)]):
        p = prompt_ids(lm, pref.prompt)
        response = batch.input_ids[row][batch.completion_mask[row].bool()].tolist()
        assert response == lm.tokenizer(text, add_special_tokens=False)["input_ids"] + [eot]
        assert batch.input_ids[row, : len(p)].tolist() == p and batch.completion_mask[row, : len(p)].sum() == 0
    assert batch.n_tokens == int(batch.attention_mask.sum())


def test_encode_skips_ties_identical_and_overlong_prompts_and_cuts_long_responses():
    lm = load("tiny-llama")
    base = dict(task_id="t", prompt=[{"role": "user", "content": "hi"}], labeler="test")
    prefs = [Preference(chosen="a", rejected="b", tie=True, **base), Preference(chosen="same", rejected="same", **base),
             Preference(chosen="x" * 100, rejected="y", **base)]
    n_prompt = len(prompt_ids(lm, base["prompt"]))
    encoded = encode_pairs(lm, prefs, max_length=n_prompt + 10)
    assert encoded.skipped == {"tie": 1, "identical": 1}
    assert len(encoded.pairs) == 1 and len(encoded.pairs[0].chosen) == 10
    assert encode_pairs(lm, prefs[2:], max_length=n_prompt).skipped == {"prompt_too_long": 1}


def test_length_buckets_group_similar_lengths():
    buckets = length_buckets([50, 3, 48, 4, 49, 5], batch_size=3)
    assert buckets == [[1, 3, 5], [2, 4, 0]]


@pytest.mark.parametrize("use_logits_to_keep", [True, False])
def test_response_logprobs_match_full_logits(monkeypatch, use_logits_to_keep):
    lm = _policy()
    monkeypatch.setattr(generation, "accepts_logits_to_keep", lambda model: use_logits_to_keep)
    batch = collate_pairs(encode_pairs(lm, _prefs(3), 512).pairs, PAD)
    with torch.no_grad():
        ours = response_logprobs(lm.model, batch.input_ids, batch.attention_mask, batch.completion_mask)
        logits = lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    expected = sequence_logprobs(logits, batch.input_ids, batch.completion_mask)
    assert torch.allclose(ours, expected, atol=1e-4)


# --- training end to end ------------------------------------------------------------------------


def test_first_batch_loss_is_exactly_log2_for_a_fresh_lora_policy():
    result = train_dpo(_policy(), _prefs(4), DPOConfig(batch_size=4, epochs=1))
    first = result.history[0]
    assert first["margin"] == 0.0 and first["logratio"] == 0.0  # bit-identical policy and reference log-probs
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-7)
    assert result.method == "dpo" and result.steps == 1 and result.diverged is None


def test_dpo_learns_the_planted_preference_and_trains_only_lora():
    lm = _policy()
    prefs = _prefs(4)
    before_state = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    before = _dataset_loss(lm, prefs)
    result = train_dpo(lm, prefs, DPOConfig(batch_size=4, epochs=3, lr=1e-2))
    after = _dataset_loss(lm, prefs)
    assert before.loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert after.loss.item() < before.loss.item() - 0.1
    assert (after.chosen_reward - after.rejected_reward).mean() > 0.3 and after.accuracy == 1.0
    assert result.steps == 3 and len(result.history) == 3
    changed = {n for n, p in lm.model.named_parameters() if not torch.equal(p.detach(), before_state[n])}
    assert changed and all("lora_" in n for n in changed)  # base weights untouched
    assert any("lora_B" in n for n in changed)


def test_eval_hook_at_start_every_k_steps_and_end():
    calls = []
    train_dpo(_policy(), _prefs(5), DPOConfig(batch_size=1), eval_every=2,
              eval_hook=lambda step, policy: calls.append(step))
    assert calls == [0, 2, 4, 5]
    calls.clear()
    train_dpo(_policy(), _prefs(4), DPOConfig(batch_size=1), eval_every=2,
              eval_hook=lambda step, policy: calls.append(step))
    assert calls == [0, 2, 4]  # the end is not evaluated twice


def test_nan_loss_stops_restores_last_good_state_and_saves_checkpoint(monkeypatch, tmp_path):
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = dpo_loss(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:  # two calls a step (the micro-batch's loss, then the step's statistics): step 3's
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(dpo_module, "dpo_loss", poisoned)
    lm = _policy()
    states = {}
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 3.*restored the last good state") as info:
        train_dpo(lm, _prefs(4), DPOConfig(batch_size=1, lr=1e-2), out_dir=tmp_path / "ckpt", eval_every=1,
                  eval_hook=lambda step, policy: states.__setitem__(step, trainable_state(policy.model)))
    result = info.value.result
    assert result.diverged and "step 3" in result.diverged
    assert result.steps == 2 and len(result.history) == 2
    now = trainable_state(lm.model)
    assert all(torch.equal(now[n], states[2][n]) for n in now)  # the state after step 2, before the bad step
    assert not all(torch.equal(now[n], states[0][n]) for n in now)  # and not just the start
    assert result.checkpoint == tmp_path / "ckpt" and (tmp_path / "ckpt" / "adapter_config.json").exists()


def test_infinite_learning_rate_is_caught_before_a_bad_update_is_kept():
    lm = _policy()
    start = trainable_state(lm.model)
    with pytest.raises(TrainingDiverged, match="at step 1") as info:
        train_dpo(lm, _prefs(4), DPOConfig(batch_size=4, lr=float("inf")))
    assert info.value.result.steps == 0
    now = trainable_state(lm.model)
    assert all(torch.equal(now[n], start[n]) for n in now)


def test_bad_input_stops_with_a_clear_message():
    with pytest.raises(ValueError, match="no preference pairs"):
        train_dpo(_policy(), [], DPOConfig())
    ties = [p.model_copy(update={"tie": True}) for p in _prefs(2)]
    with pytest.raises(ValueError, match="tie"):
        train_dpo(_policy(), ties, DPOConfig())
    with pytest.raises(ValueError, match="make_trainable"):
        frozen = load("tiny-llama")
        for p in frozen.model.parameters():
            p.requires_grad_(False)
        train_dpo(frozen, _prefs(2), DPOConfig())


def test_full_fine_tuning_uses_a_frozen_reference_and_starts_at_log2():
    lm = make_trainable(load("tiny-llama"), AdapterConfig(mode="full"))
    result = train_dpo(lm, _prefs(4), DPOConfig(batch_size=4, epochs=2, lr=1e-3))
    assert result.history[0]["loss"] == pytest.approx(math.log(2), abs=1e-7)
    assert result.history[1]["loss"] < result.history[0]["loss"]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="beta"):
        DPOConfig(beta=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        DPOConfig(label_smoothing=0.5)
    with pytest.raises(ValueError, match="extra"):
        DPOConfig(lerning_rate=1.0)


def test_micro_batches_give_the_whole_batch_step():
    """Accumulating the gradient over pairs one or three at a time gives the step of one forward over all."""
    from superalign.models.generation import pad_id
    from superalign.rlhf.common import trainable_params
    from superalign.rlhf.dpo import dpo_step

    updates = []
    for micro in (8, 1, 3):
        torch.manual_seed(0)  # the same LoRA A init for the three policies
        lm = _policy()
        with torch.no_grad():  # a policy away from the reference, so the gradient is not trivial
            for name, p in lm.model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * 0.1)
        config = DPOConfig(micro_batch_size=micro, batch_size=8)
        batch = collate_pairs(encode_pairs(lm, _prefs(8), 512).pairs, pad_id(lm.tokenizer))
        ref = reference_logprobs(lm, [batch], autocast=False, micro_batch_size=micro)[0]
        params = trainable_params(lm.model)
        before = trainable_state(lm.model)
        row = dpo_step(lm, batch, ref, torch.optim.SGD(params, lr=1.0), params, config, False, 1)
        after = trainable_state(lm.model)
        updates.append((row, {k: after[k] - before[k] for k in before}))
    (whole, whole_update), *parts = updates
    for row, update in parts:
        assert row["loss"] == pytest.approx(whole["loss"], abs=1e-6)
        assert row["grad_norm"] == pytest.approx(whole["grad_norm"], rel=1e-4)
        assert all(torch.allclose(update[k], whole_update[k], atol=1e-6) for k in update)
