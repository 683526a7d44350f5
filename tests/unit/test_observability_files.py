"""The dashboards and alert rules name only metrics the services export, and every alert has a
test that shows it firing (deploy/checks/metric_names.py, run by deploy/validate.sh too)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"


def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "metric_names", ROOT / "deploy" / "checks" / "metric_names.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_repository_s_dashboards_and_rules_pass() -> None:
    assert checker().problems(OBSERVABILITY) == []


@pytest.mark.parametrize(
    ("path", "old", "new", "named"),
    [
        (
            "grafana/dashboards/kglab-stores.json",
            "kglab_dependency_check_seconds",
            "kglab_dependency_check_second",
            "kglab_dependency_check_second is not a metric",
        ),
        (
            "prometheus/alerts.yml",
            "kglab_ingestion_jobs_timed_out_total",
            "kglab_ingestion_jobs_timedout_total",
            "kglab_ingestion_jobs_timedout_total is not a metric",
        ),
        (
            "grafana/dashboards/kglab-requests.json",
            '"uid": "kglab-prometheus"',
            '"uid": "elsewhere"',
            "uses data source 'elsewhere'",
        ),
        (
            "prometheus/alerts_test.yml",
            "alertname: KglabTargetDown\n        exp_alerts:\n",
            "alertname: KglabTargetDown\n        exp_alerts: []\n        unused:\n",
            "no test shows KglabTargetDown firing",
        ),
    ],
)
def test_a_broken_copy_is_refused_with_the_reason(
    tmp_path: Path, path: str, old: str, new: str, named: str
) -> None:
    copy = tmp_path / "observability"
    shutil.copytree(OBSERVABILITY, copy)
    target = copy / path
    text = target.read_text()
    assert old in text, f"{path} no longer holds {old!r}: the broken copy would be the same"
    target.write_text(text.replace(old, new))
    found = checker().problems(copy)
    assert any(named in problem for problem in found), found


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (service) (rate(kglab_http_requests_total{status=~"5.."}[5m]))',
            {"kglab_http_requests_total"},
        ),
        ("process_open_fds / process_max_fds > 0.8", {"process_open_fds", "process_max_fds"}),
        (
            "max by (group) (delta(kglab_dead_letter_messages[15m])) > 1e3",
            {"kglab_dead_letter_messages"},
        ),
        ('up{job="kglab"} == 0 unless on(instance) absent(x)', {"up", "x"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert checker().metric_names(expr) == names
