"""A run directory as a Hugging Face dataset folder: one parquet file per (stage, record type), a dataset card that
lists them as configs, and the config that made the run.

    superalign export runs/quick-smollm2-135m-instruct-1b0934a8 --out my-run-dataset
    python -c "import datasets; print(datasets.load_dataset('my-run-dataset', 'baseline-evaluation'))"

The folder is what the Hub expects (``huggingface-cli upload``); nothing here touches the network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CARD = """---
configs:
{configs}
tags:
- superalign
- alignment
---

# superalign run `{name}`

Records of a superalign run: each config is one record type of one stage (`{example}` is
`datasets.load_dataset(PATH, "{example}")`); `metrics` holds every metric with its interval. `superalign.yaml` is
the whole config that made the run: `superalign run --profile {profile} --config superalign.yaml` reruns it (and
finds it finished, under the same root). Written by superalign {version}.

| config | rows |
|---|---|
{rows}
"""


class ExportError(ValueError):
    """A run directory that cannot be exported; the message names it."""


def _rows(path: Path) -> dict[str, list[dict]]:
    """The records of one JSONL file, grouped by record type."""
    from superalign.records import iter_jsonl

    groups: dict[str, list[dict]] = {}
    for record in iter_jsonl(path):
        groups.setdefault(record.type, []).append(record.model_dump(mode="json"))
    return groups


def _write(rows: list[dict], path: Path) -> list[str]:
    """``rows`` as a parquet file; returns the columns kept as JSON strings: nested values Arrow cannot type as one
    column (dicts whose keys differ per row, mixed lists, dicts that are always empty) are written as JSON."""
    import datasets
    import pyarrow

    try:
        datasets.Dataset.from_list(rows).to_parquet(str(path))
        return []
    except (pyarrow.ArrowException, TypeError, ValueError):
        nested = sorted({k for r in rows for k, v in r.items() if isinstance(v, (dict, list))})
        flat = [{k: json.dumps(v) if k in nested else v for k, v in r.items()} for r in rows]
        datasets.Dataset.from_list(flat).to_parquet(str(path))
        return nested


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike) -> dict[str, int]:
    """Write ``out`` (see the module docstring) and return ``{config name: rows}``."""
    import datasets
    import yaml

    from superalign import __version__

    datasets.disable_progress_bars()  # one line per table is printed by the CLI
    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / "config.json").is_file():
        raise ExportError(f"{run_dir} is not a run directory (no config.json)")
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} exists and is not empty: export to a new folder")
    tables: dict[str, list[dict]] = {}
    for path in sorted((run_dir / "records").glob("*.jsonl")):
        for kind, rows in _rows(path).items():
            tables[f"{path.stem}-{kind.replace('_', '-')}"] = rows
    if (run_dir / "metrics.jsonl").is_file():
        tables["metrics"] = [r for rows in _rows(run_dir / "metrics.jsonl").values() for r in rows]
    if not tables:
        raise ExportError(f"{run_dir} has no records yet: run a stage first")
    (out / "data").mkdir(parents=True, exist_ok=True)
    counts, json_columns = {}, {}
    for name, rows in tables.items():
        json_columns[name] = _write(rows, out / "data" / f"{name}.parquet")
        counts[name] = len(rows)
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["config"]
    (out / "superalign.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    configs = "\n".join(f"- config_name: {n}\n  data_files: data/{n}.parquet" for n in counts)
    rows = "\n".join(f"| {n} | {c} |" + (f" (JSON strings: {', '.join(json_columns[n])})" if json_columns[n] else "")
                     for n, c in counts.items())
    (out / "README.md").write_text(CARD.format(configs=configs, name=run_dir.name, example=next(iter(counts)),
                                               profile=config.get("profile", "quick"), version=__version__, rows=rows),
                                   encoding="utf-8")
    return counts


__all__ = ["ExportError", "export_run"]
