"""A model loaded in the background: ``/ready`` says ``loading`` then ``up`` (or why it failed),
and whoever needs the model meanwhile waits for it, bounded, instead of failing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from structlog.testing import capture_logs

from kglab_shared.app import create_service_app
from kglab_shared.health import BackgroundLoad, ModelNotLoaded, Readiness
from kglab_shared.settings import ServiceSettings
from tests.waiting import wait_until

router = APIRouter()


@router.get("/shout/{word}")
async def shout(word: str, request: Request) -> dict[str, str]:
    """Use the model (waits for it while it loads)."""
    model: BackgroundLoad[Callable[[str], str]] = request.app.state.model
    upper = await model.wait()
    return {"word": upper(word)}


def gated_loader(gate: threading.Event) -> Callable[[], Callable[[str], str]]:
    def load() -> Callable[[str], str]:
        assert gate.wait(10), "the test never released the model"
        return str.upper

    return load


def failing_loader() -> Callable[[str], str]:
    raise FileNotFoundError("model.onnx is missing; run `make install`")


def service(model: BackgroundLoad[Callable[[str], str]]) -> FastAPI:
    app = create_service_app(
        ServiceSettings(service_name="example"), title="example", routers=[router]
    )
    app.state.model = model
    app.state.readiness = Readiness()
    app.state.readiness.add("tiny_model", model.check)
    return app


@pytest.fixture
async def gate() -> AsyncIterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # never leave a loader thread waiting


def client_of(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_ready_says_loading_then_up(gate: threading.Event) -> None:
    model = BackgroundLoad("tiny_model", gated_loader(gate)).start()
    async with client_of(service(model)) as client:
        assert (await client.get("/health")).status_code == 200
        loading = await client.get("/ready")
        assert loading.status_code == 503
        state = loading.json()["dependencies"]["tiny_model"]
        assert state["status"] == "loading"
        assert state["detail"] == "The model tiny_model is loading."

        gate.set()

        async def ready() -> bool:
            return (await client.get("/ready")).status_code == 200

        await wait_until(ready)
        body = (await client.get("/ready")).json()
        assert body["status"] == "ready"
        assert body["dependencies"]["tiny_model"]["status"] == "up"
        assert model.loaded
        assert model.load_s is not None


async def test_a_request_during_loading_waits_and_succeeds(gate: threading.Event) -> None:
    model = BackgroundLoad("tiny_model", gated_loader(gate)).start()
    async with client_of(service(model)) as client:
        request = asyncio.create_task(client.get("/shout/hello"))
        await asyncio.sleep(0.1)
        assert not request.done()  # it waits for the model instead of failing
        gate.set()
        response = await asyncio.wait_for(request, timeout=10)
        assert response.status_code == 200
        assert response.json() == {"word": "HELLO"}


async def test_a_worker_thread_waits_for_the_model(gate: threading.Event) -> None:
    model = BackgroundLoad("tiny_model", gated_loader(gate)).start()
    worker = asyncio.create_task(asyncio.to_thread(model.get))
    await asyncio.sleep(0.05)
    assert not worker.done()
    gate.set()
    assert (await asyncio.wait_for(worker, timeout=10))("x") == "X"


async def test_the_wait_is_bounded(gate: threading.Event) -> None:
    model = BackgroundLoad("tiny_model", gated_loader(gate), wait_s=0.05).start()
    with pytest.raises(ModelNotLoaded, match=r"still loading after 0.05 s; try again"):
        await model.wait()
    async with client_of(service(model)) as client:
        response = await client.get("/shout/hello")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    assert "The model tiny_model is still loading" in response.json()["detail"]


async def test_a_failed_load_is_named_in_ready_answered_and_logged() -> None:
    with capture_logs() as logs:
        model = BackgroundLoad("tiny_model", failing_loader).start()
        async with client_of(service(model)) as client:

            async def settled() -> bool:
                state = (await client.get("/ready")).json()["dependencies"]["tiny_model"]
                return bool(state["status"] == "down")

            await wait_until(settled)
            state = (await client.get("/ready")).json()["dependencies"]["tiny_model"]
            assert "The model tiny_model failed to load" in state["detail"]
            assert "model.onnx is missing; run `make install`" in state["detail"]

            response = await client.get("/shout/hello")
            assert response.status_code == 503
            assert response.json()["detail"] == (
                "The model tiny_model failed to load: model.onnx is missing; run `make install`"
            )
    failures = [entry for entry in logs if entry["event"] == "model_load_failed"]
    assert failures == [
        {
            "event": "model_load_failed",
            "log_level": "error",
            "model": "tiny_model",
            "error": "FileNotFoundError: model.onnx is missing; run `make install`",
        }
    ]


def test_start_is_idempotent(gate: threading.Event) -> None:
    calls: list[int] = []

    def load() -> int:
        calls.append(1)
        return 7

    model = BackgroundLoad("counted", load)
    model.start()
    model.start()
    assert model.get(5) == 7
    assert model.get(5) == 7
    assert calls == [1]


def test_a_process_that_exits_while_loading_waits_for_the_load() -> None:
    """The interpreter must not stop the loader mid-load: a native runtime stopped inside its
    initialisation aborts the process (SIGABRT), so a clean stop during start-up crashed."""
    script = (
        "import time\n"
        "from kglab_shared.health import BackgroundLoad\n"
        "def load():\n"
        "    time.sleep(0.5)\n"
        "    print('loaded', flush=True)\n"
        "    return 1\n"
        "BackgroundLoad('slow', load).start()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded"
