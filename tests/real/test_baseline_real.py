"""The baseline stage on the embedded model, on a handful of tasks."""

import pytest

from superalign import baseline
from superalign.models import pull

pytestmark = pytest.mark.real


def test_baseline_on_smollm_scores_real_answers():
    pull("smollm2-135m-instruct")
    config = baseline.Config(n_instruction=4, n_fact=12, n_policy=4, max_new_tokens=96, n_boot=200)
    result = baseline.run(config)
    assert len(result.evaluations) == 20
    assert all(e.response.strip() for e in result.evaluations)  # a real model answers every prompt
    summary = {m.name: m.value for m in result.metrics}
    print(summary)
    # A 135M instruct model knows some facts: all-wrong would mean broken prompting or answer checking.
    assert summary["fact.accuracy"] > 0
    assert 0.0 <= summary["gold.mean"] <= 1.0
