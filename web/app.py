"""The web app's routes (Starlette), over ``WebNode`` and the pure parts of this package.

Pages are rendered on the server with Jinja2 (autoescape on for every template), so
the browser runs only the package's one small script (static/app.js): live updates
by server-sent events, the geolocation button, the item rows of the incident form.
Each page has one live region (``<div id="live" data-areas=...>``); when the event
stream names one of its areas, the script fetches the same URL with ``X-Partial:
live`` and swaps that region in, so a slow link carries a few kilobytes per change,
not the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from schemas import Agency, BloError, Category, Crime, Incident, Lang, Severity, Unit
from web.live import Watcher, changed, sse
from web.node import PhotoUpload, WebNode
from web.security import BindPolicy, Sessions, host_allowed, security_headers, verify_password
from web.svgmap import HEIGHT, WIDTH, borders_svg
from web.views import UI, inbox_rows, map_points, message_view, office_points

__all__ = ["COOKIE", "MAX_UPLOAD", "WebApp", "render"]

log = logging.getLogger("blo.web")

COOKIE = "blo_session"
#: The largest request body taken (photos from a phone: a few MB each).
MAX_UPLOAD = 48 * 2**20
_PHOTOS_MAX = 8

_env = Environment(
    loader=PackageLoader("web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context: Any) -> str:
    """A page (or, with ``partial=True``, its live region) as HTML, every value escaped."""
    context.setdefault("partial", False)
    return _env.get_template(template).render(**context)


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class _Guard:
    """ASGI middleware: the Host check, the security headers, the body size limit."""

    def __init__(self, app: ASGIApp, policy: BindPolicy) -> None:
        self.app = app
        self.policy = policy
        self.headers = [
            (k.lower().encode(), v.encode()) for k, v in security_headers(policy.tls).items()
        ]

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        length = headers.get(b"content-length", b"0")
        refusal = None
        if not host_allowed(host, self.policy):
            refusal = (421, f"this page is served to 127.0.0.1 only, not to {host!r}")
        elif length.isdigit() and int(length) > MAX_UPLOAD:
            refusal = (413, f"request over {MAX_UPLOAD // 2**20} MB: send fewer or smaller photos")
        if refusal:
            response = PlainTextResponse(refusal[1], status_code=refusal[0])
            await self._send_with_headers(response, scope, receive, send)
            return

        async def send_wrapped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await self.app(scope, receive, send_wrapped)

    async def _send_with_headers(
        self,
        response: Response,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        async def send_wrapped(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await response(scope, receive, send_wrapped)


@dataclass(frozen=True, slots=True)
class _Visit:
    """Who is asking: the session, its user (empty before a login) and its language."""

    sid: str
    user: str
    lang: Lang
    cookie: str | None  # set on the response when the session is new


class WebApp:
    """The Starlette application for one node; ``app`` is the ASGI callable."""

    def __init__(
        self,
        node: WebNode,
        policy: BindPolicy,
        *,
        logins: dict[str, str] | None = None,
        secret: bytes | None = None,
        watch_period: float = 0.3,
    ) -> None:
        self.node = node
        self.policy = policy
        self.logins = logins or {}
        self.sessions = Sessions(secret or secrets.token_bytes(32))
        self.watcher = Watcher(node.folder, watch_period)
        self._stopping = False
        routes = [
            Route("/", self.home),
            Route("/m/{msg_id}", self.message),
            Route("/report", self.report, methods=["GET", "POST"]),
            Route("/bulletin", self.bulletin, methods=["GET", "POST"]),
            Route("/compose", self.compose, methods=["GET", "POST"]),
            Route("/trends", self.trends),
            Route("/trends/{name}", self.trend_plot),
            Route("/photo/{msg_id}/{number:int}", self.photo),
            Route("/map/borders.svg", self.borders),
            Route("/events", self.events),
            Route("/lang/{code}", self.language),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Mount("/static", StaticFiles(packages=[("web", "static")]), name="static"),
        ]
        self.app = _Guard(
            Starlette(
                routes=routes,
                middleware=[Middleware(GZipMiddleware, minimum_size=1024)],
                lifespan=self._lifespan,
            ),
            policy,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.watcher.start()
        try:
            yield
        finally:
            self._stopping = True
            self.watcher.stop()

    # -- sessions, CSRF, pages -------------------------------------------------------------

    def _visit(self, request: Request) -> _Visit:
        found = self.sessions.read(request.cookies.get(COOKIE))
        sid, user = found if found else (Sessions.new_id(), "")
        code = request.cookies.get("blo_lang", "en")
        lang = Lang.KM if code == "km" else Lang.EN
        return _Visit(sid, user, lang, None if found else self.sessions.cookie(sid))

    def _set_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE, value, httponly=True, samesite="strict", secure=self.policy.tls, path="/"
        )

    def _needs_login(self, visit: _Visit) -> bool:
        return bool(self.logins) and not visit.user

    def _page(
        self, request: Request, visit: _Visit, template: str, code: int = 200, **context: Any
    ) -> Response:
        partial = request.headers.get("x-partial") == "live"
        html = render(
            template,
            partial=partial,
            node=self.node.node,
            role=self.node.role.value,
            hq=self.node.hq_view,
            lang=visit.lang.value,
            ui=UI[visit.lang.value],
            csrf=self.sessions.csrf_token(visit.sid),
            path=request.url.path,
            login=bool(self.logins),
            user=visit.user,
            **context,
        )
        response = HTMLResponse(html, status_code=code)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Vary"] = "X-Partial"
        if visit.cookie:
            self._set_cookie(response, visit.cookie)
        return response

    async def _form(self, request: Request, visit: _Visit) -> FormData:
        """The request's form, once its CSRF token is its session's (else 403)."""
        form = await request.form(max_files=_PHOTOS_MAX, max_fields=200)
        token = form.get("csrf") or request.headers.get("x-csrf-token")
        if visit.cookie is not None or not self.sessions.csrf_ok(visit.sid, str(token or "")):
            raise HTTPException(
                403,
                "this form's security token is missing or stale: reload the page and send again",
            )
        return form

    def _gate(self, request: Request) -> tuple[_Visit, Response | None]:
        visit = self._visit(request)
        if self._needs_login(visit):
            response: Response = RedirectResponse("/login", status_code=303)
            if visit.cookie:
                self._set_cookie(response, visit.cookie)
            return visit, response
        return visit, None

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(func, *args)

    # -- the pages -------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        visit, gate = self._gate(request)
        if gate:
            return gate
        if self.node.hq_view:
            return self._page(
                request, visit, "hq.html", **await self._run(self._hq, request, visit)
            )
        return self._page(request, visit, "officer.html", **await self._run(self._officer, visit))

    def _officer(self, visit: _Visit) -> dict[str, Any]:
        node = self.node
        now = node.clock()
        rows = inbox_rows(node.messages(), visit.lang, now, node.inbox.cancelled())
        return {"rows": rows, "status": node.status(), "unread": sum(r.unread for r in rows)}

    def _hq(self, request: Request, visit: _Visit) -> dict[str, Any]:
        node = self.node
        wanted = request.query_params.get("alert", "")
        matrices = node.matrices(visit.lang, wanted)
        first = matrices[0] if matrices else None
        shown = next((m for m in matrices if m.totals.id == wanted), first)
        incidents = node.incidents(visit.lang)
        offices = node.office_rows()
        return {
            "alerts": [m.totals for m in matrices],
            "shown": shown,
            "offices": offices,
            "office_points": office_points(offices),
            "incidents": incidents,
            "points": map_points(incidents),
            "map_w": WIDTH,
            "map_h": HEIGHT,
            "status": node.status(),
        }

    async def message(self, request: Request) -> Response:
        visit, gate = self._gate(request)
        if gate:
            return gate
        msg_id = request.path_params["msg_id"]
        # Opening the page is reading the message, as 'blo-sub show' is: only for a
        # person's own navigation, never a fetch or another site's link or image.
        site = request.headers.get("sec-fetch-site", "none")
        mode = request.headers.get("sec-fetch-mode", "navigate")
        reading = site in ("none", "same-origin") and mode == "navigate"
        opener = self.node.open if reading else self.node.find
        item = await self._run(opener, msg_id)
        if item is None:
            return self._page(request, visit, "missing.html", code=404, what=msg_id)
        view = message_view(item, visit.lang, self.node.clock(), self.node.inbox.cancelled())
        replaced_by = await self._run(self.node.replaced_by, item.msg_id)
        photos = []
        body = item.body
        if isinstance(body, Incident) and body.attachments:
            from subscriber.photos import photo_states

            photos = [
                (s.number, s.state, s.path is not None)
                for s in photo_states(body, self.node.folder)
            ]
        return self._page(
            request, visit, "message.html", m=view, replaced_by=replaced_by, photos=photos
        )

    async def report(self, request: Request) -> Response:
        visit, gate = self._gate(request)
        if gate:
            return gate
        context: dict[str, Any] = {
            "crimes": [c.value for c in Crime],
            "agencies": [a.value for a in Agency],
            "units": [u.value for u in Unit],
            "values": {},
            "status": await self._run(self.node.status),
        }
        if request.method == "POST":
            form = await self._form(request, visit)
            values = {k: str(v) for k, v in form.items() if not isinstance(v, UploadFile)}
            items = [
                {
                    k: str(form.get(f"{k}_{i}", ""))
                    for k in ("substance", "quantity", "unit", "form")
                }
                for i in range(1, 7)
            ]
            photos = []
            for upload in form.getlist("photo"):
                if isinstance(upload, UploadFile) and upload.filename:
                    photos.append(PhotoUpload(upload.filename, await upload.read()))
            agencies = [str(a) for a in form.getlist("agency")]
            try:
                done = await self._run(self.node.report_incident, values, items, agencies, photos)
            except BloError as exc:
                return self._page(
                    request,
                    visit,
                    "report.html",
                    code=400,
                    error=str(exc),
                    **{**context, "values": values},
                )
            return self._page(
                request,
                visit,
                "report.html",
                sent=done.queued.msg_id.hex(),
                photos_sent=len(photos),
                **context,
            )
        return self._page(request, visit, "report.html", **context)

    async def bulletin(self, request: Request) -> Response:
        visit, gate = self._gate(request)
        if gate:
            return gate
        context: dict[str, Any] = {
            "counterparts": await self._run(self.node.counterparts),
            "categories": [c.value for c in Category],
            "values": {},
        }
        if request.method == "POST":
            form = await self._form(request, visit)
            values = {k: str(v) for k, v in form.items()}
            try:
                done = await self._run(self.node.send_bulletin, values)
            except BloError as exc:
                return self._page(
                    request,
                    visit,
                    "bulletin.html",
                    code=400,
                    error=str(exc),
                    **{**context, "values": values},
                )
            return self._page(
                request, visit, "bulletin.html", sent=done.queued.msg_id.hex(), **context
            )
        return self._page(request, visit, "bulletin.html", **context)

    async def compose(self, request: Request) -> Response:
        visit, gate = self._gate(request)
        if gate:
            return gate
        sent_alerts = await self._run(self.node.sent_alerts)
        context: dict[str, Any] = {
            "scopes": await self._run(self.node.alert_scopes),
            "categories": [c.value for c in Category],
            "severities": [s.value for s in Severity],
            "earlier": [
                (q.msg_id.hex(), b.text.get(Lang.EN) or next(iter(b.text.values())))
                for q, b in sent_alerts[:20]
            ],
            "values": {},
        }
        if request.method == "POST":
            form = await self._form(request, visit)
            values = {k: str(v) for k, v in form.items()}
            try:
                done = await self._run(self.node.compose_alert, values)
            except BloError as exc:
                return self._page(
                    request,
                    visit,
                    "compose.html",
                    code=400,
                    error=str(exc),
                    **{**context, "values": values},
                )
            return self._page(
                request, visit, "compose.html", sent=done.queued.msg_id.hex(), **context
            )
        return self._page(request, visit, "compose.html", **context)

    async def trends(self, request: Request) -> Response:
        visit, gate = self._gate(request)
        if gate:
            return gate
        view = await self._run(self.node.trends, visit.lang.value)
        return self._page(request, visit, "trends.html", t=view)

    async def trend_plot(self, request: Request) -> Response:
        _visit, gate = self._gate(request)
        if gate:
            return gate
        path = self.node.trend_plot(request.path_params["name"])
        if path is None:
            raise HTTPException(404, "no such plot")
        return FileResponse(path, media_type="image/png")

    async def photo(self, request: Request) -> Response:
        _visit, gate = self._gate(request)
        if gate:
            return gate
        preview = request.query_params.get("size") == "preview"
        path = await self._run(
            lambda: self.node.photo_file(
                request.path_params["msg_id"], request.path_params["number"], preview=preview
            )
        )
        if path is None:
            raise HTTPException(404, "that photo is not here (yet)")
        media = "image/png" if path.suffix == ".png" else "image/jpeg"
        return FileResponse(
            path, media_type=media, headers={"Cache-Control": "private, max-age=300"}
        )

    async def borders(self, request: Request) -> Response:
        return Response(
            borders_svg(),
            media_type="image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    async def language(self, request: Request) -> Response:
        code = request.path_params["code"]
        target = request.query_params.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"  # only a page of this app: no open redirect
        response = RedirectResponse(target, status_code=303)
        response.set_cookie("blo_lang", "km" if code == "km" else "en", samesite="strict", path="/")
        return response

    async def events(self, request: Request) -> Response:
        _visit, gate = self._gate(request)
        if gate:
            return PlainTextResponse("log in first", status_code=401)

        async def stream() -> AsyncIterator[bytes]:
            seen = self.watcher.versions
            yield b"retry: 2000\n\n"
            quiet = 0.0
            while not self._stopping:
                await asyncio.sleep(0.25)
                if await request.is_disconnected():
                    return
                now = self.watcher.versions
                moved = changed(seen, now)
                if moved:
                    seen = now
                    quiet = 0.0
                    yield sse("change", " ".join(moved))
                else:
                    quiet += 0.25
                    if quiet >= 15:
                        quiet = 0.0
                        yield b": still here\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def login(self, request: Request) -> Response:
        visit = self._visit(request)
        if request.method == "POST":
            form = await self._form(request, visit)
            user = str(form.get("user", ""))
            stored = self.logins.get(user)
            password = str(form.get("password", ""))
            if stored is None or not verify_password(stored, password):
                return self._page(
                    request, visit, "login.html", code=401, error="wrong user or password"
                )
            response = RedirectResponse("/", status_code=303)
            # A new session id at login: a session fixed before it is worth nothing after.
            self._set_cookie(response, self.sessions.cookie(Sessions.new_id(), user))
            return response
        return self._page(request, visit, "login.html")

    async def logout(self, request: Request) -> Response:
        visit = self._visit(request)
        await self._form(request, visit)
        response = RedirectResponse("/login" if self.logins else "/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response
