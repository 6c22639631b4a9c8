"""``/console``: the marketer's console, server-rendered pages over the JSON routes' functions.

Pages (each URL carries its filters, so a view can be shared; every table has a CSV link,
``?format=csv&table=<name>``): ``overview``, ``inspector``, ``campaigns``, ``models``,
``audience``, ``listening``, ``care``. Log in with an API key (``read`` for read-only views,
``admin`` to change campaigns and promote models); see :mod:`.session` for the cookie and
CSRF rules. A read session's forms are shown disabled, and the server answers a POST from
one with 403 and a page saying why.
"""

from __future__ import annotations

import functools
import io
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from feedwise.errors import AuthError, FeedwiseError, NotFoundError
from feedwise.server.auth import ApiKey
from feedwise.server.console import views
from feedwise.server.console.session import (
    COOKIE,
    LOGIN_COOKIE,
    Session,
    cookie_args,
    csrf_ok,
    make_cookie,
    read_session,
)
from feedwise.server.routes import campaigns as campaign_routes
from feedwise.server.routes import models as model_routes

log = logging.getLogger("feedwise.server.console")
HERE = Path(__file__).parent
STATIC = {"console.js": "application/javascript", "console.css": "text/css"}
router = APIRouter(prefix="/console", include_in_schema=False)

_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True,
                   lstrip_blocks=True)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    if isinstance(v, float):
        return f"{v:,.4f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _figjson(chart: views.Chart) -> Markup:
    # inside <script type="application/json">: "</" would end the element
    return Markup(chart.json().replace("</", "<\\/"))


_env.filters["fmt"] = _fmt
_env.filters["figjson"] = _figjson


def _query(request: Request, **changes: Any) -> str:
    q = dict(request.query_params)
    q.pop("format", None)
    q.pop("table", None)
    q.update({k: v for k, v in changes.items() if v is not None})
    return urlencode(q)


def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    ctx.setdefault("session", None)
    ctx.setdefault("pages", views.TITLES)
    ctx.setdefault("errors", {})
    ctx.setdefault("message", None)
    ctx["request"] = request
    ctx["csv_url"] = lambda name: f"{request.url.path}?{_query(request, format='csv', table=name)}"
    html = _env.get_template(template).render(**ctx)
    return HTMLResponse(html, status_code=status,
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy":
                                     "default-src 'self'; script-src 'self' 'unsafe-eval'; "
                                     "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                     "frame-ancestors 'none'; form-action 'self'"})


def _login_redirect(request: Request) -> RedirectResponse:
    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/console/login?next={quote(nxt, safe='')}", status_code=303)


def _state(request: Request) -> Any:
    return request.app.state.feedwise


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (last value of each field)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _refuse(request: Request, session: Session, what: str) -> HTMLResponse:
    return render(request, "refused.html", status=403, session=session, title="Not allowed",
                  message=f"This session's key has the {', '.join(sorted(session.scopes))} "
                          f"scope: {what} needs a key with the admin scope. Log out and log "
                          "in with an admin key.")


def _check_post(request: Request, form: dict[str, str], what: str
                ) -> tuple[Session | None, Response | None]:
    session = read_session(request)
    if session is None:
        return None, _login_redirect(request)
    if not csrf_ok(session.csrf, form.get("csrf")):
        return session, render(request, "refused.html", status=403, session=session,
                               title="Form expired",
                               message="The form's security token did not match this "
                                       "session (an old tab, or a form from another site). "
                                       "Reload the page and submit again.")
    if not session.admin:
        return session, _refuse(request, session, what)
    return session, None


# ---------------------------------------------------------------------------- login
@router.get("", response_class=HTMLResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/console/overview", status_code=303)


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(404, "not found")
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                    headers={"Cache-Control": "public, max-age=3600"})


def _login_page(request: Request, status: int = 200, message: str | None = None,
                nxt: str = "/console/overview") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", status=status, title="Log in", message=message,
                  csrf=token, next=nxt)
    resp.set_cookie(LOGIN_COOKIE, token, max_age=3600, **cookie_args(request))
    return resp


