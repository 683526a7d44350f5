"""The published OpenAPI document describes every route fully, and /docs can use it.

Every operation of the assembled document (auth, ingestion, document, graph, vector and the
gateway's own routes) must have a summary from its docstring, a success response, request and
response examples that match their schemas, its error responses as problem+json, and the
OAuth2 password flow behind the Authorize button when it is protected.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import swagger_ui_bundle  # type: ignore[import-untyped]

from kglab_gateway.routing import is_public
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

# The make-dev composition on embedded stores is enough: the document does not depend on them.
pytestmark = pytest.mark.parametrize("gateway_app", ["embedded"], indirect=True)

# Operations whose documentation is still being finished, with what they lack. Empty it as
# they are done: an entry that no longer lacks anything fails the test, so the list only shrinks.
PENDING: dict[tuple[str, str], str] = {}

# The auth flows a person reads first: each must show a request and a response example.
AUTH_FLOWS = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"),
    ("post", "/api/v1/auth/password-reset/request"),
    ("post", "/api/v1/auth/password-reset/confirm"),
    ("post", "/api/v1/auth/password"),
    ("get", "/api/v1/auth/api-keys"),
    ("post", "/api/v1/auth/api-keys"),
    ("delete", "/api/v1/auth/api-keys/{key_id}"),
}

# Error responses that are not problem+json on purpose: /ready names each dependency's state.
NOT_PROBLEMS = {("get", "/ready", "503")}

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_PROBLEM_REF = "#/components/schemas/Problem"
_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")
_PARAMETER = re.compile(r"\{[^}/]+\}")


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, item[method])
        for path, item in document["paths"].items()
        for method in _METHODS
        if method in item
    ]


def _is_protected(method: str, path: str) -> bool:
    if path in ("/health", "/ready"):
        return False
    return not is_public(method.upper(), _PARAMETER.sub("x", path))


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _example(media: dict[str, Any], document: dict[str, Any]) -> list[Any]:
    """The examples a reader sees for a media type: its own, or its schema's."""
    if "example" in media:
        return [media["example"]]
    if media.get("examples"):
        return [each.get("value") for each in media["examples"].values()]
    schema = _resolve(media.get("schema", {}), document)
    if "example" in schema:
        return [schema["example"]]
    if schema.get("type") == "array" and "example" in _resolve(schema.get("items", {}), document):
        return [[_resolve(schema["items"], document)["example"]]]
    return []


