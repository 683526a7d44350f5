"""KGLAB_INGESTION_ALLOWED_NETWORKS: reach chosen internal networks, change nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from kglab_ingestion.config import IngestionSettings
from kglab_ingestion.fetching.addresses import UnsafeUrlError
from kglab_ingestion.main import build_fetcher


def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> IngestionSettings:
    monkeypatch.setenv("KGLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KGLAB_INGESTION_ALLOWED_NETWORKS", value)
    return IngestionSettings()


async def test_listed_networks_are_reached_and_others_still_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _settings(monkeypatch, tmp_path, "127.0.0.1/32, 192.168.1.0/24")
    async with build_fetcher(settings) as fetcher:
        assert fetcher.validate("http://127.0.0.1:8080/notes.html")
        assert fetcher.validate("http://192.168.1.20/wiki")
        for refused in ("http://10.0.0.1/", "http://192.168.2.1/", "http://169.254.169.254/"):
            with pytest.raises(UnsafeUrlError, match="internal network"):
                fetcher.validate(refused)
    # Nothing else of the fetcher changed: PDFs and the limits are what they were.
    default = IngestionSettings(allowed_networks=[]).fetcher_settings()
    widened = settings.fetcher_settings()
    assert widened.allowed_content_types == default.allowed_content_types
    assert "application/pdf" in widened.allowed_content_types
    assert widened.model_dump(exclude={"allowed_private_networks"}) == default.model_dump(
        exclude={"allowed_private_networks"}
    )


async def test_by_default_loopback_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with build_fetcher(_settings(monkeypatch, tmp_path, "")) as fetcher:
        with pytest.raises(UnsafeUrlError, match="internal network"):
            fetcher.validate("http://127.0.0.1:8080/notes.html")


def test_a_value_that_is_not_a_network_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="KGLAB_INGESTION_ALLOWED_NETWORKS"):
        _settings(monkeypatch, tmp_path, "my laptop")
