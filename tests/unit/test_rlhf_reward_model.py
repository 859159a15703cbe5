import math
import random
from dataclasses import dataclass

import pytest
import torch

from superalign.models import byte_tokenizer, load
from superalign.records import Preference
from superalign.rlhf.feedback import FeedbackDataError
from superalign.rlhf.reward_model import (
    RewardEnsemble,
    RewardModel,
    RewardModelConfig,
    TokenizerMismatch,
    bradley_terry_loss,
    build_reward_model,
    combine_rewards,
    gold_agreement,
    preference_accuracy,
    train_reward_model,
)

WORDS = "the a cat dog runs fast slow blue green house tree river stone light dark open close big small".split()


def planted(n: int, seed: int, marker: str = "zebra") -> list[Preference]:
    """Chosen responses contain the marker word; rejected ones are random words of the same length."""
    rng = random.Random(seed)
    prefs = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 8))]
        other = [rng.choice(WORDS) for _ in range(len(words))]
        at = rng.randint(0, len(words))
        prefs.append(Preference(task_id=f"s{seed}-{i}", prompt=[{"role": "user", "content": "say something"}],
                                chosen=" ".join(words[:at] + [marker] + words[at:]), rejected=" ".join(other),
                                labeler="planted"))
    return prefs


def test_bradley_terry_loss_hand_computed():
    loss = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]))
    # −log σ(2) = log(1 + e^−2), −log σ(−1) = log(1 + e)
    want = (math.log(1 + math.exp(-2)) + math.log(1 + math.e)) / 2
    assert loss.item() == pytest.approx(want, abs=1e-6)
    assert bradley_terry_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(math.log(2))
    assert math.isfinite(bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0])).item())


def test_combine_rewards_hand_made_members():
    scores = torch.tensor([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]])  # [members, n]
    assert combine_rewards(scores, "mean").tolist() == [2.0, 3.0]
    assert combine_rewards(scores, "worst").tolist() == [1.0, 2.0]
    unc = combine_rewards(scores, "uncertainty", penalty=2.0)
    assert unc.tolist() == pytest.approx([2 - 2 * math.sqrt(2 / 3), 3 - 2 * math.sqrt(2)])
    assert combine_rewards(scores[:1], "uncertainty").tolist() == [1.0, 2.0]  # one member: no penalty


@dataclass
class FixedRM:
    """A stand-in reward model: a fixed score per response text."""

    table: dict

    def score(self, prompts, responses, batch_size=16):
        return torch.tensor([float(self.table[r]) for r in responses])


def test_ensemble_combines_members():
    a, b = FixedRM({"x": 1.0, "y": 0.0}), FixedRM({"x": -1.0, "y": 0.5})
    prompts = [[{"role": "user", "content": "q"}]] * 2
    assert RewardEnsemble([a, b], "mean")(prompts, ["x", "y"]).tolist() == [0.0, 0.25]
    assert RewardEnsemble([a, b], "worst").score(prompts, ["x", "y"]).tolist() == [-1.0, 0.0]
    assert RewardEnsemble([a, b], "uncertainty", 1.0).score(prompts, ["x", "y"]).tolist() == [-1.0, 0.0]


def test_preference_accuracy_and_gold_agreement_with_fixed_scores():
    prompt = [{"role": "user", "content": "q"}]
    prefs = [Preference(task_id="t", prompt=prompt, chosen=c, rejected=r, labeler="x")
             for c, r in [("a", "b"), ("b", "c"), ("c", "a"), ("a", "d")]]
    rm = FixedRM({"a": 3, "b": 2, "c": 1, "d": 3})
    assert preference_accuracy(rm, prefs) == pytest.approx((1 + 1 + 0 + 0.5) / 4)

    @dataclass
    class Task:
        messages: list

    class Evaluator:
        def score(self, task, response):
            return type("S", (), {"gold": {"a": 1.0, "b": 0.5, "c": 0.5, "d": 0.0}[response]})()

    # Pairs with different gold: (a,b) agree, (a,c) agree, (b,c) skipped (equal gold); (a,d): rm 3 vs 3 -> 1/2.
    agreement = gold_agreement(rm, [Task(prompt), Task(prompt)], [["a", "b", "c"], ["a", "d"]], Evaluator())
    assert agreement == pytest.approx((1 + 1 + 0.5) / 3)


