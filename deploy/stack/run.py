"""``make stack``: the whole system as separate processes on the servers of ``make servers``.

    python deploy/stack/run.py [up] [--name stack] [--port 8000]   start, supervise, Ctrl-C stops
    python deploy/stack/run.py env SERVICE [--name ...] [--port ...] one service's variables
    python deploy/stack/run.py env --env-dir DIR [--name ...]        each to DIR/SERVICE.env
    python deploy/stack/run.py provision [--name stack]              its databases and vhost only
    python deploy/stack/run.py purge [--name stack]                  drop the stack's data

Each service runs the command of its container image (the ``Dockerfile``'s ``CMD``) with the
variables compose gives it, addresses aside (``topology.py``): the RabbitMQ bus, the real stores,
the gateway's network client. A service that exits is started again, as compose's
``restart: unless-stopped`` does. The server URLs come from the environment
(``eval "$(bash deploy/local/servers.sh env)"``; ``make stack`` does it). Logs go to
``.kglab/stack/NAME/logs/SERVICE.log``; each service's pid to ``.kglab/stack/NAME/run/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from topology import (
    POSTGRES_DATABASES,
    REPO_ROOT,
    SERVICES,
    Stack,
    TopologyError,
    image_command,
    load_or_create_secrets,
    service_overrides,
)

STATE_ROOT = REPO_ROOT / ".kglab" / "stack"
READY_TIMEOUT_S = float(os.environ.get("KGLAB_STACK_READY_TIMEOUT", "120"))
STOP_GRACE_S = 15.0
_PR_SET_PDEATHSIG = 1


def build_stack(name: str, port: int) -> Stack:
    servers = {key: value for key, value in os.environ.items() if key.startswith("KGLAB_")}
    return Stack(
        name=name,
        gateway_port=port,
        servers=servers,
        secrets=load_or_create_secrets(STATE_ROOT / name / "secrets.env"),
        data_dir=STATE_ROOT / name / "data",
        environment=os.environ.get("KGLAB_ENVIRONMENT", "development"),
        overrides=service_overrides(os.environ),
    )


# ---------------------------------------------------------------------------- provisioning


async def provision(stack: Stack) -> None:
    """The stack's own databases and RabbitMQ virtual host (idempotent)."""
    admin = await asyncpg.connect(stack.servers["KGLAB_POSTGRES_URL"], timeout=10)
    try:
        for service in POSTGRES_DATABASES:
            database = stack.postgres_database(service)
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
            if not exists:
                await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    async with _rabbit_management(stack) as (client, user):
        if client is None:
            return
        vhost = stack.rabbitmq_vhost
        (await client.put(f"/api/vhosts/{vhost}")).raise_for_status()
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        (await client.put(f"/api/permissions/{vhost}/{user}", json=permissions)).raise_for_status()


async def purge(stack: Stack) -> None:
    """Drop what :func:`provision` made and what the stack stored (the stack must be stopped)."""
    from pymongo import AsyncMongoClient

    admin = await asyncpg.connect(stack.servers["KGLAB_POSTGRES_URL"], timeout=10)
    try:
        for service in POSTGRES_DATABASES:
            database = stack.postgres_database(service)
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()
    if mongo_url := stack.servers.get("KGLAB_MONGO_URL"):
        mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
        try:
            for database in stack.mongo_databases.values():
                await mongo.drop_database(database)
        finally:
            await mongo.close()
    async with _rabbit_management(stack) as (client, _user):
        if client is not None:
            response = await client.delete(f"/api/vhosts/{stack.rabbitmq_vhost}")
            if response.status_code not in (204, 404):
                response.raise_for_status()
    shutil.rmtree(STATE_ROOT / stack.name, ignore_errors=True)


@contextlib.asynccontextmanager
async def _rabbit_management(
    stack: Stack,
) -> AsyncIterator[tuple[httpx.AsyncClient | None, str]]:
    """A client of RabbitMQ's management API (``KGLAB_RABBITMQ_MANAGEMENT_URL``), or ``None``
    when the variable is unset: the stack then shares the broker's default virtual host."""
    url = stack.servers.get("KGLAB_RABBITMQ_MANAGEMENT_URL")
    if not url:
        yield None, ""
        return
    parts = urlsplit(url)
    user, password = parts.username or "guest", parts.password or "guest"
    base = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 15672}"))
    async with httpx.AsyncClient(base_url=base, auth=(user, password), timeout=10) as client:
        yield client, user


