"""Which upstream serves a path, and which few routes are public. Everything else is denied
unless the caller presents a valid token: a route added carelessly is still protected."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    pattern: re.Pattern[str]


# Order matters: the first match wins (document subgraphs belong to the graph service).
UPSTREAMS: tuple[Upstream, ...] = (
    Upstream("auth", re.compile(r"^/api/v1/auth(/.*)?$")),
    Upstream("auth", re.compile(r"^/\.well-known/jwks\.json$")),
    Upstream("graph", re.compile(r"^/api/v1/documents/[^/]+/graph$")),
    Upstream("graph", re.compile(r"^/api/v1/graph(/.*)?$")),
    Upstream("document", re.compile(r"^/api/v1/documents(/.*)?$")),
    Upstream("ingestion", re.compile(r"^/api/v1/(files|urls|uploads|jobs)(/.*)?$")),
    Upstream("vector", re.compile(r"^/api/v1/search$")),
)

#: (method, path regex) that need no token. Nothing else is public.
PUBLIC_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("POST", re.compile(r"^/api/v1/auth/register$")),
    ("POST", re.compile(r"^/api/v1/auth/login$")),
    ("POST", re.compile(r"^/api/v1/auth/refresh$")),
    ("POST", re.compile(r"^/api/v1/auth/password-reset/(request|confirm)$")),
    ("GET", re.compile(r"^/api/v1/auth/oauth/[a-z0-9_-]+/(authorize|callback)$")),
    ("GET", re.compile(r"^/\.well-known/jwks\.json$")),
)

#: Paths whose bodies may be as large as an upload.
UPLOAD_PATHS = re.compile(r"^/api/v1/(files|uploads)(/.*)?$")


def upstream_for(path: str) -> str | None:
    for upstream in UPSTREAMS:
        if upstream.pattern.match(path):
            return upstream.name
    return None


def is_public(method: str, path: str) -> bool:
    method = "GET" if method == "HEAD" else method
    return any(m == method and p.match(path) for m, p in PUBLIC_ROUTES)
