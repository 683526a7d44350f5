"""The web app at ``/``: static files built from ``web/`` (``make web``), served by the gateway.

The bundle is committed under ``kglab_gateway/web/``, so the package needs no node at run time
and nothing is fetched from the internet. Every file is answered with the app's own
Content-Security-Policy (scripts, styles and connections to this origin only; WebSockets to it
too), which the security-headers middleware keeps because it only adds headers a response lacks.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_ROOT = Path(__file__).resolve().parent / "web"
#: Nothing inline, nothing from another origin; 'self' covers ws:/wss: to this origin (CSP 3).
APP_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": APP_CSP,
    # Revalidate with the ETag on each load: a rebuilt bundle is seen at once.
    "Cache-Control": "no-cache",
}


class WebAppFiles(StaticFiles):
    """The bundle's files, each with the app's headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_HEADERS)
        return response


def mount_web_app(app: FastAPI) -> None:
    """Serve the app's page at ``/`` and its files under ``/app/``."""
    index = WEB_ROOT / "index.html"

    @app.get("/", include_in_schema=False)
    async def web_app() -> FileResponse:
        """Serve the web app."""
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=_HEADERS)

    app.mount("/app", WebAppFiles(directory=WEB_ROOT, check_dir=False), name="web-app")
