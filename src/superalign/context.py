"""RunContext: what the pipeline hands each stage besides its config.

Progress, a log, where to keep work (``work_dir``: this run's checkpoints, to resume after an
interruption) and finished steps that other runs may share (``cache_dir``: content-addressed, see
:meth:`RunContext.step`), and the device and dtype that every model of the stage is loaded with.
Nothing here imports torch until a device is asked for.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

from superalign.progress import NullProgress, Progress

T = TypeVar("T")
Device = Literal["auto", "cpu", "cuda"]


@cache
def code_version() -> str:
    """A hash of superalign's own source (Python files and templates): any change to the code gives new cache
    keys, so that a result computed by other code is never reused."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".j2") and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def key_of(parts: Any) -> str:
    """A short content hash of JSON-able ``parts`` (pydantic models are dumped first)."""
    from superalign.runs import to_jsonable

    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=to_jsonable)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def compute_precision(device: str) -> str:
    """"bf16" or "fp32": what this machine computes fastest on ``device`` (see models.precision). Results
    differ by it, so cache keys include it: a bf16 machine's cache is not an AVX2 machine's answer."""
    from superalign.models.precision import fast_bf16

    return "bf16" if fast_bf16(device) else "fp32"


def resolve_device(request: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is a config error."""
    import torch

    if request == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if request == "cuda" and not torch.cuda.is_available():
        from superalign.config import ConfigError

        raise ConfigError("device: cuda was asked for, but torch sees no CUDA GPU here (use --device auto or cpu)")
    return request


def load_local(spec: str, device_request: str = "auto", as_name: str | None = None):
    """What a command's TARGET names: a model source, or a cached organism (``organism:NAME``), loaded on the
    requested device (``as_name`` renames an organism, e.g. for a blind audit)."""
    device = resolve_device(device_request)
    if spec.startswith("organism:"):
        from superalign import organisms

        return organisms.load(spec.split(":", 1)[1], device=device, as_name=as_name)
    from superalign.models import load

    return load(spec, device=device)


def chat_role(spec: str | None, served: str | None = None, device_request: str = "auto", flag: str = "--role"):
    """A chat role from a command's flag: the URL of an OpenAI-compatible endpoint (``served`` names its model)
    or a model source loaded locally; None when no spec is given. ValueError names what is missing."""
    if spec is None:
        return None
    from superalign.models.chat import LocalChatModel, OpenAIChatModel

    if spec.startswith(("http://", "https://")):
        if not served:
            raise ValueError(f"{spec}: say which model the endpoint serves ({flag}-model NAME)")
        return OpenAIChatModel(spec, served)
    return LocalChatModel(load_local(spec, device_request))


@dataclass
class RunContext:
    """Everything a stage needs from the run around it. The defaults suit a library call or a test."""

    progress: Progress = field(default_factory=NullProgress)
    log: Callable[[str], None] = lambda message: None
    work_dir: Path | None = None  # this run's unfinished work (None: keep nothing)
    cache_dir: Path | None = None  # finished steps shared by every run under the same root (None: none)
    device_request: Device = "auto"
    force: bool = False  # recompute steps even when the cache holds them
    input_hashes: dict[str, str] = field(default_factory=dict)  # content hash of each input (stages.Inputs)
    upstream: dict[str, dict] = field(default_factory=dict)  # summaries of the earlier stages it reads (Inputs.stages)

    @cached_property
    def device(self) -> str:
        """``cuda`` when asked, or when ``auto`` and a GPU is there; else ``cpu``."""
        return resolve_device(self.device_request)

    @property
    def dtype(self):
        """bf16 on a GPU that has it; None (the model's own fp32) on a CPU, where bf16 is only used as autocast."""
        if self.device == "cpu":
            return None
        import torch

        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None

    def load(self, name: str, train: bool = False):
        """Load a model on this run's device: bf16 on a GPU for inference, fp32 for training.

        Training keeps fp32 weights (optimizer states, value and reward heads are fp32; under LoRA the
        adapters take the base weights' dtype).
        """
        from superalign.models import load

        return load(name, dtype=None if train else self.dtype, device=self.device)

    def step(self, name: str, key: Any, compute: Callable[[], T], kind: Any) -> T:
        """``compute()``, kept as JSON in ``cache_dir/<name>-<hash of key>.json`` and read back next time.

        ``key`` must hold everything the result depends on (config sections, input hashes): the same key
        anywhere under this root means the same result, so ``superalign train dpo`` and ``superalign run``
        share the steps they have in common. ``kind`` is the type to validate the JSON back into.
        """
        from pydantic import TypeAdapter

        from superalign.runs import write_json_atomic

        path = self.step_path(name, key, ".json")  # the key includes the code version (step_path)
        if path is not None and path.is_file() and not self.force:
            return TypeAdapter(kind).validate_json(path.read_bytes())
        value = compute()
        if path is not None:
            write_json_atomic(path, value)
        return value

    def step_path(self, name: str, key: Any, suffix: str = "") -> Path | None:
        """Where step ``name`` with ``key`` is kept (a file, or a directory when ``suffix`` is empty)."""
        if self.cache_dir is None:
            return None
        parts = {"code": code_version(), "precision": compute_precision(self.device), "step": key}
        return self.cache_dir / f"{name}-{key_of(parts)}{suffix}"

    def clear_work(self) -> None:
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)


__all__ = ["Device", "RunContext", "code_version", "compute_precision", "key_of", "resolve_device"]
