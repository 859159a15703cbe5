"""Batched chat generation and completion log-probabilities over HF causal LMs.

Sampling is an explicit loop instead of `model.generate` so that every prompt draws from its own seeded
random generator: the same seed gives the same text for a prompt no matter how prompts are batched or
ordered (up to floating-point differences from padding). Llama-family models decode through
`superalign.models.sampler` (packed weights, a pre-allocated KV cache: 2-3x HF's speed on a 2-core CPU,
benchmarks/sampler.py); other architectures through HF's forward with its KV cache.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from superalign.models import sampler
from superalign.models.precision import fast_bf16
from superalign.models.sources import LoadedModel

# bf16 autocast, measured on a 2-core AVX-512 BF16 CPU with SmolLM2-135M (benchmarks/generation.py, best of 2):
#   sampling, batch 1, 32 tokens:     2.02 s fp32 -> 1.59 s bf16 (1.27x)
#   sampling, batch 16, 32 tokens:    6.79 s fp32 -> 3.28 s bf16 (2.07x)
#   forward+backward, 4 x 256 tokens: 8.27 s fp32 -> 4.06 s bf16 (2.04x)
#   scoring 16 completions:           1.75 s fp32 -> 1.12 s bf16 (1.57x), but summed log-probs move by
#                                     0.21 nats on average (max 0.47), too much for a measurement.
# So: bf16 for sampling and training, fp32 for scoring, and only where bf16 is native (`fast_bf16`): on an
# AVX2-only CPU the same sampling ran 2.5x slower under bf16 (issue 14). Tiny models (< 10M params) are
# dominated by per-op overhead, where autocast was as often slower as faster: fp32.
AUTOCAST_MIN_PARAMS = 10_000_000


@dataclass
class GenerationConfig:
    """Sampling settings. `seed` fixes every prompt's random stream (prompt i uses seed and i)."""

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    do_sample: bool = True
    seed: int = 0
    batch_size: int = 8
    bf16_autocast: bool | None = None  # bf16 compute; None: the machine's fast choice, see `default_autocast`


# ---------------------------------------------------------------------------------------------------
# Helpers


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def default_autocast(model: torch.nn.Module, purpose: str = "generate", flag: bool | None = None) -> bool:
    """Whether to run under bf16 autocast: `flag` if given, else the measured default for `purpose`.

    purpose: "generate" | "train" -> bf16 for fp32 CPU models of >= 10M parameters on a CPU with native
    bf16 (`precision.fast_bf16`); "score" -> fp32.
    """
    if flag is not None:
        return flag
    if purpose not in {"generate", "train", "score"}:
        raise ValueError(f"purpose must be generate, train or score, not {purpose!r}")
    param = next(model.parameters())
    if purpose == "score" or param.device.type != "cpu" or param.dtype != torch.float32:
        return False
    if not fast_bf16(param.device):
        return False
    return sum(p.numel() for p in model.parameters()) >= AUTOCAST_MIN_PARAMS


def autocast_context(model: torch.nn.Module, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on the model's device when `enabled`, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=_device(model).type, dtype=torch.bfloat16)


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run in eval mode (no dropout) and restore the previous mode: sampling mid-training must not change it."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def stop_token_ids(lm: LoadedModel) -> list[int]:
    """Token ids that end an assistant turn: eos, <|im_end|> and the generation config's eos ids."""
    tok = lm.tokenizer
    ids = set()
    if tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tok.unk_token_id:
        ids.add(im_end)
    gen_eos = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        ids.update([gen_eos] if isinstance(gen_eos, int) else gen_eos)
    return sorted(ids)


def end_of_turn_id(lm: LoadedModel) -> int:
    """The token that closes an assistant turn (<|im_end|> in ChatML, else eos)."""
    tok = lm.tokenizer
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tok.unk_token_id:
        return im_end
    return int(tok.eos_token_id)


def prompt_ids(lm: LoadedModel, messages: list[dict]) -> list[int]:
    """Token ids of a chat prompt with the assistant header appended (the generation prompt)."""
    text = lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def pad_id(tokenizer) -> int:
    """The token that fills padding: the tokenizer's pad token, else its eos (masked out either way)."""
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)


