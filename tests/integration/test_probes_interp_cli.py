"""`superalign probes` and `superalign interp` end to end on a tiny model: records on disk, a table on the
terminal, an SAE file that loads back, and bad input stopped in one line before the model loads."""

from __future__ import annotations

import torch

from superalign.records import ProbeResult, UnitExplanation, read_jsonl
from tests.integration.test_cli import superalign


def test_probes_sweep_layers_and_methods_and_write_records(tmp_path):
    proc = superalign("probes", "tiny-llama", "--layers", "0", "1", "--methods", "logistic,ccs", "--n-monitor", "4",
                      "--n-train", "40",
                      "--out", "out", "--device", "cpu", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = read_jsonl(tmp_path / "out" / "probes.jsonl", ProbeResult)
    assert {(r.method, r.layer) for r in results if r.dataset == "truth" and r.test != "monitor"} == {
        ("logistic", 0), ("logistic", 1), ("ccs", 0), ("ccs", 1)}
    assert "held_out_topic" in proc.stdout and "deception probe" in proc.stdout


def test_interp_trains_an_sae_explains_units_and_saves_the_sae(tmp_path):
    proc = superalign("interp", "tiny-llama", "--units", "2", "--sae-windows", "200", "--out", "out", "--device", "cpu",
                      home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    units = read_jsonl(tmp_path / "out" / "units.jsonl", UnitExplanation)
    assert [u.family for u in units] == ["neuron", "neuron", "sae", "sae"]
    saved = torch.load(tmp_path / "out" / "sae.pt", weights_only=True)
    assert saved["layer"] == 1 and saved["state_dict"]["W_dec"].shape[1] == 64
    assert "variance explained" in proc.stdout


def test_bad_input_is_one_line_before_any_work(tmp_path):
    for args, message in ((["probes", "tiny-llama", "--methods", "svm"], "unknown probe method 'svm'"),
                          (["probes", "tiny-llama", "--heldout-topics", "dinosaurs", "--device", "cpu"],
                           "held-out topics dinosaurs"),
                          (["probes", "tiny-llama", "--layers", "7", "--device", "cpu"], "layers 0..1"),
                          (["interp", "tiny-llama", "--layer", "9", "--device", "cpu"], "layers 0..1"),
                          (["interp", "tiny-llama", "--explainer", "http://localhost:9/v1"], "--explainer-model"),
                          # the flag the user typed, not the config field behind it (n_units)
                          (["interp", "tiny-llama", "--units", "-1"], "--units: Input should be greater than")):
        proc = superalign(*args, home=tmp_path / "home", cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
