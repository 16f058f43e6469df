"""`vton study serve` / `vton study results`: the study app under a real uvicorn on 127.0.0.1, answered over HTTP.

Each fault found in the http.server version of the study page has a test here that failed on it (named in the
test's docstring): the same HIT recorded again and again, IDs starting with '-' or ending in a newline, the client's
accept time trusted, a Content-Length larger than the body, a symlink served from images/.
"""
from __future__ import annotations

import csv
import json
import os
import re
import socket
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.study_fixtures import K, Page, copy_study, enter, export_study, page, running, submit, table
from vton.cli import main

pytestmark = pytest.mark.xdist_group("study")
PROLIFIC = "https://app.prolific.com/submissions/complete?cc="


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_study(tmp_path_factory.mktemp("exported"))


@pytest.fixture()
def study(exported: Path, tmp_path: Path) -> Path:
    return copy_study(exported, tmp_path / "study")


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def n_hits(study: Path) -> int:
    return len(rows(study / "hits.csv"))


def prolific_url(pid: str, session: str = "SESSION1") -> str:
    return "/?" + urllib.parse.urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "STUDY1", "SESSION_ID": session})


def test_lab_participants_answer_every_hit_once_and_results_read_as_mturk(study: Path) -> None:
    with running(study) as base, httpx.Client(base_url=base) as client:
        assert client.get("/").status_code == 200
        done = {}
        for pid in ("P07", "lab-2_b"):
            session = enter(client, f"/start?participant={pid}")
            seen = []
            while isinstance(p := page(client, session), Page):
                seen.append(p.hit_id)
                assert submit(client, p, p.form("left" if pid == "P07" else "right")).status_code == 303
            assert p.status_code == 200 and 'id="done"' in p.text  # the lab's thank-you page
            done[pid] = seen
            # typing the ID again starts a session with nothing left to do: nobody answers a HIT twice
            assert 'id="done"' in client.get(enter(client, f"/start?participant={pid}")).text
    assert all(sorted(v) == sorted(h["hit_id"] for h in rows(study / "hits.csv")) for v in done.values())
    result = CliRunner().invoke(main, ["study", "results", str(study)])
    assert result.exit_code == 0, result.output
    got = rows(study / "results.csv")
    assert len(got) == 2 * n_hits(study)
    assert {r["WorkerId"] for r in got} == {"P07", "lab-2_b"}  # stored, exported and matched as typed
    assert all(r["HITId"] == r["Input.hit_id"] and r["AssignmentStatus"] == "Submitted" for r in got)
    side = {"P07": "left", "lab-2_b": "right"}
    assert all(r[f"Answer.choice_{i}"] == side[r["WorkerId"]] for r in got for i in range(K))
    answers = pd.read_parquet(study / "answers.parquet")  # tidy: one row per answer, joined with the key
    key = {(k["hit_id"], int(k["trial"])): k for k in rows(study / "key.csv")}
    assert len(answers) == 2 * n_hits(study) * (K + 1)  # K trials and one attention check per page
    kinds = [k["kind"] for k in key.values()]
    assert answers.groupby("kind").size().to_dict() == {"ab": 2 * kinds.count("ab"), "catch": 2 * kinds.count("catch"),
                                                        "attention": 2 * n_hits(study)}
    for a in answers[answers["kind"] != "attention"].itertuples():
        k = key[(a.hit_id, a.trial)]
        assert (a.answer, a.person, a.a_run or "", a.a_side or "") == (side[a.participant], k["person"], k["a_run"],
                                                                       k["a_side"])
        assert pd.isna(a.correct) if a.kind == "ab" else a.correct == (a.answer == k["correct"])
    assert answers.loc[answers["kind"] == "attention", "correct"].all() and (answers["work_time_s"] >= 0).all()
    analysis = CliRunner().invoke(main, ["amt", "analyze", str(study / "results.csv"), "--key", str(study / "key.csv"),
                                         "--bootstrap", "50", "--min-catch-accuracy", "0"])
    assert analysis.exit_code == 0, analysis.output
    n_ab = sum(k["kind"] == "ab" for k in rows(study / "key.csv"))
    assert f"/{2 * n_ab} prefer A (0 ties) = 0.500" in analysis.output  # one always left, the other always right


