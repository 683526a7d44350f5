"""Fetching web pages for ingestion: politely (robots.txt, per-host pacing, backoff) and safely
(public addresses only, pinned connections, size and time limits)."""

from kglab_ingestion.fetching.addresses import (
    UnsafeUrlError,
    is_public_address,
    validate_public_url,
)
from kglab_ingestion.fetching.errors import FetchError
from kglab_ingestion.fetching.fetcher import FetchedPage, PageFetcher
from kglab_ingestion.fetching.settings import FetcherSettings
from kglab_ingestion.fetching.transport import Resolver, system_resolver

__all__ = [
    "FetchError",
    "FetchedPage",
    "FetcherSettings",
    "PageFetcher",
    "Resolver",
    "UnsafeUrlError",
    "is_public_address",
    "system_resolver",
    "validate_public_url",
]
