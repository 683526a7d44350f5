"""The API through the gateway: the saved session, bearer tokens, problem+json errors.

Tokens live in the user's config directory (``KGLAB_CONFIG_DIR``, else the platform's, e.g.
``~/.config/kglab``), in ``credentials.json`` readable by its owner only (0600, directory 0700),
keyed by server URL. An expired access token is exchanged once with the refresh token.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import click
import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


class CliError(Exception):
    """A failure to tell the user in one sentence (exit status 1)."""


def config_dir() -> Path:
    configured = os.environ.get("KGLAB_CONFIG_DIR")
    return Path(configured) if configured else Path(click.get_app_dir("kglab"))


class Credentials:
    """The sessions saved per server URL."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / "credentials.json"

    def _all(self) -> dict[str, dict[str, str]]:
        try:
            data: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CliError(
                f"{self.path} cannot be read ({exc}); remove it and log in again."
            ) from exc
        return data

    def get(self, url: str) -> dict[str, str] | None:
        return self._all().get(url)

    def save(self, url: str, session: dict[str, str] | None) -> None:
        sessions = self._all()
        if session is None:
            sessions.pop(url, None)
        else:
            sessions[url] = session
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        temporary = self.path.with_suffix(".tmp")
        # Created 0600 from the start: the tokens are never readable by others, not even briefly.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as sink:
            json.dump(sessions, sink, indent=2)
        os.chmod(temporary, 0o600)
        temporary.replace(self.path)


def detail_of(response: httpx.Response) -> str:
    """The problem+json sentence, or a plain description of the answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return f"The server answered {response.status_code} {response.reason_phrase}."


def _stream_to(response: httpx.Response, target: Path) -> int:
    # mkstemp creates it 0600: an export is a user's private graph.
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    written = 0
    try:
        with os.fdopen(fd, "wb") as sink:
            for piece in response.iter_bytes():
                sink.write(piece)
                written += len(piece)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return written


class Api:
    """One server, one saved session; safe to share between the threads of ``ingest``."""

    def __init__(self, url: str, credentials: Credentials, *, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.credentials = credentials
        self.session = credentials.get(self.url)
        self._lock = threading.Lock()
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def require_login(self) -> dict[str, str]:
        """The saved session, or the sentence saying there is none."""
        if self.session is None:
            raise CliError(f"You are not logged in to {self.url}: run `kglab login` first.")
        return self.session

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.require_login()['access_token']}"}

    def _refresh(self, used: str) -> bool:
        with self._lock:
            if self.session is None:
                return False
            if self.session["access_token"] != used:
                return True  # another thread refreshed meanwhile
            response = self.http.post(
                "/api/v1/auth/refresh", json={"refresh_token": self.session["refresh_token"]}
            )
            if response.status_code != 200:
                return False
            pair = response.json()
            self.session = {
                **self.session,
                "access_token": pair["access_token"],
                "refresh_token": pair["refresh_token"],
            }
            self.credentials.save(self.url, self.session)
            return True

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call an authenticated route; a 4xx/5xx becomes a CliError with its sentence."""
        response = self.raw(method, path, **kwargs)
        if response.status_code >= 400:
            raise CliError(detail_of(response))
        return response

    def raw(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Call an authenticated route and return whatever it answered."""
        sent = {**(headers or {}), **self._headers()}
        try:
            response = self.http.request(method, path, headers=sent, **kwargs)
            if response.status_code == 401 and self._refresh(sent["Authorization"][7:]):
                sent = {**(headers or {}), **self._headers()}
                response = self.http.request(method, path, headers=sent, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(f"{self.url} cannot be reached ({exc}); is the server running?") from exc
        if response.status_code == 401:
            raise CliError(f"{detail_of(response)} Run `kglab login` again.")
        return response

    def download(self, path: str, target: Path, **params: Any) -> int:
        """Stream a GET's body into ``target`` (written beside it, renamed when complete: a
        failure leaves no half-written file); the bytes written."""
        clean = {k: v for k, v in params.items() if v is not None}
        for attempt in (1, 2):
            sent = self._headers()
            try:
                with self.http.stream("GET", path, params=clean, headers=sent) as response:
                    if response.status_code == 401 and attempt == 1:
                        if self._refresh(sent["Authorization"][7:]):
                            continue
                    if response.status_code >= 400:
                        response.read()
                        message = detail_of(response)
                        if response.status_code == 401:
                            message += " Run `kglab login` again."
                        raise CliError(message)
                    return _stream_to(response, target)
            except httpx.TransportError as exc:
                raise CliError(
                    f"{self.url} cannot be reached ({exc}); is the server running?"
                ) from exc
        raise CliError("The server refused the session twice; run `kglab login` again.")

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean).json()

    def login(self, email: str, password: str, *, register: bool = False) -> dict[str, str]:
        try:
            if register:
                created = self.http.post(
                    "/api/v1/auth/register", json={"email": email, "password": password}
                )
                if created.status_code != 201:
                    raise CliError(detail_of(created))
            response = self.http.post(
                "/api/v1/auth/login", data={"username": email, "password": password}
            )
        except httpx.TransportError as exc:
            raise CliError(f"{self.url} cannot be reached ({exc}); is the server running?") from exc
        if response.status_code != 200:
            raise CliError(detail_of(response))
        pair = response.json()
        self.session = {
            "email": email,
            "access_token": pair["access_token"],
            "refresh_token": pair["refresh_token"],
        }
        self.credentials.save(self.url, self.session)
        return self.session

    def logout(self) -> None:
        if self.session is not None:
            try:
                self.raw(
                    "POST",
                    "/api/v1/auth/logout",
                    json={"refresh_token": self.session["refresh_token"]},
                )
            except CliError:
                pass  # signed out locally whatever the server says
        self.session = None
        self.credentials.save(self.url, None)
