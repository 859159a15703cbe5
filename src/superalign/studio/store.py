"""What the studio does with its database: campaigns, labelers, queues, submissions, statistics, export.

The web app and the CLI both call these functions; each takes a SQLAlchemy session. The two guarantees
that matter live here:

- **No label lost or duplicated.** :func:`submit` commits before it returns (the web app acknowledges only
  after that), a retry with the same client-chosen ``submission_id`` finds the committed label and is
  acknowledged again without a second write, and the unique constraints (labeler, submission) and
  (labeler, item) settle races between concurrent duplicates inside the database.
- **A labeler reaches only their own queue.** A label is accepted only for an item that was served to
  that labeler (an assignment), which also rules out unknown items and items of other campaigns.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from superalign.records import Demonstration, Flaw, Judgement, Preference, Record, check_prompt, first_error
from superalign.studio import StudioError, security
from superalign.studio.db import Assignment, Campaign, Item, Label, Labeler, Setting, WebSession
from superalign.studio.items import CampaignConfig, ItemSpec
from superalign.studio.quality import LabelRow, Quality, campaign_quality, is_correct

MAX_COMMENT = 2_000
MAX_DEMONSTRATION = 20_000
MAX_FLAWS = 50
_SUBMISSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


class InvalidInput(StudioError):
    """A submission that does not fit the item (HTTP 422); nothing was written."""


class NotInQueue(StudioError):
    """An item id that is not in the labeler's queue: unknown, another campaign's, or never served (HTTP 404)."""


class AlreadyLabeled(StudioError):
    """A second, different submission for an item the labeler already labeled (HTTP 409)."""


# --- answers ---------------------------------------------------------------------------------------


class _Answer(BaseModel):
    # Strict: the API takes the types the form sends, no coercion (true is not a confidence, "3" not a rating).
    model_config = ConfigDict(extra="forbid", strict=True)
    comment: str = Field("", max_length=MAX_COMMENT)


class PairwiseAnswer(_Answer):
    choice: Literal["A", "B", "tie"]
    confidence: float | None = Field(None, ge=0.5, le=1.0, description="P(the chosen response is better)")


class RatingAnswer(_Answer):
    rating: int


class FlawSpan(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    start: int = Field(ge=0)
    end: int = Field(ge=1)
    category: str = Field(max_length=100)
    severity: str = Field(max_length=100)
    comment: str = Field("", max_length=MAX_COMMENT)


class FlawAnswer(_Answer):
    flaws: list[FlawSpan] = Field(default_factory=list, max_length=MAX_FLAWS)


class DemonstrationAnswer(_Answer):
    text: str = Field(min_length=1, max_length=MAX_DEMONSTRATION)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():  # the form refuses it too: whitespace is no demonstration to train on
            raise ValueError("a demonstration needs some text, not only whitespace")
        return text


class ReviewAnswer(_Answer):
    verdict: Literal["accept", "reject"]


ANSWERS: dict[str, type[_Answer]] = {"pairwise": PairwiseAnswer, "rating": RatingAnswer, "flaw": FlawAnswer,
                                     "demonstration": DemonstrationAnswer, "review": ReviewAnswer}


def validate_answer(config: CampaignConfig, item: Item, raw: Any) -> dict[str, Any]:
    """The answer as stored, or :class:`InvalidInput` naming the field; checks it against the item too."""
    if not isinstance(raw, dict):
        raise InvalidInput("answer: expected an object")
    try:
        answer = ANSWERS[config.task].model_validate(raw)
    except ValidationError as err:
        raise InvalidInput(f"answer.{first_error(err, 'answer')}") from None
    if isinstance(answer, PairwiseAnswer) and answer.choice == "tie" and answer.confidence not in (None, 0.5):
        raise InvalidInput("answer.confidence: a tie has no preferred response; leave confidence empty")
    if isinstance(answer, RatingAnswer) and not 1 <= answer.rating <= config.scale:
        raise InvalidInput(f"answer.rating: must be between 1 and {config.scale}, got {answer.rating}")
    if isinstance(answer, FlawAnswer):
        text = item.response_a or ""
        for i, f in enumerate(answer.flaws):
            if not f.start < f.end <= len(text):
                raise InvalidInput(f"answer.flaws.{i}: span [{f.start}, {f.end}) is not inside the response "
                                   f"({len(text)} characters)")
            if f.category not in config.categories:
                raise InvalidInput(f"answer.flaws.{i}.category: {f.category!r} is not one of "
                                   f"{', '.join(config.categories)}")
            if f.severity not in config.severities:
                raise InvalidInput(f"answer.flaws.{i}.severity: {f.severity!r} is not one of "
                                   f"{', '.join(config.severities)}")
    return answer.model_dump()


# --- settings and tokens -----------------------------------------------------------------------------


def _setting(session: Session, key: str) -> str | None:
    row = session.get(Setting, key)
    return row.value if row else None


def _put_setting(session: Session, key: str, value: str) -> None:
    row = session.get(Setting, key)
    if row:
        row.value = value
    else:
        session.add(Setting(key=key, value=value))


def csrf_secret(session: Session) -> str:
    """The key that signs CSRF tokens, created on first use (kept in the database: restarts keep forms valid)."""
    secret = _setting(session, "csrf_secret")
    if secret is None:
        try:
            with session.begin_nested():
                session.add(Setting(key="csrf_secret", value=security.new_token()))
            session.commit()
        except IntegrityError:  # another process created it first
            session.rollback()
        secret = _setting(session, "csrf_secret")
    return secret


def issue_admin_token(session: Session) -> str:
    """A new admin token (shown once); the previous one stops working."""
    token = security.new_token()
    _put_setting(session, "admin_token_sha256", security.hash_token(token))
    session.commit()
    return token


def has_admin_token(session: Session) -> bool:
    return _setting(session, "admin_token_sha256") is not None


def admin_ok(session: Session, token: str | None) -> bool:
    return bool(token) and security.token_matches(token, _setting(session, "admin_token_sha256"))


def find_labeler(session: Session, token: str | None) -> Labeler | None:
    """The active labeler whose token this is, or None (constant-time check after the indexed lookup)."""
    if not security.plausible_token(token):
        return None
    digest = security.hash_token(token)
    labeler = session.scalars(select(Labeler).where(Labeler.token_hash == digest)).first()
    if labeler is None or not labeler.active or not security.token_matches(token, labeler.token_hash):
        return None
    return labeler


# --- browser sessions ---------------------------------------------------------------------------------

SESSION_IDLE = 12 * 3600.0  # a browser unused this long signs in again
SESSION_MAX = 7 * 86400.0  # and every browser after a week
_SEEN_EVERY = 300.0  # refresh seen_at at most this often: not a database write per page view


def open_web_session(session: Session, kind: Literal["labeler", "admin"], credential_hash: str,
                     labeler_id: int | None = None, now: float | None = None) -> str:
    """A fresh session for a browser that just signed in; returns the cookie value (stored hashed).

    Every sign-in gets a new random id, so an id planted in a browser before sign-in (session fixation)
    never becomes a signed-in one. Expired sessions are swept here, at sign-in, not on every request.
    """
    now = now or time.time()
    session.execute(delete(WebSession).where(or_(WebSession.seen_at < now - SESSION_IDLE,
                                                 WebSession.created_at < now - SESSION_MAX)))
    cookie = security.new_token()
    session.add(WebSession(id_hash=security.hash_token(cookie), kind=kind, labeler_id=labeler_id,
                           credential_hash=credential_hash, created_at=now, seen_at=now))
    session.commit()
    return cookie


def _web_session(session: Session, cookie: str | None, kind: str, now: float) -> WebSession | None:
    """The live session of this cookie, or None: unknown ids (made up, signed out, swept) and expired ones."""
    if not security.plausible_token(cookie):
        return None
    row = session.get(WebSession, security.hash_token(cookie))
    if row is None or row.kind != kind:
        return None
    if row.seen_at < now - SESSION_IDLE or row.created_at < now - SESSION_MAX:
        return None
    if row.seen_at < now - _SEEN_EVERY:
        row.seen_at = now
        session.commit()
    return row


def session_labeler(session: Session, cookie: str | None, now: float | None = None) -> Labeler | None:
    """The active labeler signed in with this cookie; None once the session ended, expired, or the labeler's
    token was revoked or re-issued (the session belongs to the token it was opened with)."""
    row = _web_session(session, cookie, "labeler", now or time.time())
    if row is None:
        return None
    labeler = session.get(Labeler, row.labeler_id)
    if labeler is None or not labeler.active or labeler.token_hash != row.credential_hash:
        return None
    return labeler


def session_is_admin(session: Session, cookie: str | None, now: float | None = None) -> bool:
    """Whether this cookie is a live admin session opened with the current admin token."""
    row = _web_session(session, cookie, "admin", now or time.time())
    return row is not None and row.credential_hash == _setting(session, "admin_token_sha256")


def close_web_session(session: Session, cookie: str | None) -> None:
    """Sign out: the session's row goes, so a copy of the cookie stops working too."""
    if security.plausible_token(cookie):
        session.execute(delete(WebSession).where(WebSession.id_hash == security.hash_token(cookie)))
        session.commit()


