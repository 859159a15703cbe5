"""The train stage as a whole on tiny models: finished steps are kept by what they depend on, so an
interrupted run resumes from them and another config that shares a step reuses it."""

from __future__ import annotations

import pytest

from superalign import pipeline, rlhf
from superalign.config import load_config
from superalign.context import RunContext


def _steps(directory) -> set[str]:
    """Step names kept in a cache directory (``dpo-<key>.json`` -> ``dpo``)."""
    return {p.name.rsplit("-", 1)[0] for p in directory.iterdir() if p.suffix == ".json" or p.is_dir()}


def _config(methods: list[str]):
    return load_config("smoke", overrides=[f"train.methods=[{','.join(methods)}]"]).train


def _values(result) -> dict[str, float]:
    return {m.name: m.value for m in result.metrics}


def test_a_rerun_reads_back_every_finished_step_and_gets_the_same_result(tmp_path, monkeypatch):
    config = _config(["best_of_n", "dpo", "rloo"])
    first = rlhf.run(config, RunContext(cache_dir=tmp_path))
    assert {"feedback", "start", "best_of_n", "dpo", "rloo", "reward_model"} <= _steps(tmp_path)

    def must_not_run(*args, **kwargs):
        raise AssertionError("recomputed a step the first run finished")

    for name in ("collect_feedback", "_evaluate", "_train_method", "_best_of_n"):
        monkeypatch.setattr(rlhf, name, must_not_run)
    monkeypatch.setattr("superalign.rlhf.reward_model.train_reward_model", must_not_run)
    again = rlhf.run(config, RunContext(cache_dir=tmp_path))
    assert _values(again) == pytest.approx(_values(first))
    assert again.points == first.points and again.evaluations == first.evaluations


def test_a_crash_in_one_method_keeps_the_steps_before_it(tmp_path, monkeypatch):
    config = _config(["dpo", "rloo"])
    real = rlhf._train_method

    def crash_on_rloo(method, *args, **kwargs):
        if method == "rloo":
            raise RuntimeError("out of memory")
        return real(method, *args, **kwargs)

    monkeypatch.setattr(rlhf, "_train_method", crash_on_rloo)
    with pytest.raises(RuntimeError, match="out of memory"):
        rlhf.run(config, RunContext(cache_dir=tmp_path))
    assert "dpo" in _steps(tmp_path) and not list(tmp_path.glob("rloo-*.json"))

    trained = []
    monkeypatch.setattr(rlhf, "_train_method", lambda method, *a, **k: trained.append(method) or real(method, *a, **k))
    result = rlhf.run(config, RunContext(cache_dir=tmp_path))
    assert trained == ["rloo"]  # DPO came back from its file
    assert {"dpo.gold_gain", "rloo.gold_gain"} <= set(_values(result))


def test_a_config_that_shares_steps_reuses_them(tmp_path, monkeypatch):
    """Only DPO's beta differs: feedback, reward model, start and best-of-n come back; only DPO trains."""
    rlhf.run(_config(["best_of_n", "dpo"]), RunContext(cache_dir=tmp_path))
    real, trained = rlhf._train_method, []
    monkeypatch.setattr(rlhf, "_train_method", lambda method, *a, **k: trained.append(method) or real(method, *a, **k))
    for name in ("collect_feedback", "_best_of_n"):
        monkeypatch.setattr(rlhf, name, lambda *a, **k: pytest.fail("recomputed a shared step"))
    evaluate, evaluated = rlhf._evaluate, []
    monkeypatch.setattr(rlhf, "_evaluate", lambda lm, t, e, c, label, p: evaluated.append(label) or evaluate(lm, t, e, c, label, p))
    monkeypatch.setattr("superalign.rlhf.reward_model.train_reward_model", lambda *a, **k: pytest.fail("retrained"))
    config = load_config("smoke", overrides=["train.methods=[best_of_n,dpo]", "train.dpo.beta=0.3"]).train
    result = rlhf.run(config, RunContext(cache_dir=tmp_path))
    assert trained == ["dpo"] and evaluated == ["tiny-llama+dpo"] and "dpo.gold_gain" in _values(result)
    # the same step computed from scratch, in a fresh cache, gives the same result: nothing depends on history
    monkeypatch.undo()
    fresh = rlhf.run(config, RunContext(cache_dir=tmp_path / "fresh"))
    assert fresh.evaluations == result.evaluations


