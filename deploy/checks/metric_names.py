"""Every metric the Grafana dashboards, the alert rules and the alert tests name exists
(ADR 0027): defined in shared/kglab_shared/metrics.py (the one registry every service serves),
registered there by a collector (process_*, python_*), or Prometheus's own ``up``.

    .venv/bin/python deploy/checks/metric_names.py [DIR]     # default deploy/observability

Also: every dashboard is JSON whose panels use the provisioned Prometheus data source, and
every alert rule has a test in alerts_test.yml that shows it firing. Prints
each problem and exits 1 if there is one. A misspelt metric is otherwise silent: a panel shows
"No data" and an alert never fires.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

#: Series Prometheus itself makes for every target.
PROMETHEUS_OWN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created", ""),
    "gauge": ("",),
    "info": ("_info",),
}
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "inf",
        "nan",
        "atan2",
    }
)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def known_metrics() -> set[str]:
    """Every series name the services' registry can produce, labelled children or not."""
    from kglab_shared.metrics import REGISTRY

    names = set(PROMETHEUS_OWN)
    for family in REGISTRY.collect():
        base = family.name
        names.update(base + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels aside)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    found = set()
    for match in _IDENTIFIER.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":
            continue  # 1e3, 2.5e-1
        after = text[match.end() :].lstrip()[:1]
        if after == "(" or match.group(0).lower() in _KEYWORDS:
            continue
        found.add(match.group(0))
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def problems(directory: Path) -> list[str]:
    known = known_metrics()
    found: list[str] = []
    used: list[tuple[str, str]] = []  # (where, expression)
    datasource = yaml.safe_load(
        (directory / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"][0]["uid"]
    dashboards = sorted((directory / "grafana/dashboards").glob("*.json"))
    if not dashboards:
        found.append(f"no dashboards in {directory}/grafana/dashboards")
    for path in dashboards:
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            found.append(f"{path.name}: not JSON ({exc})")
            continue
        for panel in _panels(dashboard.get("panels") or []):
            if panel.get("type") == "row":
                continue
            uid = (panel.get("datasource") or {}).get("uid")
            if uid != datasource:
                found.append(f"{path.name}: panel {panel.get('title')!r} uses data source {uid!r}")
            targets = panel.get("targets") or []
            if not targets:
                found.append(f"{path.name}: panel {panel.get('title')!r} queries nothing")
            for target in targets:
                used.append((f"{path.name}: {panel.get('title')!r}", target.get("expr", "")))
    rules = yaml.safe_load((directory / "prometheus/alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            used.append((f"alerts.yml: {rule.get('alert') or rule.get('record')}", rule["expr"]))
    tests = yaml.safe_load((directory / "prometheus/alerts_test.yml").read_text())
    fired: set[str] = set()
    for test in tests["tests"]:
        for series in test.get("input_series", []):
            used.append((f"alerts_test.yml: {test['name']!r}", series["series"]))
        for case in test.get("alert_rule_test", []):
            if case.get("exp_alerts"):
                fired.add(case["alertname"])
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule and rule["alert"] not in fired:
                found.append(f"alerts_test.yml: no test shows {rule['alert']} firing")
    for where, expr in used:
        names = metric_names(expr)
        if not names:
            found.append(f"{where}: {expr!r} names no metric")
        for name in sorted(names - known):
            found.append(f"{where}: {name} is not a metric any service exports")
    return found


def main() -> int:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/observability")
    found = problems(directory)
    for problem in found:
        print(problem)
    if not found:
        print(f"every metric the dashboards and alert rules in {directory} name exists")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
