"""Activation readout and caching: one vector per text from a named point of the residual stream.

Layers are named as everywhere else (:mod:`superalign.models.internals`): layer ``i`` is
``layers.{i}.resid_post``, the residual stream after block ``i`` (0-based); ``None`` is the model's last
hidden state. A readout runs the blocks up to that layer only (the rest would not change it), reads the
hook, and applies the model's final norm (Llama ``norm``, GPT-2 ``ln_f``) as the model's own last hidden
state does, so that every layer is read on the same scale. A decoder is read at its last non-padding
token (found with the attention mask, so padding on either side is fine); an encoder is mean-pooled over
its real tokens. Readouts are cached per (model key, text) in memory and on disk: probes, weak-to-strong
students and monitors that ask for the same text at the same layer share one forward pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from superalign.models.backbone import backbone_of, pool_hidden
from superalign.models.generation import pad_id, right_pad
from superalign.models.internals import block_stack, final_norm, run_with_cache

READOUT_VERSION = 2  # bump when the readout changes, so stale disk caches are not reused (2: layers.N numbering)


def resid_post(layer: int) -> str:
    """The hook name of the residual stream after block ``layer`` (0-based)."""
    return f"layers.{layer}.resid_post"


def resolve_pooling(pooling: str, kind: str) -> str:
    """``auto`` -> last token for decoders, mean for encoders."""
    if pooling != "auto":
        return pooling
    return "last" if kind == "decoder" else "mean"


def n_layers(lm) -> int:
    """Number of transformer blocks of a loaded model."""
    return len(block_stack(backbone_of(lm))[2])


@contextlib.contextmanager
def truncated(backbone: nn.Module, layer: int | None) -> Iterator[None]:
    """Run only blocks ``0..layer`` (the rest would not change ``layers.{layer}.resid_post``)."""
    if layer is None:
        yield
        return
    owner, attr, stack = block_stack(backbone)
    if not 0 <= layer < len(stack):
        raise ValueError(f"layer {layer} is out of range: this model has layers 0..{len(stack) - 1}")
    setattr(owner, attr, nn.ModuleList(list(stack)[: layer + 1]))
    try:
        yield
    finally:
        setattr(owner, attr, stack)


def tokenize(lm, texts: list[str], max_length: int, pooling: str) -> list[list[int]]:
    """Token ids per text. Decoders keep the *end* of a long text (where the last token is read)."""
    tok = lm.tokenizer
    if pooling == "mean" or lm.kind == "encoder":
        limit = min(max_length, getattr(lm.model.config, "max_position_embeddings", max_length))
        return [ids[:limit] for ids in tok(texts, truncation=True, max_length=limit)["input_ids"]]
    rows = tok(texts, add_special_tokens=False)["input_ids"]
    return [ids[-max_length:] for ids in rows]


def _read(backbone: nn.Module, batch: dict, layer: int | None) -> torch.Tensor:
    """Hidden states [b, s, d] at ``layers.{layer}.resid_post`` through the final norm (None: last hidden state)."""
    if layer is None:
        return backbone(**batch).last_hidden_state
    hidden = run_with_cache(backbone, batch, [resid_post(layer)]).cache[resid_post(layer)]
    norm = final_norm(backbone)
    return norm(hidden) if norm is not None else hidden


@torch.no_grad()
def extract(lm, texts: list[str], layer: int | None, pooling: str, max_length: int, batch_size: int = 16,
            autocast: bool = False, advance=None) -> torch.Tensor:
    """Pooled readouts [n, d] (fp32, on the CPU) of ``texts``; batches sorted by length to cut padding."""
    from superalign.models.generation import autocast_context

    backbone = backbone_of(lm)
    rows = tokenize(lm, texts, max_length, pooling)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = torch.zeros(len(rows), lm.model.config.hidden_size)
    device = next(backbone.parameters()).device
    with truncated(backbone, layer), autocast_context(backbone, autocast):
        backbone.eval()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in right_pad([rows[i] for i in idx], pad_id(lm.tokenizer)).items()}
            hidden = _read(backbone, batch, layer)  # [b, s, d]
            out[idx] = pool_hidden(hidden, batch["attention_mask"], pooling).float().cpu()
            if advance is not None:
                advance(len(idx))
    return out


@torch.no_grad()
def extract_layers(lm, texts: list[str], layers: list[int], pooling: str = "auto", max_length: int = 256,
                   batch_size: int = 16, advance=None) -> dict[int, torch.Tensor]:
    """Pooled readouts of several layers in one pass: layer -> [n, d] (fp32, CPU), each exactly what
    :func:`extract` gives for that layer alone (same tokens, same final norm), at the cost of one forward
    through the deepest of them."""
    if not layers:
        return {}
    pooling = resolve_pooling(pooling, lm.kind)
    backbone = backbone_of(lm)
    rows = tokenize(lm, texts, max_length, pooling)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = {layer: torch.zeros(len(rows), lm.model.config.hidden_size) for layer in layers}
    device = next(backbone.parameters()).device
    norm = final_norm(backbone)
    with truncated(backbone, max(layers)):
        backbone.eval()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in right_pad([rows[i] for i in idx], pad_id(lm.tokenizer)).items()}
            cache = run_with_cache(backbone, batch, [resid_post(layer) for layer in layers]).cache
            for layer in layers:
                hidden = cache[resid_post(layer)]  # [b, s, d]
                hidden = norm(hidden) if norm is not None else hidden
                out[layer][idx] = pool_hidden(hidden, batch["attention_mask"], pooling).float().cpu()
            if advance is not None:
                advance(len(idx))
    return out


@torch.no_grad()
def token_activations(lm, rows: list[list[int]], names: list[str], batch_size: int = 16, normed: bool = False,
                      advance=None) -> dict[str, list[torch.Tensor]]:
    """Every token's activation at each hook name: name -> one [len(row), width] tensor (fp32, CPU) per row.

    ``rows`` are token ids (no padding: rows of one batch are right-padded and cut back). Only the blocks up
    to the deepest named layer run. ``normed`` passes ``resid_post`` readouts through the final norm, as
    :func:`extract` does (probes fitted on :func:`extract` readouts score these tokens on the same scale).
    """
    backbone = backbone_of(lm)
    layers = [int(n.split(".")[1]) for n in names if n.startswith("layers.")]
    deepest = max(layers) if layers and len(layers) == len(names) else None
    norm = final_norm(backbone) if normed else None
    device = next(backbone.parameters()).device
    out: dict[str, list[torch.Tensor | None]] = {n: [None] * len(rows) for n in names}
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    with truncated(backbone, deepest):
        backbone.eval()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in right_pad([rows[i] for i in idx], pad_id(lm.tokenizer)).items()}
            cache = run_with_cache(backbone, batch, names).cache  # name -> [b, s, width]
            for name in names:
                acts = cache[name]
                if norm is not None and name.endswith("resid_post"):
                    acts = norm(acts)
                for j, i in enumerate(idx):
                    out[name][i] = acts[j, : len(rows[i])].float().cpu()
            if advance is not None:
                advance(len(idx))
    return out


class ActivationCache:
    """Readouts per (model key, text), in memory and optionally in ``directory`` (one file per model key)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, dict[str, torch.Tensor]] = {}
        self.computed = 0  # texts run through a model (the rest came from the cache)

    @staticmethod
    def text_key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def _file(self, model_key: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / f"{hashlib.sha1(model_key.encode()).hexdigest()[:16]}.pt"

    def _table(self, model_key: str) -> dict[str, torch.Tensor]:
        if model_key not in self._memory:
            table: dict[str, torch.Tensor] = {}
            path = self._file(model_key)
            if path is not None and path.is_file():
                try:
                    saved = torch.load(path, map_location="cpu", weights_only=True)
                    if saved.get("model_key") == model_key:
                        table = dict(zip(saved["keys"], saved["features"]))
                except Exception:  # noqa: BLE001 - a damaged cache is recomputed, never trusted
                    table = {}
            self._memory[model_key] = table
        return self._memory[model_key]

    def missing(self, model_key: str, texts: list[str]) -> list[str]:
        """The distinct texts of ``texts`` whose readouts are not cached yet."""
        table = self._table(model_key)
        return list(dict.fromkeys(t for t in texts if self.text_key(t) not in table))

    def get(self, model_key: str, texts: list[str], compute) -> torch.Tensor:
        """Readouts [n, d] of ``texts``; ``compute(missing_texts) -> [m, d]`` fills what is not cached."""
        table = self._table(model_key)
        keys = [self.text_key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in table))
        if missing:
            first = {k: t for k, t in zip(keys, texts)}
            feats = compute([first[k] for k in missing])
            for k, f in zip(missing, feats):
                table[k] = f.clone()
            self.computed += len(missing)
            self._save(model_key, table)
        return torch.stack([table[k] for k in keys]) if keys else torch.zeros(0)

    def _save(self, model_key: str, table: dict[str, torch.Tensor]) -> None:
        path = self._file(model_key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        keys = list(table)
        torch.save({"model_key": model_key, "keys": keys, "features": torch.stack([table[k] for k in keys])}, tmp)
        os.replace(tmp, path)


__all__ = ["ActivationCache", "READOUT_VERSION", "extract", "extract_layers", "n_layers", "resid_post",
           "resolve_pooling", "token_activations", "tokenize", "truncated"]
