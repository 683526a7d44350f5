"""A headless Chromium to drive the live system (``tests/live_system.py``) with.

``browser`` is Debian's ``chromium`` driven by Debian's ``chromedriver`` through selenium, with
the driver's path given so selenium-manager never looks anything up or downloads a driver. One
browser per session; each test gets it on a clean slate. A machine without them skips these
tests locally and fails them in CI (``KGLAB_REQUIRE_BACKENDS=1``, as for a missing server).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.backends import backends_required
from tests.live_system import LiveSystem, group_on_one_worker

CHROMIUM = Path(os.environ.get("KGLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("KGLAB_CHROMEDRIVER", "/usr/bin/chromedriver"))
#: A laptop screen.
WINDOW = (1366, 860)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One worker runs every browser test: one live system and one browser per run."""
    group_on_one_worker(items, Path(__file__).parent)


def chromium_missing() -> str | None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return None
    return (
        f"{' and '.join(missing)} not found: install Debian's chromium and chromium-driver "
        "(apt-get install chromium chromium-driver)."
    )


@pytest.fixture(scope="session")
def chromium() -> Iterator[WebDriver]:
    """One headless Chromium for the session (selenium WebDriver)."""
    reason = chromium_missing()
    if reason is not None:
        if backends_required():
            pytest.fail(f"KGLAB_REQUIRE_BACKENDS=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--lang=en-GB",
    ):
        options.add_argument(argument)
    # The page's console, for the tests that check it breaks no content policy.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path is given, so selenium-manager is not asked for one (nothing downloaded).
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: WebDriver, live_system: LiveSystem) -> WebDriver:
    """The session's Chromium on a clean slate: nothing stored from a test before."""
    chromium.get(f"{live_system.url}/health")
    chromium.delete_all_cookies()
    chromium.execute_script("window.localStorage.clear(); window.sessionStorage.clear();")
    chromium.get_log("browser")  # drop what earlier tests logged
    return chromium
