"""Dependencies of the auth routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kglab_auth.messaging.port import Mailer
from kglab_auth.service import AuthService
from kglab_shared.identity import OptionalIdentity


async def auth_service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth_service
    return service


async def mailer(request: Request) -> Mailer:
    sender: Mailer = request.app.state.mailer
    return sender


async def client_ip(request: Request, identity: OptionalIdentity) -> str | None:
    """The caller's address: as the gateway saw it when it vouches for it, else the peer."""
    if identity is not None and identity.client_ip:
        return identity.client_ip
    return request.client.host if request.client else None


AuthServiceDep = Annotated[AuthService, Depends(auth_service)]
MailerDep = Annotated[Mailer, Depends(mailer)]
ClientIp = Annotated[str | None, Depends(client_ip)]
