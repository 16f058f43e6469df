"""Helpers for the study server's tests: an exported study, a real uvicorn server on 127.0.0.1, a participant."""
from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from click.testing import CliRunner

from tests._reports_fixtures import person_ids, write_data, write_eval_run
from vton.cli import main

K = 4  # trials per HIT, one of them a catch trial


def export_study(root: Path, n_pairs: int = 10, n_runs: int = 2, *extra: str) -> Path:
    """`vton study export` of ``n_runs`` fixture runs over ``n_pairs`` test pairs into root/study."""
    data = write_data(root, person_ids(n_pairs))
    runs = [write_eval_run(root, f"run{i}", f"method{i}", data, np.linspace(0.5, 0.9, n_pairs), 2 + i, set(), set())
            for i in range(n_runs)]
    out = root / "study"
    args = ["study", "export", *(a for r in runs for a in ("--run", str(r))), "--base-url",
            "https://cdn.example.org/s", "--out", str(out), "--trials-per-hit", str(K), "--catch-rate", "0.25",
            "--seed", "1", *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


@contextlib.contextmanager
def running(folder: Path, **settings) -> Iterator[str]:
    """A real uvicorn server for ``folder`` on a free loopback port, in a thread; yields its base URL."""
    from vton.studies.app import Settings
    from vton.studies.serve import StudyServer

    server = StudyServer(folder, "127.0.0.1", 0, Settings(**settings))
    thread = server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        thread.join(10)


@dataclass
class Page:
    """What a participant's page holds, read as a browser would see it."""

    url: str
    html: str

    @property
    def assignment(self) -> str:
        return re.search(r'name="assignment" value="([^"]+)"', self.html).group(1)

    @property
    def hit_id(self) -> str:
        return re.search(r'name="hit_id" value="([^"]+)"', self.html).group(1)

    @property
    def checks(self) -> list[str]:
        """The side each attention-check row asks for, read from its question."""
        return re.findall(r"click the button <b>(left|right)</b>", self.html)

    def form(self, choice: str = "left", pass_checks: bool = True) -> dict[str, str]:
        other = {"left": "right", "right": "left"}
        return {"assignment": self.assignment, "hit_id": self.hit_id, **{f"choice_{i}": choice for i in range(K)},
                **{f"check_{j}": s if pass_checks else other[s] for j, s in enumerate(self.checks)}}


def enter(client: httpx.Client, path: str) -> str:
    """Follow the entry link to the participant's session URL (the 303's Location)."""
    response = client.get(path)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def page(client: httpx.Client, session: str) -> Page | httpx.Response:
    """The session's current page, or the response that ends it (a redirect or the thank-you page)."""
    response = client.get(session)
    if response.status_code == 200 and 'name="assignment"' in response.text:
        return Page(session, response.text)
    return response


def submit(client: httpx.Client, p: Page, form: dict[str, str] | None = None) -> httpx.Response:
    return client.post(p.url + "/submit", data=form if form is not None else p.form())


def table(folder: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(folder / "study.sqlite")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def copy_study(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest
