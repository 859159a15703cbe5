"""A fast decode loop for Llama-family models: packed weights, a pre-allocated KV cache, grouped attention.

HF's forward pass spends most of a 2-core CPU's decode step outside the matrix multiplies (measured on
SmolLM2-135M at batch 64, benchmarks/sampler.py): SDPA over a KV cache it re-concatenates each step, four
separate projections per attention block, and, under autocast, a cast of every weight on every step. Here:

- the weights are packed once per weight state (LoRA deltas merged, q/k/v and gate/up concatenated, in
  oneDNN's blocked layout on a CPU) in the dtype the machine multiplies fastest (`precision.fast_bf16`), and
  re-packed only when a parameter changed;
- everything but attention runs on the real tokens only: the prompts' left padding is never multiplied;
- a prompt sampled k times in one batch is prefilled once, its keys and values copied to its k rows;
- keys and values go into a cache allocated once for prompt + new tokens, attention reads a view of it;
- at decode the query heads that share a key-value head attend as one group (no repeat of the cache).

The numerics mirror HF under the same precision: bf16 matrix multiplies and attention, fp32 residual stream,
norms and rotary embedding, the operations `torch.autocast(bfloat16)` runs on the HF model (oneDNN's packed
kernels may round a matmul differently, so bf16 greedy replies can part where a near-tie flips, as HF's bf16
and fp32 replies do); in fp32 the plain model, whose greedy replies equal HF `generate`'s (tested, with
oneDNN's fp32 kernels too).
`packed_model` returns None for anything else, and `generation.py` then runs the HF loop.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from superalign.models import precision


@dataclass
class _Layer:
    """One decoder block's weights. Linear weights are [out, in] (F.linear layout)."""

    ln_attn: torch.Tensor  # [d] fp32
    qkv: torch.Tensor  # [(H + 2 Hk) hd, d]
    o: torch.Tensor  # [d, H hd]
    ln_mlp: torch.Tensor  # [d] fp32
    gate_up: torch.Tensor  # [2 f, d]
    down: torch.Tensor  # [d, f]


@dataclass
class PackedLlama:
    """A Llama-family model's weights packed for decoding in `dtype` (bf16 or fp32)."""

    dtype: torch.dtype
    onednn: bool  # linear weights are oneDNN-packed (on a CPU, see _use_onednn); else plain [out, in] tensors
    embed: torch.Tensor  # [vocab, d] fp32 (rows are gathered, then the residual stream is fp32)
    layers: list[_Layer]
    norm: torch.Tensor  # [d] fp32
    lm_head: torch.Tensor  # [vocab, d]
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    inv_freq: torch.Tensor  # [hd / 2] fp32
    attention_scaling: float

    @property
    def device(self) -> torch.device:
        return self.embed.device


# ---------------------------------------------------------------------------------------------------
# Packing


def _base_model(model: nn.Module) -> nn.Module:
    """The HF model under a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


ONEDNN_BATCH_HINT = 64  # the batch oneDNN tunes its packed layout for (any batch works)


def _use_onednn(dtype: torch.dtype, device: torch.device) -> bool:
    """oneDNN-packed weights on a CPU, when this PyTorch build has the (internal) ops.

    At the decode shape (64 rows) they beat `F.linear` in both precisions: bf16 1.3-1.8x on an AVX-512 BF16
    CPU, fp32 1.1-2.6x on an AVX2 one (AMD EPYC; the LM head 45 -> 117 GFLOP/s), with the same greedy replies.
    """
    if dtype not in (torch.bfloat16, torch.float32) or device.type != "cpu":
        return False
    if dtype == torch.bfloat16 and not precision.cpu_has_fast_bf16():
        return False  # oneDNN refuses to pack bf16 without AVX-512 (measured on AVX2): there bf16 uses F.linear
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _linear(pm: "PackedLlama", x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [..., in] @ weight.T in pm.dtype."""
    if pm.onednn:
        return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")
    return F.linear(x, weight)


