"""One OpenAPI document for the whole public API, assembled from the services' own documents.

Only paths the gateway routes are published; each operation is marked public or protected
from the same table the gateway enforces, so the document cannot drift from the behaviour.
"""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

from kglab_gateway.proxy import UpstreamPool
from kglab_gateway.routing import is_public, upstream_for
from kglab_shared.logging import get_logger

_log = get_logger(__name__)
_SCHEMES = {
    "OAuth2Password": {
        "type": "oauth2",
        "description": "Sign in with your email as username and your password.",
        "flows": {"password": {"tokenUrl": "/api/v1/auth/login", "scopes": {}}},
    },
    "ApiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (kglab_...) or an access token as a bearer token.",
    },
}
_PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "A sentence a person understands."},
        "instance": {"type": "string"},
        "correlation_id": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
    "example": {
        "type": "https://kglab.dev/problems/unauthorized",
        "title": "Unauthorized",
        "status": 401,
        "detail": "Sign in first: this route needs a bearer token in the Authorization header.",
    },
}
_GATEWAY_ERRORS = {
    "401": "Missing, invalid or expired credentials.",
    "429": "Too many requests; see the Retry-After header.",
    "503": "The service behind this route is unavailable; try again shortly.",
}
_PATH_PARAMETER = re.compile(r"\{[^}/]+\}")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


class OpenAPIAssembler:
    def __init__(self, pool: UpstreamPool, base: dict[str, Any], ttl_s: float = 60.0) -> None:
        self._pool = pool
        self._base = base
        self._ttl_s = ttl_s
        self._cached: tuple[float, dict[str, Any]] | None = None

    async def document(self) -> dict[str, Any]:
        if self._cached and self._cached[0] > time.monotonic():
            return self._cached[1]
        document = await self._assemble()
        self._cached = (time.monotonic() + self._ttl_s, document)
        return document

    async def _fetch(self, service: str) -> dict[str, Any] | None:
        try:
            response = await self._pool.clients[service].get("/openapi.json", timeout=3.0)
            response.raise_for_status()
            value: dict[str, Any] = response.json()
            return value
        except Exception as exc:
            _log.warning("openapi_fetch_failed", service=service, error=str(exc))
            return None

    async def _assemble(self) -> dict[str, Any]:
        document = copy.deepcopy(self._base)
        paths: dict[str, Any] = document.setdefault("paths", {})
        schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
        unavailable = []
        for service in self._pool.clients:
            spec = await self._fetch(service)
            if spec is None:
                unavailable.append(service)
                continue
            renames: dict[str, str] = {}
            for name, schema in spec.get("components", {}).get("schemas", {}).items():
                if name in schemas and schemas[name] != schema:
                    renames[name] = f"{service.capitalize()}{name}"
            text = json.dumps(spec)
            for old, new in renames.items():
                text = text.replace(
                    f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"'
                )
            spec = json.loads(text)
            for name, schema in spec.get("components", {}).get("schemas", {}).items():
                schemas[renames.get(name, name)] = schema
            for path, item in spec.get("paths", {}).items():
                if upstream_for(path) == service:
                    paths[path] = item
        schemas["Problem"] = _PROBLEM
        document["components"]["securitySchemes"] = _SCHEMES
        for path, item in paths.items():
            for method in _METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                concrete = _PATH_PARAMETER.sub("x", path)
                if is_public(method.upper(), concrete) or path in ("/health", "/ready"):
                    operation["security"] = []
                else:
                    operation["security"] = [{"OAuth2Password": []}, {"ApiKey": []}]
                    responses.setdefault("401", _problem_response(_GATEWAY_ERRORS["401"]))
                for code in ("429", "503"):
                    responses.setdefault(code, _problem_response(_GATEWAY_ERRORS[code]))
                for code, response in responses.items():
                    if code.startswith(("4", "5")) and "content" not in response:
                        response.update(_problem_response(response.get("description", "Error")))
        if unavailable:
            document["info"]["x-unavailable-services"] = unavailable
        return document
