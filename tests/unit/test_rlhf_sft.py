"""SFT: the response-only loss on a hand-built mask, learning, divergence and bad input, on tiny-llama."""

import math

import pytest
import torch

from superalign.models import load
from superalign.models.generation import end_of_turn_id, prompt_ids
from superalign.records import Demonstration
from superalign.models import finetune as sft_module
from superalign.rlhf.common import AdapterConfig, TrainingDiverged, make_trainable, trainable_state
from superalign.rlhf.sft import SFTConfig, collate_demos, encode_demos, sft_loss, train_sft


def _policy():
    torch.manual_seed(0)  # the adapters' random init: each test starts from the same one, whatever ran before
    return make_trainable(load("tiny-llama"), AdapterConfig(r=4, alpha=8))


def _demos(n: int = 4) -> list[Demonstration]:
    return [Demonstration(task_id=f"t{i}", prompt=[{"role": "user", "content": f"say it {i}"}],
                          response="hello hello hello", source="test") for i in range(n)]


def _demo_loss(lm, demos) -> float:
    batch = collate_demos(encode_demos(lm, demos, 512), 258)
    with torch.no_grad():
        logits = lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return sft_loss(logits, batch.input_ids, batch.completion_mask).item()


# --- the loss on a hand-built mask -------------------------------------------------------------


def test_loss_counts_only_response_tokens_hand_built():
    # One row of 4 tokens over a 3-token vocabulary: [prompt, prompt, response, response].
    # Position t predicts token t+1, so the response tokens (2 and 3) are predicted at positions 1 and 2.
    input_ids = torch.tensor([[0, 1, 2, 0]])
    mask = torch.tensor([[0, 0, 1, 1]])
    logits = torch.tensor([[[5.0, 0.0, 0.0],    # predicts token 1 (a prompt token): ignored
                            [0.0, 0.0, 1.0],    # predicts token 2 = id 2
                            [2.0, 0.0, 0.0],    # predicts token 3 = id 0
                            [9.0, 9.0, 9.0]]])  # predicts nothing
    lp = torch.log_softmax(logits, -1)
    expected = -(lp[0, 1, 2] + lp[0, 2, 0]) / 2
    assert sft_loss(logits, input_ids, mask).item() == pytest.approx(expected.item(), abs=1e-6)
    # changing what the model says about the prompt, or about what follows the last token, changes nothing
    changed = logits.clone()
    changed[0, 0] = torch.tensor([-3.0, 7.0, 1.0])
    changed[0, 3] = torch.tensor([0.0, 50.0, 0.0])
    assert sft_loss(changed, input_ids, mask).item() == pytest.approx(expected.item(), abs=1e-6)


def test_loss_is_a_token_mean_over_the_batch_and_ignores_padding():
    # Uniform logits: every token costs log V; a padded row with one response token weighs one token.
    vocab = 5
    input_ids = torch.tensor([[1, 2, 3, 4], [1, 2, 0, 0]])
    mask = torch.tensor([[0, 1, 1, 1], [0, 1, 0, 0]])
    logits = torch.zeros(2, 4, vocab)
    logits[1, 1:] = torch.randn(3, vocab)  # padding positions of row 2: must not matter
    logits[1, 0] = 0.0
    assert sft_loss(logits, input_ids, mask).item() == pytest.approx(math.log(vocab), abs=1e-6)
    assert sft_loss(logits, input_ids, torch.zeros_like(mask)).item() == 0.0  # nothing to score


def test_encode_appends_end_of_turn_cuts_long_responses_and_skips_overlong_prompts():
    lm = load("tiny-llama")
    demo = Demonstration(task_id="t", prompt=[{"role": "user", "content": "hi"}], response="abcdef", source="test")
    n_prompt = len(prompt_ids(lm, demo.prompt))
    [(p, c)] = encode_demos(lm, [demo], max_length=512)
    assert p == prompt_ids(lm, demo.prompt) and c[-1] == end_of_turn_id(lm) and len(c) == 7
    [(_, cut)] = encode_demos(lm, [demo], max_length=n_prompt + 3)
    assert len(cut) == 3
    assert encode_demos(lm, [demo], max_length=n_prompt) == []


