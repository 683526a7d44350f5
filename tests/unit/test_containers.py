"""The project's containers (deploy/containers/, the Dockerfile): what can be held without an
engine. Building and running them is CI's containers block (.ci/run)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVERS = {
    "KGLAB_POSTGRES_URL": "postgresql://kglab:secret@127.0.0.1:5432/kglab",
    "KGLAB_REDIS_URL": "redis://127.0.0.1:6379/0",
    "KGLAB_RABBITMQ_URL": "amqp://kglab:secret@127.0.0.1:5672/",
    "KGLAB_NEO4J_URL": "bolt://neo4j:secret@127.0.0.1:7687",
    "KGLAB_MONGO_URL": "mongodb://127.0.0.1:27017/",
}


def stages() -> list[list[str]]:
    """The Dockerfile's stages, each its instruction lines (continuations joined)."""
    joined = REPO.joinpath("Dockerfile").read_text().replace("\\\n", " ")
    result: list[list[str]] = []
    for line in joined.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def test_the_base_image_and_its_interpreter_are_build_arguments() -> None:
    text = REPO.joinpath("Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm" in text  # users' default unchanged
    builder, runtime = stages()
    assert builder[0] == "FROM ${PYTHON_IMAGE} AS builder"
    assert runtime[0] == "FROM ${PYTHON_IMAGE} AS runtime"
    assert any(line.startswith("ARG PYTHON=") for line in builder)
    # uv is told the venv: UV_PYTHON would make `uv pip install` target the base's Python.
    assert not any("UV_PYTHON=" in line for line in builder)
    installs = [line for line in builder if "uv pip install" in line]
    assert installs
    assert all("--python /app/.venv/bin/python" in line for line in installs)


def test_nothing_of_the_build_time_ca_reaches_the_runtime_image() -> None:
    _, runtime = stages()
    for line in runtime:
        for name in ("BUILD_CA_FILE", "SSL_CERT_FILE", "PIP_CERT", "UV_NATIVE_TLS", "uv "):
            assert name not in line, line


def test_the_six_images_share_the_layers_before_the_service() -> None:
    builder, runtime = stages()
    # No instruction before `ARG SERVICE` may depend on it, and the ones that install shared
    # things must come before it.
    first_service_arg = builder.index("ARG SERVICE")
    assert any(
        "./shared" in line and "uv pip install" in line for line in builder[:first_service_arg]
    )
    user = next(i for i, line in enumerate(runtime) if "useradd" in line)
    assert user < runtime.index("ARG SERVICE")


@pytest.fixture
def run_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    path = REPO / "deploy" / "stack" / "run.py"
    spec = importlib.util.spec_from_file_location("kglab_stack_run", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "STATE_ROOT", tmp_path / "state")
    for key in [k for k in os.environ if k.startswith("KGLAB_")]:
        monkeypatch.delenv(key)
    for key, value in SERVERS.items():
        monkeypatch.setenv(key, value)
    return module


def test_env_dir_writes_each_services_variables_privately(
    run_module: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "env"
    assert run_module.main(["env", "--env-dir", str(out), "--name", "img", "--port", "9100"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(f"{s}.env" for s in run_module.SERVICES)
    for service in run_module.SERVICES:
        path = out / f"{service}.env"
        assert path.stat().st_mode & 0o777 == 0o600  # it holds the stack's secret
        capsys.readouterr()
        assert run_module.main(["env", service, "--name", "img", "--port", "9100"]) == 0
        assert path.read_text() == capsys.readouterr().out  # the same as `env SERVICE`
    gateway = (out / "gateway.env").read_text().splitlines()
    assert "KGLAB_PORT=9100" in gateway
    assert "KGLAB_HOST=127.0.0.1" in gateway  # host network: loopback only
