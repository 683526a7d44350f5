"""The scopes an API key can carry: one fixed, documented set that auth and the gateway share.

A signed-in user (an access token from a password or third-party sign-in) has every right its
role gives; an API key has only the scopes it was created with. The gateway maps each route to
the one scope it needs (``kglab_gateway.routing.API_KEY_ROUTES``) and refuses an API key on any
route that is not in that table.
"""

from __future__ import annotations

from enum import StrEnum


class ApiScope(StrEnum):
    DOCUMENTS_READ = "documents:read"
    DOCUMENTS_WRITE = "documents:write"
    JOBS_READ = "jobs:read"
    SEARCH = "search"
    GRAPH_READ = "graph:read"
    KEYS_MANAGE = "keys:manage"
    METRICS_READ = "metrics:read"
    WEBHOOKS_MANAGE = "webhooks:manage"


#: What each scope allows, as the README and the OpenAPI document say it.
SCOPE_DESCRIPTIONS: dict[ApiScope, str] = {
    ApiScope.DOCUMENTS_READ: "list and read your documents and their chunks",
    ApiScope.DOCUMENTS_WRITE: "upload files (plain and resumable), ingest URLs, delete documents",
    ApiScope.JOBS_READ: "list and follow your ingestion jobs (also over the WebSocket)",
    ApiScope.SEARCH: "search your documents",
    ApiScope.GRAPH_READ: "read the knowledge graph: entities, neighbours, paths, document graphs",
    ApiScope.KEYS_MANAGE: "list, create and revoke your API keys (never with more scopes than "
    "the key itself has)",
    ApiScope.METRICS_READ: "read /metrics (an administrator's key only)",
    ApiScope.WEBHOOKS_MANAGE: "register, change, rotate and delete your webhook endpoints, list "
    "their deliveries and replay them",
}

#: The scope of a session (password or third-party sign-in): everything the role allows.
SESSION_SCOPE = "*"
KNOWN_SCOPES: frozenset[str] = frozenset(scope.value for scope in ApiScope)


def scope_list() -> str:
    """The valid scopes, for messages: 'documents:read, documents:write, ...'."""
    return ", ".join(scope.value for scope in ApiScope)


def unknown_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    return [scope for scope in scopes if scope not in KNOWN_SCOPES]
