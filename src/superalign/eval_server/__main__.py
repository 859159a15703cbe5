"""``python -m superalign.eval_server --dir DIR --port PORT [--world-seed S] [--task NAME=POOL,TEST ...]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from superalign.eval_server import ServerConfig
from superalign.eval_server.app import serve


def parse_tasks(texts: list[str]) -> dict[str, tuple[int, int]]:
    """``["fact=600,300"]`` -> ``{"fact": (600, 300)}``."""
    tasks = {}
    for text in texts:
        name, _, sizes = text.partition("=")
        try:
            pool, test = (int(x) for x in sizes.split(","))
        except ValueError:
            raise SystemExit(f"--task {text!r}: expected NAME=POOL,TEST, e.g. fact=600,300") from None
        tasks[name] = (pool, test)
    return tasks


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m superalign.eval_server", description=__doc__)
    p.add_argument("--dir", type=Path, required=True, help="where the label files and the logs go")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--task", action="append", default=[], metavar="NAME=POOL,TEST")
    p.add_argument("--rate", type=int, default=600, help="score queries a minute")
    p.add_argument("--budget", type=int, default=None, help="test-score queries in all (default: no limit)")
    args = p.parse_args(argv)
    tasks = parse_tasks(args.task) if args.task else {"fact": (600, 300)}
    serve(ServerConfig(args.dir, args.world_seed, tasks, args.rate, args.budget), args.port)


if __name__ == "__main__":
    main()
