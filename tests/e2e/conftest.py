"""The whole system composed as ``make dev`` composes it, driven through the gateway."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

_RUN = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "run.py"


def _load_composition() -> object:
    spec = importlib.util.spec_from_file_location("kglab_dev_run", _RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def gateway_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FastAPI]:
    monkeypatch.setenv("KGLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KGLAB_ENVIRONMENT", "development")
    monkeypatch.setenv("KGLAB_STORES", "embedded")
    monkeypatch.setenv("KGLAB_BUS", "memory")
    app: FastAPI = _load_composition().build()  # type: ignore[attr-defined]
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def gateway(gateway_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway_app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