def test_a_step_runs_the_lm_head_on_response_positions_only_and_matches_the_full_loss():
    # The step's loss and gradients equal sft_loss on the full logits, yet the head sees only the positions
    # that predict a response token (a fifth of SmolLM2's FLOPs, wasted on prompts three times their size).
    lm = _policy()
    batch = collate_demos(encode_demos(lm, _demos(3), 512), 258)
    params = [p for p in lm.model.parameters() if p.requires_grad]
    logits = lm.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    expected = sft_loss(logits, batch.input_ids, batch.completion_mask)
    expected_grads = torch.autograd.grad(expected, params)
    head_rows = []
    head = lm.model.get_base_model().lm_head
    hook = head.register_forward_hook(lambda module, args, out: head_rows.append(args[0].shape[:-1].numel()))
    optimizer = torch.optim.SGD(params, lr=0.0)
    row = sft_module._sft_step(lm, batch, optimizer, params, SFTConfig(max_grad_norm=None), False, step=1)
    hook.remove()
    assert head_rows == [int(batch.completion_mask[:, 1:].sum())]
    assert row["loss"] == pytest.approx(expected.item(), abs=1e-5)
    assert all(torch.allclose(p.grad, g, rtol=1e-4, atol=1e-9) for p, g in zip(params, expected_grads))
    assert any(bool(g.abs().max() > 0) for g in expected_grads)  # a comparison of zeros would prove nothing


# --- training -----------------------------------------------------------------------------------


def test_sft_loss_falls_and_only_lora_changes():
    lm = _policy()
    demos = _demos(4)
    before_state = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    before = _demo_loss(lm, demos)
    result = train_sft(lm, demos, SFTConfig(batch_size=4, epochs=4, lr=2e-2))
    after = _demo_loss(lm, demos)
    assert after < before - 0.2
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.method == "sft" and result.steps == 4 and result.diverged is None
    changed = {n for n, p in lm.model.named_parameters() if not torch.equal(p.detach(), before_state[n])}
    assert changed and all("lora_" in n for n in changed)


def test_eval_hook_at_start_every_k_steps_and_end(tmp_path):
    calls = []
    result = train_sft(_policy(), _demos(3), SFTConfig(batch_size=1), eval_every=2, out_dir=tmp_path,
                       eval_hook=lambda step, policy: calls.append(step))
    assert calls == [0, 2, 3]
    assert result.checkpoint == tmp_path and (tmp_path / "adapter_config.json").exists()


def test_nan_loss_stops_restores_last_good_state_and_saves_checkpoint(monkeypatch, tmp_path):
    calls = {"n": 0}

    real = sft_module.response_logprobs

    def poisoned(*args):
        calls["n"] += 1
        logprobs = real(*args)
        return logprobs * float("nan") if calls["n"] == 2 else logprobs

    monkeypatch.setattr(sft_module, "response_logprobs", poisoned)
    lm = _policy()
    states = {}
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 2") as info:
        train_sft(lm, _demos(3), SFTConfig(batch_size=1, lr=1e-2), out_dir=tmp_path / "ckpt", eval_every=1,
                  eval_hook=lambda step, policy: states.__setitem__(step, trainable_state(policy.model)))
    result = info.value.result
    assert result.steps == 1 and result.diverged.startswith("loss became nan at step 2")
    now = trainable_state(lm.model)
    assert all(torch.equal(now[n], states[1][n]) for n in now)
    assert not all(torch.equal(now[n], states[0][n]) for n in now)
    assert (tmp_path / "ckpt" / "adapter_model.safetensors").exists()


def test_bad_input_stops_with_a_clear_message():
    with pytest.raises(ValueError, match="no demonstrations"):
        train_sft(_policy(), [], SFTConfig())
    with pytest.raises(ValueError, match="max_length=8"):
        train_sft(_policy(), _demos(1), SFTConfig(max_length=8))
