"""The autointerp study: SAE, units, explanations and scores (see the package docstring)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from superalign.autointerp import Config, InterpError
from superalign.autointerp.explain import OfflineExplainer, UnitData, score
from superalign.autointerp.sae import (
    SAE,
    SAEQuality,
    quality,
    spliced_losses,
    train_sae,
)
from superalign.records import Metric, UnitExplanation


@dataclass
class Result:
    metrics: list[Metric]
    units: list[UnitExplanation]
    sae: SAE | None = None
    layer: int = 0
    quality: SAEQuality | None = None
    history: list[float] = field(default_factory=list)


def corpus(world_seed: int = 0, seed: int = 0) -> list[str]:
    """Texts from the world (train split): user turns of every task kind and the true/false statements, shuffled."""
    from superalign.world import World

    world = World(world_seed)
    texts = [t.messages[-1]["content"] for kind in ("instruction", "fact", "policy")
             for t in world.tasks(kind, None, "train")]
    texts += [s.text for s in world.statements(None, "train")]
    random.Random(seed).shuffle(texts)
    return list(dict.fromkeys(texts))


def windows(lm, texts: list[str], length: int) -> list[list[int]]:
    """Token ids of each text's first ``length`` tokens (texts under 4 tokens left out)."""
    rows = lm.tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [r[:length] for r in rows if len(r) >= 4]


def sample_units(n_units: int, width: int, rng: random.Random, alive: np.ndarray | None = None) -> list[int]:
    pool = list(range(width)) if alive is None else [int(i) for i in np.flatnonzero(alive)]
    return sorted(rng.sample(pool, min(n_units, len(pool))))


def unit_data(acts: list[np.ndarray], tokens: list[list[str]], n_top: int, seed: int) -> UnitData:
    """Split windows alternately into the explainer's and the scorer's; the explainer sees its half's top
    windows, the scorer the other half's top and as many random windows."""
    rng = np.random.default_rng(seed)
    peak = [float(a.max()) for a in acts]
    halves = (list(range(0, len(acts), 2)), list(range(1, len(acts), 2)))
    top = [sorted(h, key=lambda i: -peak[i])[:n_top] for h in halves]
    rest = [i for i in halves[1] if i not in set(top[1])]
    rand = list(rng.choice(rest, size=min(n_top, len(rest)), replace=False)) if rest else []
    threshold = 0.3 * max(peak) if max(peak) > 0 else float("inf")
    return UnitData([tokens[i] for i in top[0]], [acts[i] for i in top[0]], [tokens[i] for i in top[1]],
                    [acts[i] for i in top[1]], [tokens[i] for i in rand], [acts[i] for i in rand], threshold)


def explain_units(name: str, family: str, per_unit: dict[int, list[np.ndarray]], tokens: list[list[str]],
                  config: Config, model: str, explainer=None, advance=None) -> list[UnitExplanation]:
    """Explain and score each unit; the random baseline scores the next unit's explanation on this unit."""
    explainer = explainer or OfflineExplainer()
    ids = list(per_unit)
    data = {u: unit_data(per_unit[u], tokens, config.n_top, config.seed + u) for u in ids}
    explanations = {u: explainer.explain(data[u].explain_windows, data[u].explain_acts) for u in ids}
    out = []
    for j, u in enumerate(ids):
        other = ids[(j + 1) % len(ids)]
        d = data[u]
        examples = [{"tokens": t, "acts": [round(float(v), 3) for v in a]}
                    for t, a in list(zip(d.top_windows, d.top_acts))[:5]]
        out.append(UnitExplanation(
            model=model, unit=f"{name}:{u}", family=family, explanation=explanations[u].text,
            explainer=explainer.name, scores=score(explanations[u], d, seed=config.seed),
            random=score(explanations[other], d, seed=config.seed) if other != u else {},
            examples=examples, meta={"threshold": d.threshold, "baseline_from": f"{name}:{other}"}))
        if advance is not None:
            advance(1)
    return out


def summary_metrics(units: list[UnitExplanation], model: str, stage: str) -> list[Metric]:
    """Mean score per family and kind, and its difference from the random baseline (paired over units)."""
    from superalign.stats import bootstrap_ci, paired_bootstrap_diff

    out = []
    for family in dict.fromkeys(u.family for u in units):
        mine = [u for u in units if u.family == family and u.random]
        for kind in ("simulation", "detection", "fuzzing"):
            real = [u.scores[kind] for u in mine if np.isfinite(u.scores[kind]) and np.isfinite(u.random[kind])]
            base = [u.random[kind] for u in mine if np.isfinite(u.scores[kind]) and np.isfinite(u.random[kind])]
            if len(real) < 2:
                continue
            iv, rv, dv = bootstrap_ci(real), bootstrap_ci(base), paired_bootstrap_diff(real, base)
            meta = {"rate": False, "family": family, "score": kind}
            out += [Metric(stage=stage, name=f"interp.{family}.{kind}", value=iv.value, ci_low=iv.low,
                           ci_high=iv.high, n=iv.n, model=model, meta=meta),
                    Metric(stage=stage, name=f"interp.{family}.{kind}.random", value=rv.value, ci_low=rv.low,
                           ci_high=rv.high, n=rv.n, model=model, meta=meta),
                    Metric(stage=stage, name=f"interp.{family}.{kind}.over_random", value=dv.value, ci_low=dv.low,
                           ci_high=dv.high, n=dv.n, model=model, meta=meta)]
    return out