# --- campaigns and labelers ----------------------------------------------------------------------------


def create_campaign(session: Session, name: str, config: CampaignConfig, items: Sequence[ItemSpec],
                    now: float | None = None) -> Campaign:
    """Store a campaign and its items in one transaction."""
    if not _NAME_RE.fullmatch(name):
        raise StudioError(f"campaign name {name!r}: use letters, digits and _ . @ - (at most 100 characters)")
    if session.scalars(select(Campaign).where(Campaign.name == name)).first():
        raise StudioError(f"campaign {name!r} already exists; pick another name")
    if config.task in ("demonstration", "review") and any(s.gold for s in items):
        raise StudioError(f"a {config.task} campaign cannot have gold items (there is no known answer to check)")
    campaign = Campaign(name=name, task=config.task, config=config.model_dump(mode="json"),
                        created_at=now or time.time())
    session.add(campaign)
    session.flush()
    session.add_all(Item(campaign_id=campaign.id, position=i, key=s.key, task_id=s.task_id, prompt=s.prompt,
                         response_a=s.response_a, response_b=s.response_b, assistance=s.assistance,
                         truth=s.truth, gold=s.gold, meta=s.meta) for i, s in enumerate(items))
    session.commit()
    return campaign


def get_campaign(session: Session, name: str) -> Campaign:
    campaign = session.scalars(select(Campaign).where(Campaign.name == name)).first()
    if campaign is None:
        known = ", ".join(session.scalars(select(Campaign.name).order_by(Campaign.id))) or "none yet"
        raise StudioError(f"no campaign named {name!r} (campaigns: {known})")
    return campaign


