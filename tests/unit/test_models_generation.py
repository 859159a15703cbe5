"""Generation and completion log-probs on tiny models."""

import pytest
import torch
from torch import nn

from superalign.models import GenerationConfig, completion_logprobs, generate, generate_ids, greedy, load
from superalign.models.generation import _filter_top_p, completion_batch, left_pad, prompt_ids
from tests.unit.rl_common import tiny_policy

PROMPTS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "user", "content": "a considerably longer prompt than the others"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}],
]


@pytest.fixture(scope="module")
def lm():
    return load("tiny-llama")


class ForceToken(nn.Module):
    """A stand-in LM head that always predicts `token` (to test stopping)."""

    def __init__(self, token: int, vocab: int):
        super().__init__()
        self.token, self.vocab = token, vocab

    def forward(self, hidden):  # [batch, seq, d] -> [batch, seq, vocab]
        logits = torch.zeros(*hidden.shape[:-1], self.vocab)
        logits[..., self.token] = 100.0
        return logits


def test_sampling_is_seeded(lm):
    config = GenerationConfig(max_new_tokens=8, seed=3)
    a = generate(lm, PROMPTS, config)
    assert a == generate(lm, PROMPTS, config)
    assert a != generate(lm, PROMPTS, GenerationConfig(max_new_tokens=8, seed=4))


def test_sampling_independent_of_batch_size(lm):
    one = generate_ids(lm, PROMPTS, GenerationConfig(max_new_tokens=8, seed=1, batch_size=1))
    three = generate_ids(lm, PROMPTS, GenerationConfig(max_new_tokens=8, seed=1, batch_size=3))
    assert one == three


def test_repeated_prompt_gets_different_samples(lm):
    # best-of-n relies on this: the same prompt twice in one call must not give the same draw
    out = generate_ids(lm, [PROMPTS[0]] * 2, GenerationConfig(max_new_tokens=8, seed=0))
    assert out[0] != out[1]


def test_respects_max_new_tokens(lm):
    out = generate_ids(lm, PROMPTS, GenerationConfig(max_new_tokens=5, seed=0))
    assert all(len(ids) <= 5 for ids in out)
    assert max(len(ids) for ids in out) == 5  # a random model rarely hits end-of-turn in 5 tokens
    assert generate(lm, PROMPTS, GenerationConfig(max_new_tokens=0)) == ["", "", ""]


def test_greedy_batched_equals_unbatched_with_left_padding(lm):
    batched = greedy(lm, PROMPTS, max_new_tokens=6, batch_size=3)
    single = [greedy(lm, [p], max_new_tokens=6, batch_size=1)[0] for p in PROMPTS]
    assert batched == single


def test_stops_at_end_of_turn():
    lm = load("tiny-llama")
    lm.model.lm_head = ForceToken(lm.tokenizer.eos_token_id, len(lm.tokenizer))
    assert generate_ids(lm, PROMPTS, GenerationConfig(max_new_tokens=10)) == [[], [], []]
    lm.model.lm_head = ForceToken(ord("a"), len(lm.tokenizer))
    assert greedy(lm, PROMPTS[:1], max_new_tokens=4) == ["aaaa"]


def test_progress_callback_and_order(lm):
    seen = []
    out = greedy(lm, PROMPTS, max_new_tokens=2, batch_size=2, progress=seen.append)
    assert seen == [2, 1] and len(out) == 3  # increments per batch


def test_encoder_cannot_generate():
    with pytest.raises(ValueError, match="encoder"):
        greedy(load("tiny-encoder"), PROMPTS, max_new_tokens=2)


def test_left_pad_positions():
    batch = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["position_ids"].tolist() == [[0, 1, 2], [0, 0, 0]]


def test_top_p_keeps_the_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert (_filter_top_p(probs, 0.7) > 0).tolist() == [[True, True, False, False]]
    assert (_filter_top_p(probs, 0.1) > 0).tolist() == [[True, False, False, False]]
    assert (_filter_top_p(probs, 0.81) > 0).tolist() == [[True, True, True, False]]
    assert torch.equal(_filter_top_p(probs, 1.0), probs)


def test_completion_logprobs_matches_manual(lm):
    completions = ["ok", "a longer completion", ""]
    got = completion_logprobs(lm, PROMPTS, completions, batch_size=2)
    for messages, completion, value in zip(PROMPTS, completions, got):
        p = prompt_ids(lm, messages)
        c = list(completion.encode("utf-8")) + [lm.tokenizer.eos_token_id]  # byte ids + <|im_end|>
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(input_ids=ids).logits[0], dim=-1)
        manual = sum(logp[len(p) + k - 1, tok].item() for k, tok in enumerate(c))
        assert value.item() == pytest.approx(manual, abs=1e-4)
    assert got.shape == (3,)


def test_completion_batch_boundary(lm):
    batch = completion_batch(lm, PROMPTS[:1], ["ab"])
    p = prompt_ids(lm, PROMPTS[0])
    assert batch.input_ids[0, len(p):].tolist() == [97, 98, 257]
    assert batch.completion_mask[0].sum().item() == 3
    assert prompt_ids(lm, PROMPTS[0])[-len("assistant\n"):] == list(b"assistant\n")


def test_generation_restores_training_mode():
    lm = load("tiny-gpt2")  # GPT-2 has dropout: sampling in train mode would be noisy
    lm.model.train()
    a = greedy(lm, PROMPTS[:1], max_new_tokens=4)
    assert lm.model.training
    lm.model.eval()
    assert greedy(lm, PROMPTS[:1], max_new_tokens=4) == a


def test_a_lora_policy_samples_with_its_adapters():
    policy = tiny_policy()
    torch.manual_seed(0)
    for name, p in policy.model.named_parameters():
        if "lora_B" in name:  # LoRA starts as a no-op (B = 0): make it change the model
            p.data.normal_(0.0, 0.5)
    assert greedy(policy, PROMPTS[1:2], max_new_tokens=8) != greedy(load("tiny-llama"), PROMPTS[1:2], max_new_tokens=8)



def test_first_token_logprobs_match_one_prompt_at_a_time_and_refuse_ambiguous_choices():
    import pytest

    from superalign.models import load
    from superalign.models.generation import first_token_logprobs

    lm = load("tiny-llama")
    prompts = [[{"role": "user", "content": "Is it? " * n}] for n in (1, 7, 3)]
    together = first_token_logprobs(lm, prompts, ["Yes", "No"], batch_size=3)
    alone = torch.cat([first_token_logprobs(lm, [p], ["Yes", "No"]) for p in prompts])
    assert together.shape == (3, 2) and torch.allclose(together, alone, atol=2e-2)
    assert (together < 0).all()
    with pytest.raises(ValueError, match="share their first token"):
        first_token_logprobs(lm, prompts, ["Yes", "Yeah"])
