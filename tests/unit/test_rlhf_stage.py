"""The train stage as a whole on tiny models: an interrupted run resumes from its finished steps."""

from __future__ import annotations

import pytest

from superalign import pipeline, rlhf
from superalign.config import load_config


def _config(methods: list[str]):
    return load_config("smoke", overrides=[f"train.methods=[{','.join(methods)}]"]).train


def _values(result) -> dict[str, float]:
    return {m.name: m.value for m in result.metrics}


def test_a_rerun_reads_back_every_finished_step_and_gets_the_same_result(tmp_path, monkeypatch):
    config = _config(["best_of_n", "dpo", "rloo"])
    first = rlhf.run(config, out_dir=tmp_path)
    assert {"feedback.json", "start.json", "best_of_n.json", "dpo.json", "rloo.json"} <= {
        p.name for p in tmp_path.iterdir()}
    assert (tmp_path / "reward_model").is_dir()

    def must_not_run(*args, **kwargs):
        raise AssertionError("recomputed a step the first run finished")

    for name in ("collect_feedback", "_evaluate", "_train_method", "_best_of_n"):
        monkeypatch.setattr(rlhf, name, must_not_run)
    monkeypatch.setattr("superalign.rlhf.reward_model.train_reward_model", must_not_run)
    again = rlhf.run(config, out_dir=tmp_path)
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
        rlhf.run(config, out_dir=tmp_path)
    assert (tmp_path / "dpo.json").is_file() and not (tmp_path / "rloo.json").exists()

    trained = []
    monkeypatch.setattr(rlhf, "_train_method", lambda method, *a, **k: trained.append(method) or real(method, *a, **k))
    result = rlhf.run(config, out_dir=tmp_path)
    assert trained == ["rloo"]  # DPO came back from its file
    assert {"dpo.gold_gain", "rloo.gold_gain"} <= set(_values(result))


def test_an_interrupted_stage_resumes_and_force_starts_it_over(tmp_path, monkeypatch):
    config = load_config("smoke", overrides=["stages=[train]"])
    found = []

    def fake_train(config, run, progress):  # finishes one step, and is interrupted the first time
        work = run.work_dir("train")
        found.append(sorted(p.name for p in work.glob("*")))
        work.mkdir(parents=True, exist_ok=True)
        (work / "dpo.json").write_text("{}")
        if len(found) == 1:
            raise KeyboardInterrupt
        return {}

    monkeypatch.setitem(pipeline.STAGE_RUNNERS, "train", fake_train)
    monkeypatch.setattr(pipeline, "check_models_pulled", lambda config: None)
    monkeypatch.setattr("superalign.report.render_report", lambda run_dir: run_dir / "report.html")
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(config, root=tmp_path, log=lambda line: None)
    for force in (False, False, True):
        pipeline.run_pipeline(config, root=tmp_path, force=force, log=lambda line: None)
    # the rerun found the interrupted attempt's step, the next reused the finished stage, --force began empty
    assert found == [[], ["dpo.json"], []]
