"""The study pages driven in a real headless Chromium (Selenium): a Prolific participant from the study URL to the
completion redirect, and an in-lab participant who types their ID."""
from __future__ import annotations

import shutil
import urllib.parse
from pathlib import Path

import pytest

from tests.study_fixtures import K, export_study, running, table

pytestmark = pytest.mark.xdist_group("study")


@pytest.fixture()
def browser(tmp_path: Path, monkeypatch):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no chromium + chromedriver on PATH (`make browser` installs them with apt-get as root)")
    pytest.importorskip("selenium", reason="pip package selenium (test extra) is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager reach out
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):  # no name resolves: nothing leaves
        opts.add_argument(flag)
    b = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    try:
        yield b
    finally:
        b.quit()


def answer_page(browser, chosen: dict[int, str]) -> str:
    """Click the chosen side of each trial (the other one first: the last click counts) and the side each
    attention check's own question asks for; returns the page's hit_id."""
    from selenium.webdriver.common.by import By

    hit_id = browser.find_element(By.NAME, "hit_id").get_attribute("value")
    for i, side in chosen.items():
        browser.find_element(By.ID, f"pick_{i}_{'left' if side == 'right' else 'right'}").click()
        browser.find_element(By.ID, f"pick_{i}_{side}").click()
    for row in browser.find_elements(By.CSS_SELECTOR, ".trial.attention"):
        asked = row.find_element(By.TAG_NAME, "b").text
        row.find_element(By.CSS_SELECTOR, f'button[data-side="{asked}"]').click()
    return hit_id


def test_prolific_participant_from_the_study_url_to_the_completion_redirect(tmp_path: Path, browser) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    study = export_study(tmp_path)
    pid, session = "5f1a2b3c4d5e6f7a8b9c0d1e", "6a7b8c9d0e1f2a3b4c5d6e7f"
    query = urllib.parse.urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "STUDYX", "SESSION_ID": session})
    chosen = {i: "left" if i % 2 else "right" for i in range(K)}
    with running(study, completion_code="C0MPL3T3", hits_per_participant=1) as base:
        browser.get(f"{base}/?{query}")
        hit_id = answer_page(browser, chosen)
        browser.find_element("id", "submitButton").click()
        WebDriverWait(browser, 20).until(lambda b: b.current_url.startswith("https://app.prolific.com/"))
    assert browser.current_url == "https://app.prolific.com/submissions/complete?cc=C0MPL3T3"
    assert table(study, "SELECT participant, prolific_study, prolific_session, outcome FROM sessions") == [
        (pid, "STUDYX", session, "completed")]
    stored = table(study, "SELECT a.hit_id, n.trial, n.value FROM answers n JOIN assignments a ON a.id = n.assignment")
    assert sorted(stored) == [(hit_id, i, side) for i, side in chosen.items()]
    assert table(study, "SELECT COUNT(*) FROM checks WHERE answer = expected") == [(1,)]


def test_lab_participant_types_their_id_and_answers(tmp_path: Path, browser) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    study = export_study(tmp_path)
    with running(study, hits_per_participant=2) as base:
        browser.get(base + "/")
        browser.find_element(By.ID, "participant").send_keys("P07")
        browser.find_element(By.ID, "start").click()
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.NAME, "hit_id"))
        browser.find_element(By.ID, "submitButton").click()  # too early: stopped in the page, nothing sent
        assert "still need an answer" in browser.find_element(By.ID, "vton-status").text
        assert table(study, "SELECT COUNT(*) FROM answers") == [(0,)]
        first = answer_page(browser, dict.fromkeys(range(K), "left"))
        browser.find_element(By.ID, "submitButton").click()
        wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda b: b.find_element(By.NAME, "hit_id").get_attribute("value") != first)
        assert wait.until(lambda b: b.execute_script(  # the next HIT's images came from the study folder
            "return document.readyState === 'complete' && Array.from(document.images).every("
            "function (i) { return i.complete && i.naturalWidth > 0; })"))
        answer_page(browser, dict.fromkeys(range(K), "right"))
        browser.find_element(By.ID, "submitButton").click()
        wait.until(lambda b: b.find_elements(By.ID, "done"))
    values = table(study, "SELECT a.participant, a.hit_id, n.value FROM answers n JOIN assignments a ON a.id = "
                          "n.assignment ORDER BY a.submitted_at")
    assert [v[0] for v in values] == ["P07"] * 2 * K
    assert [v[2] for v in values] == ["left"] * K + ["right"] * K and values[0][1] == first
