"""The studio's web app (FastAPI): server-rendered pages for labelers and the admin, and a small JSON API.

Pages (browser; cookies are HttpOnly and SameSite=Strict, every POST form carries a CSRF token):

- ``GET /login`` ``POST /login`` ``POST /logout``: a labeler signs in with their invitation token
  (the invitation link carries it in the URL fragment, which never reaches the server or its logs); the
  browser then holds a server-side session's id, not the token (``store.open_web_session``), which logout
  deletes and which expires.
- ``GET /label``: the labeler's current item, with progress; ``POST /label`` submits it.
- ``GET /admin/login`` ``POST /admin/login`` ``POST /admin/logout`` ``GET /admin``: the dashboard;
  ``GET /admin/campaigns/{name}/export.jsonl``: the campaign's records.

API (``Authorization: Bearer TOKEN``; no cookies, hence no CSRF token):

- ``GET /api/v1/next``, ``GET /api/v1/progress``, ``POST /api/v1/labels`` (labeler token);
- ``GET /api/v1/admin/campaigns``, ``GET /api/v1/admin/campaigns/{name}/export`` (admin token);
- ``GET /healthz``.

Every handler that touches the database is a plain function: FastAPI runs it in its thread pool, so a
slow commit never blocks the event loop.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from superalign.studio import StudioError, security, store
from superalign.studio.db import Campaign, Labeler, open_db
from superalign.studio.items import CampaignConfig

MAX_BODY = 256 * 1024  # the largest form: a 20,000-character demonstration plus 50 flaws, with room to spare
LABELER_COOKIE, ADMIN_COOKIE, SESSION_COOKIE = "sa_labeler", "sa_admin", "sa_session"
CONFIDENCE_LEVELS = ((0.6, "a little"), (0.75, "fairly"), (0.9, "very"), (1.0, "certain"))
STATIC = {"studio.css": "text/css; charset=utf-8", "studio.js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = [
    # Nothing but our own files: no CDN, no inline script, no framing.
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
     b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class _Guard:
    """ASGI middleware: refuse bodies without a length or above MAX_BODY (before any parsing); add the
    security headers to every response."""

    def __init__(self, app, max_body: int = MAX_BODY):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            problem = None
            if length is None:
                problem = (411, "a request body needs a Content-Length header")
            elif not length.isdigit() or int(length) > self.max_body:
                problem = (413, f"request body too large (the limit is {self.max_body} bytes)")
            if problem:
                response = PlainTextResponse(problem[1], status_code=problem[0])
                return await response(scope, receive, self._with_headers(send))
        return await self.app(scope, receive, self._with_headers(send))

    @staticmethod
    def _with_headers(send):
        async def wrapped(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *[(k, v) for k, v in SECURITY_HEADERS if k not in present]]
            await send(message)
        return wrapped


def _templates() -> Environment:
    env = Environment(loader=PackageLoader("superalign.studio", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))

    def fmt(x, digits: int = 2):
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"

    def interval(iv, digits: int = 2):
        if iv is None:
            return "–"
        if iv.n < 2:  # one gold label: "[1.00, 1.00]" would read as certainty
            return f"{iv.value:.{digits}f} (n={iv.n}: no interval)"
        return f"{iv.value:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"

    env.filters.update(fmt=fmt, interval=interval,
                       when=lambda t: "–" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)))
    return env


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def item_view(served: store.Served, config: CampaignConfig) -> dict[str, Any]:
    """What a labeler may see of an item: never its truth, gold flag or source metadata; its assistance
    only when this labeler x item was assigned assistance."""
    item = served.item
    return {"id": item.id, "task": config.task, "task_id": item.task_id, "prompt": item.prompt,
            "response_a": item.response_a, "response_b": item.response_b,
            "assistance": item.assistance if served.assignment.assisted else None}


async def _form_is_utf8(request: Request) -> bool:
    """Whether an urlencoded form body decodes as UTF-8 field by field. Starlette would replace invalid bytes
    with U+FFFD and the label would be stored changed; refuse instead. (The body is cached: ``form()`` still
    parses it afterwards.)"""
    from urllib.parse import unquote_to_bytes

    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return True
    try:
        for field in (await request.body()).split(b"&"):
            for part in field.split(b"=", 1):
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _form_answer(task: str, form) -> dict[str, Any]:
    """The answer object from a submitted HTML form (validated afterwards like an API answer)."""
    def get(key: str) -> str:
        value = form.get(key)
        return value.strip() if isinstance(value, str) else ""  # an uploaded file is no answer

    answer: dict[str, Any] = {"comment": get("comment")}
    if task == "pairwise":
        answer["choice"] = get("choice") or None
        conf = get("confidence")
        if conf and answer["choice"] != "tie":
            try:
                answer["confidence"] = float(conf)
            except ValueError:
                raise store.InvalidInput("answer.confidence: not a number") from None
    elif task == "rating":
        value = get("rating")
        if not (value.isascii() and value.isdigit()) or len(value) > 3:  # "²".isdigit(), yet no int
            raise store.InvalidInput("answer.rating: pick a rating")
        answer["rating"] = int(value)
    elif task == "flaw":
        raw = get("flaws") or "[]"
        try:
            answer["flaws"] = json.loads(raw)
        except (ValueError, RecursionError):  # bad JSON, a number past Python's digit limit, nesting past the stack
            raise store.InvalidInput("answer.flaws: not valid JSON (or a number too long, or nested too "
                                     "deeply)") from None
    elif task == "review":
        answer["verdict"] = get("verdict") or None  # none picked: the store names the missing field
    else:
        text = form.get("text")
        # Browsers send textarea line ends as CRLF; records use "\n".
        answer["text"] = text.replace("\r\n", "\n") if isinstance(text, str) and text.strip() else ""
    return answer


def create_app(db: str | None = None, *, sessions: sessionmaker | None = None,
               secure_cookies: bool = False) -> FastAPI:
    """The studio app for database ``db`` (URL or SQLite path; migrated on open).

    ``secure_cookies``: mark cookies Secure (set it when the studio is served over HTTPS by a proxy).
    """
    engine = None
    if sessions is None:
        engine, sessions = open_db(db)
    env = _templates()
    with sessions() as s:
        secret = store.csrf_secret(s)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        if engine is not None:  # we opened it: close its connections when the server stops
            engine.dispose()

    # No /docs or /openapi.json: the API explorer would load scripts from a CDN.
    app = FastAPI(title="superalign studio", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(_Guard)

    # --- helpers -----------------------------------------------------------------------------------

    def render(name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def session_id(request: Request) -> tuple[str, bool]:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid and security.plausible_token(sid):
            return sid, False
        return security.new_token(), True

    def set_cookie(response: Response, name: str, value: str) -> None:
        response.set_cookie(name, value, httponly=True, samesite="strict", secure=secure_cookies, path="/")

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        """A page with a CSRF token for its forms (and the browser session cookie it is bound to)."""
        sid, fresh = session_id(request)
        response = render(name, status, csrf=security.csrf_token(secret, sid), **context)
        if fresh:
            set_cookie(response, SESSION_COOKIE, sid)
        return response

    def csrf_ok(request: Request, form) -> bool:
        presented = form.get("csrf")
        return security.csrf_ok(secret, request.cookies.get(SESSION_COOKIE),
                                presented if isinstance(presented, str) else None)

    def message(request: Request, status: int, title: str, text: str, link: tuple[str, str] | None = None):
        return page(request, "message.html", status, title=title, text=text, link=link)

    def with_session(fn: Callable[[Session], Any]) -> Any:
        with sessions() as s:
            return fn(s)

    def labeler_from_cookie(s: Session, request: Request) -> Labeler | None:
        return store.session_labeler(s, request.cookies.get(LABELER_COOKIE))

    # --- labeler pages --------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def root(request: Request):
        target = "/label" if request.cookies.get(LABELER_COOKIE) else "/login"
        return RedirectResponse(target, status_code=303)

    @app.get("/login")
    def login_page(request: Request):
        return page(request, "login.html", admin=False, error=None)

    @app.post("/login")
    async def login(request: Request):
        form = await request.form()
        if not csrf_ok(request, form):
            return message(request, 403, "Session expired", "The form was stale or came from another site. "
                           "Open the login page again.", ("/login", "Log in"))
        token = (form.get("token") if isinstance(form.get("token"), str) else "").strip()

        def sign_in(s: Session) -> str | None:
            labeler = store.find_labeler(s, token)
            return store.open_web_session(s, "labeler", labeler.token_hash, labeler.id) if labeler else None

        cookie = await run_in_threadpool(with_session, sign_in)
        if cookie is None:
            return page(request, "login.html", 401, admin=False, error="Unknown or revoked token. Use the "
                        "invitation link you were sent, or ask the researcher for a new one.")
        return signed_in("/label", LABELER_COOKIE, cookie)

    def signed_in(target: str, name: str, cookie: str) -> Response:
        """Redirect with the new session's cookie (never the token itself) and a new CSRF session id, so
        that nothing a browser held before signing in is worth anything after."""
        response = RedirectResponse(target, status_code=303)
        set_cookie(response, name, cookie)
        set_cookie(response, SESSION_COOKIE, security.new_token())
        return response

    async def log_out(request: Request, cookie: str, back: str, login: str):
        """End the server-side session (a copied cookie stops working too) and forget the cookies
        (a CSRF-checked POST, so no other site can log anyone out)."""
        form = await request.form()
        if not csrf_ok(request, form):
            return message(request, 403, "Session expired", "Open the page again.", (back, "Back"))
        await run_in_threadpool(with_session, lambda s: store.close_web_session(s, request.cookies.get(cookie)))
        response = RedirectResponse(login, status_code=303)
        response.delete_cookie(cookie, path="/")
        response.delete_cookie(SESSION_COOKIE, path="/")  # the next page starts a fresh CSRF session
        return response

    @app.post("/logout")
    async def logout(request: Request):
        return await log_out(request, LABELER_COOKIE, "/label", "/login")

    def label_page(s: Session, request: Request, labeler: Labeler, status: int = 200, error: str | None = None,
                   saved: bool = False, form_values: dict | None = None):
        served = store.next_item(s, labeler)
        campaign = s.get(Campaign, labeler.campaign_id)
        config = store.campaign_config(campaign)
        prog = store.progress(s, labeler)
        if served is None:
            return page(request, "done.html", labeler=labeler, campaign=campaign, progress=prog, saved=saved)
        return page(request, "label.html", status, labeler=labeler, campaign=campaign, config=config,
                    item=item_view(served, config), progress=prog, error=error, saved=saved,
                    submission_id=uuid.uuid4().hex, levels=CONFIDENCE_LEVELS, values=form_values or {})

    @app.get("/label")
    def label_get(request: Request):
        with sessions() as s:
            labeler = labeler_from_cookie(s, request)
            if labeler is None:
                return RedirectResponse("/login", status_code=303)
            return label_page(s, request, labeler, saved=request.query_params.get("saved") == "1")

    @app.post("/label")
    async def label_post(request: Request):
        if not await _form_is_utf8(request):
            return message(request, 400, "Not saved", "The form's text was not valid UTF-8; nothing was saved. "
                           "Reload the page and label the item again.", ("/label", "Reload"))
        form = await request.form(max_fields=50, max_files=0)
        return await run_in_threadpool(_label_post, request, form)

    def _label_post(request: Request, form):
        with sessions() as s:
            labeler = labeler_from_cookie(s, request)
            if labeler is None:
                return message(request, 401, "Not signed in", "Your session ended or your token was revoked.",
                               ("/login", "Log in"))
            if not csrf_ok(request, form):
                return message(request, 403, "Session expired", "The form was stale or came from another "
                               "site; nothing was saved. Reload the page and label the item again.",
                               ("/label", "Reload"))
            campaign = s.get(Campaign, labeler.campaign_id)
            try:
                answer = _form_answer(campaign.task, form)
                store.submit(s, labeler, form.get("item_id"), form.get("submission_id"), answer)
            except store.NotInQueue as err:
                return message(request, 404, "Not your item", f"{err}; nothing was saved.", ("/label", "Continue"))
            except store.AlreadyLabeled as err:
                return message(request, 409, "Already labeled", f"{err}; your first label stands.",
                               ("/label", "Continue"))
            except store.InvalidInput as err:
                return label_page(s, request, labeler, 422, error=f"Not saved: {err}", form_values=dict(form))
            # Acknowledged only now, after the commit: Post/Redirect/Get to the next item.
            return RedirectResponse("/label?saved=1", status_code=303)

    # --- admin pages ---------------------------------------------------------------------------------------

    def is_admin(s: Session, request: Request) -> bool:
        return store.session_is_admin(s, request.cookies.get(ADMIN_COOKIE))

    @app.get("/admin/login")
    def admin_login_page(request: Request):
        return page(request, "login.html", admin=True, error=None)

    @app.post("/admin/login")
    async def admin_login(request: Request):
        form = await request.form()
        if not csrf_ok(request, form):
            return message(request, 403, "Session expired", "Open the login page again.",
                           ("/admin/login", "Log in"))
        token = (form.get("token") if isinstance(form.get("token"), str) else "").strip()

        def sign_in(s: Session) -> str | None:
            if not store.admin_ok(s, token):
                return None
            return store.open_web_session(s, "admin", security.hash_token(token))

        cookie = await run_in_threadpool(with_session, sign_in)
        if cookie is None:
            return page(request, "login.html", 401, admin=True, error="Wrong admin token.")
        return signed_in("/admin", ADMIN_COOKIE, cookie)

    @app.post("/admin/logout")
    async def admin_logout(request: Request):
        return await log_out(request, ADMIN_COOKIE, "/admin", "/admin/login")

    def dashboard_data(s: Session) -> list[dict[str, Any]]:
        out = []
        for campaign in s.scalars(select(Campaign).order_by(Campaign.id)):
            out.append({"campaign": campaign, "config": store.campaign_config(campaign),
                        "counts": store.counts(s, campaign), "quality": store.quality(s, campaign),
                        "unrenderable": store.unrenderable(s, campaign)})
        return out

    @app.get("/admin")
    def admin(request: Request):
        with sessions() as s:
            if not is_admin(s, request):
                return RedirectResponse("/admin/login", status_code=303)
            return page(request, "admin.html", campaigns=dashboard_data(s), now=time.time())

    def export_response(s: Session, name: str) -> Response:
        try:
            campaign = store.get_campaign(s, name)
        except StudioError as err:
            return JSONResponse({"detail": str(err)}, status_code=404)
        body = "".join(r.model_dump_json() + "\n" for r in store.export_records(s, campaign))
        return Response(body, media_type="application/x-ndjson",
                        headers={"content-disposition": f'attachment; filename="{campaign.name}.jsonl"'})

    @app.get("/admin/campaigns/{name}/export.jsonl")
    def admin_export(request: Request, name: str):
        with sessions() as s:
            if not is_admin(s, request):
                return RedirectResponse("/admin/login", status_code=303)
            return export_response(s, name)

    # --- JSON API ------------------------------------------------------------------------------------------

    def api_error(status: int, detail: str) -> JSONResponse:
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    def api_labeler(s: Session, request: Request) -> Labeler | None:
        return store.find_labeler(s, _bearer(request))

    @app.get("/api/v1/next")
    def api_next(request: Request):
        with sessions() as s:
            labeler = api_labeler(s, request)
            if labeler is None:
                return api_error(401, "a valid labeler token is required (Authorization: Bearer TOKEN)")
            served = store.next_item(s, labeler)
            campaign = s.get(Campaign, labeler.campaign_id)
            config = store.campaign_config(campaign)
            prog = store.progress(s, labeler)
            view = item_view(served, config) if served else None
            return {"item": view, "progress": {"done": prog.done, "remaining": prog.remaining},
                    "campaign": {"name": campaign.name, "task": config.task, "instructions": config.instructions,
                                 "scale": config.scale, "categories": config.categories,
                                 "severities": config.severities}}

    @app.get("/api/v1/progress")
    def api_progress(request: Request):
        with sessions() as s:
            labeler = api_labeler(s, request)
            if labeler is None:
                return api_error(401, "a valid labeler token is required (Authorization: Bearer TOKEN)")
            prog = store.progress(s, labeler)
            return {"done": prog.done, "remaining": prog.remaining}

    @app.post("/api/v1/labels")
    async def api_label(request: Request):
        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):  # not JSON or UTF-8; a 5,000-digit number; nesting past the stack
            return api_error(400, "the body must be a JSON object {item_id, submission_id, answer} (numbers of at "
                                  "most 4,300 digits, nested less than about 1,000 levels)")
        if not isinstance(body, dict):
            return api_error(400, "the body must be a JSON object {item_id, submission_id, answer}")
        unknown = set(body) - {"item_id", "submission_id", "answer"}
        if unknown:
            return api_error(422, f"unknown fields: {', '.join(sorted(unknown))}")
        return await run_in_threadpool(_api_label, request, body)

    def _api_label(request: Request, body: dict):
        with sessions() as s:
            labeler = api_labeler(s, request)
            if labeler is None:
                return api_error(401, "a valid labeler token is required (Authorization: Bearer TOKEN)")
            try:
                done = store.submit(s, labeler, body.get("item_id"), body.get("submission_id"), body.get("answer"))
            except store.InvalidInput as err:
                return api_error(422, str(err))
            except store.NotInQueue as err:
                return api_error(404, str(err))
            except store.AlreadyLabeled as err:
                return api_error(409, str(err))
            # The commit is done: this response is the acknowledgement.
            return JSONResponse({"label_id": done.label_id, "duplicate": done.duplicate},
                                status_code=200 if done.duplicate else 201)

    @app.get("/api/v1/admin/campaigns")
    def api_campaigns(request: Request):
        with sessions() as s:
            if not store.admin_ok(s, _bearer(request)):
                return api_error(401, "the admin token is required (Authorization: Bearer TOKEN)")
            return [campaign_summary(d) for d in dashboard_data(s)]

    @app.get("/api/v1/admin/campaigns/{name}/export")
    def api_export(request: Request, name: str):
        with sessions() as s:
            if not store.admin_ok(s, _bearer(request)):
                return api_error(401, "the admin token is required (Authorization: Bearer TOKEN)")
            return export_response(s, name)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)  # browsers ask; an empty answer keeps the console clean

    @app.get("/healthz")
    def healthz():
        with sessions() as s:
            s.execute(text("SELECT 1"))
        return {"ok": True}

    @app.get("/static/{name}")
    def static(name: str):
        if name not in STATIC:  # a fixed list: no path ever reaches the file system from a URL
            return PlainTextResponse("not found", status_code=404)
        body = resources.files("superalign.studio").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"cache-control": "public, max-age=3600"})

    return app


def campaign_summary(d: dict[str, Any]) -> dict[str, Any]:
    """A campaign's counts and quality as JSON (the API's and the CLI's view of the dashboard)."""
    import dataclasses

    def clean(x):
        if isinstance(x, float) and math.isnan(x):
            return None
        if dataclasses.is_dataclass(x):
            return {k: clean(v) for k, v in dataclasses.asdict(x).items()}
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return {"name": d["campaign"].name, "task": d["campaign"].task, "counts": clean(d["counts"]),
            "quality": clean(d["quality"]),
            "unrenderable": [{"item": key, "reason": why} for key, why in d.get("unrenderable", [])]}
