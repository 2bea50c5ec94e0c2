"""The review web app (FastAPI). Security is the design, not a layer:

- every request but ``/login`` and ``/static`` needs an annotator token: the login link's ``?token=``
  becomes an HttpOnly, SameSite=Strict cookie (``Authorization: Bearer`` works for scripts); none → 401;
- an annotator reads and writes only their own assignments (someone else's is a 404, not confirmed);
- every write needs the session's CSRF token in ``X-CSRF-Token`` and a JSON body (403 / 415 otherwise);
- record text reaches the browser only as JSON and is put on the page with ``textContent``; the pages'
  Content-Security-Policy allows no inline script and nothing from outside the server, so even a bug that
  inserted record text as HTML could not run it;
- bound to a loopback address, requests must name a loopback Host (DNS rebinding);
- each write is one transaction with its history row (:mod:`datamill.review.answers`).
"""


import ipaddress
import json
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader
from sqlalchemy import select

from datamill.review import conflicts, queue
from datamill.review.active import REFIT_EVERY, Refitter
from datamill.review.answers import DECISIONS, BadAnswer, NotYours, submit
from datamill.review.i18n import STRINGS, pick
from datamill.review.schema import Annotator
from datamill.review.store import Project
from datamill.review.tokens import csrf_for, csrf_ok, hash_token

