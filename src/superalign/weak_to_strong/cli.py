"""``superalign w2s``: the generalize stage on its own, for one (weak, strong) pair or a sweep.

Registered by :mod:`superalign.cli`. Light at import: the work happens in :func:`cmd_w2s`.

    superalign w2s                                             # the profile's pair on the world tasks
    superalign w2s --weak minilm-l6 --strong smollm2-135m-instruct@20 --task fact --task reward
    superalign w2s --pair tiny-gpt2 minilm-l6 --pair minilm-l6 smollm2-135m-instruct --method naive
    superalign w2s --dataset my.jsonl --text-column review --label-column positive
"""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    """Add the ``w2s`` subcommand to the CLI's subparsers."""
    from superalign.cli import _add_config_args

    p = sub.add_parser("w2s", help="weak-to-strong generalization (the generalize stage): PGR for a pair or a sweep")
    _add_config_args(p)
    p.add_argument("--weak", help="weak supervisor spec NAME[:probe|full|lora][@LAYER] (e.g. minilm-l6)")
    p.add_argument("--strong", help="strong model spec (default: --model, or the profile's model, as a probe)")
    p.add_argument("--pair", nargs=2, action="append", metavar=("WEAK", "STRONG"), default=[],
                   help="a (weak, strong) pair of a sweep (repeatable; replaces --weak/--strong)")
    p.add_argument("--task", action="append", choices=["fact", "instruction", "policy", "reward"], default=[],
                   help="world task (repeatable; default: the profile's tasks; none when --dataset is given)")
    p.add_argument("--method", action="append", choices=["naive", "confidence", "bootstrap"], default=[],
                   help="student training method (repeatable; default: naive and confidence)")
    p.add_argument("--intermediate", action="append", default=[], metavar="SPEC",
                   help="model of the bootstrapping chain, weakest first (repeatable; needed by --method bootstrap)")
    p.add_argument("--seeds", type=int, help="seeds per (task, pair); PGR intervals are over seeds (>= 3 advised)")
    p.add_argument("--dataset", type=Path, help="labelled JSONL/CSV file to run as a task")
    p.add_argument("--text-column", default="text")
    p.add_argument("--text-b-column", help="second text column: a pairwise task (is text better than text_b?)")
    p.add_argument("--label-column", default="label")
    p.add_argument("--group-column", help="rows sharing this value stay in the same split")
    p.add_argument("--out", type=Path, default=Path("runs"), help="root of run directories (default: runs/)")
    p.add_argument("--force", action="store_true", help="recompute even if finished")
    p.set_defaults(func=cmd_w2s)


def _updates(args) -> dict:
    updates: dict = {}
    if args.pair:
        updates["pairs"] = [list(p) for p in args.pair]
    if args.weak:
        updates["weak"] = args.weak
    if args.strong:
        updates["strong"] = args.strong
    if args.task:
        updates["tasks"] = list(dict.fromkeys(args.task))
    if args.method:
        updates["methods"] = list(dict.fromkeys(args.method))
    if args.intermediate:
        updates["intermediates"] = args.intermediate
    if args.seeds is not None:
        updates["n_seeds"] = args.seeds
    if args.dataset is not None:
        updates["dataset"] = {"path": str(args.dataset.resolve()), "text_column": args.text_column,
                              "label_column": args.label_column, "text_b_column": args.text_b_column,
                              "group_column": args.group_column}
        updates.setdefault("tasks", [])
    return updates


def w2s_config(args):
    """The pipeline config of ``superalign w2s``: only the generalize stage, with the flags applied."""
    from pydantic import ValidationError

    from superalign.cli import _load_config
    from superalign.config import ConfigError, PipelineConfig, _format_errors

    args.overrides = [*args.overrides, "stages=[generalize]"]
    config = _load_config(args)
    data = config.model_dump(mode="json")
    data["generalize"] = {**data["generalize"], **_updates(args)}
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e)) from None


def rich_pgr_table(rows: list[dict]):
    """A rich table of the stage's PGR rows (weak, ceiling, student, PGR with 95% intervals)."""
    from rich.table import Table

    def num(v) -> str:
        return "—" if v is None else f"{v:.3f}"

    def pgr(v) -> str:
        if not v:
            return "undefined"
        value, low, high = v
        return f"{value:.2f} [{low:.2f},{high:.2f}]" if low is not None else f"{value:.2f}"

    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    title = "weak-to-strong: test accuracy (mean over seeds), PGR [95% interval over seeds]"
    if len(pairs) == 1:  # one pair: in the title, so that the numbers fit a terminal
        title += f"\n{pairs[0]}"
    table = Table(title=title)
    columns = ["task"] + (["pair"] if len(pairs) > 1 else []) + ["method", "weak", "ceiling", "student",
                                                                 "PGR acc", "PGR AUROC"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("task", "pair", "method") else "right",
                         min_width=12 if col.startswith("PGR") else None)
    for r in rows:
        cells = [r["task"]] + ([r["pair"]] if len(pairs) > 1 else []) + [
            r["method"], num(r["weak_accuracy"]), num(r["ceiling_accuracy"]), num(r["student_accuracy"]),
            pgr(r["pgr_accuracy"]), pgr(r["pgr_auroc"])]
        table.add_row(*cells)
    return table


def cmd_w2s(args) -> int:
    from superalign.cli import _console
    from superalign.pipeline import run_pipeline
    from superalign.progress import RichProgress

    config = w2s_config(args)
    console = _console()
    g = config.generalize
    console.print(f"[bold]superalign w2s[/]: profile={config.profile} pairs={g.resolved_pairs()} "
                  f"tasks={g.tasks + (['file'] if g.dataset else [])} methods={g.methods} seeds={g.n_seeds}")
    with RichProgress(console) as progress:
        outcome = run_pipeline(config, root=args.out, progress=progress, force=args.force, log=console.print)
    results = json.loads((outcome.run_dir / "stages" / "generalize.json").read_text(encoding="utf-8"))["results"]
    console.print(rich_pgr_table(results.get("table", [])))
    console.print(f"report: {outcome.report}")
    return 0


__all__ = ["cmd_w2s", "register", "w2s_config"]
