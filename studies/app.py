"""The study server as an ASGI app (Starlette): Prolific and in-lab entry, one page per assignment, submissions.

Every value a client sends is checked against an exact pattern before use, so what is stored is what is matched and
nothing a client typed reaches a header. A participant is carried between pages by an unguessable session token in
the path; the server alone knows which HIT an assignment is, when it was shown, and what its attention checks ask.
Nothing on a page or in a URL tells a trial's answer: image names are content hashes (see `studies.export`).
"""
from __future__ import annotations

import asyncio
import html
import os
import re
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from vton.studies.db import DB_FILE, Session, StateError, StudyDB
from vton.studies.design import SIDES
from vton.studies.export import IMAGES_DIR, StudyError
from vton.studies.folder import StudyFolder
from vton.studies.options import ServeOptions

PARTICIPANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # never a spreadsheet formula, never a line break
ID_RULE = "1-64 letters, digits, - or _, starting with a letter or digit"
TOKEN = re.compile(r"[0-9a-f]{32}")  # what db.new_token makes
IMAGE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}\.(png|jpe?g)")
CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc="
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}
MAX_IMAGE_BYTES = 32 << 20
MAX_FIELDS = 256  # a page holds at most 100 trials and a few checks
HEADERS = {  # form-action covers the redirects after a submission, so the last one, to Prolific, is allowed too
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "script-src 'unsafe-inline'; form-action 'self' https://app.prolific.com",
    "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
}


class Refusal(Exception):
    """A request the server answers with an error page; nothing has been recorded."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Settings:
    """What `create_app` was asked for, checked (codes are only ever sent as they were given)."""

    completion_code: str | None = ServeOptions.completion_code
    failed_check_code: str | None = ServeOptions.failed_check_code
    hits_per_participant: int = ServeOptions.hits_per_participant
    attention_checks: int = ServeOptions.attention_checks
    lease_minutes: float = ServeOptions.lease_minutes
    max_form_bytes: int = ServeOptions.max_form_bytes
    body_timeout_s: float = ServeOptions.body_timeout_s

    def check(self) -> None:
        for name in ("completion_code", "failed_check_code"):
            code = getattr(self, name)
            if code is not None and not CODE.fullmatch(code):
                raise StudyError(f"--{name.replace('_', '-')} must be 1-64 letters, digits, - or _, not {code!r}")
        if self.failed_check_code is not None and self.completion_code is None:
            raise StudyError("--failed-check-code needs --completion-code (both are Prolific's)")
        if self.failed_check_code is not None and self.failed_check_code == self.completion_code:
            raise StudyError("--failed-check-code must differ from --completion-code, or failures are not told apart")
        if self.completion_code is not None and self.attention_checks < 1:
            raise StudyError("a Prolific study needs at least one attention check per page (--attention-checks)")
        if not 0 <= self.attention_checks <= 5 or self.hits_per_participant < 0:
            raise StudyError("--attention-checks must be in [0, 5] and --hits-per-participant non-negative")
        if not self.lease_minutes > 0:
            raise StudyError(f"--lease-minutes must be positive, not {self.lease_minutes}")
        if not self.body_timeout_s > 0 or self.max_form_bytes < 1024:
            raise StudyError("the body timeout must be positive and the form limit at least 1024 bytes")


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
                        f"</title></head><body>{body}</body></html>", status)


START_BODY = (
    "<h1>Picture comparison study</h1><p>Enter the participant ID you were given, then start.</p>"
    '<form method="get" action="/start"><input name="participant" id="participant" '
    'pattern="[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}" required> <input type="submit" id="start" value="Start"></form>'
)
DONE_BODY = '<h1 id="done">Thank you</h1><p>You have answered every set. You may close this page.</p>'
SCREENED_OUT_BODY = ('<h1 id="screened-out">The study has ended</h1><p>An attention check was not answered as it '
                     "asked, so the study ends here. Please return your submission on Prolific.</p>")


def one_value(params: Any, name: str) -> str | None:
    """The one value of query or form parameter ``name`` (None when absent); twice is a refusal."""
    values = params.getlist(name)
    if len(values) > 1:
        raise Refusal(400, f"{name} is given {len(values)} times")
    return values[0] if values else None


def checked(value: str | None, name: str, pattern: re.Pattern[str] = PARTICIPANT_ID, rule: str = ID_RULE) -> str:
    """``value`` when the whole of it matches ``pattern`` (a trailing newline does not), else a refusal."""
    if value is None or not pattern.fullmatch(value):
        raise Refusal(400, f"{name} must be {rule}")
    return value


async def read_form(request: Request, timeout: float) -> dict[str, str]:
    """The urlencoded form of a POST, whole within ``timeout`` seconds (a Content-Length larger than the body is
    refused then, not waited on), UTF-8, every field once. Its size is capped by the app (``max_body_size``)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise Refusal(415, "the form must be application/x-www-form-urlencoded")
    try:
        data = await asyncio.wait_for(request.body(), timeout)
    except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11 on
        raise Refusal(408, f"the form did not arrive within {timeout:g} s") from None
    except ClientDisconnect:
        raise Refusal(400, "the form was cut short") from None
    try:
        pairs = parse_qsl(data.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(data),
                          errors="strict", max_num_fields=MAX_FIELDS)
    except ValueError as exc:  # UnicodeDecodeError included
        raise Refusal(400, f"the form is not valid urlencoded UTF-8 ({exc.__class__.__name__})") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        raise Refusal(400, "a form field is given twice")
    return form


