"""Administrators' routes: rebuilding the derived stores, and the bus's dead letters.

Only an administrator's signed-in session reaches them: each route requires the admin role of
the forwarded identity, and the gateway refuses every API key on them (they are not in its
API-key table).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status

from kglab_document.api.deps import RebuilderDep
from kglab_document.schemas import (
    DeadLetterOut,
    DeadLetterPageOut,
    DeadLetterReplayOut,
    RebuildOut,
    RebuildRequest,
)
from kglab_shared.bus.dead_letters import CONSUMER_GROUPS, check_group, describe
from kglab_shared.bus.port import EventBus
from kglab_shared.errors import (
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnprocessableError,
    documented,
)
from kglab_shared.identity import AdminIdentity

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: documented(UnprocessableError, "'owner_id': String should have at least 1 character."),
    401: documented(UnauthorizedError, "Sign in first: this route needs a bearer token."),
    403: documented(ForbiddenError, "Only an administrator may do that."),
}
_REBUILD_ERRORS = {
    **_ERRORS,
    404: documented(NotFoundError, "There is no rebuild '0b7c5a3e9d1f4a2b8c6d0e1f2a3b4c5d'."),
}
_GROUP_ERRORS = {
    **_ERRORS,
    404: documented(
        NotFoundError,
        f"There is no consumer group 'billing'; the groups are {', '.join(CONSUMER_GROUPS)}.",
    ),
}
_LIST_ERRORS = {
    **_GROUP_ERRORS,
    422: documented(UnprocessableError, "'limit': Input should be less than or equal to 1000."),
}
Group = Annotated[str, Path(description=f"A consumer group: {', '.join(CONSUMER_GROUPS)}.")]


@router.post(
    "/rebuilds",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RebuildOut,
    responses=_ERRORS,
)
async def start_rebuild(
    body: RebuildRequest, _: AdminIdentity, rebuilder: RebuilderDep
) -> RebuildOut:
    """Re-index every stored document (or one user's) into search and the graph."""
    return RebuildOut.of(await rebuilder.start(body.owner_id))


@router.get("/rebuilds/{rebuild_id}", response_model=RebuildOut, responses=_REBUILD_ERRORS)
async def get_rebuild(rebuild_id: str, _: AdminIdentity, rebuilder: RebuilderDep) -> RebuildOut:
    """Report a rebuild's progress."""
    return RebuildOut.of(await rebuilder.get(rebuild_id))


@router.post(
    "/rebuilds/{rebuild_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RebuildOut,
    responses=_REBUILD_ERRORS,
)
async def resume_rebuild(rebuild_id: str, _: AdminIdentity, rebuilder: RebuilderDep) -> RebuildOut:
    """Go on with a stopped or failed rebuild from its checkpoint."""
    return RebuildOut.of(await rebuilder.resume(rebuild_id))


def _bus(request: Request) -> EventBus:
    bus: EventBus = request.app.state.bus
    return bus


@router.get("/dead-letters/{group}", response_model=DeadLetterPageOut, responses=_GROUP_ERRORS)
async def list_dead_letters(
    group: Group,
    _: AdminIdentity,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
) -> DeadLetterPageOut:
    """List the events parked in a consumer group's dead-letter queue, oldest first."""
    letters = await _bus(request).dead_letters(check_group(group), limit)
    return DeadLetterPageOut(
        group=group, items=[DeadLetterOut.model_validate(describe(x)) for x in letters]
    )


@router.post(
    "/dead-letters/{group}/replay", response_model=DeadLetterReplayOut, responses=_GROUP_ERRORS
)
async def replay_dead_letters(
    group: Group, _: AdminIdentity, request: Request
) -> DeadLetterReplayOut:
    """Send every event parked for a consumer group back to it, with fresh attempts."""
    replayed = await _bus(request).replay_dead_letters(check_group(group))
    return DeadLetterReplayOut(group=group, replayed=replayed)