def _supported(model: nn.Module) -> bool:
    """Llama-family blocks whose math this module reproduces (no biases, SiLU MLP, default RoPE)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in {"llama", "mistral"}:
        return False
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return (not getattr(config, "attention_bias", False) and not getattr(config, "mlp_bias", False)
            and getattr(config, "hidden_act", "silu") == "silu"
            and rope.get("rope_type", rope.get("type", "default")) == "default"
            and getattr(config, "sliding_window", None) is None
            and hasattr(getattr(model, "model", None), "layers")
            and all(_is_linear(m) for m in _linears(model)))


def _is_linear(module: nn.Module) -> bool:
    """A plain linear layer, or a PEFT LoRA layer around one (anything else: the HF loop runs it)."""
    return isinstance(getattr(module, "base_layer", module), nn.Linear)


def _linears(model: nn.Module) -> list[nn.Module]:
    """Every projection the packed model reads (absent ones count as non-linear: None)."""
    found = [getattr(model, "lm_head", None)]
    for block in model.model.layers:
        attn, mlp = getattr(block, "self_attn", None), getattr(block, "mlp", None)
        found += [getattr(attn, n, None) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        found += [getattr(mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
    return found


def effective_weight(linear: nn.Module) -> torch.Tensor:
    """The weight a linear layer applies, [out, in]: a PEFT LoRA layer's base weight plus its active deltas.

    Deltas are added to a copy, so the base weights are never touched (merge/unmerge would drift them).
    """
    base = getattr(linear, "base_layer", None)
    if base is None:
        return linear.weight.detach()
    weight = base.weight.detach()
    if getattr(linear, "merged", False) or getattr(linear, "disable_adapters", False):
        return weight
    deltas = [linear.get_delta_weight(name) for name in linear.active_adapters if name in linear.lora_A]
    return weight + sum(deltas) if deltas else weight


def _state_key(model: nn.Module, dtype: torch.dtype) -> tuple:
    """Changes whenever a parameter is updated in place (optimizer steps bump tensor versions), replaced,
    or an adapter is switched on or off: the packed copy is then stale."""
    params = tuple((id(p), p._version) for p in model.parameters())
    flags = tuple((getattr(m, "disable_adapters", None), getattr(m, "merged", None),
                   tuple(getattr(m, "active_adapters", ()) or ()))
                  for m in model.modules() if hasattr(m, "lora_A"))
    return (dtype, params, flags)


def _pack(model: nn.Module, dtype: torch.dtype) -> PackedLlama:
    base = _base_model(model)
    config = base.config
    blocks = base.model.layers

    onednn = _use_onednn(dtype, base.model.norm.weight.device)

    def lin(*modules: nn.Module) -> torch.Tensor:
        w = torch.cat([effective_weight(m) for m in modules]).to(dtype).contiguous()
        # oneDNN's own blocked layout, made once: its matmuls then ran 1.1-2.6x faster at batch 64 (see _use_onednn).
        return torch.ops.mkldnn._reorder_linear_weight(w, ONEDNN_BATCH_HINT) if onednn else w

    layers = []
    for block in blocks:
        attn, mlp = block.self_attn, block.mlp
        layers.append(_Layer(
            ln_attn=block.input_layernorm.weight.detach().float(),
            qkv=lin(attn.q_proj, attn.k_proj, attn.v_proj),
            o=lin(attn.o_proj),
            ln_mlp=block.post_attention_layernorm.weight.detach().float(),
            gate_up=lin(mlp.gate_proj, mlp.up_proj),
            down=lin(mlp.down_proj)))
    rotary = base.model.rotary_emb
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return PackedLlama(
        dtype=dtype,
        onednn=onednn,
        embed=effective_weight(base.model.embed_tokens).float(),
        layers=layers,
        norm=base.model.norm.weight.detach().float(),
        lm_head=lin(base.lm_head),
        heads=config.num_attention_heads,
        kv_heads=config.num_key_value_heads,
        head_dim=head_dim,
        eps=float(config.rms_norm_eps),
        inv_freq=rotary.inv_freq.detach().float(),
        attention_scaling=float(getattr(rotary, "attention_scaling", 1.0)),
    )


# The last packed model only (a weak reference to the model, its state key, the packed copy): one copy of
# the weights at most, so memory stays bounded however many policies a stage samples from in turn.
_LAST: list = [None, None, None]


def packed_model(model: nn.Module, dtype: torch.dtype) -> PackedLlama | None:
    """The model's weights packed in `dtype`, re-packed when they changed; None for unsupported models."""
    if not _supported(_base_model(model)):
        return None
    key = _state_key(model, dtype)
    ref, last_key, packed = _LAST
    if ref is not None and ref() is model and last_key == key:
        return packed
    _LAST[:] = [None, None, None]  # free the old copy before building the new one
    with torch.no_grad():
        packed = _pack(model, dtype)
    _LAST[:] = [weakref.ref(model), key, packed]
    return packed


