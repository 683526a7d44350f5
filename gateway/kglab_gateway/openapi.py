"""One OpenAPI document for the whole public API, assembled from the services' own documents.

Only paths the gateway routes are published; each operation is marked public or protected
from the same table the gateway enforces, so the document cannot drift from the behaviour.
Every error response is problem+json with an example, every handler's one-line docstring is
its summary, and the document is served as OpenAPI 3.0 because the Swagger UI bundled for
``/docs`` (4.x) refuses to render 3.1.
"""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

from kglab_gateway import idempotency, prefer
from kglab_gateway.proxy import UpstreamPool
from kglab_gateway.routing import api_key_rule, is_public, upstream_for
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
        "errors": {
            "type": "array",
            "description": "With 422: each invalid part of the request.",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
    "example": {
        "type": "https://kglab.dev/problems/unauthorized",
        "title": "Unauthorized",
        "status": 401,
        "detail": "Sign in first: this route needs a bearer token in the Authorization header.",
    },
}
#: The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers) on every rate-limited answer.
_RATE_LIMIT_HEADERS: dict[str, Any] = {
    "RateLimit-Policy": {
        "description": (
            "The limits this request counted against (a Structured Field list): each policy's "
            "name, `q` requests per `w` seconds. `user...` policies count per user, `ip...` "
            "ones per client address."
        ),
        "schema": {"type": "string"},
        "example": '"user";q=6000;w=60, "ip";q=12000;w=60',
    },
    "RateLimit": {
        "description": (
            "Per policy, `r` requests left in its window and `t` seconds until the window "
            "starts afresh. Pace yourself on it before you meet a 429."
        ),
        "schema": {"type": "string"},
        "example": '"user";r=5987;t=42, "ip";r=11987;t=42',
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
        "example": 42,
    },
}
_GATEWAY_ERRORS = {
    "401": "Missing, invalid or expired credentials.",
    "429": (
        "Too many requests: a rate limit is spent. `Retry-After` says when to try again, and "
        "`RateLimit` shows `r=0` for the spent policy."
    ),
    "503": "The service behind this route is unavailable; try again shortly.",
}
# What each status looks like when a service does not show its own example.
_PROBLEM_EXAMPLES: dict[str, tuple[str, str, str]] = {
    "400": ("bad_request", "Bad request", "The request cannot be carried out as sent."),
    "401": (
        "unauthorized",
        "Unauthorized",
        "Sign in first: this route needs a bearer token in the Authorization header.",
    ),
    "403": ("forbidden", "Forbidden", "Only an administrator may do this."),
    "404": ("not_found", "Not found", "There is no such item among yours."),
    "409": ("conflict", "Conflict", "That conflicts with what is already stored."),
    "413": ("payload_too_large", "Payload too large", "The file is 14.2 MB; the limit is 10 MB."),
    "415": (
        "unsupported_media_type",
        "Unsupported media type",
        "Files of type image/png are not accepted.",
    ),
    "422": ("validation_error", "Invalid request", "'limit': Input should be at least 1."),
    "429": (
        "rate_limited",
        "Too many requests",
        "Too many requests from you: the limit is 120 per 60 s. Try again in 12 s.",
    ),
    "503": (
        "service_unavailable",
        "Service unavailable",
        "The document service is unavailable right now; try again shortly.",
    ),
}
_VALIDATION_ERRORS = {"HTTPValidationError", "ValidationError"}
_PATH_PARAMETER = re.compile(r"\{[^}/]+\}")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")


def _problem_example(code: str, invalid: tuple[list[str], str] | None = None) -> dict[str, Any]:
    slug, title, detail = _PROBLEM_EXAMPLES.get(code, ("error", "Error", "The request failed."))
    example: dict[str, Any] = {
        "type": f"https://kglab.dev/problems/{slug}",
        "title": title,
        "status": int(code),
        "detail": detail,
    }
    if code == "422" and invalid is None:
        example["detail"] = "The request is invalid."
    elif code == "422" and invalid is not None:
        loc, message = invalid
        field = loc[-1]
        example["detail"] = (
            f"'{field}' is required." if message == "Field required" else f"'{field}': {message}."
        )
        example["errors"] = [{"loc": loc, "msg": message}]
    return example


