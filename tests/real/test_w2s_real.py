"""The generalize stage on the real pair of the quick profile (MiniLM -> SmolLM2), on a small policy task."""

import math

import pytest

from superalign import weak_to_strong
from superalign.models import pull

pytestmark = pytest.mark.real


def test_minilm_supervises_smollm_on_the_policy_task():
    for name in ("minilm-l6", "smollm2-135m-instruct"):
        pull(name)
    config = weak_to_strong.Config(weak="minilm-l6", strong_layer=0.33, tasks=["policy"], n_seeds=2,
                                   task_sizes={"policy": [200, 100]}, max_length=128)
    result = weak_to_strong.run(config)
    m = {x.name: x for x in result.metrics}
    print({k: round(v.value, 3) for k, v in m.items()})
    # Real features: ground-truth probes on 100 replies are far above chance (0.93-0.96 measured at 200).
    assert m["policy.ceiling.accuracy"].value > 0.75 and m["policy.weak.accuracy"].value > 0.6
    assert all(math.isfinite(x.value) for x in result.metrics)
    assert {row["method"] for row in result.table} == {"naive", "confidence"}