def left_pad(sequences: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-pad to a batch. Returns input_ids, attention_mask and position_ids, each [batch, seq]."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    # Positions count real tokens only, so a padded prompt sees the same positions as unpadded.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions}


def right_pad(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token rows to a batch (for scoring, where the last real token is read). input_ids and
    attention_mask, each [batch, seq]; an all-empty batch still gets one (padding) column."""
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _length_sorted_batches(lengths: list[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (less padding), longest first."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def prompt_seed(seed: int, index: int) -> int:
    """The seed of prompt `index`'s own random stream (a fixed mix of the run seed and the index)."""
    return (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 1) % (2**63 - 1)


NUCLEUS_CANDIDATES = 256  # top-p looks at this many top tokens first; a full sort only if they fall short


def _filter_top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of tokens whose mass reaches top_p. probs: [batch, vocab].

    A token is dropped when the mass strictly before it already reaches top_p (the top token always stays).
    The nucleus is found among the top NUCLEUS_CANDIDATES tokens (sorting 49k-token rows cost 180 ms per
    step at batch 64, more than the model); rows whose nucleus is wider are sorted in full.
    """
    if top_p >= 1.0:
        return probs
    k = min(NUCLEUS_CANDIDATES, probs.shape[-1])
    values, index = probs.topk(k, dim=-1)  # [batch, k], descending
    keep = (values.cumsum(-1) - values) < top_p
    filtered = torch.zeros_like(probs).scatter(-1, index, values * keep)
    wide = values.sum(-1) < top_p  # every candidate kept and still short of top_p: sort the whole row
    if bool(wide.any()):
        rows = probs[wide]
        sorted_probs, sorted_idx = rows.sort(dim=-1, descending=True)
        keep_all = (sorted_probs.cumsum(-1) - sorted_probs) < top_p
        filtered[wide] = torch.zeros_like(rows).scatter(-1, sorted_idx, sorted_probs * keep_all)
    return filtered


def _draw(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row of probs [batch, vocab] by inverse CDF, with one uniform from each row's generator.

    torch.multinomial draws an exponential per vocabulary entry (49k per row): 97 ms per step at batch 64,
    this about 5 (softmax and cumsum included). Tokens of probability 0 are never drawn (searchsorted skips flat steps of the CDF).
    """
    cdf = probs.cumsum(-1)  # [batch, vocab]
    uniform = torch.stack([torch.rand((), generator=g, device=probs.device) for g in generators])  # [batch]
    target = (uniform * cdf[:, -1]).unsqueeze(-1)  # [batch, 1]
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp(max=probs.shape[-1] - 1)


def _next_tokens(logits: torch.Tensor, config: GenerationConfig,
                 generators: list[torch.Generator]) -> torch.Tensor:
    """Pick one token per row from logits [batch, vocab]: argmax, or a draw from that row's generator."""
    if not config.do_sample or config.temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / config.temperature, dim=-1)
    return _draw(_filter_top_p(probs, config.top_p), generators)


# ---------------------------------------------------------------------------------------------------
# Generation


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (HF causal LMs do). A PEFT wrapper passes keyword
    arguments through to the model it wraps, so that model is asked."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def _last_logits_only(model: torch.nn.Module) -> dict:
    """``{"logits_to_keep": 1}`` when the model's forward takes it, else nothing."""
    return {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}


@torch.no_grad()
def _generate_batch(lm: LoadedModel, sequences: list[list[int]], seeds: list[int],
                    config: GenerationConfig, autocast: bool) -> list[list[int]]:
    """Generate for one batch of token-id prompts; returns the new token ids (stop token excluded)."""
    model = lm.model
    device = _device(model)
    batch = {k: v.to(device) for k, v in left_pad(sequences, pad_id(lm.tokenizer)).items()}
    stops = torch.tensor(stop_token_ids(lm), device=device)
    generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def pick(logits: torch.Tensor) -> torch.Tensor:  # [batch, vocab] -> [batch]
        return _next_tokens(logits, config, generators)

    packed = sampler.packed_model(model, torch.bfloat16 if autocast else next(model.parameters()).dtype)
    if packed is not None:
        generated = sampler.decode(packed, batch["input_ids"], batch["attention_mask"], batch["position_ids"],
                                   config.max_new_tokens, pick, stops, pad_id(lm.tokenizer))
    else:
        with eval_mode(model), autocast_context(model, autocast):
            generated = _hf_decode(model, batch, config.max_new_tokens, pick, stops, pad_id(lm.tokenizer))
    stop_set = set(stops.tolist())
    results = []
    for row in generated.tolist():  # [batch, new]
        cut = next((j for j, t in enumerate(row) if t in stop_set), len(row))
        results.append(row[:cut])
    return results


def _hf_decode(model: torch.nn.Module, batch: dict[str, torch.Tensor], max_new_tokens: int, pick,
               stops: torch.Tensor, pad: int) -> torch.Tensor:
    """The same loop as `sampler.decode` through HF's forward and KV cache (any causal LM); new ids [b, n]."""
    mask, positions = batch["attention_mask"], batch["position_ids"]
    finished = torch.zeros(len(mask), dtype=torch.bool, device=mask.device)
    new_tokens: list[torch.Tensor] = []
    past, step_ids, step_pos = None, batch["input_ids"], positions
    for _ in range(max_new_tokens):
        # Only the last position's logits are needed: at prefill the others would cost
        # batch x prompt x vocab x hidden FLOPs for nothing (about 20% of a 16-row prefill on SmolLM2).
        out = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos,
                    past_key_values=past, use_cache=True, **_last_logits_only(model))
        past = out.past_key_values
        token = torch.where(finished, torch.full_like(finished, pad, dtype=torch.long), pick(out.logits[:, -1, :]))
        new_tokens.append(token)
        finished |= torch.isin(token, stops)
        if bool(finished.all()):
            break
        step_ids = token.unsqueeze(-1)  # [batch, 1]
        step_pos = step_pos[:, -1:] + 1
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
    if not new_tokens:
        return torch.zeros(len(mask), 0, dtype=torch.long)
    return torch.stack(new_tokens, dim=1)