def _invalid_input(
    operation: dict[str, Any], schemas: dict[str, Any]
) -> tuple[list[str], str] | None:
    """A plausible validation error of this operation's own input, as the shared handler words
    it (a missing field, or a number out of its bounds)."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        if "minimum" in schema:
            message = f"Input should be greater than or equal to {schema['minimum']}"
            return [parameter["in"], parameter["name"]], message
    for parameter in operation.get("parameters", []):
        # A path parameter is never missing: the route would not have matched.
        if parameter.get("required") and parameter["in"] != "path":
            return [parameter["in"], parameter["name"]], "Field required"
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        ref = schema.get("$ref")
        if isinstance(ref, str):
            schema = schemas.get(ref.rsplit("/", 1)[-1], {})
        for name in schema.get("required", []):
            return ["body", name], "Field required"
    return None


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _as_problem(
    code: str, response: dict[str, Any], invalid: tuple[list[str], str] | None = None
) -> None:
    """Make an error response problem+json with the Problem schema and an example.

    FastAPI's own 422 (``HTTPValidationError``) is replaced: the shared error handler answers
    every validation error as problem+json. A body a service declared on purpose (the readiness
    report of ``/ready``) is kept.
    """
    content: dict[str, Any] = response.get("content") or {}
    declared = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    if declared.rsplit("/", 1)[-1] in _VALIDATION_ERRORS:
        content.pop("application/json")
    if content and "application/problem+json" not in content:
        return
    media = content.setdefault("application/problem+json", {})
    media["schema"] = {"$ref": "#/components/schemas/Problem"}
    if "example" not in media and "examples" not in media:
        media["example"] = _problem_example(code, invalid)
    response["content"] = content


def _summarise(operation: dict[str, Any]) -> None:
    """The first line of the handler's docstring is the summary, not FastAPI's title-cased
    function name."""
    description = str(operation.get("description") or "").strip()
    if not description:
        return
    summary = str(operation.get("summary") or "")
    generated = summary.lower().replace(" ", "_")
    if not summary or str(operation.get("operationId", "")).startswith(generated):
        summary = operation["summary"] = description.splitlines()[0].strip().rstrip(".")
    if description.rstrip(".") == summary:
        # Swagger UI would show the same sentence twice.
        del operation["description"]


_NULL = {"type": "null"}


def _schema_30(schema: Any) -> Any:
    """A JSON Schema 2020-12 (OpenAPI 3.1) schema as its OpenAPI 3.0 equivalent."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _schema_30(each) for name, each in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _schema_30(value)
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            out[key] = [_schema_30(each) for each in value]
        elif key == "const":
            out["enum"] = [value]
        elif key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        else:
            out[key] = value
    for key in ("anyOf", "oneOf"):
        branches = out.get(key)
        if not isinstance(branches, list) or _NULL not in branches:
            continue
        rest = [each for each in branches if each != _NULL]
        del out[key]
        out["nullable"] = True
        if len(rest) == 1 and "$ref" in rest[0]:
            # 3.0 ignores the siblings of a $ref; allOf keeps nullable and description.
            out["allOf"] = rest
        elif len(rest) == 1:
            out = {**rest[0], **out}
        elif rest:
            out[key] = rest
    return out


def _media_30(content: dict[str, Any]) -> None:
    for media in content.values():
        if isinstance(media, dict) and "schema" in media:
            media["schema"] = _schema_30(media["schema"])


def _as_openapi_30(document: dict[str, Any]) -> None:
    document["openapi"] = "3.0.3"
    schemas = document.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        schemas[name] = _schema_30(schema)
    for item in document.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            for parameter in operation.get("parameters", []):
                if "schema" in parameter:
                    parameter["schema"] = _schema_30(parameter["schema"])
                    if "example" in parameter["schema"] and "example" not in parameter:
                        parameter["example"] = parameter["schema"]["example"]
            _media_30(operation.get("requestBody", {}).get("content", {}))
            for response in operation.get("responses", {}).values():
                _media_30(response.get("content", {}))


