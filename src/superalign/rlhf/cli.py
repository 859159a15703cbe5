"""``superalign train [METHOD ...]``: the train stage on its own (alias ``superalign rlhf``).

    superalign train dpo                              # feedback, reward model, DPO, evaluation, report
    superalign train reward-model                     # feedback and the reward model alone, with its accuracy
    superalign train rloo --preferences prefs.jsonl   # human preferences (a studio export) instead of the labeler

Light at import: the stage's work happens in :func:`superalign.rlhf.run`.
"""

from __future__ import annotations

from pathlib import Path

from superalign.rlhf.config import METHODS

REWARD_MODEL_ONLY = "reward-model"
CHOICES = [m.replace("_", "-") for m in METHODS] + [REWARD_MODEL_ONLY]


def add_arguments(p) -> None:
    # No `choices` here: argparse checks an empty list against them and refuses `superalign train` alone.
    p.add_argument("method", nargs="*", metavar="METHOD",
                   help=f"methods to run ({', '.join(CHOICES)}); default: the profile's. 'reward-model' trains and "
                        "evaluates the reward model alone")
    p.add_argument("--preferences", "--preferences-file", type=Path, help="preference records (JSONL, e.g. a studio export) instead of "
                   "the simulated labeler")


def overrides(args) -> dict:
    """The train section's values that the positional methods and --preferences set."""
    out: dict = {}
    unknown = [m for m in args.method if m not in CHOICES]
    if unknown:
        from superalign.config import ConfigError

        raise ConfigError(f"unknown method {unknown[0]!r}; choose from {', '.join(CHOICES)}")
    if args.method:
        out["methods"] = [] if args.method == [REWARD_MODEL_ONLY] else [
            m.replace("-", "_") for m in args.method if m != REWARD_MODEL_ONLY]
    if args.preferences is not None:
        if not args.preferences.is_file():
            from superalign.config import ConfigError

            raise ConfigError(f"--preferences {args.preferences}: no such file")
        out["preferences_file"] = str(args.preferences.resolve())
    return out