def test_reward_model_alone(tmp_path):
    result = rlhf.run(_config([]), RunContext(cache_dir=tmp_path))
    assert all(m.name.startswith("reward_model.") for m in result.metrics)  # tiny models: often all ties
    assert not result.evaluations and not result.points and result.preferences
    assert _steps(tmp_path) == {"feedback", "reward_model"}


def test_an_interrupted_stage_resumes_and_force_starts_it_over(tmp_path, monkeypatch):
    config = load_config("smoke", overrides=["stages=[train]"])
    found = []

    def fake_train(config, ctx):  # finishes one step, and is interrupted the first time
        work = ctx.work_dir
        found.append(sorted(p.name for p in work.glob("*")))
        work.mkdir(parents=True, exist_ok=True)
        (work / "dpo.json").write_text("{}")
        if len(found) == 1:
            raise KeyboardInterrupt
        return rlhf.Result(model="m", metrics=[], evaluations=[], preferences=[], points=[])

    monkeypatch.setattr(rlhf, "run", fake_train)
    monkeypatch.setattr(pipeline, "prepare_inputs", lambda config, log, pull: {"train": {}})
    monkeypatch.setattr("superalign.report.render_report", lambda run_dir: run_dir / "report.html")
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(config, root=tmp_path, log=lambda line: None)
    for force in (False, False, True):
        pipeline.run_pipeline(config, root=tmp_path, force=force, log=lambda line: None)
    # the rerun found the interrupted attempt's step, the next reused the finished stage, --force began empty
    assert found == [[], ["dpo.json"], []]


def test_unfinished_work_under_another_key_is_not_resumed(tmp_path, monkeypatch):
    """Work left by an interrupted attempt belongs to its key: other code, inputs or device start over (a red-team
    campaign resuming on attempts that another policy answered would report that policy's replies)."""
    config = load_config("smoke", overrides=["stages=[train]"])
    found = []

    def fake_train(config, ctx):
        found.append(sorted(p.name for p in ctx.work_dir.glob("*")))
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        (ctx.work_dir / "attempts.jsonl").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(rlhf, "run", fake_train)
    monkeypatch.setattr(pipeline, "prepare_inputs", lambda config, log, pull: {"train": {}})
    for key in ("a", "a", "b"):
        monkeypatch.setattr(pipeline, "stage_key", lambda *args, key=key: key)
        with pytest.raises(KeyboardInterrupt):
            pipeline.run_pipeline(config, root=tmp_path, log=lambda line: None)
    assert found == [[], ["attempts.jsonl"], []]  # same key: resumed; another key: cleared first


def test_label_counts_and_the_evaluator_read_audit(tmp_path, monkeypatch):
    """Each method's labels: the up-front comparisons plus, for online DPO judged by the labeler, every comparison
    it asked while training (counted at the labeler itself); every gold read is audited by purpose and caller."""
    from superalign.world.labelers import SimulatedLabeler

    config = load_config("smoke", overrides=["train.methods=[dpo,online_dpo]", "train.online_dpo.judge=labeler",
                                             "train.online_dpo.rounds=2"]).train
    calls = []
    real = SimulatedLabeler.prefer
    monkeypatch.setattr(SimulatedLabeler, "prefer", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    result = rlhf.run(config, RunContext(cache_dir=tmp_path))
    labels = {m.name: m for m in result.metrics if m.name.endswith(".labels")}
    up_front = len(result.preferences)
    assert labels["dpo.labels"].meta["up_front"] == up_front and labels["dpo.labels"].meta["during_training"] == 0
    asked = labels["online_dpo.labels"].meta["during_training"]
    assert asked > 0 and up_front + asked == len(calls) == labels["online_dpo.labels"].value
    reads = {}
    for r in result.evaluator_reads:
        reads[r["purpose"]] = reads.get(r["purpose"], 0) + r["calls"]
    assert reads["training: online_dpo"] == 2 * asked and "training: dpo" not in reads  # labeler: gold of both replies
    assert reads["feedback: the simulated labeler's up-front comparisons"] == 2 * up_front
    assert reads["report: evaluation of dpo"] > 0 and "undeclared" not in reads
    assert {r["caller"] for r in result.evaluator_reads if r["purpose"].startswith("report: evaluation")} == \
        {"superalign.evaluation:score_responses"}
    again = rlhf.run(config, RunContext(cache_dir=tmp_path))  # from the cache: same counts, nothing read for training
    assert {m.name: m.value for m in again.metrics if m.name.endswith(".labels")} == \
        {k: m.value for k, m in labels.items()}
    assert not any(r["purpose"].startswith("training") for r in again.evaluator_reads)