def _example_of(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    if "example" in schema:
        return schema["example"]
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return schemas.get(ref.rsplit("/", 1)[-1], {}).get("example")
    items = schema.get("items")
    if schema.get("type") == "array" and isinstance(items, dict):
        item = _example_of(items, schemas)
        return None if item is None else [item]
    return None


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _fill_form_fields(content: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Swagger UI 4 fills a form's inputs from its fields' examples, not the media type's, so
    the login form's example is copied onto its fields."""
    for media_type in _FORMS:
        media = content.get(media_type, {})
        example = media.get("example")
        schema = media.get("schema", {})
        ref = schema.get("$ref")
        if isinstance(ref, str):
            schema = schemas.get(ref.rsplit("/", 1)[-1], {})
        if not isinstance(example, dict):
            continue
        for name, value in example.items():
            field = schema.get("properties", {}).get(name)
            if isinstance(field, dict):
                field.setdefault("example", value)


def _hoist_examples(content: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Show the referenced model's example on the media type too: Swagger UI 4 reads it there
    for "Try it out" bodies and response samples."""
    for media in content.values():
        if not isinstance(media, dict) or "example" in media or "examples" in media:
            continue
        example = _example_of(media.get("schema", {}), schemas)
        if example is not None:
            media["example"] = example


def _describe_key_scope(operation: dict[str, Any], method: str, path: str) -> None:
    """Say what an API key needs here, from the table the gateway enforces."""
    rule = api_key_rule(method, path)
    if rule is None:
        marker, sentence = "none", "API keys may not call this, whatever their scopes: sign in."
    elif rule.scope is None:
        marker, sentence = "any", "Any API key may call this."
    else:
        marker = rule.scope.value
        sentence = f"An API key needs the `{marker}` scope."
    operation["x-kglab-api-key-scope"] = marker
    description = str(operation.get("description") or "").strip()
    operation["description"] = f"{description}\n\n{sentence}" if description else sentence
    responses = operation.setdefault("responses", {})
    if "403" not in responses:
        responses["403"] = _problem_response(
            "An API key without the scope this route needs (the detail names it)."
        )


def _add_rate_limit_headers(responses: dict[str, Any]) -> None:
    """Every answer of a rate-limited route carries the RateLimit fields; a 429 Retry-After."""
    for code, response in responses.items():
        headers = response.setdefault("headers", {})
        names = ["RateLimit-Policy", "RateLimit"]
        if code == "429":
            names.append("Retry-After")
        for name in names:
            headers.setdefault(name, {"$ref": f"#/components/headers/{name}"})


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
        schemas["Problem"] = copy.deepcopy(_PROBLEM)
        document["components"]["headers"] = copy.deepcopy(_RATE_LIMIT_HEADERS)
        document["components"]["securitySchemes"] = _SCHEMES
        for path, item in paths.items():
            for method in _METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                _summarise(operation)
                responses = operation.setdefault("responses", {})
                concrete = _PATH_PARAMETER.sub("x", path)
                if is_public(method.upper(), concrete) or path in ("/health", "/ready"):
                    operation["security"] = []
                else:
                    operation["security"] = [{"OAuth2Password": []}, {"ApiKey": []}]
                    responses.setdefault("401", _problem_response(_GATEWAY_ERRORS["401"]))
                    _describe_key_scope(operation, method.upper(), concrete)
                if method == "post" and idempotency.ROUTES.match(concrete):
                    idempotency.document(operation, _problem_response)
                if method == "post" and path == prefer.PATH:
                    prefer.document(operation)
                for code in ("429", "503"):
                    responses.setdefault(code, _problem_response(_GATEWAY_ERRORS[code]))
                if path.startswith("/api/"):
                    _add_rate_limit_headers(responses)
                for code, response in responses.items():
                    if code.startswith(("4", "5")):
                        _as_problem(code, response, _invalid_input(operation, schemas))
        if '"#/components/schemas/HTTPValidationError"' not in json.dumps(paths):
            for name in _VALIDATION_ERRORS:
                schemas.pop(name, None)
        _as_openapi_30(document)
        for item in paths.values():
            for method in _METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                body = operation.get("requestBody", {}).get("content", {})
                _hoist_examples(body, schemas)
                _fill_form_fields(body, schemas)
                for code, response in operation["responses"].items():
                    if code.startswith("2"):
                        _hoist_examples(response.get("content", {}), schemas)
        if unavailable:
            document["info"]["x-unavailable-services"] = unavailable
        return document