COOKIE = "datamill_review"
LANG_COOKIE = "datamill_lang"
MAX_BODY = 2 * 1024 * 1024
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
NO_STORE = [(b"cache-control", b"no-store")]
SHORTCUTS = {
    "sft": [("a", "k_accept"), ("e", "k_edit"), ("Ctrl+Enter", "k_save"), ("r", "k_reject")],
    "pairwise": [("1", "k_a"), ("2", "k_b"), ("t", "k_tie"), ("b", "k_both_bad")],
    "rating": [("1–9", "k_rate")],
    "label": [("1–9", "k_label")],
    "kto": [("a", "k_desirable"), ("r", "k_undesirable")],
}
COMMON_KEYS = [("j", "k_next"), ("k", "k_prev"), ("g", "k_guidelines"), ("?", "k_help"), ("Esc", "k_cancel")]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str:
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware: loopback Host only on a loopback bind (DNS rebinding), a bounded body with a
    Content-Length on writes, and the security headers on every response."""

    def __init__(self, app, local: bool):
        self.app = app
        self.local = local

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = None
        if self.local and not is_loopback(_host_of(headers.get("host", ""))):
            refusal = (400, "this server answers only on its loopback address")
        elif scope["method"] not in ("GET", "HEAD"):
            length = headers.get("content-length", "")
            if not length.isdigit():
                refusal = (411, "a write needs a Content-Length")
            elif int(length) > MAX_BODY:
                refusal = (413, f"request body over {MAX_BODY:,} bytes")
        static = scope["path"].startswith("/static/")

        async def send_secured(message) -> None:
            if message["type"] == "http.response.start":
                extra = SECURITY_HEADERS if static else SECURITY_HEADERS + NO_STORE
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        if refusal is not None:
            await JSONResponse({"detail": refusal[1]}, status_code=refusal[0])(scope, receive, send_secured)
        else:
            await self.app(scope, receive, send_secured)


def create_app(project: Project, *, local: bool = True, refit_every: int = REFIT_EVERY,
               auto_confidence: float | None = None, embedder: Any = None) -> FastAPI:  # fmt: skip
    """The app for one project. ``local``: the server is bound to loopback, so only loopback Host
    headers are answered. The learner is refit in the background after every ``refit_every`` new
    answers (from 20 decisions on); with ``auto_confidence`` each refit with a held-out accuracy
    auto-decides the open items it is that sure of."""
    app = FastAPI(title="datamill review", docs_url=None, redoc_url=None, openapi_url=None)
    refitter = Refitter(project, refit_every, auto_confidence, embedder)
    app.state.refitter = refitter
    env = Environment(loader=PackageLoader("datamill.review", "templates"), autoescape=True)
    secret = project.settings["secret"]
    app.mount("/static", StaticFiles(directory=str(files("datamill.review") / "static")), name="static")

    app.add_middleware(Guard, local=local)

    def lang_of(request: Request) -> str:
        wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
        if not wanted and request.headers.get("accept-language", "").lower().startswith("zh"):
            wanted = "zh"
        return pick(wanted)

    known: dict[str, Annotator] = {}  # token hash → annotator; people are added, never changed

    def find(token: str | None) -> Annotator | None:
        if not token or len(token) > 200:
            return None
        digest = hash_token(token)
        who = known.get(digest)
        if who is None:
            with project.read() as s:
                who = s.scalar(select(Annotator).where(Annotator.token_hash == digest))
            if who is not None:
                known[digest] = who
        return who

    def token_of(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.cookies.get(COOKIE)

    def user(request: Request) -> Annotator:
        who = find(token_of(request))
        if who is None:
            raise HTTPException(401, "sign in with your login link (or send Authorization: Bearer TOKEN)")
        return who

    def writer(request: Request, who: Annotated[Annotator, Depends(user)]) -> Annotator:
        if not csrf_ok(secret, who.token_hash, request.headers.get("x-csrf-token")):
            raise HTTPException(403, "missing or wrong X-CSRF-Token")
        if not request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
            raise HTTPException(415, "send the answer as application/json")
        return who

    def message(request: Request, status: int, text: str, refresh: str | None = None) -> HTMLResponse:
        lang = lang_of(request)
        html = env.get_template("message.html").render(
            lang=lang, title=STRINGS[lang]["title"], message=text, refresh=refresh,
            link=STRINGS[lang]["signed_in_continue"],
        )  # fmt: skip
        return HTMLResponse(html, status_code=status)

    def page(request: Request, name: str, **extra: Any) -> Response:
        who = find(token_of(request))
        lang = lang_of(request)
        if who is None:
            return message(request, 401, STRINGS[lang]["login_needed"])
        settings = project.settings
        task = settings["task"]
        t = STRINGS[lang]
        config = {k: settings[k] for k in ("task", "labels", "criteria", "scale")}
        config |= {"name": who.name, "role": who.role, "questions": settings.get("questions") or []}
        asks = [("q", "k_questions")] if config["questions"] else []
        keys = [(k, t[v]) for k, v in SHORTCUTS[task] + asks + COMMON_KEYS]
        html = env.get_template(f"{name}.html").render(
            page=name, lang=lang, t=t, csrf=csrf_for(secret, who.token_hash), name=who.name, role=who.role,
            project_name=settings["name"], guidelines=settings.get("guidelines") or "",
            strings_json=json.dumps(t, ensure_ascii=False), config_json=json.dumps(config, ensure_ascii=False),
            progress=queue.progress(project, who), shortcuts=keys, decisions=DECISIONS[task], **extra,
        )  # fmt: skip
        response = HTMLResponse(html)
        if request.query_params.get("lang") in STRINGS:
            response.set_cookie(LANG_COOKIE, lang, samesite="strict", max_age=365 * 86400)
        return response

    @app.get("/login")
    def login(request: Request, token: str = "") -> Response:
        """Set the session cookie and move on with a same-site navigation: a 303 would carry on the
        cross-site navigation that opened the link (from a mail or chat), and a SameSite=Strict cookie
        is not sent on that, so the first page would ask to log in again."""
        who = find(token)
        lang = lang_of(request)
        if who is None:
            return message(request, 401, STRINGS[lang]["login_needed"])
        response = message(request, 200, STRINGS[lang]["signed_in"].format(name=who.name), refresh="/")
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", max_age=30 * 86400
        )
        return response

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/", response_class=HTMLResponse)
    def focus_page(request: Request) -> Response:
        return page(request, "focus")

    @app.get("/table", response_class=HTMLResponse)
    def table_page(request: Request) -> Response:
        people = []
        who = find(token_of(request))
        if who is not None and who.role == "adjudicator":
            people = [p["name"] for p in queue.everyone(project)]
        return page(request, "table", people=people, facets=queue.facets(project) if who is not None else {})

    @app.get("/stats", response_class=HTMLResponse)
    def stats_page(request: Request) -> Response:
        return page(request, "stats")

    @app.get("/api/me")
    def me(who: Annotated[Annotator, Depends(user)]) -> dict[str, Any]:
        settings = project.settings
        return {
            "name": who.name,
            "role": who.role,
            "csrf": csrf_for(secret, who.token_hash),
            "progress": queue.progress(project, who),
            **{k: settings[k] for k in ("task", "labels", "criteria", "scale", "overlap")},
        }

    @app.get("/api/next")
    def next_item(who: Annotated[Annotator, Depends(user)]) -> dict[str, Any]:
        return {"id": queue.next_pending(project, who), "progress": queue.progress(project, who)}

    @app.get("/api/assignments/{assignment_id}")
    def read_assignment(assignment_id: int, who: Annotated[Annotator, Depends(user)]) -> dict[str, Any]:
        try:
            return queue.view(project, who, assignment_id)
        except NotYours:
            raise HTTPException(404, "no such assignment") from None

    @app.post("/api/assignments/{assignment_id}/answer")
    def answer(
        assignment_id: int, who: Annotated[Annotator, Depends(writer)], body: Annotated[Any, Body()] = None
    ) -> dict[str, Any]:
        try:
            stored = submit(project, who, assignment_id, body)
        except NotYours:
            raise HTTPException(404, "no such assignment") from None
        except BadAnswer as e:
            raise HTTPException(400, str(e)) from None
        if stored["created_at"] == stored["updated_at"]:  # a new answer, not a change
            refitter.answered()
        return {
            "answer": {k: v for k, v in stored.items() if k != "choice"},
            "next": queue.next_pending(project, who),
            "progress": queue.progress(project, who),
        }

    @app.get("/api/table")
    def rows(
        who: Annotated[Annotator, Depends(user)],
        status: str | None = None,
        annotator: str | None = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        score_min: float | None = None,
        score_max: float | None = None,
        source: Annotated[str | None, Query(max_length=1000)] = None,
        tag: Annotated[str | None, Query(max_length=200)] = None,
        disagree: bool = False,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        try:
            return queue.table(project, who, status=status, annotator=annotator, q=q, score_min=score_min,
                               score_max=score_max, source=source, tag=tag, disagree=disagree, offset=offset,
                               limit=limit)  # fmt: skip
        except queue.AdjudicatorOnly as e:
            raise HTTPException(403, str(e)) from None

    @app.get("/api/stats")
    def stats(who: Annotated[Annotator, Depends(user)]) -> dict[str, Any]:
        from datamill.review.agreement import summary

        out = summary(project)
        out["learner"] |= {"refitting": refitter.running, "error": refitter.error}
        return out

    @app.get("/conflicts", response_class=HTMLResponse)
    def conflicts_page(request: Request) -> Response:
        who = find(token_of(request))
        if who is not None and who.role != "adjudicator":
            return message(request, 403, STRINGS[lang_of(request)]["adjudicator_only"])
        return page(request, "conflicts")

    @app.get("/api/conflicts")
    def conflict_rows(
        who: Annotated[Annotator, Depends(user)],
        resolved: bool | None = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        try:
            return conflicts.conflicts(project, who, resolved=resolved, offset=offset, limit=limit)
        except queue.AdjudicatorOnly as e:
            raise HTTPException(403, str(e)) from None

    @app.get("/api/conflicts/{item_id}")
    def read_conflict(item_id: int, who: Annotated[Annotator, Depends(user)]) -> dict[str, Any]:
        try:
            return conflicts.conflict(project, who, item_id)
        except queue.AdjudicatorOnly as e:
            raise HTTPException(403, str(e)) from None
        except NotYours:
            raise HTTPException(404, "no such conflict") from None

    @app.post("/api/conflicts/{item_id}/decide")
    def decide_conflict(
        item_id: int, who: Annotated[Annotator, Depends(writer)], body: Annotated[Any, Body()] = None
    ) -> dict[str, Any]:
        try:
            stored = conflicts.adjudicate(project, who, item_id, body)
        except queue.AdjudicatorOnly as e:
            raise HTTPException(403, str(e)) from None
        except NotYours:
            raise HTTPException(404, "no such conflict") from None
        except BadAnswer as e:
            raise HTTPException(400, str(e)) from None
        refitter.answered()
        return {"answer": stored}

    return app
