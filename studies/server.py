"""``vton study serve``: the exported A/B study as a local web page for in-lab participants (MTurk has closed).

Serves each HIT of ``hits.csv`` through ``hit_template.html`` (the same ``${var}`` filling MTurk does), with the images
from the study folder, and appends every submission to ``results.csv`` in MTurk's results format (``HITId``,
``WorkerId``, ..., ``Input.*``, ``Answer.choice_<i>``), which ``vton amt analyze`` reads. Loopback only by default.
"""
from __future__ import annotations

import fcntl
import html
import os
import re
import secrets
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vton.core.io import UnsafePathError, safe_join
from vton.reports.shapes import COUNT, TEXT, Obj, read_json
from vton.reports.sheets import csv_text, read_csv
from vton.studies.export import BATCH_CSV, IMAGES_DIR, RESULTS_CSV, SIDES, STUDY_JSON, TEMPLATE, StudyError
from vton.studies.options import ServeOptions

VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
WORKER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IMAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}\.(png|jpe?g)$")
ASSIGNMENT_COLUMNS = ("HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime", "SubmitTime",
                      "WorkTimeInSeconds")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}
STUDY_SHAPE = Obj(required={"base_url": TEXT, "trials_per_hit": COUNT})  # what serving needs of study.json
MAX_FORM = 1 << 20
CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action 'self'"


class Study:
    """One exported study folder: the HITs, the template, and the results file with its lock."""

    def __init__(self, folder: Path) -> None:
        """Reads the study once; a study.json of the wrong shape, or a hits.csv that lacks a column the template
        fills, is an error here rather than at a participant's request."""
        self.folder = Path(folder)
        info = read_json(self.folder / STUDY_JSON, STUDY_SHAPE)
        self.base_url = info["base_url"].rstrip("/") + "/"
        self.trials = info["trials_per_hit"]
        self.hits = read_csv(self.folder / BATCH_CSV)
        self.inputs = list(self.hits[0]) if self.hits else []
        self.template = (self.folder / TEMPLATE).read_text(encoding="utf-8")
        missing = sorted({"hit_id", *VARIABLE.findall(self.template)} - set(self.inputs))
        if missing:
            raise StudyError(f"{self.folder / BATCH_CSV} lacks columns {', '.join(missing)} that {TEMPLATE} uses")
        self.results = self.folder / RESULTS_CSV
        self.header = (list(ASSIGNMENT_COLUMNS) + [f"Input.{c}" for c in self.inputs]
                       + [f"Answer.choice_{i}" for i in range(self.trials)])
        self._lock = threading.Lock()

    def hit(self, hit_id: str) -> dict[str, str] | None:
        return next((h for h in self.hits if h["hit_id"] == hit_id), None)

    def fill(self, hit: dict[str, str]) -> str:
        """The template with every ``${var}`` replaced by the HIT's escaped value, image URLs served locally."""

        def value(m: re.Match[str]) -> str:
            v = hit[m.group(1)]
            if v.startswith(self.base_url):
                v = "/images/" + v[len(self.base_url):]
            return html.escape(v, quote=True)

        return VARIABLE.sub(value, self.template)

    def _done(self) -> list[dict[str, str]]:
        return read_csv(self.results) if self.results.is_file() else []

    def next_hit(self, worker: str) -> dict[str, str] | None:
        """The least-answered HIT this worker has not done yet (one assignment per worker and HIT)."""
        done = self._done()
        mine = {r["HITId"] for r in done if r["WorkerId"] == worker}
        counts = {h["hit_id"]: 0 for h in self.hits}
        for r in done:
            if r["HITId"] in counts:
                counts[r["HITId"]] += 1
        open_hits = [h for h in self.hits if h["hit_id"] not in mine]
        return min(open_hits, key=lambda h: counts[h["hit_id"]]) if open_hits else None

    def record(self, worker: str, hit: dict[str, str], accept: float, answers: dict[int, str]) -> None:
        """Append one assignment row; a process-wide lock plus ``flock`` so concurrent writers never interleave."""
        now = time.time()
        row: dict[str, Any] = {
            "HITId": hit["hit_id"], "AssignmentId": secrets.token_hex(10), "WorkerId": worker,
            "AssignmentStatus": "Submitted", "AcceptTime": _stamp(accept), "SubmitTime": _stamp(now),
            "WorkTimeInSeconds": max(0, round(now - accept)),
            **{f"Input.{c}": hit[c] for c in self.inputs},
            **{f"Answer.choice_{i}": side for i, side in answers.items()},
        }
        with self._lock, open(self.folder / f".{RESULTS_CSV}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            new = not self.results.is_file() or self.results.stat().st_size == 0
            text = csv_text(self.header, [row])
            data = (text if new else text.split("\n", 1)[1]).encode("utf-8")
            fd = os.open(self.results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


def _stamp(t: float) -> str:
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(t))


def _page(title: str, body: str) -> bytes:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
            f"<body>{body}</body></html>").encode()


