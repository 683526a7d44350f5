"""The deployed topology: which processes exist, how each starts, and with which variables.

One description serves every way the system runs as separate processes: ``make stack`` starts
each service as a local process (``deploy/stack/run.py``), ``deploy/containers/`` starts each as a
container from the project's image, and ``docker-compose.yml`` is checked against it. The command
is the image's own (the ``CMD`` of the ``Dockerfile``, read from that file), so a process started
here runs exactly what its container runs; only the addresses differ.

A stack has a *name*: its PostgreSQL databases, MongoDB databases, RabbitMQ virtual host and Redis
key prefixes are its own, so two stacks (say ``make stack`` and the deployed test suite) can share
one set of servers from ``make servers`` without seeing each other's data or messages.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"

#: The services and their port's offset from the gateway's (compose: 8000 and 8001-8005).
PORT_OFFSETS: dict[str, int] = {
    "gateway": 0,
    "auth": 1,
    "ingestion": 2,
    "graph": 3,
    "document": 4,
    "vector": 5,
}
SERVICES: tuple[str, ...] = tuple(PORT_OFFSETS)
#: Seals ingestion's webhook signing secrets (adr/0028); made once per stack.
WEBHOOK_SECRET_KEY = "KGLAB_INGESTION_WEBHOOK_SECRET_KEY"
#: The services that consume events (killed mid-stream by the fault tests).
CONSUMERS: tuple[str, ...] = ("ingestion", "document", "vector", "graph")
#: Servers each service needs (the ``KGLAB_*_URL`` variables ``make servers`` prints).
SERVER_URLS: dict[str, tuple[str, ...]] = {
    "gateway": ("KGLAB_REDIS_URL", "KGLAB_RABBITMQ_URL"),
    "auth": ("KGLAB_POSTGRES_URL", "KGLAB_REDIS_URL", "KGLAB_RABBITMQ_URL"),
    "ingestion": (
        "KGLAB_POSTGRES_URL",
        "KGLAB_REDIS_URL",
        "KGLAB_RABBITMQ_URL",
        "KGLAB_MONGO_URL",
        "KGLAB_CLAMD_URL",
    ),
    "graph": ("KGLAB_REDIS_URL", "KGLAB_RABBITMQ_URL", "KGLAB_NEO4J_URL"),
    "document": ("KGLAB_REDIS_URL", "KGLAB_RABBITMQ_URL", "KGLAB_MONGO_URL"),
    "vector": ("KGLAB_REDIS_URL", "KGLAB_RABBITMQ_URL"),
}
#: Services with PostgreSQL state get a database each, as compose's postgres-init.sql makes.
POSTGRES_DATABASES: dict[str, str] = {"auth": "auth", "ingestion": "ingestion"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class TopologyError(ValueError):
    """The stack cannot be described: the message says which input is wrong."""


def image_command(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The runtime image's ``CMD`` (exec form), as the container runtime would run it."""
    command: list[str] | None = None
    for line in dockerfile.read_text().splitlines():
        if line.startswith("CMD "):
            try:
                command = json.loads(line[4:])
            except ValueError:
                raise TopologyError(f"{dockerfile}: CMD is not in exec form (JSON)") from None
    if not command or not all(isinstance(part, str) for part in command):
        raise TopologyError(f"{dockerfile} has no exec-form CMD line")
    return command


