"""Which upstream serves a path, which few routes are public, and which scope an API key needs
on each route. Everything else is denied unless the caller presents a valid token, and denied
to API keys whatever their scopes: a route added carelessly is still protected."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kglab_shared.scopes import ApiScope


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
    Upstream("ingestion", re.compile(r"^/api/v1/(files|urls|uploads|jobs|events|webhooks)(/.*)?$")),
    Upstream("vector", re.compile(r"^/api/v1/search$")),
    # Administrators' routes (rebuilds, dead letters): the document service checks the role.
    Upstream("document", re.compile(r"^/api/v1/admin/(rebuilds|dead-letters)(/.*)?$")),
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


@dataclass(frozen=True, slots=True)
class ApiKeyRule:
    """An API key may call ``methods`` on paths matching ``pattern`` with ``scope`` (``None``:
    any key, for what concerns only the key's own account)."""

    methods: frozenset[str]
    pattern: re.Pattern[str]
    scope: ApiScope | None


def _rule(methods: str, pattern: str, scope: ApiScope | None) -> ApiKeyRule:
    return ApiKeyRule(frozenset(methods.split()), re.compile(pattern), scope)


_ID = r"[^/]+"
#: The routes an API key may reach, and the scope each needs. Not listed means refused to every
#: API key (a signed-in session is needed): signing out, passwords, user administration,
#: signing-key rotation, and any route added later until it is listed here.
API_KEY_ROUTES: tuple[ApiKeyRule, ...] = (
    _rule("GET", r"^/api/v1/auth/me$", None),
    _rule("GET POST", r"^/api/v1/auth/api-keys$", ApiScope.KEYS_MANAGE),
    _rule("DELETE", rf"^/api/v1/auth/api-keys/{_ID}$", ApiScope.KEYS_MANAGE),
    _rule("GET", rf"^/api/v1/documents/{_ID}/graph$", ApiScope.GRAPH_READ),
    _rule("GET", rf"^/api/v1/documents(/{_ID}(/chunks|/deletion)?)?$", ApiScope.DOCUMENTS_READ),
    _rule("DELETE", rf"^/api/v1/documents/{_ID}$", ApiScope.DOCUMENTS_WRITE),
    _rule("POST", r"^/api/v1/(files|urls)$", ApiScope.DOCUMENTS_WRITE),
    _rule("POST OPTIONS", r"^/api/v1/uploads$", ApiScope.DOCUMENTS_WRITE),
    _rule("HEAD PATCH DELETE", rf"^/api/v1/uploads/{_ID}$", ApiScope.DOCUMENTS_WRITE),
    _rule("GET", rf"^/api/v1/jobs(/{_ID})?$", ApiScope.JOBS_READ),
    _rule("GET", r"^/api/v1/events$", ApiScope.JOBS_READ),
    _rule("GET", r"^/api/v1/search$", ApiScope.SEARCH),
    _rule(
        "GET",
        r"^/api/v1/graph/(entities|paths|related-documents|neighbors|top-entities|export|"
        r"aliases)$",
        ApiScope.GRAPH_READ,
    ),
    _rule("GET", rf"^/api/v1/graph/entities/{_ID}(/neighbors)?$", ApiScope.GRAPH_READ),
    _rule("GET", r"^/metrics$", ApiScope.METRICS_READ),
    _rule("GET POST", r"^/api/v1/webhooks$", ApiScope.WEBHOOKS_MANAGE),
    _rule("GET PATCH DELETE", rf"^/api/v1/webhooks/{_ID}$", ApiScope.WEBHOOKS_MANAGE),
    _rule("POST", rf"^/api/v1/webhooks/{_ID}/rotate-secret$", ApiScope.WEBHOOKS_MANAGE),
    _rule("GET", rf"^/api/v1/webhooks/{_ID}/deliveries$", ApiScope.WEBHOOKS_MANAGE),
    _rule("POST", rf"^/api/v1/webhooks/{_ID}/deliveries/{_ID}/replay$", ApiScope.WEBHOOKS_MANAGE),
    # WebSocket upgrades, named by the pseudo-method WS.
    _rule("WS", rf"^/ws/jobs/{_ID}$", ApiScope.JOBS_READ),
    _rule("WS", r"^/ws/events$", ApiScope.JOBS_READ),
)


def api_key_rule(method: str, path: str) -> ApiKeyRule | None:
    """The rule that lets an API key call ``method path``; None: API keys may not."""
    for rule in API_KEY_ROUTES:
        if rule.pattern.match(path) and (
            method in rule.methods or (method == "HEAD" and "GET" in rule.methods)
        ):
            return rule
    return None
