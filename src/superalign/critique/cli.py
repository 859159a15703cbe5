"""``superalign critique``: critiques of planted-flaw responses, and how much they help a limited judge.

    superalign critique smollm2-135m-instruct                         # model, trained critic, oracle
    superalign critique smollm2-135m-instruct --critic http://localhost:8000/v1 --critic-model qwen2.5-7b-instruct
    superalign critique score runs/studio/flaws-export.jsonl          # a studio assistance study, same scoring
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("critique", help="critiques of responses with planted flaws: flaws a limited judge finds "
                       "with and without them; or 'score FILE' for a studio export")
    p.add_argument("target", help="a model source or organism:NAME (the critic, judge and generator), or 'score'")
    p.add_argument("file", nargs="?", type=Path, help="with 'score': a records file with judgements and flaws")
    p.add_argument("--critics", help="comma-separated: model,trained,oracle (default: all three)")
    p.add_argument("--critic", help="also a chat critic: a model source, or the URL of an OpenAI-compatible "
                   "endpoint (with --critic-model)")
    p.add_argument("--critic-model", help="the model name the --critic endpoint serves")
    p.add_argument("--kinds", help="comma-separated flaw kinds: fact,instruction,policy,code (default: all)")
    p.add_argument("--n-test", type=int, help="test responses (default 48)")
    p.add_argument("--n-train", type=int, help="responses the critic trains on (default 120)")
    p.add_argument("--judge-k", type=int, help="sentences the limited judge reads unaided (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="where critique.jsonl goes (default: runs/critique/TARGET)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_critique)


def _config(args):
    from pydantic import ValidationError

    from superalign.critique import Config, CritiqueError
    from superalign.records import first_error

    values = {"critics": args.critics.split(",") if args.critics else None,
              "kinds": args.kinds.split(",") if args.kinds else None, "n_test": args.n_test,
              "world_seed": args.seed, "seed": args.seed}
    nested = {"training": {"n_train": args.n_train, "seed": args.seed}, "judge": {"k": args.judge_k}}
    try:
        return Config(**{k: v for k, v in values.items() if v is not None},
                      **{k: {f: v for f, v in d.items() if v is not None} for k, d in nested.items()})
    except ValidationError as err:
        raise CritiqueError(first_error(err, "critique")) from None


def cmd_critique(args) -> int:
    from rich.console import Console

    from superalign.progress import print_metrics

    from superalign import critique
    from superalign.critique import CritiqueError

    if args.target == "score":
        return _score(args)
    from superalign.critique.study import check

    config = _config(args)  # bad critics or kinds stop here, before any model loads
    check(config)
    from superalign.context import chat_role

    try:
        role = chat_role(args.critic, args.critic_model, args.device, "--critic")
    except ValueError as err:
        raise CritiqueError(str(err)) from None
    from superalign.context import load_local
    from superalign.progress import RichProgress
    from superalign.records import write_jsonl

    lm = load_local(args.target, args.device)
    out = args.out or Path("runs") / "critique" / args.target.replace(":", "-").replace("/", "-")
    console = Console(stderr=args.json)
    with RichProgress(console) as progress:
        study = critique.run(config, lm, chat_critics=[role] if role else [], progress=progress, log=console.print)
    write_jsonl(out / "critique.jsonl", study.records())
    write_jsonl(out / "metrics.jsonl", study.metrics)
    print_metrics(study.metrics, args.json, console)
    if not args.json:
        console.print(f"records: {out / 'critique.jsonl'}")
    return 0


def _score(args) -> int:
    """Score a studio export (or any records file with judgements and flaws) with the study's own code."""
    from rich.console import Console

    from superalign.progress import print_metrics

    from superalign.critique import CritiqueError
    from superalign.critique.study import critique_metrics
    from superalign.records import read_jsonl

    if args.file is None or not args.file.is_file():
        raise CritiqueError(f"critique score: give a records file (a studio export of a flaw campaign); got {args.file}")
    metrics = critique_metrics(read_jsonl(args.file))
    if not metrics:
        raise CritiqueError(f"{args.file}: no judgements with known flaws (export a flaw campaign made from "
                            "critique records, e.g. a run's records/assist.jsonl)")
    print_metrics(metrics, args.json, Console(stderr=args.json))
    return 0
