"""What docker-compose.yml must hold for a bad day (ADR 0027), checked on the file as compose
resolves it (``docker-compose config``: anchors merged, variables interpolated).

    docker-compose --env-file .env.example config | python3 deploy/checks/compose_policy.py

Every service: memory and CPU limits, rotated json-file logs, published ports on 127.0.0.1 only.
Ingestion: its uploads directory (tus uploads in progress) on a named volume, not the tmpfs.
Prints each problem and exits 1 if there is one. Used by deploy/validate.sh, which also feeds it
broken copies to show that each rule bites.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml


def problems(compose: dict[str, Any]) -> list[str]:
    found: list[str] = []
    services: dict[str, Any] = compose.get("services") or {}
    named_volumes = set(compose.get("volumes") or {})
    for name, spec in sorted(services.items()):
        limits = ((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        for resource in ("memory", "cpus"):
            if not limits.get(resource):
                found.append(f"{name}: no deploy.resources.limits.{resource}")
        logging = spec.get("logging") or {}
        options = logging.get("options") or {}
        if (
            logging.get("driver") != "json-file"
            or not options.get("max-size")
            or not options.get("max-file")
        ):
            found.append(f"{name}: logs are not rotated (logging: json-file, max-size, max-file)")
        for port in spec.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            if host_ip != "127.0.0.1":
                found.append(f"{name}: port {port} is published beyond 127.0.0.1")
    ingestion = services.get("ingestion")
    if ingestion is None:
        found.append("no ingestion service")
    else:
        data_dir = (ingestion.get("environment") or {}).get("KGLAB_INGESTION_UPLOADS_DIR")
        mounted = dict(_mount(volume) for volume in ingestion.get("volumes") or [])
        source = mounted.get(data_dir)
        if not data_dir or source is None or source not in named_volumes:
            found.append(
                "ingestion: KGLAB_INGESTION_UPLOADS_DIR (tus uploads in progress) is not on a "
                "named volume"
            )
    return found


def _mount(volume: Any) -> tuple[str | None, str | None]:
    """(target, source) of a volume in the long or the short syntax (``source:target[:mode]``)."""
    if isinstance(volume, dict):
        return volume.get("target"), volume.get("source")
    parts = str(volume).split(":")
    return (parts[1], parts[0]) if len(parts) >= 2 else (parts[0], None)


def main() -> int:
    compose = yaml.safe_load(sys.stdin)
    found = problems(compose)
    for problem in found:
        print(problem)
    if not found:
        print(
            f"{len(compose.get('services') or {})} services: limits, rotated logs, loopback ports"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