# ---------------------------------------------------------------------------------------------------
# Forward pieces (shapes: b batch, t new positions, d model width, hd head dim)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x [b, t, d] fp32 -> normalized fp32; the fused op equals HF's LlamaRMSNorm in fp32 bit for bit."""
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rotary(pm: PackedLlama, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [T, 1, hd] fp32 for positions [T] (HF's default RoPE)."""
    freqs = positions.float()[:, None] * pm.inv_freq  # [T, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * pm.attention_scaling)[:, None], (emb.sin() * pm.attention_scaling)[:, None]


class KVCache:
    """Keys and values of every layer, allocated once: [layers, b, Hk, capacity, hd] each."""

    def __init__(self, pm: PackedLlama, batch: int, capacity: int):
        shape = (len(pm.layers), batch, pm.kv_heads, capacity, pm.head_dim)
        self.k = torch.empty(shape, dtype=pm.dtype, device=pm.device)
        self.v = torch.empty(shape, dtype=pm.dtype, device=pm.device)
        self.length = 0  # positions filled


def forward(pm: PackedLlama, ids: torch.Tensor, positions: torch.Tensor, key_mask: torch.Tensor,
            cache: KVCache) -> torch.Tensor:
    """Run new tokens ids [b, t] (rotary positions [b, t]) through the model, appending to `cache`.

    key_mask [b, length + t] bool: which cache positions are real tokens (False = left padding).
    Returns the last position's logits [b, vocab] fp32.

    Everything but attention runs on the T real tokens only, as one flat batch [T, d]: left padding of
    prompts of unequal length was a third of the prefill's matrix multiplies on the train stage's
    prompts. Attention scatters them back into the padded [b, t] layout; pad positions hold zeros.
    """
    b, t = ids.shape
    start, end = cache.length, cache.length + t
    real = key_mask[:, start:end]  # [b, t]
    rows = None if bool(real.all()) else real.reshape(-1).nonzero().squeeze(1)  # [T] flat indices, None = all

    def gather(v: torch.Tensor) -> torch.Tensor:  # [b, t, ...] -> [T, ...]
        v = v.reshape(b * t, *v.shape[2:])
        return v if rows is None else v[rows]

    def scatter(v: torch.Tensor) -> torch.Tensor:  # [T, ...] -> [b, t, ...], zeros at padding
        if rows is None:
            return v.reshape(b, t, *v.shape[1:])
        return v.new_zeros(b * t, *v.shape[1:]).index_copy_(0, rows, v).view(b, t, *v.shape[1:])

    x = pm.embed[gather(ids)]  # [T, d] fp32
    cos, sin = _rotary(pm, gather(positions))  # [T, 1, hd]
    mask = _attention_mask(key_mask, t)
    heads, kv, hd = pm.heads, pm.kv_heads, pm.head_dim
    for i, layer in enumerate(pm.layers):
        qkv = _linear(pm, _rms_norm(x, layer.ln_attn, pm.eps).to(pm.dtype), layer.qkv)  # [T, (H + 2 Hk) hd]
        # RoPE on queries and keys at once, in fp32 (as HF's rotary embedding runs under autocast).
        qk = qkv[:, : (heads + kv) * hd].view(-1, heads + kv, hd).float()
        qk = scatter((qk * cos + _rotate_half(qk) * sin).to(pm.dtype)).transpose(1, 2)  # [b, H + Hk, t, hd]
        cache.k[i, :, :, start:end] = qk[:, heads:]
        cache.v[i, :, :, start:end] = scatter(qkv[:, (heads + kv) * hd :].reshape(-1, kv, hd)).transpose(1, 2)
        attn = _attend(pm, qk[:, :heads], cache.k[i, :, :, :end], cache.v[i, :, :, :end], mask)  # [b, t, H hd]
        x += _linear(pm, gather(attn), layer.o)  # fp32 residual stream += bf16 output (promoted, as in HF)
        gate, up = _linear(pm, _rms_norm(x, layer.ln_mlp, pm.eps).to(pm.dtype), layer.gate_up).chunk(2, dim=-1)
        x += _linear(pm, F.silu(gate) * up, layer.down)
    cache.length = end
    # Each row's last position is a real token (padding is on the left): the last of its run in x.
    last = x.view(b, t, -1)[:, -1] if rows is None else x[real.sum(1).cumsum(0) - 1]  # [b, d]
    return _linear(pm, _rms_norm(last, pm.norm, pm.eps).to(pm.dtype), pm.lm_head).float()


def _attention_mask(key_mask: torch.Tensor, t: int) -> torch.Tensor:
    """Boolean mask [b, 1, t, length]: causal over the t new positions and no left padding.

    A padding query (left of its row's prompt) may see itself, so no row is all-masked (which would give
    NaN that then leaks through zero attention weights); its output is never read.
    """
    length = key_mask.shape[-1]
    query_pos = torch.arange(length - t, length, device=key_mask.device)[:, None]  # [t, 1]
    key_pos = torch.arange(length, device=key_mask.device)[None]  # [1, length]
    allowed = (key_pos <= query_pos) & key_mask[:, None, :]  # [b, t, length]
    return (allowed | (key_pos == query_pos))[:, None]


def _attend(pm: PackedLlama, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            mask: torch.Tensor) -> torch.Tensor:
    """q [b, H, t, hd], k and v [b, Hk, L, hd], mask [b, 1, t, L] -> [b, t, H hd]."""
    b, heads, t, hd = q.shape
    group = heads // pm.kv_heads
    if t == 1 and group > 1:
        # Decode: the `group` query heads of one key-value head act as `group` queries of that head, so the
        # cache is read once instead of repeated per query head. [b, Hk, group, hd]
        out = F.scaled_dot_product_attention(q.reshape(b, pm.kv_heads, group, hd), k, v, attn_mask=mask)
        return out.reshape(b, 1, heads * hd)
    if group > 1:
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [b, H, t, hd]
    return out.transpose(1, 2).reshape(b, t, heads * hd)


def _prefill(pm: PackedLlama, ids: torch.Tensor, positions: torch.Tensor, key_mask: torch.Tensor,
             cache: KVCache) -> torch.Tensor:
    """Run the left-padded prompts ids [b, p] into an empty `cache`; returns the last position's logits [b, vocab].

    A prompt that fills several rows (k samples of one prompt: the train stage's feedback, best-of-n, a
    debater's drafts) runs once and its keys and values are copied to each of its rows. On the embedded
    model in fp32 on an AVX2 CPU the logits and the cache equal those of the full prefill bit for bit (a row's
    matmuls do not depend on the other rows), and the feedback's batch (16 prompts x 4 samples) prefilled in
    2.9 instead of 14.3 s. The train and assist stages gave the same numbers to the last digit.
    """
    b, p = ids.shape
    unique, inverse = torch.unique(torch.cat([ids, key_mask.long()], dim=1), dim=0, return_inverse=True)
    if len(unique) == b:
        return forward(pm, ids, positions, key_mask, cache)
    rows = torch.arange(b, device=ids.device)
    first = torch.full((len(unique),), b, device=ids.device).scatter_reduce_(0, inverse, rows, "amin")  # [u]
    shared = KVCache(pm, len(first), p)
    logits = forward(pm, ids[first], positions[first], key_mask[first], shared)  # [u, vocab]
    cache.k[:, :, :, :p] = shared.k[:, inverse]  # [layers, b, Hk, p, hd]
    cache.v[:, :, :, :p] = shared.v[:, inverse]
    cache.length = p
    return logits[inverse]


@torch.no_grad()
def decode(pm: PackedLlama, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
           max_new_tokens: int, pick, stops: torch.Tensor, pad: int) -> torch.Tensor:
    """Sample up to `max_new_tokens` after left-padded prompts (all [b, p]); returns new ids [b, n].

    `pick(logits [b, vocab] fp32) -> ids [b]` chooses each step's tokens; a row that produced a stop token
    gets `pad` afterwards, and the loop ends when every row has stopped.
    """
    b, p = input_ids.shape
    if not bool(attention_mask.bool().any(1).all()):
        raise ValueError("every prompt needs at least one token")  # forward reads each row's last real token
    if max_new_tokens < 1:
        return torch.zeros(b, 0, dtype=torch.long)
    cache = KVCache(pm, b, p + max_new_tokens)
    key_mask = torch.zeros(b, p + max_new_tokens, dtype=torch.bool, device=pm.device)
    key_mask[:, :p] = attention_mask.bool()
    finished = torch.zeros(b, dtype=torch.bool, device=pm.device)
    new_tokens: list[torch.Tensor] = []
    logits = _prefill(pm, input_ids, position_ids, key_mask[:, :p], cache)
    positions = position_ids[:, -1:]  # [b, 1]
    for step in range(max_new_tokens):
        token = torch.where(finished, torch.full_like(finished, pad, dtype=torch.long), pick(logits))  # [b]
        new_tokens.append(token)
        finished |= torch.isin(token, stops)
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        key_mask[:, cache.length] = True
        positions = positions + 1
        logits = forward(pm, token[:, None], positions, key_mask[:, : cache.length + 1], cache)
    return torch.stack(new_tokens, dim=1)
