"""The web app in a real browser: headless Chromium through sign-in, a folder upload with live
progress, documents, search, the graph explorer, API keys and delete, against ``make dev``.

Each test signs up a user of its own (isolation); the system and the browser are the session's.
Screenshots of each page go to ``KGLAB_SCREENSHOT_DIR`` (``make screenshots`` writes the README's,
``docs/screenshots/``), otherwise to the test's temporary directory.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.live_system import PASSWORD, LiveSystem

WAIT_S = 60.0
FIRST_PAGE_SCRIPT_LIMIT = 300 * 1024
CORPUS = {
    "salt.md": "# Salt\n\nVelmora is a salt town. Anna Berg mined salt in Velmora with Karl Odd.\n",
    "notes/company.txt": (
        "Karl Odd founded the Velmora Salt Company in Oslo. Anna Berg joined the company.\n"
    ),
    "notes/curie.md": (
        "# Curie\n\nMarie Curie worked with Pierre Curie in Paris. "
        "Marie Curie discovered radium in Paris with Pierre Curie.\n"
    ),
    # The same bytes as salt.md under another name: shown as a duplicate.
    "notes/salt-copy.md": (
        "# Salt\n\nVelmora is a salt town. Anna Berg mined salt in Velmora with Karl Odd.\n"
    ),
    # Not a format the service reads: refused with a sentence.
    "notes/image.bin": "\x00\x01\x02\x03" * 64,
}


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[WebDriver, str], Path]:
    target = Path(os.environ.get("KGLAB_SCREENSHOT_DIR") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)

    def take(driver: WebDriver, name: str) -> Path:
        path = target / f"{name}.png"
        assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
        return path

    return take


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    # A view re-renders what it shows: an element read mid-render is stale, so read it again.
    return WebDriverWait(
        driver, WAIT_S, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition, message=what)


def element(driver: WebDriver, css: str) -> WebElement:
    found: WebElement = wait_for(
        driver, lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, css)), None), css
    )
    return found


def sign_in(driver: WebDriver, system: LiveSystem, email: str) -> None:
    driver.get(f"{system.url}/")
    element(driver, "#email").send_keys(email)
    element(driver, "#password").send_keys(PASSWORD)
    element(driver, "#sign-in").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "sign-out"), "signed in")


def upload_corpus(system: LiveSystem, token: str, names: list[str]) -> dict[str, str]:
    """Upload through the API and wait until each is searchable; document id by name."""
    jobs = {}
    with system.client(token) as client:
        for name in names:
            response = client.post(
                "/api/v1/files",
                files={"file": (Path(name).name, CORPUS[name].encode(), "text/plain")},
            )
            assert response.status_code in (200, 202), response.text
            jobs[name] = response.json()["job_id"]
        ids = {}
        deadline = time.monotonic() + WAIT_S
        while len(ids) < len(jobs):
            assert time.monotonic() < deadline, f"jobs not completed within {WAIT_S} s"
            for name, job_id in jobs.items():
                job = client.get(f"/api/v1/jobs/{job_id}").json()
                assert job["status"] != "failed", job
                if job["status"] == "completed":
                    ids[name] = str(job["document_id"])
            time.sleep(0.1)  # polling the public API: no event to wait on from outside
    return ids


def console_errors(driver: WebDriver) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
    ]


def test_register_sign_out_and_a_wrong_password(
    browser: WebDriver, live_system: LiveSystem, screenshot: Callable[[WebDriver, str], Path]
) -> None:
    browser.get(f"{live_system.url}/")
    element(browser, "#email")
    screenshot(browser, "sign-in")
    email = f"web-{os.urandom(5).hex()}@example.com"
    element(browser, "#email").send_keys(email)
    element(browser, "#password").send_keys(PASSWORD)
    element(browser, "#register").click()
    wait_for(browser, lambda d: email in d.find_element(By.ID, "nav").text, "signed in")
    assert browser.current_url.endswith("#/upload")
    # The session survives a reload (this tab's storage).
    browser.refresh()
    element(browser, "#sign-out").click()
    element(browser, "#sign-in")
    assert "signed out" in element(browser, "#status").text
    element(browser, "#email").send_keys(email)
    element(browser, "#password").send_keys("not the right passphrase")
    element(browser, "#sign-in").click()
    alert = element(browser, "form [role=alert]")
    assert "password" in alert.text.lower()
    assert console_errors(browser) == [] or all("401" in e for e in console_errors(browser))


def test_the_password_length_is_the_servers_rule(
    browser: WebDriver, live_system: LiveSystem
) -> None:
    """The page asks no more than the server (10 characters) and shows its sentence."""
    browser.get(f"{live_system.url}/")
    assert "10 characters" in element(browser, "label[for=password]").text
    email = f"web-{os.urandom(5).hex()}@example.com"
    element(browser, "#email").send_keys(email)
    element(browser, "#password").send_keys("qz7-lw4k9")  # 9 characters
    element(browser, "#register").click()
    alert = element(browser, "form [role=alert]")
    assert "at least 10 characters" in alert.text
    element(browser, "#password").clear()
    element(browser, "#password").send_keys("qz7-lw4k9x")  # 10: enough
    element(browser, "#register").click()
    wait_for(browser, lambda d: email in d.find_element(By.ID, "nav").text, "signed in")


def test_folder_upload_shows_live_progress_duplicates_and_refusals(
    browser: WebDriver,
    live_system: LiveSystem,
    tmp_path: Path,
    screenshot: Callable[[WebDriver, str], Path],
) -> None:
    folder = tmp_path / "corpus"
    for name, text in CORPUS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    email, _ = live_system.new_user()
    sign_in(browser, live_system, email)
    # Record every WebSocket message the page receives: the progress must come live.
    browser.execute_script(
        """
        window.__progress = [];
        const Native = window.WebSocket;
        window.WebSocket = function (url) {
          const socket = new Native(url);
          socket.addEventListener('message', (event) => window.__progress.push(event.data));
          return socket;
        };
        """
    )
    element(browser, "#folder").send_keys(str(folder))

    def settled(driver: WebDriver) -> bool:
        states = [
            row.get_attribute("data-state")
            for row in driver.find_elements(By.CSS_SELECTOR, "#jobs .job")
        ]
        return len(states) == len(CORPUS) and all(
            s in ("completed", "duplicate", "failed") for s in states
        )

    wait_for(browser, settled, "every file settled")
    rows = {
        row.find_element(By.CSS_SELECTOR, ".name").text: row
        for row in browser.find_elements(By.CSS_SELECTOR, "#jobs .job")
    }
    assert set(rows) == {f"corpus/{name}" for name in CORPUS}
    refused = rows["corpus/notes/image.bin"]
    assert refused.get_attribute("data-state") == "failed"
    assert "not a format we read" in refused.text
    copies = [rows["corpus/salt.md"], rows["corpus/notes/salt-copy.md"]]
    assert sorted(str(r.get_attribute("data-state")) for r in copies) == ["completed", "duplicate"]
    for name in ("corpus/notes/company.txt", "corpus/notes/curie.md"):
        assert rows[name].get_attribute("data-state") == "completed"
        assert rows[name].find_element(By.TAG_NAME, "progress").get_attribute("value") == "100"
    messages = [json.loads(m) for m in browser.execute_script("return window.__progress")]
    finals = [m for m in messages if m.get("final")]
    assert len(finals) >= 3
    assert {m["status"] for m in finals} == {"completed"}
    stages = {m["stage"] for m in messages if not m.get("final")}
    assert stages & {"extracting", "storing", "embedding", "graphing"}, stages
    summary = element(browser, "#upload-summary").text
    assert summary == "5 sent · 3 completed · 1 duplicate · 1 failed", summary
    screenshot(browser, "upload")


def test_documents_filter_view_and_delete_with_progress(
    browser: WebDriver, live_system: LiveSystem, screenshot: Callable[[WebDriver, str], Path]
) -> None:
    email, token = live_system.new_user()
    ids = upload_corpus(live_system, token, ["salt.md", "notes/curie.md", "notes/company.txt"])
    sign_in(browser, live_system, email)
    browser.get(f"{live_system.url}/#/documents")
    wait_for(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#documents tbody tr a")) == 3,
        "3 documents",
    )
    screenshot(browser, "documents")
    element(browser, "#filter-source").send_keys("curie.md")
    element(browser, "#apply-filters").click()
    wait_for(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#documents tbody tr a")) == 1,
        "filtered",
    )
    element(browser, "#documents tbody tr a").click()
    wait_for(browser, lambda d: "Marie Curie" in d.find_element(By.ID, "chunks").text, "chunks")
    wait_for(
        browser, lambda d: "Pierre Curie" in d.find_element(By.ID, "doc-entities").text, "entities"
    )
    wait_for(
        browser,
        lambda d: int(d.find_element(By.ID, "doc-graph").get_attribute("data-nodes") or 0) >= 3,
        "subgraph drawn",
    )
    screenshot(browser, "document")
    element(browser, "#delete").click()
    browser.switch_to.alert.accept()
    wait_for(
        browser,
        lambda d: "Deleted from every store" in d.find_element(By.ID, "deletion").text,
        "deleted",
    )
    assert "graph: gone" in element(browser, "#deletion").text
    with live_system.client(token) as client:
        assert client.get(f"/api/v1/documents/{ids['notes/curie.md']}").status_code == 404
        assert client.get(f"/api/v1/documents/{ids['salt.md']}").status_code == 200


def test_search_highlights_words_shows_related_documents_and_nothing_relevant(
    browser: WebDriver, live_system: LiveSystem, screenshot: Callable[[WebDriver, str], Path]
) -> None:
    email, token = live_system.new_user()
    upload_corpus(live_system, token, ["salt.md", "notes/company.txt", "notes/curie.md"])
    sign_in(browser, live_system, email)
    browser.get(f"{live_system.url}/#/search")
    element(browser, "#q").send_keys("salt town")
    element(browser, "#search").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results .hits li"), "hits")
    marks = [m.text.lower() for m in browser.find_elements(By.CSS_SELECTOR, "#results mark")]
    assert "salt" in marks
    assert "town" in marks
    assert not browser.find_elements(By.ID, "nothing-relevant")
    screenshot(browser, "search")
    query = element(browser, "#q")
    query.clear()
    query.send_keys("xylophone quasar")
    element(browser, "#search").click()
    notice = element(browser, "#nothing-relevant")
    assert "Nothing relevant" in notice.text
    assert browser.find_elements(By.CSS_SELECTOR, "#results mark") == []


def test_graph_explorer_expands_finds_paths_and_shows_a_links_evidence(
    browser: WebDriver, live_system: LiveSystem, screenshot: Callable[[WebDriver, str], Path]
) -> None:
    email, token = live_system.new_user()
    upload_corpus(live_system, token, ["salt.md", "notes/company.txt", "notes/curie.md"])
    sign_in(browser, live_system, email)
    browser.get(f"{live_system.url}/#/graph")

    # The most connected entities, from the server's ranking, most links first.
    with live_system.client(token) as client:
        ranked = client.get("/api/v1/graph/top-entities", params={"limit": 10}).json()["results"]
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#top-entities li"), "top")
    shown = browser.find_elements(By.CSS_SELECTOR, "#top-entities li")
    assert [li.find_element(By.TAG_NAME, "button").text for li in shown] == [
        e["name"] for e in ranked
    ]
    degrees = [int(li.get_attribute("data-degree") or 0) for li in shown]
    assert degrees == sorted(degrees, reverse=True)
    assert degrees[0] >= 3
    assert f"{degrees[0]} links" in shown[0].text
    # Pressing one expands it.
    shown[0].find_element(By.TAG_NAME, "button").click()
    wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "#graph-side h2").text == ranked[0]["name"],
        "top entity expanded",
    )

    element(browser, "#entity-q").send_keys("Karl Od")  # typos and fragments are tolerated
    element(browser, "#entity-search").click()
    wait_for(browser, lambda d: "Karl Odd" in d.find_element(By.ID, "entity-results").text, "found")
    element(browser, "#entity-results button").click()
    wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "#graph-side h2").text == "Karl Odd",
        "expanded",
    )
    wait_for(
        browser,
        lambda d: int(d.find_element(By.ID, "graph").get_attribute("data-nodes") or 0) >= 3,
        "drawn",
    )
    first = int(element(browser, "#graph").get_attribute("data-nodes") or 0)
    # Expanding a neighbour from the keyboard-reachable list adds its own neighbours.
    anna = next(
        b
        for b in browser.find_elements(By.CSS_SELECTOR, "#graph-nodes button")
        if b.text == "Anna Berg"
    )
    anna.click()
    wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, "#graph-side h2").text == "Anna Berg",
        "expanded again",
    )
    assert int(element(browser, "#graph").get_attribute("data-nodes") or 0) >= first
    # The evidence behind a link: the sentences that name both, quoted from the documents.
    karl = next(
        b for b in browser.find_elements(By.CSS_SELECTOR, "#links button") if "Karl Odd" in b.text
    )
    karl.click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#evidence q"), "evidence")
    sentences = [q.text for q in browser.find_elements(By.CSS_SELECTOR, "#evidence q")]
    assert any("Anna Berg" in s and "Karl Odd" in s for s in sentences), sentences
    assert element(browser, "#evidence a").get_attribute("href").split("#/documents/")[1]

    # A path by names: the server resolves them; the steps' sentences are one press away.
    element(browser, "#path-from").send_keys("Anna Berg")
    element(browser, "#path-to").send_keys("Oslo")
    element(browser, "#find-path").click()
    wait_for(browser, lambda d: "→ Oslo" in d.find_element(By.ID, "path-result").text, "path")
    assert element(browser, "#path-result").text.split(": ", 1)[1].startswith("Anna Berg")
    element(browser, "#path-links button").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#evidence q"), "step evidence")
    screenshot(browser, "graph")

    # A name that could mean two entities: the candidates are offered, one press picks one.
    for field, text in (("#path-from", "Curie"), ("#path-to", "Paris")):
        element(browser, field).clear()
        element(browser, field).send_keys(text)
    element(browser, "#find-path").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#path-candidates button"), "?")
    assert "could mean 2 entities" in element(browser, "#path-result").text
    candidates = browser.find_elements(By.CSS_SELECTOR, "#path-candidates button")
    assert sorted(b.text for b in candidates) == ["Marie Curie", "Pierre Curie"]
    next(b for b in candidates if b.text == "Marie Curie").click()
    wait_for(browser, lambda d: "→ Paris" in d.find_element(By.ID, "path-result").text, "picked")
    assert element(browser, "#path-result").text.split(": ", 1)[1].startswith("Marie Curie")
    assert element(browser, "#path-from").get_attribute("value") == "Marie Curie"

    # An entity by name in the address: the server resolves it.
    browser.get(f"{live_system.url}/#/graph/Oslo")
    wait_for(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, "#graph-side h2").text == "Oslo", "Oslo"
    )
    # Only the ambiguous name's answer (Chromium logs every 4xx), no script error.
    assert [e for e in console_errors(browser) if "409 (Conflict)" not in e] == []


def test_api_keys_are_created_with_scopes_listed_and_revoked(
    browser: WebDriver, live_system: LiveSystem, screenshot: Callable[[WebDriver, str], Path]
) -> None:
    email, _ = live_system.new_user()
    sign_in(browser, live_system, email)
    browser.get(f"{live_system.url}/#/keys")
    element(browser, "#key-name").send_keys("nightly importer")
    element(browser, '[id="scope-documents:write"]').click()
    element(browser, '[id="scope-jobs:read"]').click()
    element(browser, "#create-key").click()
    key = element(browser, "#new-key code").text
    assert key.startswith("kglab_")
    row = element(browser, "#keys tbody tr")
    assert "documents:write, jobs:read" in row.text
    screenshot(browser, "api-keys")
    with httpx.Client(base_url=live_system.url, headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get("/api/v1/jobs").status_code == 200
        assert c.get("/api/v1/search", params={"q": "salt"}).status_code == 403
    element(browser, "#keys tbody tr button").click()
    wait_for(browser, lambda d: "No API keys" in d.find_element(By.ID, "keys").text, "revoked")
    with httpx.Client(base_url=live_system.url, headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get("/api/v1/jobs").status_code == 401


def test_first_page_is_small_and_breaks_no_content_policy(
    browser: WebDriver, live_system: LiveSystem
) -> None:
    browser.get(f"{live_system.url}/")
    element(browser, "#sign-in")
    scripts = browser.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.initiatorType === 'script' || e.name.endsWith('.js'))"
        ".map(e => [e.name, e.decodedBodySize])"
    )
    total = sum(int(size) for _, size in scripts)
    assert scripts, "no script loaded"
    assert total < FIRST_PAGE_SCRIPT_LIMIT, scripts
    assert not any("chunk-" in name for name, _ in scripts), "the graph library loaded early"
    # Only this origin is ever asked for anything.
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)"
    )
    assert set(origins) <= {live_system.url}
    # Drawing the graph applies no inline style or script the policy refuses.
    email, _ = live_system.new_user()
    sign_in(browser, live_system, email)
    browser.get(f"{live_system.url}/#/graph")
    element(browser, "#graph")
    assert [e for e in console_errors(browser) if "Content Security Policy" in e] == []


def test_signing_in_and_moving_around_by_keyboard_alone(
    browser: WebDriver, live_system: LiveSystem
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    email, _ = live_system.new_user()
    browser.get(f"{live_system.url}/")
    element(browser, "#email")
    keys = ActionChains(browser)
    # The heading has focus after a view renders; Tab reaches the fields in order.
    keys.send_keys(Keys.TAB, email, Keys.TAB, PASSWORD, Keys.ENTER).perform()
    wait_for(browser, lambda d: d.find_elements(By.ID, "sign-out"), "signed in by keyboard")
    # Every control on every view has a name a screen reader can say.
    for view in ("upload", "documents", "search", "graph", "keys"):
        browser.get(f"{live_system.url}/#/{view}")
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "main h1"), view)
        unnamed = browser.execute_script(
            """
            return [...document.querySelectorAll('main input, main select, main textarea')]
              .filter(el => el.type !== 'hidden')
              .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
              .map(el => el.id || el.outerHTML.slice(0, 80));
            """
        )
        assert unnamed == [], (view, unnamed)
        focused = browser.execute_script("return document.activeElement.tagName")
        assert focused == "H1", (view, focused)  # focus moves to the new view's heading


def test_a_big_file_goes_through_tus_and_resumes_after_a_reload(
    browser: WebDriver, live_system: LiveSystem, tmp_path: Path
) -> None:
    """Files of 8 MB or more are sent with tus; a reload between pieces loses nothing: the
    page finds the upload it started (localStorage) and goes on from the server's offset."""
    size = 9 * 1024 * 1024
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(size))  # not a format we read: refused once it is all there
    os.utime(big, (1_700_000_000, 1_700_000_000))
    email, token = live_system.new_user()
    # The first 2 MB were sent before "the reload": an upload the server holds at 2 MB.
    with live_system.client(token) as client:
        created = client.post(
            "/api/v1/uploads",
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(size),
                "Upload-Metadata": "filename " + base64.b64encode(b"big.bin").decode(),
            },
        )
        assert created.status_code == 201, created.text
        location = httpx.URL(created.headers["Location"]).path
        first = client.patch(
            location,
            content=big.read_bytes()[: 2 * 1024 * 1024],
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert first.status_code == 204, first.text
    sign_in(browser, live_system, email)
    browser.execute_script(
        "window.localStorage.setItem(arguments[0], arguments[1]);",
        f"kglab.tus:{email}:big.bin:{size}:1700000000000",
        location,
    )
    browser.execute_script(
        """
        window.__patches = [];
        const native = window.fetch;
        window.fetch = (url, init = {}) => {
          if (init.method === 'PATCH') window.__patches.push(init.headers['Upload-Offset']);
          return native(url, init);
        };
        """
    )
    element(browser, "#files").send_keys(str(big))
    row = element(browser, "#jobs .job")
    wait_for(browser, lambda d: row.get_attribute("data-state") == "failed", "refused at the end")
    assert "not a format we read" in row.text
    offsets = browser.execute_script("return window.__patches")
    assert offsets[0] == str(2 * 1024 * 1024), offsets  # resumed, not started again
    assert len(offsets) == 4  # 2 MB pieces for the 7 MB left
    stored = browser.execute_script("return Object.keys(window.localStorage)")
    assert not [k for k in stored if k.startswith("kglab.tus:")]  # a refused upload is forgotten


def test_documents_are_paged_with_a_cursor(browser: WebDriver, live_system: LiveSystem) -> None:
    email, token = live_system.new_user()
    with live_system.client(token) as client:
        for number in range(11):
            text = f"Note {number}: the harbour of Velmora ships salt, crate {number * 7919}.\n"
            response = client.post(
                "/api/v1/files", files={"file": (f"note-{number}.txt", text.encode(), "text/plain")}
            )
            assert response.status_code == 202, response.text
    sign_in(browser, live_system, email)
    browser.get(f"{live_system.url}/#/documents")
    rows = "#documents tbody tr a"
    element(browser, "#filter-per")
    browser.execute_script("document.getElementById('filter-per').value = '10'")

    def all_stored(driver: WebDriver) -> bool:
        element(driver, "#apply-filters").click()
        return len(driver.find_elements(By.CSS_SELECTOR, rows)) == 10 and bool(
            driver.find_element(By.ID, "more").is_displayed()
        )

    wait_for(browser, all_stored, "a first page of 10 and a cursor to the rest")
    element(browser, "#more").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 11, "page two")
    titles = [a.text for a in browser.find_elements(By.CSS_SELECTOR, rows)]
    assert len(set(titles)) == 11  # nothing twice, nothing skipped
    assert not element(browser, "#more").is_displayed()
