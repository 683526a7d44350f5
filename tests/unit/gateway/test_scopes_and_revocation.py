"""Deny by default for API keys, and revocations honoured from the gateway's own memory."""

from __future__ import annotations

import time

import pytest

from kglab_gateway.policy import InsufficientScopeError, authorize
from kglab_gateway.revocation import RevocationState
from kglab_gateway.routing import API_KEY_ROUTES, api_key_rule
from kglab_gateway.tokens import CredentialVerifier
from kglab_shared.errors import ServiceUnavailableError, UnauthorizedError
from kglab_shared.identity import ANONYMOUS_ROLE, Identity
from kglab_shared.revocation import Revocation, RevocationKind
from kglab_shared.scopes import ApiScope
from tests.unit.gateway.test_tokens import AUDIENCE, ISSUER, Keys, claims, no_api_keys


def key_with(*scopes: str) -> Identity:
    return Identity(user_id="u1", scopes=frozenset(scopes))


SESSION = Identity(user_id="u1", scopes=frozenset({"*"}))


def test_every_scope_opens_some_route() -> None:
    used = {rule.scope for rule in API_KEY_ROUTES}
    assert set(ApiScope) <= used


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/v1/documents", ApiScope.DOCUMENTS_READ),
        ("HEAD", "/api/v1/documents/d1", ApiScope.DOCUMENTS_READ),
        ("GET", "/api/v1/documents/d1/chunks", ApiScope.DOCUMENTS_READ),
        ("DELETE", "/api/v1/documents/d1", ApiScope.DOCUMENTS_WRITE),
        ("GET", "/api/v1/documents/d1/graph", ApiScope.GRAPH_READ),
        ("POST", "/api/v1/files", ApiScope.DOCUMENTS_WRITE),
        ("POST", "/api/v1/urls", ApiScope.DOCUMENTS_WRITE),
        ("PATCH", "/api/v1/uploads/u1", ApiScope.DOCUMENTS_WRITE),
        ("GET", "/api/v1/jobs/j1", ApiScope.JOBS_READ),
        ("WS", "/ws/jobs/j1", ApiScope.JOBS_READ),
        ("GET", "/api/v1/search", ApiScope.SEARCH),
        ("GET", "/api/v1/graph/entities/e1/neighbors", ApiScope.GRAPH_READ),
        ("GET", "/api/v1/graph/neighbors", ApiScope.GRAPH_READ),
        ("GET", "/api/v1/graph/top-entities", ApiScope.GRAPH_READ),
        ("GET", "/api/v1/graph/export", ApiScope.GRAPH_READ),
        ("POST", "/api/v1/auth/api-keys", ApiScope.KEYS_MANAGE),
        ("GET", "/metrics", ApiScope.METRICS_READ),
    ],
)
def test_a_route_needs_its_scope_and_no_other(method: str, path: str, scope: ApiScope) -> None:
    rule = api_key_rule(method, path)
    assert rule is not None
    assert rule.scope is scope
    authorize(method, path, key_with(scope.value))
    authorize(method, path, SESSION)
    others = [s.value for s in ApiScope if s is not scope]
    with pytest.raises(InsufficientScopeError) as refused:
        authorize(method, path, key_with(*others))
    assert f"'{scope.value}' scope" in refused.value.detail
    assert refused.value.status == 403
    assert f'scope="{scope.value}"' in refused.value.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/password"),
        ("GET", "/api/v1/auth/users"),
        ("PATCH", "/api/v1/auth/users/u2"),
        ("POST", "/api/v1/auth/keys/rotate"),
        ("PUT", "/api/v1/documents/d1"),
        ("GET", "/api/v1/some-route-added-tomorrow"),
        ("GET", "/api/v1/documents/d1/chunks/extra"),
    ],
)
def test_a_route_not_in_the_table_is_refused_to_every_key(method: str, path: str) -> None:
    with pytest.raises(InsufficientScopeError, match="whatever its scopes"):
        authorize(method, path, key_with(*[s.value for s in ApiScope]))
    authorize(method, path, SESSION)


def test_public_routes_and_anonymous_callers_are_not_scope_checked() -> None:
    authorize("POST", "/api/v1/auth/login", key_with("search"))
    authorize("GET", "/api/v1/documents", Identity(user_id="anonymous", role=ANONYMOUS_ROLE))


# ---- revocation in the verifier -------------------------------------------------------------


def _verifier(
    keys: Keys, state: RevocationState, resolve: object = no_api_keys
) -> CredentialVerifier:
    return CredentialVerifier(
        keys.fetch,
        resolve,  # type: ignore[arg-type]
        issuer=ISSUER,
        audience=AUDIENCE,
        api_key_ttl_s=30,
        revocations=state,
    )


def _ready() -> RevocationState:
    state = RevocationState()
    state.synced()
    return state


async def test_a_revoked_session_is_refused_even_from_the_cache() -> None:
    keys, state = Keys(), _ready()
    verifier = _verifier(keys, state)
    token = keys.sign(claims(sid="s1"))
    other = keys.sign(claims(sid="s2", jti="j2"))
    assert (await verifier.verify(token)).user_id == "user-1"
    state.apply(Revocation(RevocationKind.SESSION, "s1", time.time() + 60))
    with pytest.raises(UnauthorizedError, match="signed out"):
        await verifier.verify(token)
    assert (await verifier.verify(other)).user_id == "user-1"


async def test_a_revoked_key_is_looked_up_again_not_served_from_the_cache() -> None:
    keys, state = Keys(), _ready()
    answers: list[Identity | None] = [
        Identity(user_id="u1", scopes=frozenset({"search", "*", "everything"})),
        None,
    ]
    lookups: list[str] = []

    async def resolve(key: str) -> Identity | None:
        lookups.append(key)
        return answers[len(lookups) - 1]

    verifier = _verifier(keys, state, resolve)
    key = "kglab_abc123_secret"
    first = await verifier.verify(key)
    # A stored legacy or unknown scope grants nothing, and "*" never makes a key a session.
    assert first.scopes == frozenset({"search"})
    await verifier.verify(key)
    assert len(lookups) == 1, "the second use should come from the cache"
    state.apply(Revocation(RevocationKind.API_KEY, "abc123", time.time() + 60))
    with pytest.raises(UnauthorizedError):
        await verifier.verify(key)
    assert len(lookups) == 2


async def test_a_lost_feed_refuses_after_the_grace_period() -> None:
    state = RevocationState(grace_s=0.05)
    with pytest.raises(ServiceUnavailableError):
        state.ensure_current()  # never synced: nothing can be vouched for yet
    state.synced()
    state.lost()
    state.ensure_current()  # within the grace period
    time.sleep(0.06)
    with pytest.raises(ServiceUnavailableError, match="lost track of sign-outs"):
        state.ensure_current()
    state.synced()
    state.ensure_current()


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/graph/aliases"), ("DELETE", "/api/v1/graph/aliases/fsf")],
)
def test_graph_merges_need_a_signed_in_session(method: str, path: str) -> None:
    """Merging entities rewrites documents: no API key scope reaches it (deny by default)."""
    assert api_key_rule(method, path) is None
    assert api_key_rule("GET", "/api/v1/graph/aliases") is not None
