"""``superalign sweep STAGE``: a stage over seeds × a config grid on Ray (see :mod:`superalign.sweep`)."""

from __future__ import annotations

import os


def register(sub) -> None:
    from superalign.cli import _add_run_args, add_config_args

    p = sub.add_parser("sweep", help="run a stage over seeds x a config grid as Ray tasks, with intervals over seeds",
                       description="Run STAGE (and the stages it reads) once per grid point and seed, as Ray tasks on "
                                   "a local Ray instance or a cluster (--address). Finished runs are skipped, so a "
                                   "killed sweep restarted with the same arguments runs only the missing ones. Prints "
                                   "the mean over seeds with a 95%% t-interval (and a bootstrap interval from 5 "
                                   "seeds) per grid point.")
    p.add_argument("stage", help="the stage to sweep (baseline, train, assist, generalize, validate, stress)")
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
    _add_run_args(p)
    p.set_defaults(func=command)


def command(args) -> int:
    from rich.console import Console

    from superalign.cli import UserError, load_config_from
    from superalign.progress import RichProgress
    from superalign.stages import UnknownStage, get
    from superalign.sweep import parse_grid, plan, run_sweep

    console = Console(highlight=False)
    try:
        stage = get(args.stage).name
    except UnknownStage as err:
        raise UserError(str(err)) from None
    if args.force:
        raise UserError("sweep has no --force: it reruns only unfinished runs; delete a run directory to redo it")
    if args.seeds is None and args.n_seeds < 1:
        raise UserError(f"--n-seeds {args.n_seeds}: give at least 1")
    base_seed = args.seed if args.seed is not None else 0
    seeds = args.seeds if args.seeds is not None else [base_seed + i for i in range(args.n_seeds)]
    grid = parse_grid(args.grid)
    flag_overrides = list(args.overrides)

    def make_config(overrides: list[str], seed: int):
        args.overrides, args.seed = flag_overrides + overrides, seed
        return load_config_from(args)

    cells = plan(stage, seeds, grid, make_config, args.out)
    cpus = args.cpus_per_run or float(min(os.cpu_count() or 1, 8))
    console.print(f"[bold]superalign sweep[/] {stage}: {len(cells) // len(seeds)} grid point(s) x {len(seeds)} seeds "
                  f"({', '.join(map(str, seeds))}), profile={cells[0].config.profile}, "
                  + ("in this process" if args.local else f"Ray {args.address or 'local'}"))
    with RichProgress(console) as progress:
        outcome = run_sweep(stage, cells, args.out, backend="local" if args.local else "ray", address=args.address,
                            parallel=args.parallel, cpus_per_run=cpus, gpus_per_run=args.gpus_per_run,
                            progress=progress, log=console.print, pull=args.pull)
    console.print(summary_table(stage, outcome.rows))
    console.print(f"sweep folder: {outcome.folder} ({len(outcome.ran)} ran, {len(outcome.skipped)} reused)")
    if outcome.failed:
        console.print(f"[red]{len(outcome.failed)} run(s) failed[/]; tracebacks in {outcome.folder / 'errors'}")
        return 1
    return 0


def summary_table(stage: str, rows: list[dict]):
    from rich.table import Table

    from superalign.sweep import headline

    table = Table(title=f"sweep {stage}: mean over seeds [95% interval]")
    grid = len({row["point"] for row in rows}) > 1  # one point: no column to repeat it in
    for col in ("grid point",) * grid + ("metric", "mean", "t-interval", "bootstrap", "seeds"):
        table.add_column(col, justify="right" if col in ("mean", "seeds") else "left", overflow="fold")
    for row in headline(rows):
        table.add_row(*[row["point"]] * grid, row["metric"], f"{row['mean']:.3f}",
                      _interval(row["t_low"], row["t_high"]), _interval(row["boot_low"], row["boot_high"]),
                      str(row["n"]))
    return table


def _interval(low, high) -> str:
    return f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else "—"


__all__ = ["register", "summary_table"]