START_PAGE = _page("Study", (
    "<h1>Picture comparison study</h1><p>Enter the participant ID you were given, then start.</p>"
    '<form method="get" action="/hit"><input name="worker" id="worker" pattern="[A-Za-z0-9_-]{1,64}" required> '
    '<input type="submit" id="start" value="Start"></form>'
))
DONE_PAGE = _page(
    "Thank you", '<h1 id="done">Thank you</h1><p>You have answered every set. You may close this page.</p>'
)


def make_handler(study: Study) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "vton-study"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: participants' ids stay out of the console
            pass

        def _send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8", **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            self._send(status, _page("Error", f"<h1>{int(status)}</h1><p>{html.escape(message)}</p>"))

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/":
                return self._send(HTTPStatus.OK, START_PAGE)
            if url.path == "/hit":
                worker = (query.get("worker") or [""])[0]
                if not WORKER_ID.match(worker):
                    return self._error(HTTPStatus.BAD_REQUEST, "participant ID: 1-64 letters, digits, - or _")
                hit = study.next_hit(worker)
                if hit is None:
                    return self._send(HTTPStatus.OK, DONE_PAGE)
                form = (
                    '<form method="post" action="/submit" id="mturk_form">'
                    f'<input type="hidden" name="worker" value="{html.escape(worker)}">'
                    f'<input type="hidden" name="accept" value="{time.time():.3f}">'
                    f'{study.fill(hit)}<input type="submit" id="submitButton" value="Submit"></form>'
                )
                return self._send(HTTPStatus.OK, _page("Study", form))
            if url.path.startswith("/images/"):
                name = url.path[len("/images/"):]
                m = IMAGE_NAME.match(name)
                try:
                    path = safe_join(study.folder / IMAGES_DIR, name) if m else None
                except UnsafePathError:
                    path = None
                if path is None or not path.is_file():
                    return self._error(HTTPStatus.NOT_FOUND, "no such image")
                return self._send(HTTPStatus.OK, path.read_bytes(), CONTENT_TYPES[m.group(1).lower()])
            return self._error(HTTPStatus.NOT_FOUND, "not found")

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/submit":
                return self._error(HTTPStatus.NOT_FOUND, "not found")
            length = (self.headers.get("Content-Length") or "0").strip()
            if not length.isdecimal():  # read(-1) would wait for the client to close; int("x") would raise
                return self._error(HTTPStatus.BAD_REQUEST, "Content-Length must be a byte count")
            if int(length) > MAX_FORM:
                return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "form too large")
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(length)).decode("utf-8", "replace")).items()}
            worker, hit = form.get("worker", ""), study.hit(form.get("hit_id", ""))
            if not WORKER_ID.match(worker) or hit is None:
                return self._error(HTTPStatus.BAD_REQUEST, "unknown participant or HIT")
            answers = {i: form.get(f"choice_{i}", "") for i in range(study.trials)}
            if any(a not in SIDES for a in answers.values()):
                return self._error(HTTPStatus.BAD_REQUEST, "every row needs an answer (left or right)")
            try:
                accept = float(form.get("accept", ""))
            except ValueError:
                accept = time.time()
            study.record(worker, hit, accept, answers)
            self._send(HTTPStatus.SEE_OTHER, b"", Location=f"/hit?worker={worker}")

    return Handler


def make_server(folder: Path, host: str = ServeOptions.host, port: int = ServeOptions.port) -> ThreadingHTTPServer:
    """A ready (not yet serving) HTTP server for the study in ``folder``; port 0 picks a free port."""
    return ThreadingHTTPServer((host, port), make_handler(Study(folder)))