def campaign_config(campaign: Campaign) -> CampaignConfig:
    return CampaignConfig.model_validate(campaign.config)


def add_labeler(session: Session, campaign: Campaign, name: str, now: float | None = None) -> tuple[Labeler, str]:
    """Invite a labeler to a campaign; returns the labeler and their token (shown once, stored hashed)."""
    if not _NAME_RE.fullmatch(name):
        raise StudioError(f"labeler name {name!r}: use letters, digits and _ . @ - (at most 100 characters)")
    if session.scalars(select(Labeler).where(Labeler.campaign_id == campaign.id, Labeler.name == name)).first():
        raise StudioError(f"campaign {campaign.name!r} already has a labeler {name!r}; "
                          "`superalign studio labeler token` issues them a new token")
    token = security.new_token()
    labeler = Labeler(campaign_id=campaign.id, name=name, token_hash=security.hash_token(token), active=True,
                      created_at=now or time.time())
    session.add(labeler)
    session.commit()
    return labeler, token


def get_labeler(session: Session, campaign: Campaign, name: str) -> Labeler:
    labeler = session.scalars(select(Labeler).where(Labeler.campaign_id == campaign.id,
                                                    Labeler.name == name)).first()
    if labeler is None:
        raise StudioError(f"campaign {campaign.name!r} has no labeler {name!r}")
    return labeler


