"""The browser fixtures themselves: a real Chromium reaches the live system."""

from __future__ import annotations

from selenium.webdriver.remote.webdriver import WebDriver

from tests.live_system import LiveSystem


def test_chromium_reaches_the_live_system(browser: WebDriver, live_system: LiveSystem) -> None:
    browser.get(f"{live_system.url}/health")
    assert '"status"' in browser.find_element("tag name", "body").text
    assert browser.execute_script("return navigator.webdriver") is True
