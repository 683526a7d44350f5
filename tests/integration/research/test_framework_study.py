"""The API-framework study of the research brief: the three apps really are the same five
endpoints (same answers to the same calls) and each serves an OpenAPI document of all five."""

from __future__ import annotations

import pytest

from research.api.study import FRAMEWORKS, PATHS, Framework, Served, behaviour, openapi_quality


@pytest.mark.parametrize("framework", FRAMEWORKS, ids=lambda f: f.name)
def test_each_framework_serves_the_same_endpoints_alike(framework: Framework) -> None:
    served = Served(framework)
    try:
        seen = behaviour(served.url)
        api = openapi_quality(served.url)
    finally:
        served.stop()
    assert seen["wrong_password_status"] == 401
    assert seen["unauthenticated_status"] == 401
    assert seen["bad_limit_status"] in (400, 422)  # DRF's validation answer is 400
    assert seen["too_big_status"] == 413
    assert seen["upload_checksum_matches"]
    assert seen["pages_do_not_overlap"]
    assert seen["page_sizes"] == [20, 20]
    assert seen["search_hits"] == 10
    assert seen["search_owner_only"]
    assert sorted(p.rstrip("/") for p in api["documented_paths"]) == sorted(PATHS)
    assert api["typed_answers"] == api["operations"] == len(PATHS)