# ---------------------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """Children end when the launcher dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Starts each service with its image's command, restarts one that exits, stops them all."""

    def __init__(self, stack: Stack, *, quiet: bool = False) -> None:
        self.stack = stack
        self.quiet = quiet
        self.command = image_command()
        self.state = STATE_ROOT / stack.name
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, int] = dict.fromkeys(SERVICES, 0)
        self.stopping = False

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"[stack] {message}", flush=True)

    def start(self, service: str) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("KGLAB_")}
        env.update(self.stack.env(service))
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("PYTHONUNBUFFERED", "1")
        for folder in ("logs", "run"):
            (self.state / folder).mkdir(parents=True, exist_ok=True)
        Path(env["KGLAB_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        log = (self.state / "logs" / f"{service}.log").open("ab")
        process = subprocess.Popen(  # the image's own command, as the container runs it
            self.command,
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher, which stops them in order
            preexec_fn=_die_with_parent,
        )
        log.close()
        self.processes[service] = process
        (self.state / "run" / f"{service}.pid").write_text(f"{process.pid}\n")

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)

    def restart_exited(self) -> None:
        for service, process in list(self.processes.items()):
            code = process.poll()
            if code is None or self.stopping:
                continue
            self.restarts[service] += 1
            count = self.restarts[service]
            self.say(f"{service} exited with {code}; starting it again (restart {count})")
            self.start(service)

    def stop_all(self) -> None:
        self.stopping = True
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for service, process in self.processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{service} did not stop within {STOP_GRACE_S:.0f} s; killing it")
                process.kill()
                process.wait()
        for pid_file in (self.state / "run").glob("*.pid"):
            pid_file.unlink(missing_ok=True)
        (self.state / "ready.json").unlink(missing_ok=True)

    async def wait_ready(self, started: float) -> dict[str, float]:
        """Seconds from ``started`` until each service's ``/ready`` answered 200."""
        ready_at: dict[str, float] = {}
        deadline = started + READY_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as client:
            while len(ready_at) < len(SERVICES):
                self.restart_exited()
                for service in SERVICES:
                    if service in ready_at:
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.get(f"{self.stack.url(service)}/ready")
                        if response.status_code == 200:
                            took = ready_at[service] = time.monotonic() - started
                            self.say(f"{service} ready at {self.stack.url(service)} ({took:.1f} s)")
                if time.monotonic() > deadline:
                    waiting = sorted(set(SERVICES) - ready_at.keys())
                    raise TimeoutError(
                        f"not ready after {READY_TIMEOUT_S:.0f} s: {', '.join(waiting)}; "
                        f"see {self.state / 'logs'}"
                    )
                await asyncio.sleep(0.2)
        return ready_at


async def up(stack: Stack, *, quiet: bool) -> int:
    started = time.monotonic()
    await provision(stack)
    supervisor = Supervisor(stack, quiet=quiet)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    supervisor.start_all()
    try:
        waiting = asyncio.ensure_future(supervisor.wait_ready(started))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            waiting.cancel()
            return 130
        ready_at = waiting.result()
        stopped.cancel()
        total = max(ready_at.values())
        (supervisor.state / "ready.json").write_text(
            json.dumps(
                {
                    "gateway_url": stack.url("gateway"),
                    "ready_s": round(total, 2),
                    "services": {s: round(t, 2) for s, t in ready_at.items()},
                }
            )
        )
        supervisor.say(
            f"ready in {total:.1f} s: gateway at {stack.url('gateway')} "
            f"(docs at /docs); logs in {supervisor.state / 'logs'}; Ctrl-C stops it"
        )
        while not stop.is_set():
            supervisor.restart_exited()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
        return 0
    except TimeoutError as error:
        supervisor.say(str(error))
        return 1
    finally:
        supervisor.say("stopping")
        supervisor.stop_all()
        supervisor.say("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "action", nargs="?", default="up", choices=("up", "env", "provision", "purge")
    )
    parser.add_argument("service", nargs="?", help="with env: the service")
    parser.add_argument("--name", default=os.environ.get("KGLAB_STACK_NAME", "stack"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("KGLAB_PORT", "8000")))
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument(
        "--env-dir",
        type=Path,
        help="with env and no service: write every service's variables to DIR/SERVICE.env (0600)",
    )
    args = parser.parse_args(argv)
    try:
        stack = build_stack(args.name, args.port)
        if args.action == "env" and args.env_dir and not args.service:
            args.env_dir.mkdir(parents=True, exist_ok=True)
            for service in SERVICES:  # one process for all six: each start costs a second
                path = args.env_dir / f"{service}.env"
                path.touch(mode=0o600)
                path.chmod(0o600)
                lines = (f"{key}={value}\n" for key, value in sorted(stack.env(service).items()))
                path.write_text("".join(lines))
            return 0
        if args.action == "env":
            if args.service not in SERVICES:
                parser.error(f"env needs a service: one of {', '.join(SERVICES)}")
            for key, value in sorted(stack.env(args.service).items()):
                print(f"{key}={value}")
            return 0
        if args.action == "provision":  # for launchers of their own (deploy/containers/run.sh)
            asyncio.run(provision(stack))
            return 0
        if args.action == "purge":
            asyncio.run(purge(stack))
            return 0
        return asyncio.run(up(stack, quiet=args.quiet))
    except (TopologyError, OSError, asyncpg.PostgresError, httpx.HTTPError) as error:
        print(f"[stack] ERROR: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