def generate_ids(lm: LoadedModel, prompts: list[list[dict]], config: GenerationConfig,
                 progress: Callable[[int], None] | None = None, reply_prefix: str = "") -> list[list[int]]:
    """Like `generate`, but returns the generated token ids (end-of-turn token excluded)."""
    if lm.kind != "decoder":
        raise ValueError(f"{lm.name} is an encoder ({lm.kind}); generation needs a decoder")
    if config.max_new_tokens < 0 or config.batch_size < 1:
        raise ValueError("max_new_tokens must be >= 0 and batch_size >= 1")
    prefix = lm.tokenizer(reply_prefix, add_special_tokens=False)["input_ids"] if reply_prefix else []
    encoded = [prompt_ids(lm, messages) + prefix for messages in prompts]
    autocast = default_autocast(lm.model, "generate", config.bf16_autocast)
    results: list[list[int]] = [[] for _ in prompts]
    for indices in _length_sorted_batches([len(e) for e in encoded], config.batch_size):
        seeds = [prompt_seed(config.seed, i) for i in indices]
        outputs = _generate_batch(lm, [encoded[i] for i in indices], seeds, config, autocast)
        for i, ids in zip(indices, outputs):
            results[i] = ids
        if progress is not None:
            progress(len(indices))
    return results


def generate(lm: LoadedModel, prompts: list[list[dict]], config: GenerationConfig | None = None,
             progress: Callable[[int], None] | None = None, reply_prefix: str = "") -> list[str]:
    """Sample one assistant reply per chat prompt; returns the decoded new text, in prompt order.

    Applies the chat template with the generation prompt, left-pads batches of similar length, stops each
    row at end of turn (eos / <|im_end|>) or `max_new_tokens`. `progress(k)` is called after each batch
    with the number of prompts it finished (an increment, as `superalign.progress` expects).
    ``reply_prefix`` starts every reply with that text (e.g. a critique's 'Quote: "'); the returned replies
    include it.
    """
    config = config or GenerationConfig()
    ids = generate_ids(lm, prompts, config, progress, reply_prefix)
    return [reply_prefix + lm.tokenizer.decode(seq, skip_special_tokens=True) for seq in ids]


def greedy(lm: LoadedModel, prompts: list[list[dict]], max_new_tokens: int = 128,
           batch_size: int = 8, progress: Callable[[int], None] | None = None,
           bf16_autocast: bool | None = None) -> list[str]:
    """Greedy (argmax) replies; deterministic."""
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, temperature=0.0,
                              batch_size=batch_size, bf16_autocast=bf16_autocast)
    return generate(lm, prompts, config, progress)


# ---------------------------------------------------------------------------------------------------
# Log-probabilities


@dataclass
class CompletionBatch:
    """Prompt + completion token ids, right-padded. All tensors [batch, seq].

    completion_mask is 1 on the tokens being scored (the completion and its end-of-turn token).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor


def completion_batch(lm: LoadedModel, prompts: list[list[dict]], completions: list[str],
                     add_end_of_turn: bool = True) -> CompletionBatch:
    """Tokenize prompt (with the generation prompt) then the completion, then end-of-turn.

    Tokenizing the two parts separately puts the boundary exactly where generation puts it.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    eot = end_of_turn_id(lm)
    rows = []
    for messages, completion in zip(prompts, completions):
        p = prompt_ids(lm, messages)
        c = lm.tokenizer(completion, add_special_tokens=False)["input_ids"]
        rows.append((p, c + [eot] if add_end_of_turn else c))
    return right_pad_completions(rows, pad_id(lm.tokenizer))