def reissue_token(session: Session, labeler: Labeler) -> str:
    """A new token for a labeler (the old one stops working); also re-activates a revoked labeler."""
    token = security.new_token()
    labeler.token_hash, labeler.active = security.hash_token(token), True
    session.commit()
    return token


def revoke(session: Session, labeler: Labeler) -> None:
    """The labeler's token stops working; their labels stay."""
    labeler.active = False
    session.commit()


# --- the queue -----------------------------------------------------------------------------------------


def assisted_for(config: CampaignConfig, labeler_id: int, item: Item) -> bool:
    """Whether this labeler sees this item's critique or debate: the campaign's rule, a seeded coin if random."""
    if item.assistance is None or config.assist == "none":
        return False
    if config.assist == "all":
        return True
    return random.Random(f"assist:{config.seed}:{labeler_id}:{item.id}").random() < config.assist_p


def _available(campaign: Campaign, config: CampaignConfig, labeler: Labeler, now: float):
    """Items this labeler may still get: not served to them yet, and gold or short of labels_per_item."""
    cutoff = now - config.lease_minutes * 60.0
    mine = exists().where(Assignment.item_id == Item.id, Assignment.labeler_id == labeler.id)
    taken = (select(func.count(Assignment.id))
             .where(Assignment.item_id == Item.id, or_(Assignment.done, Assignment.served_at >= cutoff))
             .scalar_subquery())
    return and_(Item.campaign_id == campaign.id, Item.render_error.is_(None), ~mine,
                or_(Item.gold, taken < config.labels_per_item))


@dataclass
class Served:
    """The item a labeler should label now, with whether it comes with assistance."""

    item: Item
    assignment: Assignment


def next_item(session: Session, labeler: Labeler, now: float | None = None) -> Served | None:
    """The labeler's open item (served, not yet labeled) or the next one from the queue; None when done.

    Serving records an assignment: when (for time per item) and whether assisted (the randomized
    treatment of an assistance study). Reloading the page serves the same item again. An item that cannot
    be shown (:func:`item_problem`) is taken out of the queues and the next one served: one bad item
    never locks a labeler out.
    """
    while (served := _serve(session, labeler, now or time.time())) is not None:
        problem = item_problem(served.item)
        if problem is None:
            return served
        mark_unrenderable(session, served.item, problem)
    return None


def item_problem(item: Item) -> str | None:
    """Why a stored item cannot be shown to a labeler, or None. ``campaign create`` refuses such items;
    this catches those stored before it did, or written by other tools."""
    prompt = item.prompt
    if not isinstance(prompt, list) or not all(isinstance(m, dict) and all(isinstance(v, str) for v in m.values())
                                               for m in prompt):
        return "prompt: not a list of chat messages"
    try:
        check_prompt(prompt)
    except ValueError as err:
        return f"prompt: {err}"
    try:  # what the page and the API send: a lone surrogate (from a "\ud800" escape) cannot be encoded
        json.dumps([prompt, item.response_a, item.response_b, item.assistance], ensure_ascii=False).encode()
    except (UnicodeError, TypeError) as err:
        return str(err)
    return None


def _serve(session: Session, labeler: Labeler, now: float) -> Served | None:
    """:func:`next_item` without the check of what it serves."""
    for _ in range(3):  # a concurrent request of the same labeler may create the assignment first
        open_ = session.scalars(select(Assignment).where(Assignment.labeler_id == labeler.id,
                                                         Assignment.done.is_(False))
                                .order_by(Assignment.served_at, Assignment.id).limit(1)).first()
        if open_ is not None:
            served = Served(session.get(Item, open_.item_id), open_)
            session.commit()
            return served
        campaign = session.get(Campaign, labeler.campaign_id)
        config = campaign_config(campaign)
        item = session.scalars(select(Item).where(_available(campaign, config, labeler, now))
                               .order_by(Item.position).limit(1)).first()
        if item is None:
            session.commit()
            return None
        assignment = Assignment(labeler_id=labeler.id, item_id=item.id, served_at=now, done=False,
                                assisted=assisted_for(config, labeler.id, item))
        try:
            session.add(assignment)
            session.commit()
            return Served(item, assignment)
        except IntegrityError:
            session.rollback()
    raise StudioError("could not serve an item (concurrent requests); try again")


