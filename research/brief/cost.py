"""The hosting cost model: capacity from our measurements, money from published prices.

One model serves the brief's tables and the calculator page: ``model()`` resolves every
coefficient (measured ones from ``bench/results/``, assumed ones from
``research/data/cost_model.toml``) and the prices into one JSON document, which the page at
``/brief/cost`` loads and evaluates with the same arithmetic as ``estimate()`` below. The browser
test moves the page's sliders and checks its totals against ``estimate()``.
"""

from __future__ import annotations

import math
from typing import Any

from research.brief.sources import citation, data


def model() -> dict[str, Any]:
    """The coefficients and prices, resolved: what the calculator page loads."""
    spec = data("cost_model")
    prices = data("prices")
    measured = {name: citation(cite).value for name, cite in spec["measured"].items()}
    assumed = {name: item["value"] for name, item in spec["assumed"].items()}
    services_rss_mib = sum(value for name, value in measured.items() if name.startswith("rss_"))
    coefficients = {
        "hours_per_month": spec["hours_per_month"],
        "request_cpu_ms": measured["gateway_cpu_ms_per_request"]
        + measured["service_cpu_ms_per_request"],
        "core_chunks_per_s": measured["embedding_chunks_per_s"] / measured["embedding_cores"],
        "services_gib": round(services_rss_mib / 1024, 3),
        **assumed,
    }
    providers = {
        key: {
            "name": provider["name"],
            "region": provider["region"],
            "node_type": provider["node"]["type"],
            "node_vcpu": provider["node"]["vcpu"],
            "node_gib": provider["node"]["memory_gib"],
            "node_usd_per_hour": provider["node"]["usd_per_hour"],
            "block_usd_per_gb_month": provider["block_usd_per_gb_month"]["value"],
            "object_usd_per_gb_month": provider["object_usd_per_gb_month"]["value"],
            "egress_usd_per_gb": provider["egress_usd_per_gb"]["value"],
            "kubernetes_usd_per_hour": provider["kubernetes_usd_per_hour"]["value"],
        }
        for key, provider in prices["providers"].items()
    }
    return {
        "as_of": prices["as_of"],
        "defaults": spec["defaults"],
        "ranges": spec["ranges"],
        "scenarios": spec["scenarios"],
        "coefficients": coefficients,
        "providers": providers,
    }


def estimate(
    resolved: dict[str, Any],
    provider: str,
    users: float,
    storage_gb_per_user: float,
    requests_per_user_per_day: float,
) -> dict[str, float]:
    """Monthly cost in USD, by line, for one provider (the page's ``estimate`` does the same)."""
    c = resolved["coefficients"]
    p = resolved["providers"][provider]
    hours = c["hours_per_month"]
    seconds = hours * 3600
    requests = users * requests_per_user_per_day * 30
    request_core_s = (
        requests * (c["request_cpu_ms"] + c["search_share"] * c["search_cpu_ms"]) / 1000
    )
    stored_gb = users * storage_gb_per_user
    text_bytes_month = stored_gb * 1e9 * c["text_share_of_stored_bytes"] / c["months_to_fill"]
    chunks_month = text_bytes_month / (c["words_per_chunk"] * c["bytes_per_word"])
    ingest_core_s = chunks_month / c["core_chunks_per_s"]
    vcpu = c["stores_base_vcpu"] + c["peak_to_average"] * (request_core_s + ingest_core_s) / seconds
    chunks_total = (
        stored_gb
        * 1e9
        * c["text_share_of_stored_bytes"]
        / (c["words_per_chunk"] * c["bytes_per_word"])
    )
    memory_gib = (
        c["stores_base_gib"]
        + c["services_gib"]
        + chunks_total * c["vector_bytes_per_chunk"] / 2**30
    )
    minimum = 3 if users >= c["ha_from_users"] else 1
    nodes = max(minimum, math.ceil(vcpu / p["node_vcpu"]), math.ceil(memory_gib / p["node_gib"]))
    derived_gb = stored_gb * c["derived_storage_factor"]
    lines = {
        "compute": nodes * p["node_usd_per_hour"] * hours,
        "kubernetes": p["kubernetes_usd_per_hour"] * hours if minimum > 1 else 0.0,
        "block_storage": (derived_gb + nodes * c["os_disk_gb_per_node"])
        * p["block_usd_per_gb_month"],
        "object_storage": (stored_gb + derived_gb * c["backup_sets"])
        * p["object_usd_per_gb_month"],
        "egress": requests * c["response_kib"] * 1024 / 1e9 * p["egress_usd_per_gb"],
    }
    total = sum(lines.values())
    return {
        **{key: round(value, 2) for key, value in lines.items()},
        "nodes": nodes,
        "total": round(total, 2),
        "per_user": round(total / users, 2),
    }


def break_even_users(
    resolved: dict[str, Any],
    provider: str,
    price_per_user_month: float,
    storage_gb_per_user: float,
    requests_per_user_per_day: float,
    most: int = 100_000,
) -> int | None:
    """The fewest users whose subscriptions pay the hosting bill, or None below ``most``."""
    users = 1
    while users <= most:
        cost = estimate(resolved, provider, users, storage_gb_per_user, requests_per_user_per_day)
        if users * price_per_user_month >= cost["total"]:
            return users
        users = users + 1 if users < 200 else math.ceil(users * 1.05)
    return None
