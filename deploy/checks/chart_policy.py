"""What the rendered chart must hold to survive a bad day (ADR 0027), checked on ``helm
template``'s output:

    helm template kglab k8s/kglab ... | python3 deploy/checks/chart_policy.py

Every service: a Deployment spread over nodes, a PodDisruptionBudget and an autoscaler (at
least two replicas), probes (liveness /health, readiness /ready), a metrics port, and a
NetworkPolicy of its own whose every rule names its ports, behind a default-deny policy. The
migrations run as pre-install/pre-upgrade hook Jobs; ``helm test`` has a pod; the Ingress
objects (when rendered) let 10 MB files and 50 MB tus uploads through; a ServiceMonitor (when
rendered) scrapes the metrics port. Prints each problem and exits 1 if there is one.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml

SERVICES = ("gateway", "auth", "ingestion", "graph", "document", "vector")
_SIZE = re.compile(r"^(\d+)([kmg]?)$")


def _megabytes(size: str) -> float:
    match = _SIZE.match(size.lower())
    if match is None:
        return -1
    number, unit = int(match.group(1)), match.group(2)
    return number * {"": 1 / 1_048_576, "k": 1 / 1024, "m": 1, "g": 1024}[unit]


def _component(obj: dict[str, Any]) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/component")


def _selects(selector: dict[str, Any], component: str) -> bool:
    return (selector.get("matchLabels") or {}).get("app.kubernetes.io/component") == component


def problems(objects: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj.get("kind", ""), []).append(obj)
    deployments = {_component(d): d for d in by_kind.get("Deployment", [])}
    policies = by_kind.get("NetworkPolicy", [])
    for service in SERVICES:
        deployment = deployments.get(service)
        if deployment is None:
            found.append(f"{service}: no Deployment")
            continue
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        keys = {c.get("topologyKey") for c in pod.get("topologySpreadConstraints") or []}
        if "kubernetes.io/hostname" not in keys:
            found.append(f"{service}: its replicas are not spread over nodes")
        container = pod["containers"][0]
        if (container.get("readinessProbe") or {}).get("httpGet", {}).get("path") != "/ready":
            found.append(f"{service}: readiness is not /ready")
        if (container.get("livenessProbe") or {}).get("httpGet", {}).get("path") != "/health":
            found.append(f"{service}: liveness is not /health")
        if "metrics" not in {p.get("name") for p in container.get("ports") or []}:
            found.append(f"{service}: no metrics port")
        budgets = [
            b
            for b in by_kind.get("PodDisruptionBudget", [])
            if _selects(b["spec"]["selector"], service)
        ]
        if not budgets:
            found.append(f"{service}: no PodDisruptionBudget (a node drain may take every pod)")
        scalers = [
            h
            for h in by_kind.get("HorizontalPodAutoscaler", [])
            if h["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        ]
        if not scalers:
            found.append(f"{service}: no HorizontalPodAutoscaler")
        elif scalers[0]["spec"].get("minReplicas", 1) < 2:
            found.append(f"{service}: its autoscaler allows a single replica")
        elif "replicas" in spec:
            found.append(f"{service}: the Deployment sets replicas beside its autoscaler")
        own = [p for p in policies if _selects(p["spec"]["podSelector"], service)]
        if not own:
            found.append(f"{service}: no NetworkPolicy of its own")
    deny = [
        p
        for p in policies
        if "app.kubernetes.io/component" not in (p["spec"]["podSelector"].get("matchLabels") or {})
        and set(p["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        found.append("no default-deny NetworkPolicy for the release's pods")
    for policy in policies:
        for direction in ("ingress", "egress"):
            for rule in policy["spec"].get(direction) or []:
                if not rule.get("ports"):
                    found.append(
                        f"NetworkPolicy {policy['metadata']['name']}: an {direction} rule "
                        "without ports opens every port"
                    )
    hooks = [
        j
        for j in by_kind.get("Job", [])
        if "pre-upgrade" in ((j["metadata"].get("annotations") or {}).get("helm.sh/hook") or "")
    ]
    migrated = {
        " ".join(j["spec"]["template"]["spec"]["containers"][0].get("command") or []) for j in hooks
    }
    for service in ("auth", "ingestion"):
        if f"python -m kglab_{service}.migrate" not in migrated:
            found.append(f"{service}: its migrations do not run as a pre-upgrade hook Job")
    tests = [
        p
        for p in by_kind.get("Pod", [])
        if (p["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"
    ]
    if not tests:
        found.append("no helm test pod")
    ingresses = by_kind.get("Ingress", [])
    for ingress in ingresses:
        paths = [
            path["path"]
            for rule in ingress["spec"].get("rules") or []
            for path in (rule.get("http") or {}).get("paths") or []
        ]
        size = (ingress["metadata"].get("annotations") or {}).get(
            "nginx.ingress.kubernetes.io/proxy-body-size", ""
        )
        needed = 50 if any(p.startswith("/api/v1/uploads") for p in paths) else 10
        if _megabytes(size) < needed:
            found.append(
                f"Ingress {ingress['metadata']['name']}: body size {size or 'unset'} is below "
                f"the {needed} MB its path must take"
            )
    if ingresses and not any(
        p.startswith("/api/v1/uploads")
        for i in ingresses
        for r in i["spec"].get("rules") or []
        for path in (r.get("http") or {}).get("paths") or []
        for p in [path["path"]]
    ):
        found.append("the Ingress has no tus path (/api/v1/uploads) with its own body size")
    for monitor in by_kind.get("ServiceMonitor", []):
        ports = {e.get("port") for e in monitor["spec"].get("endpoints") or []}
        if ports != {"metrics"}:
            found.append(f"ServiceMonitor scrapes {sorted(ports)}, not the metrics port")
    return found


def main() -> int:
    objects = [obj for obj in yaml.safe_load_all(sys.stdin) if obj]
    found = problems(objects)
    for problem in found:
        print(problem)
    if not found:
        print(f"{len(objects)} objects: spread, budgets, autoscalers, policies, hooks, tests")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