def read_image(folder: Path, name: str) -> bytes:
    """The bytes of ``folder/images/name`` when it is a regular file (not a link, FIFO or device) that really lies
    inside the study folder; else a 404, whatever the reason, so the answer says nothing of what exists."""
    missing = Refusal(404, "no such image")
    if not IMAGE_NAME.fullmatch(name):
        raise missing
    path = folder / IMAGES_DIR / name
    if not os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep):
        raise missing
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        raise missing from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_IMAGE_BYTES:
            raise missing
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(MAX_IMAGE_BYTES + 1)[:MAX_IMAGE_BYTES]
    finally:
        os.close(fd)


class SecurityHeaders:
    """Pure ASGI middleware: the same strict headers on every response, error pages included."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.lower().encode(), v.encode()) for k, v in HEADERS.items())]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def create_app(folder: Path, settings: Settings = Settings()) -> Starlette:
    """The ASGI app serving the study in ``folder``; its state goes to ``folder/study.sqlite``."""
    settings.check()
    study = StudyFolder(folder)
    db = StudyDB(study.folder / DB_FILE, list(study.hits), study.fingerprint)

    def finished(session: Session) -> Response:
        """Where a participant who is done goes: Prolific's completion URL with the code for their outcome (or the
        screen-out page when no code was set for a failed check); in the lab, the thank-you page."""
        if not session.prolific:
            return page("Thank you", DONE_BODY)
        code = settings.completion_code if session.outcome == "completed" else settings.failed_check_code
        if code is None:
            return page("Study ended", SCREENED_OUT_BODY)
        return RedirectResponse(PROLIFIC_COMPLETE + code, 303)

    def session_of(request: Request) -> Session:
        token = request.path_params["token"]
        session = db.session(token) if TOKEN.fullmatch(token) else None
        if session is None:
            raise Refusal(404, "no such session: start again from the study link")
        return session

    def begin(participant: str, source: str, *prolific: str) -> RedirectResponse:
        """The redirect to a (new or resumed) session; a conflict with what the database holds is a refusal."""
        try:
            token = db.start_session(participant, source, *prolific)
        except StateError as exc:
            raise Refusal(409, str(exc)) from None
        return RedirectResponse(f"/s/{token}", 303)

    async def start(request: Request) -> Response:
        query = request.query_params
        if not any(p in query for p in PROLIFIC_PARAMS):
            return page("Study", START_BODY)
        if settings.completion_code is None:
            raise Refusal(400, "this study is not set up for Prolific (no completion code)")
        pid, study_id, session_id = (checked(one_value(query, p), p) for p in PROLIFIC_PARAMS)
        return begin(pid, "prolific", study_id, session_id)

    async def start_lab(request: Request) -> Response:
        return begin(checked(one_value(request.query_params, "participant"), "the participant ID"), "lab")

    async def show(request: Request) -> Response:
        session = session_of(request)
        assignment = None if session.finished else db.next_assignment(
            session, settings.hits_per_participant, settings.attention_checks, settings.lease_minutes * 60)
        if assignment is None:
            return finished(db.session(session.id) or session)
        form = (f'<form method="post" action="/s/{session.id}/submit" id="mturk_form">'
                f'<input type="hidden" name="assignment" value="{assignment.id}">'
                f'{study.fill(assignment.hit_id, assignment.checks)}'
                '<input type="submit" id="submitButton" value="Submit"></form>')
        return page("Study", form)

    async def submit(request: Request) -> Response:
        session = session_of(request)
        form = await read_form(request, settings.body_timeout_s)
        token = checked(form.get("assignment"), "assignment", TOKEN, "the assignment of this page")
        found = db.assignment(session, token)
        if found is None:
            raise Refusal(400, "this page's assignment is not one of this session")
        assignment, submitted = found
        if not submitted:  # a repeat (a second click, a replay) is answered as the first was, and not recorded
            answers, checks = validate(form, assignment.hit_id, len(assignment.checks))
            db.submit(assignment.id, answers, checks)
        return RedirectResponse(f"/s/{session.id}", 303)

    def validate(form: dict[str, str], hit_id: str, n_checks: int) -> tuple[dict[int, str], list[str]]:
        """The answers of a complete form: exactly the fields of its page, each an answer the trial offers."""
        trials = [f"choice_{i}" for i in range(study.trials)]
        checks = [f"check_{j}" for j in range(n_checks)]
        expected = {"assignment", "hit_id", *trials, *checks}
        if set(form) != expected:
            wrong = sorted(set(form) ^ expected)[:5]
            raise Refusal(400, f"the form does not match its page (fields {', '.join(wrong)}): answer every row")
        if form["hit_id"] != hit_id:
            raise Refusal(400, "the form's hit_id is not its assignment's")
        if any(form[f] not in study.answers for f in trials) or any(form[f] not in SIDES for f in checks):
            raise Refusal(400, f"every row needs an answer ({' or '.join(study.answers)})")
        return {i: form[f] for i, f in enumerate(trials)}, [form[f] for f in checks]

    async def image(request: Request) -> Response:
        name = request.path_params["name"]
        data = read_image(study.folder, name)
        return Response(data, media_type=CONTENT_TYPES[name.rsplit(".", 1)[1].lower()])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        db.close()

    async def refused(request: Request, exc: Exception) -> Response:
        status, message = (exc.status, exc.message) if isinstance(exc, Refusal) else (
            exc.status_code, "not found" if exc.status_code == 404 else str(exc.detail))  # type: ignore[attr-defined]
        return page("Error", f"<h1>{int(status)}</h1><p>{html.escape(message)}</p>", status)

    app = Starlette(routes=[
        Route("/", start), Route("/start", start_lab), Route("/s/{token}", show),
        Route("/s/{token}/submit", submit, methods=["POST"]), Route("/images/{name}", image),
    ], exception_handlers={Refusal: refused, HTTPException: refused}, lifespan=lifespan,
        max_body_size=settings.max_form_bytes)
    app.add_middleware(SecurityHeaders)
    app.state.db = db
    return app
