"""The whole system as ``make dev`` runs it, on a real port, and a headless Chromium to drive it.

``live_system`` starts ``deploy/dev/run.py`` in a subprocess (embedded backends, a temporary
data directory, a free port on 127.0.0.1): the same uvicorn, gateway and services a user gets
from ``make dev``. One per test session (per xdist worker; ``make test`` groups these tests on one
worker with ``--dist loadgroup``), so each test registers a user of its own for isolation.

``browser`` is Debian's ``chromium`` driven by Debian's ``chromedriver`` through selenium, with
the driver's path given so selenium-manager never looks anything up or downloads a driver. A
machine without them skips these tests locally and fails them in CI (``KGLAB_REQUIRE_BACKENDS=1``,
as for a missing server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.backends import backends_required

REPO = Path(__file__).resolve().parents[2]
DEV_RUN = REPO / "deploy" / "dev" / "run.py"
CHROMIUM = Path(os.environ.get("KGLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("KGLAB_CHROMEDRIVER", "/usr/bin/chromedriver"))
#: Seconds for the composed system to answer /ready (imports and two small models on 2 cores).
START_TIMEOUT_S = 120.0
#: A laptop screen.
WINDOW = (1366, 860)
PASSWORD = "a long enough passphrase"


@dataclass(frozen=True)
class LiveSystem:
    """A running ``make dev`` composition."""

    url: str
    data_dir: Path
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def new_user(self) -> tuple[str, str]:
        """Register a fresh account; its email and an access token."""
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        with self.client() as client:
            registered = client.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            login = client.post(
                "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            return email, str(login.json()["access_token"])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"make dev exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                if client.get(f"{url}/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            # Polling a subprocess's readiness: there is no event to wait on.
            time.sleep(0.2)
    pytest.fail(f"make dev was not ready within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One worker runs every browser test, so the session starts one system and one browser."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture(scope="session")
def live_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSystem]:
    """``make dev`` on a free port with a temporary data directory; stopped after the session."""
    root = tmp_path_factory.mktemp("live-system")
    port = free_port()
    env = {
        **os.environ,
        "KGLAB_PORT": str(port),
        "KGLAB_DATA_DIR": str(root / "data"),
        "KGLAB_ENVIRONMENT": "development",
        "KGLAB_STORES": "embedded",
        "KGLAB_BUS": "memory",
        "KGLAB_LOG_LEVEL": "WARNING",
        # Every test signs up a user of its own from 127.0.0.1.
        "KGLAB_GATEWAY_RATE_LIMITS": (
            '[{"prefix": "/api/v1/auth/register", "limit": 1000, "window_s": 60, "per": "ip"}]'
        ),
    }
    # make dev scans uploads in process, whatever servers the shell exports.
    for name in ("KGLAB_CLAMD_URL", "KGLAB_POSTGRES_URL", "KGLAB_REDIS_URL", "KGLAB_MONGO_URL"):
        env.pop(name, None)
    log = root / "make-dev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, str(DEV_RUN)], cwd=REPO, env=env, stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield LiveSystem(url=url, data_dir=root / "data", log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


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