def mark_unrenderable(session: Session, item: Item, reason: str) -> None:
    """Take an item that cannot be shown out of every queue (closing the assignments that hold it open),
    so that no labeler is stuck on it; the admin sees it with ``reason`` on the dashboard and in stats."""
    item.render_error = reason[:500]
    for assignment in session.scalars(select(Assignment).where(Assignment.item_id == item.id,
                                                               Assignment.done.is_(False))):
        assignment.done = True
    session.commit()


def unrenderable(session: Session, campaign: Campaign) -> list[tuple[str, str]]:
    """``(item key, why)`` of the campaign's items taken out of the queues because they failed to render."""
    rows = session.execute(select(Item.key, Item.render_error).where(Item.campaign_id == campaign.id,
                                                                     Item.render_error.is_not(None))
                           .order_by(Item.position))
    return [(key, why) for key, why in rows]


@dataclass
class Progress:
    done: int
    remaining: int  # including the open item

    @property
    def total(self) -> int:
        return self.done + self.remaining


def progress(session: Session, labeler: Labeler, now: float | None = None) -> Progress:
    """Labels given and items still available to this labeler."""
    now = now or time.time()
    campaign = session.get(Campaign, labeler.campaign_id)
    config = campaign_config(campaign)
    done = session.scalar(select(func.count(Label.id)).where(Label.labeler_id == labeler.id)) or 0
    open_ = session.scalar(select(func.count(Assignment.id)).where(Assignment.labeler_id == labeler.id,
                                                                   Assignment.done.is_(False))) or 0
    more = session.scalar(select(func.count(Item.id)).where(_available(campaign, config, labeler, now))) or 0
    return Progress(done=done, remaining=open_ + more)


# --- submission ------------------------------------------------------------------------------------------


@dataclass
class Submitted:
    label_id: int
    duplicate: bool  # True: this submission id was already committed; nothing new was written


def _by_submission(session: Session, labeler: Labeler, submission_id: str) -> Label | None:
    return session.scalars(select(Label).where(Label.labeler_id == labeler.id,
                                               Label.submission_id == submission_id)).first()


def submit(session: Session, labeler: Labeler, item_id: Any, submission_id: Any, answer: Any,
           now: float | None = None) -> Submitted:
    """Validate and commit one label; idempotent in ``submission_id``.

    Raises :class:`InvalidInput` (bad id or answer), :class:`NotInQueue` (item not served to this labeler)
    or :class:`AlreadyLabeled` (a different submission for an item already labeled); none of them writes.
    """
    now = now or time.time()
    if not isinstance(submission_id, str) or not _SUBMISSION_RE.fullmatch(submission_id):
        raise InvalidInput("submission_id: 8 to 64 characters from A-Z a-z 0-9 _ - (a fresh UUID per item)")
    if isinstance(item_id, bool) or not isinstance(item_id, int):
        # isascii: "²".isdigit() is True but int("²") raises; only ASCII digits are an id
        if isinstance(item_id, str) and item_id.isascii() and item_id.isdigit() and len(item_id) < 12:
            item_id = int(item_id)
        else:
            raise InvalidInput("item_id: expected an integer item id")
    if not 0 < item_id < 2**31:  # ids are 32-bit integers in both databases
        raise NotInQueue(f"item {item_id} is not in your queue")
    try:
        previous = _by_submission(session, labeler, submission_id)
        if previous is not None:
            if previous.item_id != item_id:
                raise InvalidInput(f"submission_id {submission_id} was already used for another item")
            return Submitted(previous.id, duplicate=True)  # a retry: acknowledge again, write nothing
        assignment = session.scalars(select(Assignment).where(Assignment.labeler_id == labeler.id,
                                                              Assignment.item_id == item_id)).first()
        item = session.get(Item, item_id) if assignment else None
        if assignment is None or item is None or item.campaign_id != labeler.campaign_id:
            raise NotInQueue(f"item {item_id} is not in your queue")
        if assignment.done:
            # A concurrent duplicate may have committed between our two reads (PostgreSQL, READ COMMITTED).
            previous = _by_submission(session, labeler, submission_id)
            if previous is not None and previous.item_id == item_id:
                return Submitted(previous.id, duplicate=True)
            raise AlreadyLabeled(f"you already labeled item {item_id}")
        config = campaign_config(session.get(Campaign, labeler.campaign_id))
        stored = validate_answer(config, item, answer)
        label = Label(campaign_id=labeler.campaign_id, item_id=item.id, labeler_id=labeler.id,
                      submission_id=submission_id, answer=stored, assisted=assignment.assisted,
                      served_at=assignment.served_at, created_at=now)
        assignment.done = True
        session.add(label)
        session.commit()  # the caller acknowledges only after this returns
        return Submitted(label.id, duplicate=False)
    except IntegrityError:
        # A concurrent duplicate won the race: the database kept exactly one of them.
        session.rollback()
        previous = _by_submission(session, labeler, submission_id)
        if previous is not None and previous.item_id == item_id:
            return Submitted(previous.id, duplicate=True)
        raise AlreadyLabeled(f"you already labeled item {item_id}") from None
    except StudioError:
        session.rollback()
        raise


