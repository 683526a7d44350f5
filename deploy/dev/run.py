"""``make dev``: the gateway and every service in one process on embedded backends.

The same code paths as production: the gateway talks HTTP to each service (through httpx's
ASGI transport instead of the network) and the services talk through the in-process bus.
Data persists under ``KGLAB_DATA_DIR`` (default ``./.kglab``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

DEV_DEFAULTS = {
    "KGLAB_ENVIRONMENT": "development",
    "KGLAB_STORES": "embedded",
    "KGLAB_BUS": "memory",
    "KGLAB_DATA_DIR": ".kglab",
    "KGLAB_LOG_JSON": "false",
}


def build() -> FastAPI:
    """Compose the whole system; the composition root of the single-process mode."""
    for key, value in DEV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    Path(os.environ["KGLAB_DATA_DIR"]).mkdir(parents=True, exist_ok=True)

    from kglab_auth.main import create_app as create_auth
    from kglab_document.main import create_app as create_document
    from kglab_gateway.main import create_app as create_gateway
    from kglab_graph.main import create_app as create_graph
    from kglab_ingestion.main import create_app as create_ingestion
    from kglab_vector.main import create_app as create_vector

    # Each service gets its own in-process bus; they share this process's broker, as separate
    # processes share one RabbitMQ.
    graph = create_graph()
    services = {
        "auth": create_auth(),
        "ingestion": create_ingestion(),
        "graph": graph,
        "document": create_document(),
        # search?expand=graph asks the graph service, here in the same process.
        "vector": create_vector(graph_transport=httpx.ASGITransport(app=graph)),
    }
    hosted = [app.router.lifespan_context(app) for app in services.values()]
    transports: dict[str, httpx.AsyncBaseTransport] = {
        name: httpx.ASGITransport(app=app) for name, app in services.items()
    }
    return create_gateway(transports=transports, ws_apps=dict(services), hosted=hosted)


def main() -> None:
    port = int(os.environ.get("KGLAB_PORT", "8000"))
    app = build()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    print(f"Knowledge Graph Lab on http://127.0.0.1:{port} (docs at /docs); Ctrl-C stops it.")
    server.run()
    sys.exit(0)


if __name__ == "__main__":
    main()
