"""The console's HTTP surface: a thin FastAPI router. GET renders a page; POST acts, then redirects.

Every action checks, in order: the Host header, the Origin (or Referer), the key's role, the
session's CSRF token; then it calls the function the command line calls (pipeline,
eval.verdicts, eval.signoff) as the key's name, and sends the browser back to the page with
what happened. Nothing here decides anything about releases or reviews.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from slmkit import __version__
from slmkit.charts import esc
from slmkit.config import ProjectConfig
from slmkit.errors import RegistryError, SlmkitError
from slmkit.registry import Registry
from slmkit.ui import history, monitoring, overview, releases, review, traffic
from slmkit.ui.context import Context
from slmkit.ui.layout import page
from slmkit.ui.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Refused,
    Sessions,
    Visitor,
    check_csrf,
    check_host,
    check_origin,
    new_token,
    require_role,
)

MAX_FORM_BYTES = 64 * 1024
# No script anywhere; styles are inline; frames only from the console itself (the data card).
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "SAMEORIGIN",
}


def create_app(config: ProjectConfig, allowed_hosts: set[str]) -> FastAPI:
    """The console for one project; `allowed_hosts` are the Host headers it answers (see security)."""
    app = FastAPI(title="slmkit console", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    sessions = Sessions(config.state_dir / "keys.db")
    app.state.sessions = sessions  # closed by the server when it stops
    views = monitoring.Views(config)
    app.state.monitor_views = views  # closed by the server when it stops
    app.state.allowed_hosts = allowed_hosts

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            check_host(request.headers.get("host"), app.state.allowed_hosts)
            response = await call_next(request)
        except Refused as exc:
            response = _html(_refused_page(exc, Visitor()), exc.status)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return _html(_refused_page(exc, visitor_of(request)), exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, exc: RequestValidationError) -> Response:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        refused = Refused(400, f"cannot read the address: {where or 'a parameter'} is not valid")
        return _html(_refused_page(refused, visitor_of(request)), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 405:
            message = "method not allowed: actions are POST forms on the console's pages, never GET"
        return _html(_refused_page(Refused(exc.status_code, message), Visitor()), exc.status_code)

    def visitor_of(request: Request) -> Visitor:
        return sessions.visitor(request.cookies.get(SESSION_COOKIE))

    def render(request: Request, draw: Callable[[Context], str]) -> Response:
        """A page from an open registry; a missing record is 404, another user error 400, each as a page."""
        visitor = visitor_of(request)
        shown = sessions.pop_flash(visitor.session)
        ctx = Context(config, Registry(config.state_dir), visitor)
        if shown:
            kind, text, ctx.error_item = shown
            ctx.done, ctx.error = (text, None) if kind == "done" else (None, text)
        try:
            return _html(draw(ctx))
        except SlmkitError as exc:
            code = 404 if isinstance(exc, RegistryError) else 400  # on a page, a registry error is a missing record
            return _html(
                _refused_page(Refused(code, exc.message + (f" ({exc.hint})" if exc.hint else "")), visitor), code
            )
        finally:
            ctx.registry.close()

    # --- pages (GET: read only) -------------------------------------------------------

    @app.get("/")
    def index(request: Request) -> Response:
        return render(request, overview.overview)

    @app.get("/datasets")
    def datasets(request: Request) -> Response:
        return render(request, history.datasets)

    @app.get("/datasets/{version}")
    def dataset(request: Request, version: str) -> Response:
        return render(request, lambda ctx: history.dataset(ctx, version))

    @app.get("/datasets/{version}/card")
    def card(request: Request, version: str) -> Response:
        return render(request, lambda ctx: history.data_card(ctx, version))

    @app.get("/runs")
    def runs(request: Request, page: int = 0) -> Response:
        return render(request, lambda ctx: history.runs(ctx, max(page, 0)))

    @app.get("/runs/{run_id}")
    def run(request: Request, run_id: str) -> Response:
        return render(request, lambda ctx: history.run(ctx, run_id))

    @app.get("/runs/{run_id}/eval")
    def evaluation(request: Request, run_id: str) -> Response:
        return render(request, lambda ctx: history.evaluation(ctx, run_id))

    @app.get("/releases")
    def release_list(request: Request) -> Response:
        return render(request, releases.releases)

    @app.get("/releases/diff")
    def diff(request: Request, a: int, b: int) -> Response:
        return render(request, lambda ctx: releases.diff(ctx, a, b))

    @app.get("/releases/{version}")
    def release(request: Request, version: int) -> Response:
        return render(request, lambda ctx: releases.release(ctx, version))

    @app.get("/monitoring")
    def monitoring_page(request: Request, span: str = "24h", release: str | None = None, refresh: int = 30) -> Response:
        return render(request, lambda ctx: monitoring.monitoring(ctx, views, span, release, refresh))

    @app.get("/audit")
    def audit(request: Request, page: int = 0, all: int = 0) -> Response:
        return render(request, lambda ctx: releases.audit(ctx, max(page, 0), bool(all)))

    @app.get("/review")
    def review_page(request: Request, release: str | None = None) -> Response:
        return render(request, lambda ctx: review.review(ctx, release))

    @app.get("/review/traffic")
    def traffic_page(request: Request) -> Response:
        return render(request, traffic.traffic)

    @app.get("/login")
    def login_page(request: Request) -> Response:
        token = request.cookies.get(LOGIN_COOKIE) or new_token()
        body = (
            "<p>Paste an API key (<code>slmkit serve keys add NAME --role reviewer --role releaser</code> prints "
            "one). Without a key the console is read-only.</p>"
            '<form method="post" action="/login" class="act">'
            f'<input type="hidden" name="csrf" value="{esc(token)}">'
            '<label>API key <input type="password" name="token" size="60" autocomplete="off" required></label> '
            "<button type=submit class=primary>log in</button></form>"
        )
        response = _html(page("Log in", body, visitor_of(request)))
        _cookie(response, LOGIN_COOKIE, token, max_age=3600)
        return response

    # --- actions (POST only) ------------------------------------------------------------

    async def form_of(
        request: Request, expected_csrf: Callable[[], str], role: tuple[Visitor, str] | None = None
    ) -> dict[str, str]:
        """The checked form of a POST: same origin, the role (when one is named), size bound, CSRF token."""
        check_origin(request.headers.get("host", ""), request.headers.get("origin"), request.headers.get("referer"))
        if role is not None:
            require_role(*role)
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "form too large")
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        check_csrf(expected_csrf(), form.get("csrf"))
        return form

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await form_of(request, lambda: request.cookies.get(LOGIN_COOKIE, ""))
        session, _ = await run_in_threadpool(sessions.login, form.get("token", ""))
        response = RedirectResponse("/", status_code=303)
        _cookie(response, SESSION_COOKIE, session, max_age=SESSION_SECONDS)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        visitor = visitor_of(request)
        await form_of(request, lambda: visitor.csrf)
        sessions.logout(visitor.session)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def act(request: Request, role: str, back: str, do: Callable[[Visitor, dict[str, str]], str]) -> Response:
        """Check the POST and the role, run `do` (it returns what happened), and redirect to `back`."""
        visitor = visitor_of(request)
        form = await form_of(request, lambda: visitor.csrf, (visitor, role))
        try:
            sessions.set_flash(visitor.session, "done", await run_in_threadpool(do, visitor, form))
        except SlmkitError as exc:
            message = exc.message + (f" ({exc.hint})" if exc.hint else "")
            sessions.set_flash(visitor.session, "error", message, form.get("item"))
        if "item" in form:  # back to the item answered
            back += f"#item-{quote(form['item'])}"
        return RedirectResponse(back, status_code=303)

    @app.post("/actions/review/{version}/verdict")
    async def verdict(request: Request, version: int) -> Response:
        def do(visitor: Visitor, form: dict[str, str]) -> str:
            from slmkit.eval.verdicts import answer_item, correction_from_form, review_queue

            item, answer = form.get("item", ""), form.get("verdict", "")
            with Registry(config.state_dir) as registry:
                correction = None
                if answer == "correct":
                    task = review_queue(config, registry, str(version)).task
                    fields = {k.removeprefix("field."): v for k, v in form.items() if k.startswith("field.")}
                    correction = correction_from_form(task, fields)
                recorded = answer_item(
                    config, registry, str(version), item, answer, correction=correction,
                    note=form.get("note", ""), reviewer=visitor.actor,
                )  # fmt: skip
            return f"item {recorded.item_id}: {recorded.verdict} recorded for {recorded.name}@{recorded.version}"

        return await act(request, "reviewer", f"/review?release={version}", do)

    @app.post("/actions/review/traffic/answer")
    async def traffic_answer(request: Request) -> Response:
        def do(visitor: Visitor, form: dict[str, str]) -> str:
            from slmkit.eval.verdicts import correction_from_form
            from slmkit.monitor.requests import RequestLog
            from slmkit.monitor.review_import import answer_item as answer_traffic_item
            from slmkit.task import Task

            item, answer = form.get("item", ""), form.get("verdict", "")
            correction = None
            if answer == "correct":
                fields = {k.removeprefix("field."): v for k, v in form.items() if k.startswith("field.")}
                correction = correction_from_form(Task.from_config(config), fields)
            with Registry(config.state_dir) as registry, RequestLog(config.state_dir / "requests.db") as log:
                recorded = answer_traffic_item(
                    config, log, registry, item, answer, correction=correction,
                    note=form.get("note", ""), reviewer=visitor.actor, via="console",
                )  # fmt: skip
            return f"{item}: {recorded.verdict} recorded; .slmkit/reviewed.jsonl updated"

        return await act(request, "reviewer", "/review/traffic", do)

    @app.post("/actions/review/{version}/signoff")
    async def signoff(request: Request, version: int) -> Response:
        def do(visitor: Visitor, form: dict[str, str]) -> str:
            from slmkit.eval.signoff import sign_off

            with Registry(config.state_dir) as registry:
                return sign_off(config, registry, str(version), reviewer=visitor.actor).lines()[0]

        return await act(request, "reviewer", f"/review?release={version}", do)

    @app.post("/actions/rollback")
    async def rollback(request: Request) -> Response:
        def do(visitor: Visitor, form: dict[str, str]) -> str:
            from slmkit.pipeline import rollback_alias

            to, said = _version(form.get("to", "")), list[str]()
            before, after = rollback_alias(config, to=to, reason=_reason(form), actor=visitor.actor, log=said.append)
            return "; ".join([f"{config.task.name}@{config.release.alias}: {before} -> {after}", *said])

        return await act(request, "releaser", "/releases", do)

    @app.post("/actions/promote")
    async def promote(request: Request) -> Response:
        def do(visitor: Visitor, form: dict[str, str]) -> str:
            from slmkit.pipeline import promote_alias

            version = _version(form.get("version", ""))
            if version is None:
                raise RegistryError("which release? the form sent no version")
            said: list[str] = []
            before, after = promote_alias(config, version, reason=_reason(form), actor=visitor.actor, log=said.append)
            return "; ".join([f"{config.task.name}@{config.release.alias}: {before} -> {after}", *said])

        return await act(request, "releaser", "/releases", do)

    return app


def _reason(form: dict[str, str]) -> str:
    reason = form.get("reason", "").strip()
    if not reason:
        raise RegistryError("say why: the reason is kept in the audit log")
    return reason


def _version(text: str) -> int | None:
    text = text.strip().removeprefix("v")
    if not text:
        return None
    if not text.isdigit():
        raise RegistryError(f"{text!r} is not a release version", hint="write a number, e.g. 2")
    return int(text)


def _html(text: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status_code)


def _refused_page(exc: Refused, visitor: Visitor) -> str:
    return page(
        f"{exc.status}: refused" if exc.status in (401, 403) else f"{exc.status}",
        f'<div class="flash error">{esc(exc.message)}</div><p><a href="/">overview</a></p>',
        visitor,
    )


def _cookie(response: Response, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict")
