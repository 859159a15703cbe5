"""Frozen features of a backbone for the linear-probe fast mode, cached per (model, text).

A decoder is read at its last non-padding token (found with the attention mask, so padding on
either side is fine); an encoder is mean-pooled over its real tokens - the same two readouts as the
fine-tuned classifiers. ``layer`` picks the hidden state: ``None`` is the model's last hidden state,
``k`` the residual stream after block ``k`` (the blocks after it are skipped, which saves their
compute). Features are computed once per (model, layer, pooling, max_length, text) and reused by
every seed, method and task that asks for the same text (the instruction and reward tasks share
their responses).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from superalign.models.backbone import backbone_of, blocks, pool_hidden
from superalign.models.generation import pad_id, right_pad

FEATURE_VERSION = 1  # bump when the readout changes, so stale disk caches are not reused


def resolve_pooling(pooling: str, kind: str) -> str:
    """``auto`` -> last token for decoders, mean for encoders."""
    if pooling != "auto":
        return pooling
    return "last" if kind == "decoder" else "mean"


def n_layers(lm) -> int:
    """Number of transformer blocks of a loaded model."""
    return len(blocks(backbone_of(lm))[1])


@contextlib.contextmanager
def truncated(backbone: nn.Module, layer: int | None) -> Iterator[None]:
    """Run only the first ``layer`` blocks (the rest would not change the features we read)."""
    if layer is None:
        yield
        return
    name, stack = blocks(backbone)
    if not 1 <= layer <= len(stack):
        raise ValueError(f"layer {layer} is out of range: this model has blocks 1..{len(stack)}")
    parent, _, attr = name.rpartition(".")
    owner = backbone.get_submodule(parent)
    setattr(owner, attr, nn.ModuleList(list(stack)[:layer]))
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


@torch.no_grad()
def extract(lm, texts: list[str], layer: int | None, pooling: str, max_length: int, batch_size: int = 16,
            autocast: bool = False, advance=None) -> torch.Tensor:
    """Pooled features [n, d] (fp32) of ``texts`` at ``layer``; batches sorted by length to cut padding."""
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
            hidden = backbone(**batch).last_hidden_state  # [b, s, d]
            out[idx] = pool_hidden(hidden, batch["attention_mask"], pooling).float().cpu()
            if advance is not None:
                advance(len(idx))
    return out


class FeatureCache:
    """Features per (model key, text), in memory and optionally in ``directory`` (one file per model key)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, dict[str, torch.Tensor]] = {}
        self.computed = 0  # texts encoded by a model (the rest came from the cache)

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
        """The distinct texts of ``texts`` whose features are not cached yet."""
        table = self._table(model_key)
        return list(dict.fromkeys(t for t in texts if self.text_key(t) not in table))

    def get(self, model_key: str, texts: list[str], compute) -> torch.Tensor:
        """Features [n, d] of ``texts``; ``compute(missing_texts) -> [m, d]`` fills what is not cached."""
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
