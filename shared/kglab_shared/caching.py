"""The caches of every service are ``cachetools``' (adr/0018), never written by hand again.

Most callers use ``cachetools.TTLCache`` (one lifetime for all entries) or ``LRUCache``
directly. A credential is good until its own expiry, so :func:`until_expiry_cache` keeps each
entry until the time stored with it. None of these are locked: they are used from one event
loop and no ``await`` falls between a look-up and the store that follows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from cachetools import TLRUCache

V = TypeVar("V")


def until_expiry_cache(
    maxsize: int, *, timer: Callable[[], float] | None = None
) -> TLRUCache[str, tuple[float, V]]:
    """Entries ``(expires_at, value)`` kept until ``expires_at`` (by ``timer``, the wall
    clock by default, read at each use), least recently used dropped first beyond
    ``maxsize``."""
    return TLRUCache(
        maxsize, ttu=lambda _key, entry, _now: entry[0], timer=timer or (lambda: time.time())
    )