@dataclass(frozen=True)
class Stack:
    """One running system: a name, the gateway's port, and the servers it uses."""

    name: str
    gateway_port: int
    #: The ``KGLAB_*_URL`` variables of the servers (``servers.sh env``).
    servers: Mapping[str, str]
    #: Secrets shared by the services of this stack (:func:`load_or_create_secrets`).
    secrets: Mapping[str, str]
    data_dir: Path
    host: str = "127.0.0.1"
    environment: str = "development"
    #: Service settings given to the launcher (``KGLAB_GATEWAY_RATE_LIMITS`` and the like, see
    #: :func:`service_overrides`), passed to their service unchanged.
    overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise TopologyError(
                f"stack name {self.name!r}: lower-case letters, digits and _, "
                "starting with a letter, at most 40 characters"
            )
        if not 1024 <= self.gateway_port <= 65535 - max(PORT_OFFSETS.values()):
            raise TopologyError(f"gateway port {self.gateway_port} is out of range")

    def port(self, service: str) -> int:
        return self.gateway_port + PORT_OFFSETS[service]

    def url(self, service: str) -> str:
        return f"http://{self.host}:{self.port(service)}"

    @property
    def rabbitmq_vhost(self) -> str:
        return self.name

    def postgres_database(self, service: str) -> str:
        return f"{self.name}_{POSTGRES_DATABASES[service]}"

    @property
    def mongo_databases(self) -> dict[str, str]:
        return {"document": f"{self.name}_documents", "ingestion": f"{self.name}_ingestion"}

    def env(self, service: str) -> dict[str, str]:
        """Every ``KGLAB_*`` variable ``service`` starts with in this stack."""
        if service not in PORT_OFFSETS:
            raise TopologyError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
        missing = [
            name
            for name in SERVER_URLS[service]
            if not self.servers.get(name) and name != "KGLAB_CLAMD_URL"
        ]
        if missing:
            raise TopologyError(
                f"{service} needs {', '.join(missing)}: start the servers with `make servers`"
            )
        env = {
            "KGLAB_SERVICE": service,
            "KGLAB_PORT": str(self.port(service)),
            "KGLAB_HOST": self.host,
            "KGLAB_ENVIRONMENT": self.environment,
            "KGLAB_BUS": "rabbitmq",
            "KGLAB_STORES": "real",
            "KGLAB_DATA_DIR": str(self.data_dir / service),
            "KGLAB_RABBITMQ_URL": _with_vhost(self.servers["KGLAB_RABBITMQ_URL"], self.name),
            "KGLAB_REDIS_URL": self.servers["KGLAB_REDIS_URL"],
            # A service's own secrets (the gateway's private identity key, ingestion's webhook
            # sealing key) are that service's alone.
            **{
                key: value
                for key, value in self.secrets.items()
                if key.startswith(f"KGLAB_{service.upper()}_")
                or not key.startswith(tuple(f"KGLAB_{s.upper()}_" for s in SERVICES))
            },
        }
        prefix = f"{self.name}:"
        if service == "gateway":
            for upstream in SERVICES[1:]:
                env[f"KGLAB_GATEWAY_{upstream.upper()}_URL"] = self.url(upstream)
            env["KGLAB_GATEWAY_REDIS_KEY_PREFIX"] = f"{prefix}gateway:"
            # auth's revocation feed lives under auth's prefix.
            env["KGLAB_GATEWAY_AUTH_REDIS_KEY_PREFIX"] = f"{prefix}auth:"
        if service in POSTGRES_DATABASES:
            env["KGLAB_POSTGRES_URL"] = _with_path(
                self.servers["KGLAB_POSTGRES_URL"], self.postgres_database(service)
            )
        if service == "auth":
            env["KGLAB_AUTH_PUBLIC_BASE_URL"] = self.url("gateway")
            env["KGLAB_AUTH_REDIS_KEY_PREFIX"] = f"{prefix}auth:"
            if smtp := self.servers.get("KGLAB_SMTP_URL"):
                env["KGLAB_SMTP_URL"] = smtp
        if service == "ingestion":
            env["KGLAB_MONGO_URL"] = self.servers["KGLAB_MONGO_URL"]
            env["KGLAB_INGESTION_MONGO_DATABASE"] = self.mongo_databases["ingestion"]
            env["KGLAB_INGESTION_PROGRESS_CHANNEL_PREFIX"] = f"{prefix}jobs:"
            if clamd := self.servers.get("KGLAB_CLAMD_URL"):
                env["KGLAB_CLAMD_URL"] = clamd
        if service == "graph":
            env["KGLAB_NEO4J_URL"] = self.servers["KGLAB_NEO4J_URL"]
            env["KGLAB_GRAPH_DOCUMENT_URL"] = self.url("document")
        if service == "document":
            env["KGLAB_MONGO_URL"] = self.servers["KGLAB_MONGO_URL"]
            env["KGLAB_DOCUMENT_INGESTION_URL"] = self.url("ingestion")
            env["KGLAB_DOCUMENT_MONGO_DATABASE"] = self.mongo_databases["document"]
        if service == "vector":
            env["KGLAB_VECTOR_GRAPH_URL"] = self.url("graph")
            env["KGLAB_VECTOR_DOCUMENT_URL"] = self.url("document")
            env["KGLAB_VECTOR_EMBED_THREADS"] = "2"
            env["KGLAB_VECTOR_REDIS_PREFIX"] = f"{prefix}vector:"
            if qdrant := self.servers.get("KGLAB_QDRANT_URL"):
                env["KGLAB_QDRANT_URL"] = qdrant
            else:
                # No Qdrant server: the vector service keeps Qdrant Edge (Qdrant's engine in
                # its own process) and everything else real (README, adr/0009, adr/0025).
                env["KGLAB_STORES"] = "embedded"
                env["KGLAB_VECTOR_CACHE"] = "redis"
        own = f"KGLAB_{service.upper()}_"
        env.update({k: v for k, v in self.overrides.items() if k.startswith(own) or k in SHARED})
        return env


#: Settings every service reads that a user may set for the whole stack.
SHARED = frozenset(
    {"KGLAB_LOG_LEVEL", "KGLAB_LOG_JSON", "KGLAB_OTEL_EXPORTER", "KGLAB_OTEL_ENDPOINT"}
)


def service_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` that configure one service (``KGLAB_<SERVICE>_*``) or all of
    them (:data:`SHARED`); the servers' URLs and the rest are the topology's to set."""
    prefixes = tuple(f"KGLAB_{service.upper()}_" for service in SERVICES)
    return {k: v for k, v in environ.items() if k.startswith(prefixes) or k in SHARED}


def load_or_create_secrets(path: Path) -> dict[str, str]:
    """The stack's secrets, made once and kept (mode 0600) so restarts keep them: the gateway's
    identity key pair (the private key goes to the gateway only, see :meth:`env`) and the key
    that seals ingestion's webhook secrets (ingestion's alone). A file from before a secret
    existed gets it added, keeping the others."""
    values: dict[str, str] = {}
    if path.exists():
        values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        if "KGLAB_IDENTITY_PUBLIC_KEYS" in values and WEBHOOK_SECRET_KEY in values:
            return values
    if "KGLAB_IDENTITY_PUBLIC_KEYS" not in values:
        from kglab_shared.identity import generate_signing_key, public_jwks

        key = generate_signing_key()
        values["KGLAB_GATEWAY_IDENTITY_SIGNING_KEY"] = json.dumps(key.as_dict(private=True))
        values["KGLAB_IDENTITY_PUBLIC_KEYS"] = json.dumps(public_jwks(key))
    values.setdefault(WEBHOOK_SECRET_KEY, secrets.token_urlsafe(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return values


def _with_vhost(amqp_url: str, vhost: str) -> str:
    parts = urlsplit(amqp_url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def _with_path(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))