# --- statistics -------------------------------------------------------------------------------------------


@dataclass
class CampaignCounts:
    items: int
    gold_items: int
    assisted_items: int  # items that carry a critique or a debate
    complete_items: int  # non-gold items with labels_per_item labels
    labels: int
    assisted_labels: int
    labelers: int
    unrenderable: int = 0  # items taken out of the queues because they failed to render


def counts(session: Session, campaign: Campaign) -> CampaignCounts:
    config = campaign_config(campaign)
    c = campaign.id
    per_item = (select(Label.item_id, func.count(Label.id).label("n")).where(Label.campaign_id == c)
                .group_by(Label.item_id).subquery())
    return CampaignCounts(
        items=session.scalar(select(func.count(Item.id)).where(Item.campaign_id == c)) or 0,
        gold_items=session.scalar(select(func.count(Item.id)).where(Item.campaign_id == c, Item.gold)) or 0,
        assisted_items=session.scalar(select(func.count(Item.id)).where(Item.campaign_id == c,
                                                                        Item.assistance.is_not(None))) or 0,
        complete_items=session.scalar(select(func.count()).select_from(per_item)
                                      .join(Item, Item.id == per_item.c.item_id)
                                      .where(~Item.gold, per_item.c.n >= config.labels_per_item)) or 0,
        labels=session.scalar(select(func.count(Label.id)).where(Label.campaign_id == c)) or 0,
        assisted_labels=session.scalar(select(func.count(Label.id)).where(Label.campaign_id == c,
                                                                          Label.assisted)) or 0,
        labelers=session.scalar(select(func.count(Labeler.id)).where(Labeler.campaign_id == c)) or 0,
        unrenderable=session.scalar(select(func.count(Item.id)).where(Item.campaign_id == c,
                                                                      Item.render_error.is_not(None))) or 0,
    )


def _rows(session: Session, campaign: Campaign):
    return session.execute(select(Label, Item, Labeler).join(Item, Item.id == Label.item_id)
                           .join(Labeler, Labeler.id == Label.labeler_id)
                           .where(Label.campaign_id == campaign.id).order_by(Label.id)).all()


def quality(session: Session, campaign: Campaign) -> Quality:
    """Gold accuracy, agreement, time per item and the assistance effect of a campaign (see ``quality``)."""
    rows = [LabelRow(labeler=who.name, item=item.id, answer=label.answer, truth=item.truth, gold=item.gold,
                     has_assistance=item.assistance is not None, assisted=label.assisted,
                     served_at=label.served_at, created_at=label.created_at)
            for label, item, who in _rows(session, campaign)]
    names = list(session.scalars(select(Labeler.name).where(Labeler.campaign_id == campaign.id)
                                 .order_by(Labeler.id)))
    return campaign_quality(campaign.task, rows, names)


# --- export ---------------------------------------------------------------------------------------------


