"""`vton study serve`: the exported study served locally, answered over HTTP and in a real headless Chromium."""
from __future__ import annotations

import csv
import http.client
import json
import re
import shutil
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests._reports_fixtures import person_ids, write_data, write_eval_run
from vton.cli import main
from vton.studies.server import Study, make_server

N = 10
K = 4
pytestmark = pytest.mark.xdist_group("study")


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    ids = person_ids(N)
    data = write_data(tmp_path, ids)
    ssim = np.linspace(0.5, 0.9, N)
    a = write_eval_run(tmp_path, "runA", "cpvton", data, ssim, 2, set(), set())
    b = write_eval_run(tmp_path, "runB", "baseline", data, ssim, 3, set(), set())
    out = tmp_path / "study"
    result = CliRunner().invoke(main, ["amt", "export", "--a", str(a), "--b", str(b), "--base-url",
                                       "https://cdn.example.org/s", "--out", str(out), "--trials-per-hit", str(K),
                                       "--catch-rate", "0.25", "--seed", "1"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture()
def server(study: Path):
    srv = make_server(study, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, method: str, path: str, body: str | bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_server_binds_loopback_and_serves_hits(server, study: Path) -> None:
    assert server.server_address[0] == "127.0.0.1"
    status, _, page = request(server, "GET", "/hit?worker=P1")
    text = page.decode()
    assert status == 200 and "${" not in text
    hit_id = re.search(r'name="hit_id" value="(hit\d+)"', text).group(1)
    imgs = re.findall(r'src="(/images/[0-9a-f]{24}\.png)"', text)
    assert len(imgs) == 4 * K
    status, headers, data = request(server, "GET", imgs[0])
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert data == (study / "images" / imgs[0].rsplit("/", 1)[1]).read_bytes()
    for bad in ("/images/..%2Fkey.csv", "/images/../key.csv", "/key.csv", "/images/x.csv", "/study.json"):
        assert request(server, "GET", bad)[0] == 404
    assert request(server, "GET", "/hit?worker=" + urllib.parse.quote("<b>"))[0] == 400
    # an incomplete form is refused and nothing is written
    incomplete = urllib.parse.urlencode({"worker": "P1", "hit_id": hit_id, "choice_0": "left"})
    assert request(server, "POST", "/submit", incomplete)[0] == 400
    assert not (study / "results.csv").exists()

    def submit(worker: str) -> int:
        form = {"worker": worker, "hit_id": hit_id, "accept": "0"} | {f"choice_{i}": "left" for i in range(K)}
        return request(server, "POST", "/submit", urllib.parse.urlencode(form))[0]

    with ThreadPoolExecutor(8) as pool:  # concurrent participants never interleave their rows
        assert set(pool.map(submit, [f"W{i}" for i in range(8)])) == {303}
    got = rows(study / "results.csv")
    assert sorted(r["WorkerId"] for r in got) == [f"W{i}" for i in range(8)]
    assert all(r["HITId"] == r["Input.hit_id"] == hit_id and r["Answer.choice_3"] == "left" for r in got)
    # W0 has done that HIT, so it gets another; the analysis reads the file as MTurk results
    _, _, page = request(server, "GET", "/hit?worker=W0")
    assert f'value="{hit_id}"' not in page.decode()
    res = CliRunner().invoke(main, ["amt", "analyze", str(study / "results.csv"), "--key", str(study / "key.csv"),
                                    "--bootstrap", "50", "--min-catch-accuracy", "0"])
    assert res.exit_code == 0, res.output
    key = rows(study / "key.csv")
    n_ab = sum(k["kind"] == "ab" and k["hit_id"] == hit_id for k in key)
    assert f"/{8 * n_ab} prefer A" in res.output


def test_template_values_are_escaped(study: Path) -> None:
    s = Study(study)
    hit = dict(s.hits[0]) | {"person_0": '"><script>alert(1)</script>'}
    filled = s.fill(hit)
    assert "<script>alert(1)" not in filled and "&quot;&gt;&lt;script&gt;" in filled


@pytest.mark.parametrize("info, names_key", [
    ([], "the top level must be an object"),
    ({"base_url": "https://cdn.example.org/s"}, '["trials_per_hit"] is missing'),
    ({"base_url": "https://cdn.example.org/s", "trials_per_hit": "4"}, '["trials_per_hit"] must be a non-negative'),
    ({"base_url": 5, "trials_per_hit": 4}, '["base_url"] must be a string, not 5'),
])
def test_study_refuses_malformed_study_json(study: Path, info: object, names_key: str) -> None:
    from vton.reports.shapes import ShapeError

    (study / "study.json").write_text(json.dumps(info))
    with pytest.raises(ShapeError, match=re.escape(f"{study / 'study.json'}: {names_key}")):
        Study(study)


def test_study_refuses_hits_without_the_template_columns(study: Path) -> None:
    from vton.studies.export import StudyError

    hits = rows(study / "hits.csv")
    with open(study / "hits.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, [c for c in hits[0] if c != "person_1"], extrasaction="ignore")
        w.writeheader()
        w.writerows(hits)
    with pytest.raises(StudyError, match="lacks columns person_1 that hit_template.html uses"):
        Study(study)


@pytest.mark.parametrize("length", ["-1", "abc", " 12x"])
def test_submit_refuses_a_bad_content_length(server, study: Path, length: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.putrequest("POST", "/submit")
    conn.putheader("Content-Length", length)
    conn.endheaders()
    assert conn.getresponse().status == 400  # read(-1) would wait for the client to hang up; int("abc") would raise
    conn.close()
    assert not (study / "results.csv").exists()


def test_submit_refuses_a_form_that_is_not_utf8(server, study: Path) -> None:
    status, _, _ = request(server, "POST", "/submit", "worker=P1&hit_id=hit00001&choice_0=left\xff".encode("latin-1"))
    assert status == 400 and not (study / "results.csv").exists()


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_refuses_a_port_out_of_range(study: Path, port: str) -> None:
    result = CliRunner().invoke(main, ["study", "serve", str(study), "--port", port])
    assert result.exit_code == 2 and "Invalid value for '--port'" in result.output, result.output


def find_browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no chromium + chromedriver on PATH (`make browser` installs them with apt-get as root)")
    pytest.importorskip("selenium", reason="pip package selenium (test extra) is not installed")
    return chromium, driver


def test_participant_clicks_through_in_headless_chromium(server, study: Path, tmp_path: Path, monkeypatch) -> None:
    chromium, chromedriver = find_browser()
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager reach out
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        browser.get(base + "/")
        browser.find_element(By.ID, "worker").send_keys("P07")
        browser.find_element(By.ID, "start").click()
        hit_id = WebDriverWait(browser, 10).until(lambda b: b.find_element(By.NAME, "hit_id")).get_attribute("value")
        # submitting early is stopped in the page and writes nothing
        browser.find_element(By.ID, "submitButton").click()
        assert "still need an answer" in browser.find_element(By.ID, "vton-status").text
        assert not (study / "results.csv").exists()
        chosen = {i: "left" if i % 2 else "right" for i in range(K)}
        for i, side in chosen.items():
            browser.find_element(By.ID, f"pick_{i}_{'left' if side == 'right' else 'right'}").click()
            browser.find_element(By.ID, f"pick_{i}_{side}").click()  # the last click counts
        browser.find_element(By.ID, "submitButton").click()
        # The page navigates after the submit: an element found before the load goes stale, so the waits retry.
        wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(
            lambda b: (
                b.find_elements(By.ID, "done") or b.find_element(By.NAME, "hit_id").get_attribute("value") != hit_id
            )
        )
        loaded = wait.until(lambda b: b.execute_script(
            "return document.readyState === 'complete' && Array.from(document.images).every("
            "function (i) { return i.complete && i.naturalWidth > 0; })"
        ))
        assert loaded  # the next HIT's images came from the study folder
    finally:
        browser.quit()
    (row,) = rows(study / "results.csv")
    assert row["WorkerId"] == "P07" and row["HITId"] == hit_id and row["AssignmentStatus"] == "Submitted"
    assert {i: row[f"Answer.choice_{i}"] for i in range(K)} == chosen
