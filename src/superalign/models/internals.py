"""Model internals through one vocabulary, over unmodified Hugging Face models (TransformerLens style).

Canonical hook names (d = d_model, f = MLP width):
    embed                    token (+ position) embeddings entering layer 0          [batch, seq, d]
    layers.{i}.resid_post    residual stream after block i (= hidden_states[i + 1],
                             except the last block, where HF applies the final norm)  [batch, seq, d]
    layers.{i}.attn.out      attention output added to the residual stream           [batch, seq, d]
    layers.{i}.mlp.out       MLP output added to the residual stream                 [batch, seq, d]
    layers.{i}.mlp.act       MLP neuron activations (input of the down projection)   [batch, seq, f]

Supported: Llama-family (Llama, Mistral, Qwen2, SmolLM…: `model.layers[i].self_attn.o_proj`, `.mlp.down_proj`),
GPT-2 (`transformer.h[i].attn`, `.mlp.c_proj`) and BERT-style encoders (embed and resid_post only).
Everything is done with PyTorch forward hooks that are always removed, even when the forward raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from superalign.models.sources import LoadedModel

# A hook receives the activation and its canonical name; returning a tensor replaces the activation.
HookFn = Callable[[torch.Tensor, str], "torch.Tensor | None"]


@dataclass
class CacheResult:
    """logits: the model's main output ([batch, seq, vocab] for LMs, last hidden state for encoders);
    cache: canonical name -> activation tensor (detached unless asked otherwise)."""

    logits: torch.Tensor
    cache: dict[str, torch.Tensor]


@dataclass(frozen=True)
class HookPoint:
    """Where a canonical name lives: a module, and whether we read its output or its (first) input."""

    module: nn.Module
    at: str  # "output" | "input"


def _unwrap(model: nn.Module | LoadedModel) -> nn.Module:
    return model.model if isinstance(model, LoadedModel) else model


def _architecture(model: nn.Module) -> tuple[str, nn.Module]:
    """Identify the layout and return (family, backbone module)."""
    backbone = getattr(model, "model", None)
    if backbone is not None and hasattr(backbone, "layers") and hasattr(backbone, "embed_tokens"):
        return "llama", backbone
    if hasattr(model, "layers") and hasattr(model, "embed_tokens"):
        return "llama", model
    transformer = getattr(model, "transformer", None)
    if transformer is not None and hasattr(transformer, "h") and hasattr(transformer, "wte"):
        return "gpt2", transformer
    if hasattr(model, "h") and hasattr(model, "wte"):
        return "gpt2", model
    for candidate in (getattr(model, "bert", None), getattr(model, "roberta", None), model):
        if candidate is not None and hasattr(candidate, "encoder") and hasattr(candidate, "embeddings"):
            if hasattr(candidate.encoder, "layer"):
                return "bert", candidate
    raise ValueError(
        f"unsupported architecture {type(model).__name__}: internals know Llama-family, GPT-2 and BERT layouts"
    )


def block_stack(model: nn.Module | LoadedModel) -> tuple[nn.Module, str, nn.ModuleList]:
    """(owner, attribute, blocks): where the transformer blocks live; block i writes ``layers.{i}.resid_post``.

    An architecture the map does not know falls back to its longest ModuleList (readouts at the last hidden
    state and reward models still work; named hooks do not).
    """
    try:
        family, base = _architecture(_unwrap(model))
    except ValueError:
        net = _unwrap(model)
        lists = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
        if not lists:
            raise
        name, stack = max(lists, key=lambda nm: len(nm[1]))
        parent, _, attr = name.rpartition(".")
        return net.get_submodule(parent), attr, stack
    if family == "llama":
        return base, "layers", base.layers
    if family == "gpt2":
        return base, "h", base.h
    return base.encoder, "layer", base.encoder.layer


def final_norm(model: nn.Module | LoadedModel) -> nn.Module | None:
    """The norm HF applies after the last block (Llama ``norm``, GPT-2 ``ln_f``); None for BERT-style encoders."""
    family, base = _architecture(_unwrap(model))  # unknown layouts raise: no named readout without the map
    return base.norm if family == "llama" else base.ln_f if family == "gpt2" else None


def hook_points(model: nn.Module | LoadedModel) -> dict[str, HookPoint]:
    """Every canonical name of `model` mapped to the module (and side) where it is observed."""
    family, base = _architecture(_unwrap(model))
    points: dict[str, HookPoint] = {}
    if family == "llama":
        points["embed"] = HookPoint(base.embed_tokens, "output")
        for i, layer in enumerate(base.layers):
            points[f"layers.{i}.resid_post"] = HookPoint(layer, "output")
            points[f"layers.{i}.attn.out"] = HookPoint(layer.self_attn.o_proj, "output")
            points[f"layers.{i}.mlp.out"] = HookPoint(layer.mlp, "output")
            points[f"layers.{i}.mlp.act"] = HookPoint(layer.mlp.down_proj, "input")
    elif family == "gpt2":
        points["embed"] = HookPoint(base.drop, "output")  # wte + wpe, after embedding dropout
        for i, block in enumerate(base.h):
            points[f"layers.{i}.resid_post"] = HookPoint(block, "output")
            points[f"layers.{i}.attn.out"] = HookPoint(block.attn, "output")
            points[f"layers.{i}.mlp.out"] = HookPoint(block.mlp, "output")
            points[f"layers.{i}.mlp.act"] = HookPoint(block.mlp.c_proj, "input")
    else:  # bert: attention/MLP outputs are fused with residual + LayerNorm, so only the stream is exposed
        points["embed"] = HookPoint(base.embeddings, "output")
        for i, layer in enumerate(base.encoder.layer):
            points[f"layers.{i}.resid_post"] = HookPoint(layer, "output")
    return points


def hook_names(model: nn.Module | LoadedModel) -> list[str]:
    """The canonical hook names available on `model`, in forward order."""
    return list(hook_points(model))


def _lookup(points: dict[str, HookPoint], name: str) -> HookPoint:
    if name not in points:
        sample = ", ".join(list(points)[:6])
        raise KeyError(f"unknown hook name {name!r}; this model has e.g. {sample} ... (see hook_names())")
    return points[name]


def _attach(point: HookPoint, name: str, fn: HookFn) -> torch.utils.hooks.RemovableHandle:
    """Register `fn` at the hook point; tuple outputs/inputs are handled on their first element."""
    if point.at == "output":

        def on_output(module, args, output):
            tensor = output[0] if isinstance(output, tuple) else output
            new = fn(tensor, name)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return point.module.register_forward_hook(on_output)

    def on_input(module, args):
        new = fn(args[0], name)
        return None if new is None else (new, *args[1:])

    return point.module.register_forward_pre_hook(on_input)


def _forward(model: nn.Module, inputs: dict) -> torch.Tensor:
    out = model(**inputs)
    logits = getattr(out, "logits", None)
    return logits if logits is not None else out[0]


def run_with_hooks(model: nn.Module | LoadedModel, inputs: dict,
                   hooks: list[tuple[str, HookFn]]) -> torch.Tensor:
    """Forward `model(**inputs)` with hook functions attached at canonical names; returns the logits.

    Each fn gets (activation, name) and may return a replacement tensor (same shape) or None.
    """
    net = _unwrap(model)
    points = hook_points(net)
    handles = []
    try:
        for name, fn in hooks:
            handles.append(_attach(_lookup(points, name), name, fn))
        return _forward(net, inputs)
    finally:
        for handle in handles:
            handle.remove()


def run_with_cache(model: nn.Module | LoadedModel, inputs: dict, names: list[str] | None = None,
                   detach: bool = True) -> CacheResult:
    """Forward `model(**inputs)` and record the activations at `names` (all names if None)."""
    net = _unwrap(model)
    points = hook_points(net)
    wanted = list(points) if names is None else list(names)
    for name in wanted:
        _lookup(points, name)  # fail before running anything
    cache: dict[str, torch.Tensor] = {}

    def record(tensor: torch.Tensor, name: str) -> None:
        cache[name] = tensor.detach() if detach else tensor

    logits = run_with_hooks(net, inputs, [(name, record) for name in wanted])
    return CacheResult(logits=logits, cache=cache)