def export_records(session: Session, campaign: Campaign, include_gold: bool = True,
                   min_gold_accuracy: float | None = None,
                   left_out: list[tuple[str, str]] | None = None) -> list[Record]:
    """The campaign's labels as pipeline records (see the package docstring for which record per task).

    ``min_gold_accuracy`` drops every label of labelers whose accuracy on gold items is below it (labelers
    without gold labels are kept); ``include_gold=False`` drops the labels of gold items. Labels of items
    that no record could hold (:func:`item_problem`: labeled before creation refused such items) are left
    out, ``(item key, why)`` appended to ``left_out``, rather than failing the whole export.
    """
    task = campaign.task
    rows = _rows(session, campaign)
    excluded: set[int] = set()
    if min_gold_accuracy is not None:
        per: dict[int, list[bool]] = {}
        for label, item, who in rows:
            if item.gold:
                per.setdefault(who.id, []).append(bool(is_correct(task, label.answer, item.truth)))
        excluded = {lid for lid, ok in per.items() if sum(ok) / len(ok) < min_gold_accuracy}
    out: list[Record] = []
    for label, item, who in rows:
        if who.id in excluded or (item.gold and not include_gold):
            continue
        if (problem := item_problem(item)) is not None:
            if left_out is not None:
                left_out.append((item.key, problem))
            continue
        a = label.answer
        kind = item.assistance["kind"] if label.assisted and item.assistance else None
        studio = {"campaign": campaign.name, "item": item.key, "item_id": item.id, "assisted": label.assisted,
                  "assistance": kind, "gold": item.gold, "correct": is_correct(task, a, item.truth),
                  "submission_id": label.submission_id, "seconds": round(label.created_at - label.served_at, 3),
                  "labeled_at": label.created_at, "comment": a.get("comment", "")}
        meta = {**item.meta, "studio": studio}
        labeler = f"human:{who.name}"
        if task == "pairwise":
            tie = a["choice"] == "tie"
            first_is_chosen = a["choice"] in ("A", "tie")
            chosen, rejected = ((item.response_a, item.response_b) if first_is_chosen
                                else (item.response_b, item.response_a))
            confidence = 0.5 if tie else a.get("confidence")
            out.append(Preference(task_id=item.task_id, prompt=item.prompt, chosen=chosen, rejected=rejected,
                                  labeler=labeler, confidence=confidence, tie=tie, meta=meta))
        elif task == "rating":
            out.append(Judgement(item_id=item.key, judge=labeler, verdict=str(a["rating"]),
                                 score=float(a["rating"]), assisted=kind,
                                 meta={**meta, "task_id": item.task_id, "scale": campaign_config(campaign).scale}))
        elif task == "flaw":
            text = item.response_a or ""
            out.append(Judgement(item_id=item.key, judge=labeler, verdict="flawed" if a["flaws"] else "no_flaw",
                                 score=float(len(a["flaws"])), assisted=kind, meta={**meta, "task_id": item.task_id}))
            out.extend(Flaw(item_id=item.key, task_id=item.task_id, labeler=labeler, start=f["start"], end=f["end"],
                            quote=text[f["start"]:f["end"]], category=f["category"], severity=f["severity"],
                            comment=f["comment"], assisted=kind, meta={"studio": studio})
                       for f in a["flaws"])
        elif task == "review":
            # meta carries the finding id (items._findings): items.apply_reviews maps verdicts back by it.
            out.append(Judgement(item_id=item.key, judge=labeler, verdict=a["verdict"],
                                 score=1.0 if a["verdict"] == "accept" else 0.0, assisted=kind,
                                 meta={**meta, "task_id": item.task_id}))
        else:
            out.append(Demonstration(task_id=item.task_id, prompt=item.prompt, response=a["text"], source=labeler,
                                     meta=meta))
    return out


def hf_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Records as flat rows for a Hugging Face dataset: ``meta`` (free-form) becomes a JSON string column."""
    rows = []
    for r in records:
        row = r.model_dump(mode="json")
        row["meta"] = json.dumps(row.get("meta", {}), sort_keys=True)
        rows.append(row)
    return rows
