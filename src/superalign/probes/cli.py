"""``superalign probes``: truth and deception probes on any model, swept over layers and methods.

    superalign probes smollm2-135m-instruct                      # every method at 8 layers, the monitor
    superalign probes organism:secret_liar-s0 --layers 12 17 --methods logistic,ccs
    superalign probes my-model --heldout-topics capitals --out runs/probes/my-model --json
"""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("probes", help="truth and deception probes on a model: AUROC per method and layer, "
                       "in distribution, on held-out topics and on negations")
    p.add_argument("target", help="a model source or organism:NAME")
    p.add_argument("--layers", type=int, nargs="+", help="layers.N.resid_post to sweep (default: 8 spread over "
                   "the depth)")
    p.add_argument("--methods", help="comma-separated: logistic,diff_means,diff_means_cov,ccs,pca (default: all)")
    p.add_argument("--heldout-topics", help="comma-separated topics left out of training (default: "
                   "animals,elements)")
    p.add_argument("--n-train", type=int, help="training statements (default: all of the train split)")
    p.add_argument("--n-monitor", type=int, help="fact questions the model answers for the monitor (default 40)")
    p.add_argument("--out", type=Path, help="where probes.jsonl goes (default: runs/probes/TARGET)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_probes)


def _config(args):
    from pydantic import ValidationError

    from superalign.probes import Config, ProbeError
    from superalign.records import first_error

    values = {"layers": args.layers, "n_monitor": args.n_monitor, "n_train": args.n_train,
              "methods": args.methods.split(",") if args.methods else None,
              "heldout_topics": args.heldout_topics.split(",") if args.heldout_topics else None}
    try:
        return Config(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        raise ProbeError(first_error(err, "probes")) from None


def cmd_probes(args) -> int:
    from rich.console import Console

    from superalign import probes
    from superalign.context import load_local
    from superalign.progress import RichProgress
    from superalign.records import write_jsonl

    config = _config(args)  # a bad method or topic stops here, before the model loads
    lm = load_local(args.target, args.device)
    out = args.out or Path("runs") / "probes" / args.target.replace(":", "-").replace("/", "-")
    console = Console(stderr=args.json)
    with RichProgress(console) as progress:
        result = probes.run(config, lm, cache_dir=out / "activations", progress=progress, log=console.print)
    write_jsonl(out / "probes.jsonl", result.results)
    if args.json:
        print(json.dumps([r.model_dump() for r in result.results], indent=1))
        return 0
    sweep = [r for r in result.results if r.dataset == "truth" and r.test in probes.TESTS]
    console.print(f"{'method':<15} {'layer':>5}  " + "  ".join(f"{t:>22}" for t in probes.TESTS))
    cells = {(r.method, r.layer, r.test): r for r in sweep}
    for method in config.methods:
        for layer in sorted({r.layer for r in sweep}):
            row = [cells.get((method, layer, t)) for t in probes.TESTS]
            console.print(f"{method:<15} {layer:>5}  " + "  ".join(f"{_cell(r):>22}" for r in row))
    for r in result.results:
        if r not in sweep:
            console.print(f"{r.dataset} probe ({r.method}, layer {r.layer}) on {r.test}: AUROC {_cell(r)}")
    console.print(f"records: {out / 'probes.jsonl'}")
    return 0


def _cell(r) -> str:
    if r is None or r.auroc != r.auroc:
        return "—"
    interval = f" [{r.ci_low:.2f}, {r.ci_high:.2f}]" if r.ci_low is not None else ""
    return f"{r.auroc:.2f}{interval}"