def test_an_abandoned_hit_goes_to_others_after_its_lease(study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A HIT shown but never submitted (a Prolific return or time-out) held its place in the balance for ever, so
    the others were answered more and it never was; after --lease-minutes it is handed out again, and the one who
    abandoned it may still come back and submit it."""
    from vton.studies import db

    clock = [1_000_000.0]
    monkeypatch.setattr(db.time, "time", lambda: clock[0])
    hits = [h["hit_id"] for h in rows(study / "hits.csv")]
    with running(study, lease_minutes=30) as base, httpx.Client(base_url=base) as client:
        gone = page(client, enter(client, "/start?participant=gone"))
        assert gone.hit_id == hits[0]
        clock[0] += 60
        other = page(client, enter(client, "/start?participant=early"))
        assert other.hit_id == hits[1]  # within the lease the first HIT counts as taken
        assert submit(client, other).status_code == 303
        clock[0] += 30 * 60
        late = page(client, enter(client, "/start?participant=late"))
        assert late.hit_id == hits[0]  # its lease is over: the least-answered HIT again
        back = page(client, gone.url)
        assert (back.hit_id, back.assignment) == (gone.hit_id, gone.assignment)
        assert submit(client, back).status_code == 303
    assert table(study, "SELECT participant FROM assignments WHERE submitted_at IS NOT NULL ORDER BY participant") == \
        [("early",), ("gone",)]


def test_prolific_participant_is_sent_to_the_completion_url(study: Path) -> None:
    with running(study, completion_code="DONE1", hits_per_participant=2) as base, \
            httpx.Client(base_url=base) as client:
        session = enter(client, prolific_url("5f1a2b3c4d5e6f7a8b9c0d1e"))
        for _ in range(2):
            p = page(client, session)
            assert isinstance(p, Page) and len(p.checks) == 1  # one instructed-response item per page
            submit(client, p)
        end = page(client, session)
        assert end.status_code == 303 and end.headers["location"] == PROLIFIC + "DONE1"
        # the study link again (same SESSION_ID) resumes the same finished session
        assert enter(client, prolific_url("5f1a2b3c4d5e6f7a8b9c0d1e")) == session
    ((pid, study_id, session_id, outcome),) = table(
        study, "SELECT participant, prolific_study, prolific_session, outcome FROM sessions")
    assert (pid, study_id, session_id, outcome) == ("5f1a2b3c4d5e6f7a8b9c0d1e", "STUDY1", "SESSION1", "completed")
    assert table(study, "SELECT COUNT(*) FROM assignments WHERE submitted_at IS NOT NULL") == [(2,)]


@pytest.mark.parametrize("failed_code", ["FAIL1", None])
def test_a_failed_attention_check_is_recorded_and_gets_its_own_ending(study: Path, failed_code: str | None) -> None:
    with running(study, completion_code="DONE1", failed_check_code=failed_code, hits_per_participant=1) as base, \
            httpx.Client(base_url=base) as client:
        session = enter(client, prolific_url("PID1"))
        p = page(client, session)
        submit(client, p, p.form(pass_checks=False))
        end = page(client, session)
        if failed_code:
            assert end.status_code == 303 and end.headers["location"] == PROLIFIC + "FAIL1"
        else:
            assert end.status_code == 200 and 'id="screened-out"' in end.text
    assert table(study, "SELECT outcome FROM sessions") == [("failed_check",)]
    assert table(study, "SELECT COUNT(*) FROM checks WHERE answer != expected") == [(1,)]
    CliRunner().invoke(main, ["study", "results", str(study)])
    (row,) = rows(study / "results.csv")
    assert (row["AttentionChecks"], row["AttentionChecksFailed"]) == ("1", "1")


def test_a_failed_attention_check_is_not_washed_out_by_entering_again(study: Path) -> None:
    """Was: the outcome counted only the checks of the finishing session, so a participant screened out could open
    the study link with another SESSION_ID (or type their ID into the lab form) and be sent the completion code."""
    with running(study, completion_code="DONE1", failed_check_code="FAIL1", hits_per_participant=1) as base, \
            httpx.Client(base_url=base) as client:
        session = enter(client, prolific_url("PID1"))
        p = page(client, session)
        submit(client, p, p.form(pass_checks=False))
        assert page(client, session).headers["location"] == PROLIFIC + "FAIL1"
        again = page(client, enter(client, prolific_url("PID1", "SESSION2")))
        assert again.status_code == 303 and again.headers["location"] == PROLIFIC + "FAIL1"
        lab = client.get("/start?participant=PID1")  # a Prolific participant is not answered as a lab one
        assert lab.status_code == 409 and "takes part through prolific" in lab.text
    assert table(study, "SELECT prolific_session, outcome FROM sessions ORDER BY started_at") \
        == [("SESSION1", "failed_check"), ("SESSION2", "failed_check")]


def test_a_session_id_of_another_participant_is_refused(study: Path) -> None:
    """Was: a 500 (an uncaught StateError) and a dropped connection."""
    with running(study, completion_code="DONE1") as base, httpx.Client(base_url=base) as client:
        enter(client, prolific_url("PID1"))
        refused = client.get(prolific_url("PID2"))
        assert refused.status_code == 409 and "belongs to another participant" in refused.text
        assert client.get("/").status_code == 200  # the connection and the server are still serving
        assert client.get(enter(client, "/start?participant=LAB1")).status_code == 200
        assert client.get(prolific_url("LAB1", "SESSION3")).status_code == 409  # nor a lab participant on Prolific
    assert table(study, "SELECT id, source FROM participants ORDER BY id") == [("LAB1", "lab"), ("PID1", "prolific")]


def test_prolific_entry_needs_a_completion_code(study: Path) -> None:
    with running(study) as base:
        response = httpx.get(base + prolific_url("PID1"))
    assert response.status_code == 400 and "not set up for Prolific" in response.text
    assert table(study, "SELECT COUNT(*) FROM participants") == [(0,)]


@pytest.mark.parametrize("settings, message", [
    (dict(completion_code="DONE1", attention_checks=0), "at least one attention check"),
    (dict(completion_code="DO NE"), "--completion-code must be"),
    (dict(completion_code="DONE\r\nX: 1"), "--completion-code must be"),
    (dict(failed_check_code="F1"), "--failed-check-code needs --completion-code"),
    (dict(completion_code="C1", failed_check_code="C1"), "must differ from --completion-code"),
])
def test_settings_are_checked_before_serving(study: Path, settings: dict, message: str) -> None:
    from vton.studies.app import Settings, create_app
    from vton.studies.export import StudyError

    with pytest.raises(StudyError, match=message):
        create_app(study, Settings(**settings))


def test_a_repeated_submission_is_refused_and_not_recorded(study: Path) -> None:
    """Was: the same HIT from the same participant accepted again and again, each a new row (a new vote)."""
    with running(study) as base, httpx.Client(base_url=base) as client:
        session = enter(client, "/start?participant=P1")
        p = page(client, session)
        form = p.form()

        def post(_: int) -> int:
            with httpx.Client(base_url=base) as c:
                return c.post(p.url + "/submit", data=form).status_code

        with ThreadPoolExecutor(8) as pool:  # a double click, a replay, eight at once
            assert set(pool.map(post, range(8))) == {303}
        assert submit(client, p, form).status_code == 303
        nxt = page(client, session)
        assert isinstance(nxt, Page) and nxt.hit_id != p.hit_id
    assert table(study, "SELECT hit_id, COUNT(*) FROM assignments WHERE submitted_at IS NOT NULL GROUP BY hit_id") \
        == [(p.hit_id, 1)]
    assert table(study, "SELECT COUNT(*) FROM answers") == [(K,)]


@pytest.mark.parametrize("pid", ["-P1", "P1\n", "P1\r\nSet-Cookie: x=1", "=SUM(1)", " P1", "P 1", "", "x" * 65,
                                 "P\u00e91"])
def test_participant_ids_are_matched_whole_or_refused(study: Path, pid: str) -> None:
    """Was: an ID starting with '-' stored with the formula guard (never matched again, never finishing); an ID
    with a trailing newline accepted (a bare newline in the Location header and in results.csv)."""
    with running(study, completion_code="DONE1") as base, httpx.Client(base_url=base) as client:
        lab = client.get("/start?" + urllib.parse.urlencode({"participant": pid}))
        prolific = client.get(prolific_url(pid))
    for response in (lab, prolific):
        assert response.status_code == 400 and "starting with a letter or digit" in response.text
        assert "location" not in response.headers and "set-cookie" not in response.headers
    assert table(study, "SELECT COUNT(*) FROM participants") == [(0,)]


def test_work_time_is_the_servers_and_a_client_time_is_refused(study: Path) -> None:
    """Was: the client's `accept` field trusted (nan/inf: no response at all; -1e12: a work time of 1e12 s)."""
    with running(study) as base, httpx.Client(base_url=base) as client:
        p = page(client, enter(client, "/start?participant=P1"))
        for accept in ("nan", "inf", "-1e12", "0"):
            refused = submit(client, p, p.form() | {"accept": accept})
            assert refused.status_code == 400 and "accept" in refused.text
        assert table(study, "SELECT COUNT(*) FROM answers") == [(0,)]
        before = time.time()
        time.sleep(1.1)
        assert submit(client, p).status_code == 303
    ((issued, submitted),) = table(study, "SELECT issued_at, submitted_at FROM assignments")
    assert issued < before < before + 1.1 <= submitted < before + 30
    CliRunner().invoke(main, ["study", "results", str(study)])
    (row,) = rows(study / "results.csv")
    assert row["WorkTimeInSeconds"] == str(round(submitted - issued)) and int(row["WorkTimeInSeconds"]) >= 1


def raw_post(base: str, path: str, body: bytes, length: int, half_close: bool) -> tuple[bytes, float]:
    """POST ``body`` declaring ``length`` bytes; returns the response's first line (b"" if none) and the wait."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode() + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        start = time.monotonic()
        try:
            head = sock.recv(200)
        except (ConnectionResetError, TimeoutError):
            head = b""
        return head.split(b"\r\n", 1)[0], time.monotonic() - start


@pytest.mark.parametrize("half_close", [False, True])
def test_a_content_length_larger_than_the_body_is_not_waited_on_nor_recorded(study: Path, half_close: bool) -> None:
    """Was: a thread hung on the missing bytes, and the row was recorded once the client closed."""
    with running(study, body_timeout_s=1.0) as base, httpx.Client(base_url=base) as client:
        p = page(client, enter(client, "/start?participant=P1"))
        body = urllib.parse.urlencode(p.form()).encode()
        head, waited = raw_post(base, p.url + "/submit", body, len(body) + 100, half_close)
        assert waited < 5
        if not half_close:
            assert head == b"HTTP/1.1 408 Request Timeout"
        assert head in (b"", b"HTTP/1.1 408 Request Timeout", b"HTTP/1.1 400 Bad Request")
        assert table(study, "SELECT COUNT(*) FROM answers") == [(0,)]
        assert submit(client, p).status_code == 303  # the server is still serving, and the page still answerable
    assert table(study, "SELECT COUNT(*) FROM answers") == [(K,)]


def test_images_are_served_only_as_regular_files_inside_the_study(study: Path, tmp_path: Path) -> None:
    """Was: a symlink placed in images/ served, whatever it pointed to."""
    images = study / "images"
    real = sorted(images.iterdir())[0]
    (images / "key.png").symlink_to(study / "key.csv")
    (images / "outside.png").symlink_to(tmp_path / "secret.png")
    (tmp_path / "secret.png").write_bytes(b"secret")
    (images / "copy.png").symlink_to(real)  # even a link to a study image: links are not served
    os.mkfifo(images / "fifo.png")  # would block a reader forever
    (images / "sub.png").mkdir()
    with running(study) as base, httpx.Client(base_url=base, timeout=5) as client:
        ok = client.get(f"/images/{real.name}")
        assert ok.status_code == 200 and ok.content == real.read_bytes() and ok.headers["content-type"] == "image/png"
        for name in ("key.png", "outside.png", "copy.png", "fifo.png", "sub.png", "none.png", "..%2Fkey.csv",
                     "%2E%2E%2Fstudy.sqlite", "x.csv"):
            assert client.get(f"/images/{name}").status_code == 404, name
        for path in ("/key.csv", "/study.sqlite", "/images/../key.csv", "/study.json", "/hits.csv"):
            assert client.get(path).status_code == 404, path


FORM_FAULTS = {  # a change to a complete form -> the status that refuses it
    "an unknown field": (lambda f: f | {"note": "x"}, 400),
    "a missing answer": (lambda f: {k: v for k, v in f.items() if k != "choice_1"}, 400),
    "an answer that is no side": (lambda f: f | {"choice_0": "middle"}, 400),
    "can't tell where not offered": (lambda f: f | {"choice_0": "cant_tell"}, 400),
    "a check with no answer": (lambda f: f | {"check_0": ""}, 400),
    "another HIT's id": (lambda f: f | {"hit_id": "hit99999"}, 400),
    "another assignment": (lambda f: f | {"assignment": "0" * 32}, 400),
}


@pytest.mark.parametrize("fault", FORM_FAULTS)
def test_every_form_field_is_checked(study: Path, fault: str) -> None:
    change, status = FORM_FAULTS[fault]
    with running(study) as base, httpx.Client(base_url=base) as client:
        p = page(client, enter(client, "/start?participant=P1"))
        assert submit(client, p, change(p.form())).status_code == status
    assert table(study, "SELECT COUNT(*) FROM answers") == [(0,)]


@pytest.mark.parametrize("body, ctype, status", [
    (b"choice_0=left&choice_0=right", "application/x-www-form-urlencoded", 400),  # a field twice
    (b"choice_0=left\xff", "application/x-www-form-urlencoded", 400),  # not UTF-8
    (b"choice_0=%ff", "application/x-www-form-urlencoded", 400),  # an escape that is not UTF-8
    (b"{}", "application/json", 415),
    (b"x=" + b"a" * 70_000, "application/x-www-form-urlencoded", 413),
])
def test_a_malformed_body_is_refused(study: Path, body: bytes, ctype: str, status: int) -> None:
    with running(study) as base, httpx.Client(base_url=base) as client:
        session = enter(client, "/start?participant=P1")
        page(client, session)
        assert client.post(session + "/submit", content=body, headers={"content-type": ctype}).status_code == status
    assert table(study, "SELECT COUNT(*) FROM answers") == [(0,)]


def test_pages_hold_no_answer_and_send_strict_headers(study: Path) -> None:
    key = rows(study / "key.csv")
    with running(study) as base, httpx.Client(base_url=base) as client:
        response = client.get(enter(client, "/start?participant=P1"))
        for unknown in ("/s/" + "0" * 32, "/s/x", "/nothing"):
            assert client.get(unknown).status_code == 404
    text = response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["referrer-policy"] == "no-referrer" and response.headers["cache-control"] == "no-store"
    for secret in ("method0", "method1", "real", "scrambled", "a_side", "correct", *{k["person"] for k in key}):
        assert not re.search(rf"\b{re.escape(secret)}\b", text), secret
    urls = re.findall(r'src="(/images/[0-9a-f]{24}\.png)"', text)
    assert len(urls) == 4 * K and "${" not in text


def test_a_database_of_another_export_is_refused(study: Path) -> None:
    from vton.studies.app import create_app
    from vton.studies.db import StateError

    create_app(study)
    hits = (study / "hits.csv").read_text().replace("hit00001", "hit00009")
    (study / "hits.csv").write_text(hits)
    with pytest.raises(StateError, match="holds the answers of another export"):
        create_app(study)


def test_answers_are_never_joined_with_another_exports_key(exported: Path, study: Path) -> None:
    """Was: exporting again into a folder with collected answers replaced the key that unblinds them, and `study
    results` then joined the old answers with the new HITs and key without a word."""
    with running(study) as base, httpx.Client(base_url=base) as client:
        p = page(client, enter(client, "/start?participant=P1"))
        submit(client, p)
    before = {f: (study / f).read_bytes() for f in ("hits.csv", "key.csv", "study.json")}
    runs = [str(exported.parent / f"run{i}") for i in range(2)]
    again = CliRunner().invoke(main, ["study", "export", "--run", runs[0], "--run", runs[1], "--base-url",
                                      "https://cdn.example.org/s", "--out", str(study), "--seed", "2"])
    assert again.exit_code == 1 and "holds a study's collected answers" in again.output
    assert {f: (study / f).read_bytes() for f in before} == before
    hits = (study / "hits.csv").read_text().replace("hit00001", "hit00009")  # hits.csv changed by hand
    (study / "hits.csv").write_text(hits)
    result = CliRunner().invoke(main, ["study", "results", str(study)])
    assert result.exit_code == 1 and "holds the answers of another export" in result.output
    assert not (study / "results.csv").exists() and not (study / "answers.parquet").exists()


def test_results_need_a_database(study: Path) -> None:
    result = CliRunner().invoke(main, ["study", "results", str(study)])
    assert result.exit_code == 1 and "nobody has taken part in this study yet" in result.output


def test_template_values_are_escaped(study: Path) -> None:
    from vton.studies.folder import StudyFolder

    s = StudyFolder(study)
    s.hits["hit00001"]["person_0"] = '"><script>alert(1)</script>'
    filled = s.fill("hit00001")
    assert "<script>alert(1)" not in filled and "&quot;&gt;&lt;script&gt;" in filled


@pytest.mark.parametrize("info, names_key", [
    ([], "the top level must be an object"),
    ({"base_url": "https://cdn.example.org/s"}, '["trials_per_hit"] is missing'),
    ({"base_url": "https://cdn.example.org/s", "trials_per_hit": "4"}, '["trials_per_hit"] must be a non-negative'),
    ({"base_url": 5, "trials_per_hit": 4}, '["base_url"] must be a string, not 5'),
])
def test_study_refuses_malformed_study_json(study: Path, info: object, names_key: str) -> None:
    from vton.reports.shapes import ShapeError
    from vton.studies.folder import StudyFolder

    (study / "study.json").write_text(json.dumps(info))
    with pytest.raises(ShapeError, match=re.escape(f"{study / 'study.json'}: {names_key}")):
        StudyFolder(study)


def test_study_refuses_hits_without_the_template_columns(study: Path) -> None:
    from vton.studies.export import StudyError
    from vton.studies.folder import StudyFolder

    hits = rows(study / "hits.csv")
    with open(study / "hits.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, [c for c in hits[0] if c != "person_1"], extrasaction="ignore")
        w.writeheader()
        w.writerows(hits)
    with pytest.raises(StudyError, match="lacks columns person_1 that hit_template.html uses"):
        StudyFolder(study)


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_refuses_a_port_out_of_range(study: Path, port: str) -> None:
    result = CliRunner().invoke(main, ["study", "serve", str(study), "--port", port])
    assert result.exit_code == 2 and "Invalid value for '--port'" in result.output, result.output