def right_pad_completions(rows: list[tuple[list[int], list[int]]], pad_id: int) -> CompletionBatch:
    """(prompt ids, completion ids) rows -> a right-padded batch whose completion_mask marks the completion."""
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    cmask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (p, c) in enumerate(rows):
        ids[r, : len(p) + len(c)] = torch.tensor(p + c, dtype=torch.long)
        mask[r, : len(p) + len(c)] = 1
        cmask[r, len(p) : len(p) + len(c)] = 1
    return CompletionBatch(input_ids=ids, attention_mask=mask, completion_mask=cmask)


def sequence_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Sum of log p(token_t | tokens_<t) over masked tokens. logits [b, s, vocab], ids/mask [b, s] -> [b].

    Differentiable: use it inside training losses (DPO, PPO) on `model(**batch).logits`.
    """
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # [b, s-1, vocab]: predicts token t+1
    target = input_ids[:, 1:]  # [b, s-1]
    picked = logprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # [b, s-1]
    return (picked * completion_mask[:, 1:].to(picked.dtype)).sum(-1)


def response_logprobs(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      completion_mask: torch.Tensor) -> torch.Tensor:
    """Σ_t log p(x_t | x_<t) over the response tokens of each row. Tensors [rows, s] -> [rows] (fp32).

    Differentiable. Only the positions that predict a response token go through the LM head (a boolean
    ``logits_to_keep``): a 49k-token vocabulary makes the head a fifth of SmolLM2's FLOPs, wasted on
    prompt and padding positions. Equal to `sequence_logprobs` on the full logits.
    """
    predicts = completion_mask[:, 1:].bool()  # [rows, s-1]: position t predicts response token t+1
    targets = input_ids[:, 1:][predicts]  # [n]
    row_of = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(predicts)[predicts]
    if accepts_logits_to_keep(model):
        keep = F.pad(predicts, (0, 1))  # [rows, s]: the last position predicts nothing
        logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep,
                       use_cache=False).logits  # [n, vocab]
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask,
                       use_cache=False).logits[:, :-1][predicts]  # [n, vocab]
    token_logprobs = -F.cross_entropy(logits.float(), targets, reduction="none")  # [n]
    out = torch.zeros(input_ids.shape[0], dtype=token_logprobs.dtype, device=input_ids.device)
    return out.index_add(0, row_of, token_logprobs)


def completion_logprobs(lm: LoadedModel, prompts: list[list[dict]], completions: list[str],
                        batch_size: int = 8, bf16_autocast: bool | None = None) -> torch.Tensor:
    """log p(completion + end-of-turn | chat prompt) per pair, summed over tokens. Returns [n] (fp32, no grad).

    Runs in fp32 unless `bf16_autocast=True` (bf16 moved summed log-probs by ~0.2 nats on SmolLM2).
    """
    model = lm.model
    device = _device(model)
    autocast = default_autocast(model, "score", bf16_autocast)
    out = torch.zeros(len(prompts))
    with torch.no_grad(), eval_mode(model), autocast_context(model, autocast):
        for start in range(0, len(prompts), batch_size):
            batch = completion_batch(lm, prompts[start : start + batch_size],
                                     completions[start : start + batch_size])
            logits = model(input_ids=batch.input_ids.to(device),
                           attention_mask=batch.attention_mask.to(device)).logits
            out[start : start + len(batch.input_ids)] = sequence_logprobs(
                logits, batch.input_ids.to(device), batch.completion_mask.to(device)).cpu()
    return out


def first_token_logprobs(lm: LoadedModel, prompts: list[list[dict]], choices: list[str],
                         batch_size: int = 16) -> torch.Tensor:
    """log p(first token of each choice | chat prompt) at the start of the reply: one forward per prompt, however
    many choices (a judge's "Yes"/"No" or "A"/"B"). Returns [n_prompts, n_choices] (fp32, no grad).

    Choices must differ in their first token (checked). Runs in the machine's fast precision: a choice between
    two tokens is robust to bf16, where a summed log-probability over a long completion is not.
    """
    model = lm.model
    device = _device(model)
    firsts = [lm.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in choices]
    if len(set(firsts)) != len(firsts):
        raise ValueError(f"choices {choices} share their first token; they cannot be told apart in one step")
    encoded = [prompt_ids(lm, m) for m in prompts]
    out = torch.zeros(len(prompts), len(choices))
    autocast = default_autocast(model, "generate")
    with torch.no_grad(), eval_mode(model), autocast_context(model, autocast):
        for indices in _length_sorted_batches([len(e) for e in encoded], batch_size):
            batch = {k: v.to(device) for k, v in left_pad([encoded[i] for i in indices], pad_id(lm.tokenizer)).items()}
            logits = model(**batch, **_last_logits_only(model)).logits[:, -1].float()  # [b, vocab]
            out[indices] = torch.log_softmax(logits, dim=-1)[:, firsts].cpu()
    return out
