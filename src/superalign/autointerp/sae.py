"""A sparse autoencoder on one layer's residual stream, and how good it is.

x̂ = decode(encode(x)), encode(x) = TopK(ReLU(W_enc (x − b_dec) + b_enc)) (Gao et al. 2024) or
ReLU(W_enc (x − b_dec) + b_enc) with an L1 penalty on the codes (Bricken et al. 2023). Decoder rows are kept
at unit norm, so the L1 cannot be dodged by shrinking codes and growing the decoder. Quality, on held-out tokens:
normalised MSE, variance explained, dead latents (never active), and the language model's loss with the
SAE's reconstruction spliced in at that layer, against the clean loss and the loss with the layer
zero-ablated ("loss recovered" = (L_zero − L_sae) / (L_zero − L_clean)).

Position 0 is left out of training and splicing: its residual norm is tens of times the others' in most
decoders (an attention sink), and one such token would dominate every squared error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class SAE(nn.Module):
    def __init__(self, d_model: int, n_latents: int, kind: str = "topk", k: int = 32, seed: int = 0):
        super().__init__()
        if kind not in ("topk", "relu"):
            raise ValueError(f"unknown SAE kind {kind!r}: topk or relu")
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(n_latents, d_model, generator=gen)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w)  # [m, d], unit rows
        self.W_enc = nn.Parameter(w.T.clone())  # [d, m], tied at init
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        self.b_dec = nn.Parameter(torch.zeros(d_model))
        self.kind, self.k = kind, min(k, n_latents)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[..., d] -> codes [..., m] (non-negative; at most k non-zero for TopK)"""
        pre = torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)
        if self.kind == "relu":
            return pre
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decode(z), z


@dataclass
class SAEQuality:
    nmse: float  # ‖x − x̂‖² / ‖x − mean‖²
    variance_explained: float  # 1 − nmse
    dead_fraction: float  # latents never active on the held-out tokens
    l0: float  # mean active latents per token
    loss_clean: float | None = None
    loss_spliced: float | None = None
    loss_zero: float | None = None

    @property
    def loss_recovered(self) -> float | None:
        if None in (self.loss_clean, self.loss_spliced, self.loss_zero) or self.loss_zero == self.loss_clean:
            return None
        return (self.loss_zero - self.loss_spliced) / (self.loss_zero - self.loss_clean)


def train_sae(x: torch.Tensor, n_latents: int, kind: str = "topk", k: int = 32, l1: float = 1e-3,
              epochs: int = 8, batch_size: int = 512, lr: float = 1e-3, seed: int = 0,
              advance=None) -> tuple[SAE, list[float]]:
    """Train on tokens x [n, d]; returns the SAE and its loss per epoch."""
    sae = SAE(x.shape[1], n_latents, kind, k, seed)
    with torch.no_grad():
        sae.b_dec.copy_(x.mean(0))  # start at the data's mean (geometric-median init, approximately)
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    scale = (x - x.mean(0)).pow(2).sum(1).mean()  # MSE in units of the data's variance
    history = []
    for _ in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            batch = x[idx]
            recon, z = sae(batch)
            loss = (recon - batch).pow(2).sum(1).mean() / scale
            if kind == "relu":
                loss = loss + l1 * z.sum(1).mean()  # codes are ≥ 0; decoder rows have unit norm
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
            total += loss.item() * len(idx)
        history.append(total / len(x))
        if advance is not None:
            advance(1)
    return sae.eval(), history


@torch.no_grad()
def quality(sae: SAE, x: torch.Tensor) -> SAEQuality:
    """Reconstruction figures on held-out tokens x [n, d]."""
    recon, z = sae(x)
    nmse = float((recon - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    return SAEQuality(nmse=nmse, variance_explained=1 - nmse, dead_fraction=float(((z > 0).sum(0) == 0).float().mean()),
                      l0=float((z > 0).sum(1).float().mean()))


@torch.no_grad()
def spliced_losses(lm, sae: SAE, layer: int, rows: list[list[int]]) -> tuple[float, float, float]:
    """Mean next-token loss over ``rows`` (token ids): clean, with the SAE's reconstruction replacing
    ``layers.{layer}.resid_post`` (positions ≥ 1), and with it zeroed there."""
    from superalign.models.activations import resid_post
    from superalign.models.internals import run_with_hooks

    def splice(mode: str):
        def fn(act: torch.Tensor, name: str):  # act [1, s, d]
            if mode == "clean":
                return None
            new = act.clone()
            new[:, 1:] = 0.0 if mode == "zero" else sae(act[:, 1:].float().cpu())[0].to(act.device, act.dtype)
            return new
        return fn

    out = []
    for mode in ("clean", "sae", "zero"):
        total, count = 0.0, 0
        for row in rows:
            ids = torch.tensor([row], device=next(lm.model.parameters()).device)
            logits = run_with_hooks(lm.model, {"input_ids": ids}, [(resid_post(layer), splice(mode))])
            loss = nn.functional.cross_entropy(logits[0, 1:-1].float(), ids[0, 2:], reduction="sum")
            total, count = total + loss.item(), count + len(row) - 2
        out.append(total / max(1, count))
    return out[0], out[1], out[2]


__all__ = ["SAE", "SAEQuality", "quality", "spliced_losses", "train_sae"]
