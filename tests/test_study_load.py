"""A bounded load test of the study server: 200 participants at once on a real uvicorn on 127.0.0.1, each sending
every submission three times concurrently; every answer must be in SQLite and in the exported CSV exactly once."""
from __future__ import annotations

import csv
import hashlib
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.study_fixtures import K, Page, enter, export_study, page, running
from vton.cli import main

pytestmark = pytest.mark.xdist_group("study")
PARTICIPANTS = 200
HITS_EACH = 2
REPEATS = 3  # the same form sent this many times at once (double clicks, retries)
LIMIT_S = 60


def side(pid: str, hit: str, trial: int) -> str:
    """Each participant's answer to a trial, fixed in advance so the stored answers can be checked."""
    return "left" if hashlib.sha256(f"{pid} {hit} {trial}".encode()).digest()[0] % 2 else "right"


def participant(client: httpx.Client, pid: str, duplicates: ThreadPoolExecutor, deadline: float) -> list[int]:
    """One participant's whole visit; returns the status of every submission."""
    statuses = []
    session = enter(client, f"/start?participant={pid}")
    while isinstance(p := page(client, session), Page):
        assert time.monotonic() < deadline, "the load test ran past its limit"
        form = {**p.form(), **{f"choice_{i}": side(pid, p.hit_id, i) for i in range(K)}}
        sends = [duplicates.submit(client.post, p.url + "/submit", data=form) for _ in range(REPEATS)]
        statuses += [f.result().status_code for f in sends]
    assert 'id="done"' in p.text
    return statuses


def test_200_participants_at_once_every_answer_exactly_once(tmp_path: Path) -> None:
    study = export_study(tmp_path, 10)
    deadline = time.monotonic() + LIMIT_S
    pids = [f"P{i:03d}" for i in range(PARTICIPANTS)]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with running(study, hits_per_participant=HITS_EACH) as base, ThreadPoolExecutor(24) as visits, \
            ThreadPoolExecutor(24) as duplicates, httpx.Client(base_url=base, timeout=20, limits=limits) as client:
        # one connection pool for all (participants differ by their session URL, not by cookies)
        statuses = list(visits.map(lambda pid: participant(client, pid, duplicates, deadline), pids))
    assert time.monotonic() < deadline
    assert all(s == [303] * REPEATS * HITS_EACH for s in statuses)  # repeats answered alike, as the first
    expected = {(pid, hit, i): side(pid, hit, i) for pid, hit in submitted(study) for i in range(K)}
    assert len(expected) == PARTICIPANTS * HITS_EACH * K
    conn = sqlite3.connect(study / "study.sqlite")
    stored = conn.execute("SELECT a.participant, a.hit_id, n.trial, n.value FROM answers n "
                          "JOIN assignments a ON a.id = n.assignment").fetchall()
    conn.close()
    assert len(stored) == len(expected) and {(p, h, t): v for p, h, t, v in stored} == expected
    assert CliRunner().invoke(main, ["study", "results", str(study)]).exit_code == 0
    with open(study / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == PARTICIPANTS * HITS_EACH
    exported = {(r["WorkerId"], r["HITId"], i): r[f"Answer.choice_{i}"] for r in rows for i in range(K)}
    assert len(exported) == len(rows) * K and exported == expected


def submitted(study: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(study / "study.sqlite")
    try:
        return conn.execute("SELECT participant, hit_id FROM assignments WHERE submitted_at IS NOT NULL").fetchall()
    finally:
        conn.close()