def _safe_next(nxt: str | None) -> str:
    nxt = nxt or "/console/overview"
    return nxt if nxt.startswith("/console/") and not nxt.startswith("//") else \
        "/console/overview"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002
    views.warm(_state(request))  # the default views, computed while the key is typed
    return _login_page(request, nxt=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await _form(request)
    nxt = _safe_next(form.get("next"))
    if not csrf_ok(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
        return _login_page(request, 403, "The login form expired; try again.", nxt)
    state = _state(request)
    if not state.settings.auth_enabled:
        key = ApiKey("open", "", frozenset({"admin"}))
    else:
        try:
            key = state.keys.authenticate(form.get("key", "").strip())
        except AuthError:
            return _login_page(request, 401, "That API key is not valid (or was revoked).",
                               nxt)
    if not (key.allows("read")):
        return _login_page(request, 403, "This key has no read scope: the console needs a "
                                         "read or admin key.", nxt)
    value, _ = make_cookie(request, key)
    resp = RedirectResponse(nxt, status_code=303)
    resp.set_cookie(COOKIE, value, max_age=12 * 3600, **cookie_args(request))
    resp.delete_cookie(LOGIN_COOKIE, path="/console")
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    session = read_session(request)
    if session is not None and not csrf_ok(session.csrf, form.get("csrf")):
        return render(request, "refused.html", status=403, session=session,
                      title="Form expired", message="Reload the page and log out again.")
    resp = RedirectResponse("/console/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/console")
    return resp


# ---------------------------------------------------------------------------- pages
def _csv(page: views.Page, name: str | None, page_name: str) -> Response:
    table = page.table(name or "") if name else (page.tables[0] if page.tables else None)
    if table is None:
        raise HTTPException(404, f"no table {name!r} on this page; tables: "
                                 f"{', '.join(t.name for t in page.tables)}")
    buf = io.StringIO()
    table.frame.to_csv(buf, index=False)
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="{page_name}-{table.name}.csv"'})


def show(request: Request, name: str, *, status: int = 200, errors: dict | None = None,
         form: dict | None = None, message: str | None = None) -> Response:
    session = read_session(request)
    if session is None:
        return _login_redirect(request)
    state = _state(request)
    views.warm(state)
    q = dict(request.query_params)
    try:
        page = views.PAGES[name](state, q)
        problem = None
    except FeedwiseError as e:
        page, problem = views.Page(), str(e)
    if q.get("format") == "csv":
        if problem:
            raise HTTPException(422, problem)
        return _csv(page, q.get("table"), name)
    if name == "campaigns" and form is None:
        form = {}
        edit = q.get("edit")
        if edit:
            c = next((c for c in page.extra.get("campaigns", []) if c.campaign_id == edit),
                     None)
            if c is not None:
                form = views.campaign_form_values(c)
    if problem and status == 200:
        status = 422  # a filter the page cannot use: the page says which and why
    # pages of charts and tables only share one template; the others have their own
    template = "page.html" if name in ("care", "listening") else f"{name}.html"
    return render(request, template, status=status, session=session, page=page,
                  name=name, title=views.TITLES[name], q=q, problem=problem,
                  errors=errors or {}, form=form or {}, message=message,
                  served=state.served.version if state.served else None,
                  now=datetime.now(UTC))


def _page_route(name: str) -> None:
    def page(request: Request) -> Response:
        return show(request, name)

    page.__name__ = f"console_{name}"
    router.add_api_route(f"/{name}", page, methods=["GET"], response_class=HTMLResponse)


for _name in views.PAGES:
    _page_route(_name)


@router.get("/overview/alerts", response_class=HTMLResponse)
def overview_alerts(request: Request) -> Response:
    """The overview's alerts as an HTML fragment (the page loads it after itself), or CSV."""
    session = read_session(request)
    if session is None:
        return _login_redirect(request)
    q = dict(request.query_params)
    try:
        page = views.overview_alerts(_state(request), q)
    except FeedwiseError as e:
        raise HTTPException(422, str(e)) from None
    if q.get("format") == "csv":
        return _csv(page, "alerts", "overview")
    return render(request, "fragment.html", session=session, page=page, title="Alerts")


# ---------------------------------------------------------------------------- campaign forms
@router.post("/campaigns", response_class=HTMLResponse)
async def save_campaign(request: Request) -> Response:
    form = await _form(request)
    session, refused = _check_post(request, form, "creating or editing a campaign")
    if refused is not None:
        return refused
    cid, body, errors = views.campaign_body(form)
    if body is None:
        return await _threaded(show, request, "campaigns", status=422, errors=errors, form=form,
                    message="The campaign was not saved: correct the fields marked below.")
    state = _state(request)
    try:
        await _threaded(campaign_routes.put_campaign, cid, body, state, None)
        views.clear_cache()
    except HTTPException as e:
        return await _threaded(show, request, "campaigns", status=e.status_code, form=form,
                    errors={"end_at": str(e.detail)}, message=f"Not saved: {e.detail}")
    return RedirectResponse(f"/console/campaigns?saved={quote(cid)}", status_code=303)


@router.post("/campaigns/{campaign_id}/status", response_class=HTMLResponse)
async def campaign_status(campaign_id: str, request: Request) -> Response:
    form = await _form(request)
    session, refused = _check_post(request, form, "pausing or resuming a campaign")
    if refused is not None:
        return refused
    status = form.get("status")
    if status not in ("active", "paused"):
        return await _threaded(show, request, "campaigns", status=422,
                               message="status is active or paused")
    try:
        await _threaded(campaign_routes.patch_campaign, campaign_id,
                        campaign_routes.CampaignPatch(status=status), _state(request), None)
        views.clear_cache()
    except HTTPException as e:
        return await _threaded(show, request, "campaigns", status=e.status_code,
                               message=str(e.detail))
    return RedirectResponse(f"/console/campaigns?saved={quote(campaign_id)}", status_code=303)


# ---------------------------------------------------------------------------- models
@router.post("/models/promote", response_class=HTMLResponse)
async def promote(request: Request) -> Response:
    form = await _form(request)
    session, refused = _check_post(request, form, "promoting or rolling back a model")
    if refused is not None:
        return refused
    version = form.get("version", "")
    try:
        await _threaded(model_routes.promote, version, _state(request), None)
        views.clear_cache()
    except (HTTPException, NotFoundError) as e:
        return await _threaded(show, request, "models", status=404,
                    message=f"Not promoted: {getattr(e, 'detail', e)}")
    return RedirectResponse(f"/console/models?promoted={quote(version)}", status_code=303)


async def _threaded(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await run_in_threadpool(functools.partial(fn, *args, **kwargs))


__all__ = ["router"]
