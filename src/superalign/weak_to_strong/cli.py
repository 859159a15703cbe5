"""``superalign generalize`` (alias ``w2s``): the generalize stage on its own, for one pair or a sweep.

Light at import: the stage's work happens in :func:`superalign.weak_to_strong.run`.

    superalign generalize                                      # the profile's pair on the world tasks
    superalign generalize --weak minilm-l6 --strong smollm2-135m-instruct@19 --task fact --task reward
    superalign generalize --pair tiny-gpt2 minilm-l6 --pair minilm-l6 smollm2-135m-instruct --method naive
    superalign generalize --dataset my.jsonl --text-column review --label-column positive
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p) -> None:
    """Flags of ``superalign generalize`` beyond the ones generated from the Config."""
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


def overrides(args) -> dict:
    """The generalize section's values set by the flags above."""
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


def rich_pgr_table(rows: list[dict]):
    """A rich table of the stage's PGR rows (weak, ceiling, student, PGR with 95% intervals)."""
    from rich.table import Table

    def num(v) -> str:
        return "—" if v is None else f"{v:.3f}"

    def pgr(v) -> str:
        if not v:
            return "undefined"
        value, low, high = v
        return f"{value:.2f} [{low:.2f},{high:.2f}]" if low is not None else f"{value:.2f} (no interval)"

    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    title = "weak-to-strong: test accuracy (mean over seeds), PGR of the means [95% bootstrap over seeds]"
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


def show(run_dir: Path, console) -> None:
    """The PGR table of a finished run."""
    done = json.loads((Path(run_dir) / "stages" / "generalize.json").read_text(encoding="utf-8"))
    console.print(rich_pgr_table(done["results"].get("table", [])))


__all__ = ["add_arguments", "overrides", "rich_pgr_table", "show"]