def _gaps(method: str, path: str, operation: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """What a reader of /docs would miss about one operation."""
    gaps = []
    summary = str(operation.get("summary") or "")
    if not summary:
        gaps.append("no summary")
    elif str(operation.get("operationId", "")).startswith(summary.lower().replace(" ", "_")):
        gaps.append(f"summary {summary!r} is the function name, not the docstring")
    responses: dict[str, Any] = operation.get("responses", {})
    successes = [code for code in responses if code.startswith("2")]
    redirects = [code for code in responses if code.startswith("3")]
    if not successes and not redirects:
        gaps.append("no success (2xx) or redirect (3xx) response")
    body = operation.get("requestBody", {}).get("content", {})
    for media_type in _BODY_TYPES:
        if media_type in body and not _example(body[media_type], document):
            gaps.append(f"no request example ({media_type})")
    for code in successes:
        content = responses[code].get("content", {})
        if "application/json" in content and not _example(content["application/json"], document):
            gaps.append(f"no {code} response example")
    gaps.extend(
        f"example {where}: {'; '.join(errors)}"
        for where, errors in _example_errors(operation, document).items()
    )
    for code, response in responses.items():
        if not code.startswith(("4", "5")) or (method, path, code) in NOT_PROBLEMS:
            continue
        media = response.get("content", {}).get("application/problem+json")
        if media is None or media.get("schema", {}).get("$ref") != _PROBLEM_REF:
            gaps.append(f"{code} is not problem+json with the Problem schema")
        elif "example" not in media and "examples" not in media:
            gaps.append(f"{code} shows no problem example")
    expected = set()
    if _is_protected(method, path):
        expected.add("401")
    if _PARAMETER.search(path):
        expected.add("404")
    if operation.get("parameters") or operation.get("requestBody"):
        expected.add("422")
    gaps.extend(f"no {code} response" for code in sorted(expected - set(responses)))
    return gaps


def _schema_errors(value: Any, schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """A small OpenAPI 3.0 schema check (jsonschema is not a dependency): types, nullability,
    enums, required and unknown properties, lengths, bounds and date-times."""
    schema = _resolve(schema, document)
    if value is None:
        return [] if schema.get("nullable") or not schema else ["null where a value is required"]
    errors: list[str] = []
    for each in schema.get("allOf", []):
        errors += _schema_errors(value, each, document)
    for key in ("anyOf", "oneOf"):
        if key in schema and all(_schema_errors(value, b, document) for b in schema[key]):
            errors.append(f"{value!r} matches none of the {key} branches")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{value!r} is not one of {schema['enum']}")
    kind = schema.get("type")
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if kind in checks and not checks[kind](value):
        return [*errors, f"{value!r} is not of type {kind}"]
    if isinstance(value, str):
        if value.strip().lower() == "string":
            errors.append("the placeholder 'string' instead of a realistic value")
        if len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{value!r} is longer than {schema['maxLength']}")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{value!r} is shorter than {schema['minLength']}")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                errors.append(f"{value!r} is not a date-time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{value} is below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{value} is above {schema['maximum']}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            errors += _schema_errors(item, schema["items"], document)
    if isinstance(value, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        # FastAPI drops None from the whole document, examples included: a missing nullable
        # property is the null the example meant.
        missing = {
            name
            for name in set(schema.get("required", [])) - set(value)
            if not _resolve(properties.get(name, {}), document).get("nullable")
            and not properties.get(name, {}).get("nullable")
        }
        if missing:
            errors.append(f"missing {sorted(missing)}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                errors += [f"{name}: {e}" for e in _schema_errors(item, properties[name], document)]
            elif properties and extra is False:
                errors.append(f"unknown property {name!r}")
            elif properties and not isinstance(extra, dict) and "allOf" not in schema:
                errors.append(f"{name!r} is not a property of the schema")
            elif isinstance(extra, dict):
                errors += [f"{name}: {e}" for e in _schema_errors(item, extra, document)]
    return errors


def _example_errors(operation: dict[str, Any], document: dict[str, Any]) -> dict[str, list[str]]:
    """Each example one operation shows (parameters, body, responses) checked against its
    schema."""
    shown: list[tuple[str, Any, dict[str, Any]]] = []
    for parameter in operation.get("parameters", []):
        if "example" in parameter:
            shown.append((f"?{parameter['name']}", parameter["example"], parameter["schema"]))
    for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
        shown += [(f"body {media_type}", e, media["schema"]) for e in _example(media, document)]
    for code, response in operation.get("responses", {}).items():
        for media_type, media in response.get("content", {}).items():
            schema = media.get("schema", {})
            shown += [(f"{code} {media_type}", e, schema) for e in _example(media, document)]
    errors = {}
    for where, example, schema in shown:
        found = _schema_errors(example, schema, document)
        if found:
            errors[where] = found
    return errors


def _referenced(value: Any, document: dict[str, Any], seen: set[str]) -> set[str]:
    """The component schemas a part of the document refers to, directly or through others."""
    for ref in re.findall(r"#/components/schemas/([^'\"]+)", str(value)):
        if ref not in seen:
            seen.add(ref)
            _referenced(document["components"]["schemas"][ref], document, seen)
    return seen


async def test_every_operation_is_documented(gateway: httpx.AsyncClient) -> None:
    document = (await gateway.get("/openapi.json")).json()
    operations = _operations(document)
    found = {(method, path) for method, path, _ in operations}
    assert {("get", "/health"), ("get", "/ready"), ("get", "/api/v1/search")} <= found
    assert len(operations) >= 35, f"only {len(operations)} operations were published"

    gaps = {
        (method, path): _gaps(method, path, operation, document)
        for method, path, operation in operations
    }
    missing = {
        f"{method.upper()} {path}": lacks
        for (method, path), lacks in gaps.items()
        if lacks and (method, path) not in PENDING
    }
    assert not missing, f"operations missing documentation: {missing}"
    done = sorted(op for op in PENDING if not gaps.get(op))
    assert not done, f"remove these from PENDING (absent or complete now): {done}"

    # The auth flows are never pending, and each shows what to send and what comes back.
    assert AUTH_FLOWS <= found
    assert not AUTH_FLOWS & set(PENDING)
    for method, path in AUTH_FLOWS:
        operation = document["paths"][path][method]
        body = operation.get("requestBody", {}).get("content", {})
        success = next(r for c, r in operation["responses"].items() if c.startswith("2"))
        assert all(_example(media, document) for media in body.values()), (method, path)
        for media in success.get("content", {}).values():
            assert _example(media, document), (method, path)


async def test_every_example_matches_its_schema(gateway: httpx.AsyncClient) -> None:
    """Examples nested in the models (what Swagger UI builds samples from) match them too."""
    document = (await gateway.get("/openapi.json")).json()
    documented = [
        operation
        for method, path, operation in _operations(document)
        if (method, path) not in PENDING
    ]
    used = _referenced(documented, document, set())
    problems = {}
    for name in sorted(used):
        schema = document["components"]["schemas"][name]
        if "example" in schema:
            errors = _schema_errors(schema["example"], schema, document)
            if errors:
                problems[name] = errors
    assert not problems, f"model examples that do not match their model: {problems}"
    exemplified = [n for n in used if "example" in document["components"]["schemas"][n]]
    assert len(exemplified) >= 20, f"only {len(exemplified)} models show an example"


async def test_docs_render_and_authorize_signs_in(gateway: httpx.AsyncClient) -> None:
    page = await gateway.get("/docs")
    assert page.status_code == 200
    assert "/openapi.json" in page.text
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    assert (await gateway.get("/docs/static/swagger-ui-bundle.js")).status_code == 200
    document = (await gateway.get("/openapi.json")).json()
    # Swagger UI before 5 answers "Unable to render this definition" for an OpenAPI 3.1 document.
    bundled = re.search(r"swagger-ui-(\d+)\.", Path(swagger_ui_bundle.swagger_ui_path).name)
    assert bundled is not None
    if int(bundled.group(1)) < 5:
        assert re.fullmatch(r"3\.0\.\d+", document["openapi"]), document["openapi"]
        assert '"type": "null"' not in str(document).replace("'", '"')

    scheme = document["components"]["securitySchemes"]["OAuth2Password"]
    assert scheme["type"] == "oauth2"
    token_url = scheme["flows"]["password"]["tokenUrl"]
    assert token_url == "/api/v1/auth/login"
    for method, path, operation in _operations(document):
        if _is_protected(method, path):
            assert {"OAuth2Password": []} in operation["security"], f"{method} {path}"
        else:
            assert operation["security"] == [], f"{method} {path}"

    # Swagger UI 4 fills "Try it out" form inputs from the fields' examples only.
    login_form = document["paths"][token_url]["post"]["requestBody"]["content"]
    fields = _resolve(login_form["application/x-www-form-urlencoded"]["schema"], document)
    assert "@" in fields["properties"]["username"]["example"]
    assert fields["properties"]["password"]["example"]

    # What Swagger UI 4 sends when a person presses Authorize: the password grant as a form,
    # the docs' client id in a Basic header (its default "client credentials location").
    client = base64.b64encode(b"kglab-docs:").decode()
    answer = await gateway.post(
        token_url,
        data={
            "grant_type": "password",
            "username": ADMIN_EMAIL,
            "password": ADMIN_PASSWORD,
            "scope": "",
        },
        headers={"Authorization": f"Basic {client}"},
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["token_type"] == "bearer"
    me = await gateway.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["email"] == ADMIN_EMAIL
    # The same shape as the documented example, so "Try it out" shows what really comes back.
    login = document["paths"][token_url]["post"]["responses"]["200"]["content"]
    assert set(_example(login["application/json"], document)[0]) == set(token)


async def test_the_job_routes_say_what_completed_means(gateway: httpx.AsyncClient) -> None:
    document = (await gateway.get("/openapi.json")).json()
    for path in ("/api/v1/jobs", "/api/v1/jobs/{job_id}"):
        description = document["paths"][path]["get"]["description"]
        assert "`completed` only when the document and its chunks are readable" in description
        assert "search finds it" in description
        assert "in the graph" in description
        assert "`failed` with a readable `error`" in description
    single = document["paths"]["/api/v1/jobs/{job_id}"]["get"]
    assert single["summary"] == (
        "Get one of your jobs: status, stage, progress, error and the document it produced"
    )
    job = document["components"]["schemas"]["JobOut"]["properties"]
    assert {"stage", "status"} <= set(job)
    assert "storing" in job["stage"]["description"]
    assert "`completed` means" in job["status"]["description"]


async def test_every_rate_limited_answer_documents_the_ratelimit_fields(
    gateway: httpx.AsyncClient,
) -> None:
    document = (await gateway.get("/openapi.json")).json()
    headers = document["components"]["headers"]
    assert re.fullmatch(r'("[\w-]+";q=\d+;w=\d+(, )?)+', headers["RateLimit-Policy"]["example"])
    assert re.fullmatch(r'("[\w-]+";r=\d+;t=\d+(, )?)+', headers["RateLimit"]["example"])
    limited = [(m, p, op) for m, p, op in _operations(document) if p.startswith("/api/")]
    assert len(limited) >= 30
    for method, path, operation in limited:
        for code, response in operation["responses"].items():
            documented = set(response.get("headers", {}))
            assert {"RateLimit", "RateLimit-Policy"} <= documented, (method, path, code)
            if code == "429":
                assert "Retry-After" in documented, (method, path)
    assert "headers" not in document["paths"]["/health"]["get"]["responses"]["200"]


async def test_webhook_event_types_are_an_enum_generated_clients_can_check(
    gateway: httpx.AsyncClient,
) -> None:
    schemas = (await gateway.get("/openapi.json")).json()["components"]["schemas"]
    expected = ["job.pending", "job.processing", "job.completed", "job.failed", "document.deleted"]
    created = schemas["WebhookEndpointIn"]["properties"]["events"]
    assert created["items"]["enum"] == expected
    patched = schemas["WebhookEndpointPatch"]["properties"]["events"]  # OpenAPI 3.0: nullable
    assert patched["nullable"] is True
    assert patched["items"]["enum"] == expected
    # Every event names its document (also document.deleted, whose job no longer shows it).
    assert "document_id" in schemas["EventOut"]["properties"]
