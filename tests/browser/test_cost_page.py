"""The research brief's cost calculator at /brief/cost, driven in a real headless Chromium:
the sliders move, and the totals the page shows are the Python cost model's for those inputs."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.support.wait import WebDriverWait

from research.brief.cost import break_even_users, estimate, model
from tests.browser.conftest import LiveSystem

_INPUT = (
    "const input = document.getElementById(arguments[0]);"
    "input.value = arguments[1];"
    "input.dispatchEvent(new Event('input', {bubbles: true}));"
)


def _totals(browser: Any) -> dict[str, dict[str, str]]:
    rows = browser.find_elements("css selector", "#totals tbody tr")
    return {
        row.get_attribute("data-provider"): {
            "total": row.get_attribute("data-total"),
            "nodes": row.find_element("css selector", ".nodes").text,
            "break_even": row.find_element("css selector", ".break-even").text,
        }
        for row in rows
    }


@pytest.fixture
def calculator(browser: Any, live_system: LiveSystem) -> Any:
    browser.get(f"{live_system.url}/brief/cost")
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == "true",
        "the calculator never loaded its model",
    )
    return browser


def test_the_page_opens_on_the_defaults_with_the_models_totals(calculator: Any) -> None:
    resolved = model()
    defaults = resolved["defaults"]
    shown = _totals(calculator)
    assert set(shown) == set(resolved["providers"])
    for provider, row in shown.items():
        expected = estimate(
            resolved,
            provider,
            defaults["users"],
            defaults["storage_gb_per_user"],
            defaults["requests_per_user_per_day"],
        )
        assert float(row["total"]) == pytest.approx(expected["total"], abs=0.01)
        assert int(row["nodes"]) == expected["nodes"]


@pytest.mark.parametrize(
    ("users", "storage", "requests", "price"),
    [(10, 0.5, 500, 10), (1000, 5.0, 2000, 25), (250, 0.1, 10, 1)],
)
def test_moving_the_sliders_recomputes_every_provider(
    calculator: Any, users: int, storage: float, requests: int, price: int
) -> None:
    resolved = model()
    before = _totals(calculator)
    for slider, value in (
        ("users", users),
        ("storage", storage),
        ("requests", requests),
        ("price", price),
    ):
        calculator.execute_script(_INPUT, slider, str(value))
    assert calculator.find_element("id", "users-value").text == str(users)
    shown = _totals(calculator)
    assert shown != before or (users, storage, requests) == (100, 0.5, 500)
    for provider, row in shown.items():
        expected = estimate(resolved, provider, users, storage, requests)
        assert float(row["total"]) == pytest.approx(expected["total"], abs=0.01), provider
        even = break_even_users(resolved, provider, price, storage, requests)
        assert row["break_even"] == ("none below 100,000" if even is None else f"{even:,}"), (
            provider
        )


def test_the_sliders_answer_the_keyboard(calculator: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    slider = calculator.find_element("id", "users")
    before = int(slider.get_attribute("value"))
    slider.send_keys(Keys.ARROW_RIGHT)
    WebDriverWait(calculator, 5).until(
        lambda d: d.find_element("id", "users-value").text == str(before + 1),
        "the users slider did not move with the arrow key",
    )
    label = calculator.find_element("css selector", "label[for=users]")
    assert label.text == "Users"
