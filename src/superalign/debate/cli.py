"""``superalign debate``: naive, consultancy and debate on hidden-information questions, judge accuracy per protocol.

    superalign debate smollm2-135m-instruct                                # greedy and best-of-3 debaters, oracle
    superalign debate smollm2-135m-instruct --judge http://localhost:8000/v1 --judge-model llama-3.1-8b-instruct
    superalign debate score runs/studio/debate-export.jsonl                # a studio study, same scoring
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("debate", help="consultancy and debate for a judge without the passage: judge accuracy "
                       "per protocol and debater skill; or 'score FILE' for a studio export")
    p.add_argument("target", help="a model source or organism:NAME (debater and model judge), or 'score'")
    p.add_argument("file", nargs="?", type=Path, help="with 'score': a studio export of a debate campaign")
    p.add_argument("--protocols", help="comma-separated: naive,consultancy,debate (default: all)")
    p.add_argument("--rounds", type=int, help="turns per debater (default 2)")
    p.add_argument("--order", choices=["simultaneous", "sequential"])
    p.add_argument("--best-of", help="comma-separated n of the model's best-of-n debaters (default 1,3)")
    p.add_argument("--no-oracle", action="store_true", help="leave out the oracle debater")
    p.add_argument("--judges", help="comma-separated: simulated,model (default: both)")
    p.add_argument("--judge-skill", type=float, help="the simulated judge's P(understanding a quote) (default 0.5)")
    p.add_argument("--debater", help="also a chat debater: a model source or an endpoint URL (with --debater-model)")
    p.add_argument("--debater-model", help="the model name the --debater endpoint serves")
    p.add_argument("--judge", help="also a chat judge: a model source or an endpoint URL (with --judge-model)")
    p.add_argument("--judge-model", help="the model name the --judge endpoint serves")
    p.add_argument("--n-questions", type=int, help="questions (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="where debate.jsonl goes (default: runs/debate/TARGET)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_debate)


def _config(args):
    from pydantic import ValidationError

    from superalign.debate import Config, DebateError
    from superalign.records import first_error

    try:
        best_of = [int(n) for n in args.best_of.split(",")] if args.best_of else None
    except ValueError:
        raise DebateError(f"--best-of {args.best_of}: write whole numbers separated by commas, e.g. 1,4") from None
    values = {"protocols": args.protocols.split(",") if args.protocols else None, "rounds": args.rounds,
              "order": args.order, "best_of": best_of, "oracle": False if args.no_oracle else None,
              "judges": args.judges.split(",") if args.judges else None, "judge_skill": args.judge_skill,
              "n_questions": args.n_questions, "world_seed": args.seed, "seed": args.seed}
    try:
        return Config(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        raise DebateError(first_error(err, "debate")) from None


def cmd_debate(args) -> int:
    from rich.console import Console

    from superalign.progress import print_metrics

    from superalign import debate
    from superalign.context import chat_role
    from superalign.debate import DebateError

    if args.target == "score":
        return _score(args)
    config = _config(args)  # bad protocols or judges stop here, before any model loads
    try:
        debater = chat_role(args.debater, args.debater_model, args.device, "--debater")
        judge = chat_role(args.judge, args.judge_model, args.device, "--judge")
    except ValueError as err:
        raise DebateError(str(err)) from None
    from superalign.context import load_local
    from superalign.progress import RichProgress
    from superalign.records import write_jsonl

    lm = load_local(args.target, args.device)
    out = args.out or Path("runs") / "debate" / args.target.replace(":", "-").replace("/", "-")
    console = Console(stderr=args.json)
    with RichProgress(console) as progress:
        study = debate.run(config, lm, chat_debaters=[debater] if debater else [], chat_judges=[judge] if judge else [],
                           progress=progress, log=console.print)
    write_jsonl(out / "debate.jsonl", study.records())
    write_jsonl(out / "metrics.jsonl", study.metrics)
    print_metrics(study.metrics, args.json, console)
    if not args.json:
        console.print(f"records: {out / 'debate.jsonl'}")
    return 0


def _score(args) -> int:
    from rich.console import Console

    from superalign.debate import DebateError
    from superalign.progress import print_metrics
    from superalign.debate.study import accuracy_metrics, studio_verdicts
    from superalign.records import Judgement, read_jsonl

    if args.file is None or not args.file.is_file():
        raise DebateError(f"debate score: give a records file (a studio export of a debate campaign); got {args.file}")
    records = read_jsonl(args.file)
    verdicts = studio_verdicts(records) + [r for r in records if isinstance(r, Judgement) and "protocol" in r.meta]
    if not verdicts:
        raise DebateError(f"{args.file}: no debate verdicts (export a pairwise campaign made from debate transcripts)")
    print_metrics(accuracy_metrics(verdicts), args.json, Console(stderr=args.json))
    return 0