def quality_metrics(q: SAEQuality, model: str, stage: str, meta: dict) -> list[Metric]:
    values = {"nmse": q.nmse, "variance_explained": q.variance_explained, "dead_fraction": q.dead_fraction,
              "l0": q.l0, "loss_clean": q.loss_clean, "loss_spliced": q.loss_spliced, "loss_zero": q.loss_zero,
              "loss_recovered": q.loss_recovered}
    return [Metric(stage=stage, name=f"sae.{k}", value=float(v), model=model, meta={"rate": False, **meta})
            for k, v in values.items() if v is not None]


def check(config: Config, lm) -> tuple[int, list, list, list]:
    """The layer, and the corpus's windows for the SAE, its held-out check and the units; InterpError, before
    any work, for a layer the model lacks or too few windows."""
    from superalign.models.activations import n_layers

    deep = n_layers(lm)
    layer = deep // 2 if config.layer is None else config.layer
    if not 0 <= layer < deep:
        raise InterpError(f"interp.layer {layer}: this model has layers 0..{deep - 1}")
    rows = windows(lm, corpus(config.world_seed, config.seed), config.window)
    n_sae, n_eval = config.n_sae_windows, config.n_eval_windows
    sae_rows, eval_rows = rows[:n_sae], rows[n_sae:n_sae + n_eval]
    interp_rows = rows[n_sae + n_eval:n_sae + n_eval + config.n_interp_windows]
    if len(interp_rows) < 8 or len(eval_rows) < 4:
        raise InterpError(f"the corpus has {len(rows)} windows: too few for {n_sae} SAE windows plus "
                          f"{n_eval} held out and 8 to explain; lower interp.n_sae_windows")
    return layer, sae_rows, eval_rows, interp_rows


def run(config: Config, lm, *, stage: str = "validate", explainer=None, progress=None,
        log: Callable[[str], None] = lambda m: None) -> Result:
    """Train the SAE, measure it, explain neurons and SAE latents (see the module docstring)."""
    from superalign.models.activations import resid_post, token_activations
    from superalign.progress import NullProgress

    progress = progress or NullProgress()
    layer, sae_rows, eval_rows, interp_rows = check(config, lm)
    name = resid_post(layer)
    log(f"interp: SAE on {name} from {len(sae_rows)} windows")
    read = progress.task("interp activations", len(sae_rows) + len(eval_rows) + len(interp_rows))

    def tokens_of(batch_rows, names):  # positions ≥ 1 only (position 0 is an attention sink)
        acts = token_activations(lm, batch_rows, names, batch_size=config.batch_size, advance=read)
        return {n: [a[1:] for a in v] for n, v in acts.items()}

    x_train = torch.cat(tokens_of(sae_rows, [name])[name])
    x_eval = torch.cat(tokens_of(eval_rows, [name])[name])
    width = x_train.shape[1] * config.expansion
    sae, history = train_sae(x_train, width, config.sae_kind, config.k, config.l1, config.epochs, seed=config.seed,
                             advance=progress.task("SAE epochs", config.epochs))
    q = quality(sae, x_eval)
    q.loss_clean, q.loss_spliced, q.loss_zero = spliced_losses(lm, sae, layer, eval_rows[:64])
    meta = {"layer": layer, "latents": width, "kind": config.sae_kind, "train_tokens": len(x_train)}
    metrics = quality_metrics(q, lm.name, stage, meta)
    del x_train

    mlp = f"layers.{layer}.mlp.act"
    acts = tokens_of(interp_rows, [name, mlp])
    tokens = [[lm.tokenizer.decode([t]) for t in r[1:]] for r in interp_rows]
    with torch.no_grad():
        codes = [sae.encode(a) for a in acts[name]]  # per window [s, m]
    rng = random.Random(config.seed)
    alive = (torch.stack([(c > 0).any(0) for c in codes]).sum(0) >= 5).numpy()
    neurons = sample_units(config.n_units, acts[mlp][0].shape[1], rng)
    latents = sample_units(config.n_units, width, rng, alive)
    per_neuron = {u: [a[:, u].clamp_min(0).numpy() for a in acts[mlp]] for u in neurons}
    per_latent = {u: [c[:, u].numpy() for c in codes] for u in latents}
    advance = progress.task("explain units", len(neurons) + len(latents))
    units = explain_units(mlp, "neuron", per_neuron, tokens, config, lm.name, explainer, advance)
    units += explain_units(f"sae:{name}", "sae", per_latent, tokens, config, lm.name, explainer, advance)
    metrics += summary_metrics(units, lm.name, stage)
    return Result(metrics=metrics, units=units, sae=sae, layer=layer, quality=q, history=history)


__all__ = ["Result", "check", "corpus", "explain_units", "quality_metrics", "run", "sample_units",
           "summary_metrics", "unit_data", "windows"]
