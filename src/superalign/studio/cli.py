"""``superalign studio ...``: campaigns, labelers, the server and the export, from the command line.

:func:`register` adds the subcommands to the main CLI; FastAPI, SQLAlchemy and uvicorn are imported
inside the commands, so ``superalign --help`` stays instant.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections import Counter
from pathlib import Path

from superalign.studio import TASKS, StudioError

DB_HELP = ("database: a SQLite file path or URL (sqlite:///studio.db), or postgresql://user:pass@host/db; "
           "default: $SUPERALIGN_STUDIO_DB or ./studio.db")


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help=DB_HELP)


def _open(args, create: bool = False):
    """The database of ``--db``. Only ``serve`` and ``campaign create`` make a new SQLite file: a mistyped path
    given to any other command is an error, not a fresh empty database (and new folders) left behind."""
    from sqlalchemy.engine import make_url

    from superalign.studio.db import open_db, resolve_url

    url = make_url(resolve_url(args.db))
    if not create and url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        raise StudioError(f"no studio database at {url.database}: `superalign studio campaign create` makes one "
                          "(or pass --db)")
    return open_db(args.db)


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535)")
    return port


def _invite_url(base_url: str, token: str) -> str:
    # The token rides in the fragment: browsers never send it to the server, so it stays out of logs.
    return f"{base_url.rstrip('/')}/login#token={token}"


def cmd_serve(args) -> int:
    import uvicorn

    from superalign.studio import store
    from superalign.studio.web import create_app

    _, sessions = _open(args, create=True)
    with sessions() as s:
        if not store.has_admin_token(s):
            token = store.issue_admin_token(s)
            print(f"admin token (shown once; `superalign studio admin-token` issues a new one): {token}")
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"warning: serving on {args.host}: reachable from other machines. Tokens travel in clear over "
              "http; put the studio behind HTTPS (and pass --secure-cookies) outside a trusted network.",
              file=sys.stderr)
    app = create_app(args.db, secure_cookies=args.secure_cookies)
    print(f"studio: http://{args.host}:{args.port}/  (admin: http://{args.host}:{args.port}/admin)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, proxy_headers=False)
    return 0


def _split(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def cmd_campaign_create(args) -> int:
    from pydantic import ValidationError

    from superalign.records import first_error
    from superalign.studio import store
    from superalign.studio.items import (CampaignConfig, arrange_items, collect_items, read_assistance,
                                         read_sources, unreadable_items)

    settings = {"task": args.task, "labels_per_item": args.labels_per_item, "gold_fraction": args.gold_fraction,
                "assist": args.assist, "assist_p": args.assist_p, "scale": args.scale, "seed": args.seed,
                "limit": args.limit, "lease_minutes": args.lease_minutes, "instructions": args.instructions or "",
                "categories": _split(args.categories), "severities": _split(args.severities), "critic": args.critic}
    try:
        config = CampaignConfig(**{k: v for k, v in settings.items() if v is not None})
    except ValidationError as err:
        raise StudioError(first_error(err, "campaign")) from None
    assistance = read_assistance(args.assistance) if args.assistance else []
    items = collect_items(read_sources(args.sources), config)
    bad = unreadable_items(items)
    if bad and args.drop_unreadable:
        dropped = {key for key, _ in bad}
        items = [spec for spec in items if spec.key not in dropped]
        if not items:
            raise StudioError(f"all {len(bad)} items have a blank or unreadable response ({bad[0][1]}, e.g. item "
                              f"{bad[0][0]}): nothing left to label")
        print(f"dropped {len(bad)} item(s) with a blank or unreadable response", file=sys.stderr)
    elif bad:
        kinds = ", ".join(f"{n} {why}" for why, n in Counter(why for _, why in bad).most_common())
        print(f"warning: {len(bad)} of {len(items)} items have a response nobody can judge ({kinds}; e.g. item "
              f"{bad[0][0]}); --drop-unreadable leaves them out", file=sys.stderr)
    items = arrange_items(items, config, assistance)
    _, sessions = _open(args, create=True)
    with sessions() as s:
        campaign = store.create_campaign(s, args.name, config, items)
        c = store.counts(s, campaign)
    print(f"campaign {campaign.name}: {c.items} {config.task} items ({c.gold_items} gold, "
          f"{c.assisted_items} with assistance), {config.labels_per_item} label(s) per item")
    if config.gold_fraction > 0 and c.gold_items == 0 and config.task not in ("demonstration", "review"):
        print("note: no gold items: none of the items has a known answer", file=sys.stderr)
    return 0


def cmd_campaign_list(args) -> int:
    from sqlalchemy import select

    from superalign.studio import store
    from superalign.studio.db import Campaign

    _, sessions = _open(args)
    with sessions() as s:
        campaigns = list(s.scalars(select(Campaign).order_by(Campaign.id)))
        if not campaigns:
            print("no campaigns yet")
        for campaign in campaigns:
            c = store.counts(s, campaign)
            print(f"{campaign.name}\t{campaign.task}\titems={c.items}\tgold={c.gold_items}\tlabels={c.labels}"
                  f"\tlabelers={c.labelers}")
    return 0


def cmd_labeler(args) -> int:
    from sqlalchemy import select

    from superalign.studio import store
    from superalign.studio.db import Labeler

    _, sessions = _open(args)
    with sessions() as s:
        campaign = store.get_campaign(s, args.campaign)
        if args.action == "add":
            for name in args.names:
                _, token = store.add_labeler(s, campaign, name)
                print(f"{name}\t{_invite_url(args.base_url, token)}")
        elif args.action == "token":
            token = store.reissue_token(s, store.get_labeler(s, campaign, args.name))
            print(f"{args.name}\t{_invite_url(args.base_url, token)}")
        elif args.action == "revoke":
            store.revoke(s, store.get_labeler(s, campaign, args.name))
            print(f"{args.name}: token revoked (labels kept)")
        else:
            for labeler in s.scalars(select(Labeler).where(Labeler.campaign_id == campaign.id).order_by(Labeler.id)):
                print(f"{labeler.name}\t{'active' if labeler.active else 'revoked'}")
    return 0


def cmd_admin_token(args) -> int:
    from superalign.studio import store

    _, sessions = _open(args)
    with sessions() as s:
        print(store.issue_admin_token(s))
    return 0


def cmd_stats(args) -> int:
    from superalign.studio import store
    from superalign.studio.web import campaign_summary

    _, sessions = _open(args)
    with sessions() as s:
        campaign = store.get_campaign(s, args.campaign)
        summary = campaign_summary({"campaign": campaign, "counts": store.counts(s, campaign),
                                    "quality": store.quality(s, campaign),
                                    "unrenderable": store.unrenderable(s, campaign)})
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    c, q = summary["counts"], summary["quality"]
    print(f"campaign {summary['name']} ({summary['task']}): " + ", ".join(f"{k}={v}" for k, v in c.items()))

    def iv(x):
        if x is None:
            return "-"
        if x.get("n", 2) < 2:  # one gold label: no interval, not "[1.000, 1.000]"
            return f"{x['value']:.3f} (n={x['n']}: no interval)"
        return f"{x['value']:.3f} [{x['low']:.3f}, {x['high']:.3f}]"

    def num(x, fmt=".3f"):
        return "-" if x is None else format(x, fmt)

    for lab in q["labelers"]:
        print(f"  {lab['name']}: labels={lab['labels']} assisted={lab['assisted']} gold_accuracy="
              f"{iv(lab['gold_accuracy'])} (n={lab['gold_labels']}) median_s={num(lab['median_seconds'], '.1f')} "
              f"labels_per_hour={num(lab['labels_per_hour'], '.0f')}")
    print(f"  agreement on {q['overlap_items']} overlapping items: alpha({q['alpha_level']})={num(q['alpha'])} "
          f"kappa={num(q['kappa'])} ({q['kappa_pairs']} pairs)")
    for bad in summary["unrenderable"]:
        print(f"  item {bad['item']} could not be shown and left the queue: {bad['reason']}")
    if c["assisted_items"]:
        print(f"  accuracy with assistance {iv(q['accuracy_assisted'])}, without {iv(q['accuracy_unassisted'])}, "
              f"difference {iv(q['assistance_gain'])}")
    return 0


def cmd_export(args) -> int:
    from superalign.records import write_jsonl
    from superalign.studio import store

    if not args.out and not args.hf_dataset:
        raise StudioError("say where to: --out FILE.jsonl and/or --hf-dataset DIR")
    _, sessions = _open(args)
    with sessions() as s:
        campaign = store.get_campaign(s, args.campaign)
        left_out: list[tuple[str, str]] = []
        records = store.export_records(s, campaign, include_gold=not args.no_gold,
                                       min_gold_accuracy=args.min_gold_accuracy, left_out=left_out)
    if left_out:
        key, why = left_out[0]
        print(f"warning: {len(left_out)} label(s) left out: their items cannot be shown or trained on "
              f"(e.g. item {key}: {why})", file=sys.stderr)
    if not records:
        raise StudioError(f"campaign {campaign.name!r} has no labels to export yet")
    if args.out:
        write_jsonl(args.out, records)
        print(f"{len(records)} records -> {args.out}")
    if args.hf_dataset:
        import datasets

        datasets.disable_progress_bars()
        datasets.Dataset.from_list(store.hf_rows(records)).save_to_disk(str(args.hf_dataset))
        print(f"{len(records)} rows -> {args.hf_dataset} (datasets.load_from_disk)")
    return 0


def register(sub) -> None:
    """Add ``superalign studio ...`` to the main parser's subcommands."""
    p = sub.add_parser("studio", help="the feedback studio: labeling campaigns for people, served on the web")
    ssub = p.add_subparsers(dest="studio_command", required=True)

    q = ssub.add_parser("serve", help="serve the studio (binds 127.0.0.1 unless told otherwise)")
    _db(q)
    q.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    q.add_argument("--port", type=_port, default=8765, help="port to listen on (default 8765)")
    q.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (behind an HTTPS proxy)")
    q.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="the server's log level (default info)")
    q.set_defaults(func=cmd_serve)

    q = ssub.add_parser("campaign", help="create and list campaigns")
    csub = q.add_subparsers(dest="action", required=True)
    c = csub.add_parser("create", help="a campaign from pipeline records (files or run directories)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Items per task: pairwise <- preference records, pairs of evaluation records "
                        "of one task (known answer: higher gold); rating/flaw <- evaluation records (known answer "
                        "from gold), responses of preference and demonstration records; demonstration <- the "
                        "prompts of any records; review <- research_finding records (a research run's findings, "
                        "accepted or rejected by people). Items files with \"type\": \"studio_item\" lines work "
                        "for the other tasks (see docs/studio.md).")
    c.add_argument("name", help="campaign name (letters, digits, _ . @ -)")
    c.add_argument("--task", required=True, choices=TASKS)
    c.add_argument("--from", dest="sources", action="append", required=True, metavar="PATH",
                   help="records JSONL file or run directory (uses its records/*.jsonl); repeatable")
    c.add_argument("--assistance", type=Path, help="JSONL of critiques / debates by task_id to attach to items")
    c.add_argument("--labels-per-item", type=int, default=1, help="labelers per item (2+ measures agreement)")
    c.add_argument("--gold-fraction", type=float, default=0.1, help="fraction of items made gold (default 0.1)")
    c.add_argument("--assist", choices=["none", "all", "random"], default="random",
                   help="who sees an item's assistance (default: random per labeler x item, recorded)")
    c.add_argument("--assist-p", type=float, default=0.5, help="P(assisted) when --assist random")
    c.add_argument("--critic", help="flaw campaigns from critique records (the assist stage's): whose critiques are "
                   "the assistance (default: the first critic that is not the oracle)")
    c.add_argument("--scale", type=int, help="rating scale 1..N (default 7)")
    c.add_argument("--categories", help="flaw categories, comma-separated")
    c.add_argument("--severities", help="flaw severities, comma-separated")
    c.add_argument("--instructions", help="text shown above every item")
    c.add_argument("--limit", type=int, help="at most this many items (seeded sample)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--lease-minutes", type=float, help="an unlabeled served item is freed after this (default 60)")
    c.add_argument("--drop-unreadable", action="store_true", help="leave out items with a blank or unreadable "
                   "response (e.g. a random model's), which are otherwise kept with a warning")
    _db(c)
    c.set_defaults(func=cmd_campaign_create)
    c = csub.add_parser("list", help="campaigns with their counts")
    _db(c)
    c.set_defaults(func=cmd_campaign_list)

    q = ssub.add_parser("labeler", help="invite labelers (one token each), list, re-issue or revoke tokens")
    lsub = q.add_subparsers(dest="action", required=True)
    for action, text in (("add", "invite labelers; prints one invitation link each (shown once)"),
                         ("token", "a new token for a labeler (the old one stops working)"),
                         ("revoke", "stop a labeler's token (their labels stay)"), ("list", "a campaign's labelers")):
        c = lsub.add_parser(action, help=text)
        c.add_argument("campaign")
        if action == "add":
            c.add_argument("names", nargs="+", metavar="NAME")
        elif action != "list":
            c.add_argument("name")
        if action in ("add", "token"):
            c.add_argument("--base-url", default="http://127.0.0.1:8765", help="where labelers reach the studio")
        _db(c)
        c.set_defaults(func=cmd_labeler)

    q = ssub.add_parser("admin-token", help="issue the admin token for the dashboard (the previous one stops working)")
    _db(q)
    q.set_defaults(func=cmd_admin_token)

    q = ssub.add_parser("stats", help="a campaign's counts, gold accuracy, agreement and assistance effect")
    q.add_argument("campaign")
    q.add_argument("--json", action="store_true", help="print JSON")
    _db(q)
    q.set_defaults(func=cmd_stats)

    q = ssub.add_parser("export", help="a campaign's labels as records (JSONL) and/or a Hugging Face dataset")
    q.add_argument("campaign")
    q.add_argument("--out", type=Path, help="records JSONL (pairwise: preference records for --preferences; review: "
                   "judgements that superalign.studio.items.apply_reviews puts on the findings)")
    q.add_argument("--hf-dataset", type=Path, help="directory for datasets.Dataset.save_to_disk")
    q.add_argument("--no-gold", action="store_true", help="leave out the labels of gold items")
    q.add_argument("--min-gold-accuracy", type=float, help="leave out labelers below this gold accuracy")
    _db(q)
    q.set_defaults(func=cmd_export)
