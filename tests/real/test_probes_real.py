"""Probes and the SAE on the embedded model: a truth direction exists in its middle layers, and an SAE
trained briefly reconstructs the residual stream."""

import pytest
import torch

from superalign.models import load, pull

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def smollm():
    pull("smollm2-135m-instruct")
    return load("smollm2-135m-instruct")


def test_a_logistic_probe_reads_truth_from_layer_17_of_the_embedded_model(smollm):
    from superalign.models.activations import extract_layers
    from superalign.probes.data import truth_sets
    from superalign.probes.methods import fit
    from superalign.stats import auroc
    from superalign.world import World

    sets = truth_sets(World(0), ["animals", "elements"], n_train=200)
    x = extract_layers(smollm, sets["train"].texts + sets["in_distribution"].texts, [17])[17]
    train, test = x[:200], x[200:]
    probe = fit("logistic", train, torch.tensor(sets["train"].labels))
    value = auroc(sets["in_distribution"].labels, probe.score(test).numpy())
    # Measured in the quick run: 0.81 with 406 training statements. Chance would be 0.5.
    assert value > 0.7, value


def test_an_sae_reconstructs_the_embedded_models_residual_stream(smollm):
    from superalign import autointerp
    from superalign.autointerp.sae import quality, train_sae
    from superalign.models.activations import token_activations

    rows = autointerp.windows(smollm, autointerp.corpus()[:400], 32)
    acts = token_activations(smollm, rows, ["layers.15.resid_post"])["layers.15.resid_post"]
    x = torch.cat([a[1:] for a in acts])
    sae, _ = train_sae(x[:-1000], 1152, "topk", k=32, epochs=10)
    assert quality(sae, x[-1000:]).variance_explained > 0.8