def test_learns_planted_preference_on_tiny_encoder():
    config = RewardModelConfig(backbone="tiny-encoder", lr=3e-3, head_lr=3e-3, epochs=3, batch_size=8,
                               max_length=64)
    result = train_reward_model(planted(32, 0), planted(16, 1), config)
    assert isinstance(result.model, RewardModel)
    losses = [h["loss"] for h in result.history]
    assert sum(losses[-3:]) / 3 < losses[0] - 0.2
    assert result.validation_accuracy >= 0.85  # chance is 0.5
    assert preference_accuracy(result.model, planted(32, 2)) >= 0.85  # fresh held-out pairs
    # Centred on the training responses.
    train = planted(32, 0)
    scores = result.model.score([p.prompt for p in train] * 2, [p.chosen for p in train] + [p.rejected for p in train])
    assert abs(float(scores.mean())) < 1e-3


def test_encoder_scores_a_response_longer_than_max_length():
    """A reply that alone overflows the window is cut with its prompt (the tokenizer raised here once,
    at the end of a 39-minute stage run)."""
    model = build_reward_model(load("tiny-encoder"), RewardModelConfig(backbone="tiny-encoder", max_length=32))
    prompts = [[{"role": "user", "content": "a long question " * 10}]] * 2
    responses = ["zebra " * 100, "short"]
    rows = model.encode(prompts, responses)
    assert all(len(r) <= 32 for r in rows) and len(rows[0]) == 32
    assert rows[1] == model.encode(prompts[1:], responses[1:])[0]  # a reply that fits: only the prompt is cut
    assert torch.isfinite(model.score(prompts, responses)).all()


def test_decoder_lora_reward_model_trains_saves_and_loads(tmp_path):
    config = RewardModelConfig(backbone="tiny-llama", lr=3e-3, head_lr=3e-3, epochs=1, batch_size=8, max_length=64)
    result = train_reward_model(planted(16, 0), [], config)
    rm = result.model
    assert math.isnan(result.validation_accuracy)
    lora = {n: p for n, p in rm.named_parameters() if "lora_B" in n}
    assert lora and any(p.abs().sum() > 0 for p in lora.values())  # adapters moved from their zero init
    assert all(not p.requires_grad for n, p in rm.named_parameters() if "lora" not in n and "head" not in n)
    prefs = planted(4, 5)
    before = rm.score([p.prompt for p in prefs], [p.chosen for p in prefs])
    rm.save(tmp_path / "rm")
    again = RewardModel.load(tmp_path / "rm")
    assert torch.allclose(again.score([p.prompt for p in prefs], [p.chosen for p in prefs]), before, atol=1e-5)


def test_tokenizer_mismatch_on_load(tmp_path):
    rm = build_reward_model(load("tiny-llama"), RewardModelConfig(backbone="tiny-llama", train="head"))
    rm.save(tmp_path / "rm")
    other = load("tiny-llama")
    other.tokenizer = byte_tokenizer()
    other.tokenizer.add_tokens(["<extra>"])
    with pytest.raises(TokenizerMismatch, match="trained with tokenizer"):
        RewardModel.load(tmp_path / "rm", backbone=other)


def test_last_layers_freezes_the_rest():
    config = RewardModelConfig(backbone="tiny-llama", train="last_layers", last_layers=1)
    rm = build_reward_model(load("tiny-llama"), config)
    trainable = {n for n, p in rm.backbone.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("layers.1.") or n == "norm.weight" for n in trainable)
    assert "norm.weight" in trainable


def test_ensemble_training_and_bad_input():
    config = RewardModelConfig(backbone="tiny-encoder", train="head", head_lr=1e-2, epochs=1, ensemble_size=2,
                               ensemble_mode="worst")
    result = train_reward_model(planted(8, 0), planted(4, 1), config)
    ens = result.model
    assert isinstance(ens, RewardEnsemble) and len(ens.members) == 2
    prefs = planted(3, 2)
    members = ens.member_scores([p.prompt for p in prefs], [p.chosen for p in prefs])
    assert not torch.allclose(members[0], members[1])  # different seeds, different members
    assert torch.equal(ens.score([p.prompt for p in prefs], [p.chosen for p in prefs]), members.min(0).values)
    assert {h["member"] for h in result.history} == {0, 1}
    tie = Preference(task_id="t", prompt=[{"role": "user", "content": "q"}], chosen="x", rejected="x", labeler="x")
    with pytest.raises(FeedbackDataError, match="no usable"):
        train_reward_model([tie], [], config)


def test_best_vs_worst_pairs_train_on_one_pair_per_prompt():
    prompt = [{"role": "user", "content": "q"}]
    round_robin = [Preference(task_id="t", prompt=prompt, chosen=a, rejected=b, labeler="x")
                   for a, b in [("good", "okay"), ("good", "bad"), ("okay", "bad")]]
    config = RewardModelConfig(backbone="tiny-encoder", train="head", epochs=1, batch_size=1)
    assert len(train_reward_model(round_robin, [], config).history) == 3
    history = train_reward_model(round_robin, [], config.model_copy(update={"pairs": "best_vs_worst"})).history
    assert len(history) == 1  # good vs bad only
