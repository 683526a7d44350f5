"""``make brief``: the committed research brief is exactly what the committed inputs produce,
and every input it cannot honour (a missing measurement, an unwatched risk, a task of the wrong
size, a score off the scale) stops it instead of leaving a gap in the brief."""

from __future__ import annotations

import copy
import html
import re
from typing import Any

import pytest
import yaml

from research.brief import architecture, build
from research.brief.cost import break_even_users, estimate, model
from research.brief.sources import REPO, SourceError, citation, data, measured


def test_the_committed_brief_and_its_sources_are_what_make_brief_writes() -> None:
    stale = [
        str(path.relative_to(REPO))
        for path, text in build.outputs().items()
        if not path.exists() or path.read_text() != text
    ]
    assert stale == [], f"run `make brief` and commit: {stale}"


def test_each_picture_was_rendered_from_its_current_source() -> None:
    for source in sorted(build.PICTURES.glob("*.dot")):
        nodes = set(re.findall(r'^\s+"?([\w-]+)"? \[label=', source.read_text(), re.MULTILINE))
        assert nodes, source
        for picture in (source.with_suffix(".svg"), source.with_suffix(".png")):
            assert picture.exists(), f"{picture.name} is missing: run `make brief`"
        svg = source.with_suffix(".svg").read_text()
        svg_titles = {html.unescape(t) for t in re.findall(r"<title>([^<]+)</title>", svg)}
        assert nodes <= svg_titles, f"{source.name} changed since its SVG: run `make brief`"


def test_a_citation_of_a_missing_measurement_fails() -> None:
    with pytest.raises(SourceError, match=r"no 'stores\.neo4j\.nope'"):
        measured("graph.json", "stores.neo4j.nope")
    with pytest.raises(SourceError, match=r"nothing\.json"):
        citation({"file": "nothing.json", "path": "a", "label": "x"}).render()


def test_keys_holding_dots_are_quoted_in_paths() -> None:
    adapters = measured("documents.json", "per_adapter_worst_p95_ms")
    key = next(iter(adapters))
    assert measured("documents.json", f'per_adapter_worst_p95_ms["{key}"]') == adapters[key]


def _with_data(monkeypatch: pytest.MonkeyPatch, name: str, change: Any) -> None:
    changed = copy.deepcopy(data(name))
    change(changed)

    def patched(asked: str) -> dict[str, Any]:
        return changed if asked == name else data(asked)

    monkeypatch.setattr(build, "data", patched)


def test_a_risk_watched_by_a_path_that_does_not_exist_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with_data(monkeypatch, "risks", lambda d: d["risk"][0].update(watch=["tests/nowhere.py"]))
    with pytest.raises(SourceError, match=r"tests/nowhere\.py"):
        build.risk_section()


def test_fewer_than_five_risks_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_data(monkeypatch, "risks", lambda d: d["risk"].pop())
    with pytest.raises(SourceError, match="at least 5"):
        build.risk_section()


def test_a_roadmap_task_outside_two_to_four_hours_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_data(monkeypatch, "roadmap", lambda d: d["task"][0].update(hours=6))
    with pytest.raises(SourceError, match="not 2-4"):
        build.roadmap_tasks()


def test_a_roadmap_task_after_an_unknown_task_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_data(monkeypatch, "roadmap", lambda d: d["task"][0].update(needs=["ghost"]))
    with pytest.raises(SourceError, match="ghost"):
        build.roadmap_tasks()


def test_a_score_off_the_scale_or_an_option_without_evidence_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _with_data(
        monkeypatch,
        "decisions",
        lambda d: d["component"][0]["option"][0]["scores"].update(performance=6),
    )
    with pytest.raises(SourceError, match="out of 1-5"):
        build.decision_matrix()

    def strip(d: dict[str, Any]) -> None:
        option = d["component"][0]["option"][1]
        for key in ("measure", "source", "note"):
            option.pop(key, None)

    _with_data(monkeypatch, "decisions", strip)
    with pytest.raises(SourceError, match="no measurement and no source"):
        build.decision_matrix()


def test_every_component_has_three_options_and_every_adr_exists() -> None:
    components = data("decisions")["component"]
    names = {c["name"] for c in components}
    assert len(components) >= 9, names
    for component in components:
        assert len(component["option"]) >= 3, component["name"]
    build.decision_matrix()  # raises on an ADR that does not exist


def test_more_users_cost_more_in_total_and_less_each() -> None:
    resolved = model()
    for provider in resolved["providers"]:
        small, medium, large = (estimate(resolved, provider, u, 0.5, 500) for u in (10, 100, 1000))
        assert small["total"] < medium["total"] < large["total"]
        assert small["per_user"] > medium["per_user"] > large["per_user"]
        assert medium["nodes"] >= 3  # drainable from the HA threshold on


def test_break_even_is_the_first_user_count_that_pays() -> None:
    resolved = model()
    for provider in resolved["providers"]:
        users = break_even_users(resolved, provider, 10.0, 0.5, 500)
        assert users is not None
        assert users * 10.0 >= estimate(resolved, provider, users, 0.5, 500)["total"]
        assert (users - 1) * 10.0 < estimate(resolved, provider, users - 1, 0.5, 500)["total"]
    assert break_even_users(resolved, "aws", 0.01, 0.5, 500, most=5_000) is None


def test_the_diagram_draws_every_container_and_every_event_has_both_ends() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    dot = architecture.dot()
    for name in compose:
        if name != "rabbitmq":
            assert f'"{name}" [label=' in dot, name
    published, consumed = architecture.event_flow()
    assert "document.extracted" in published["ingestion"]
    assert "document.extracted" in consumed["document"]
    sent = set().union(*published.values())
    for service, keys in consumed.items():
        assert keys <= sent, f"{service} consumes events nobody publishes: {keys - sent}"


def _with_results(monkeypatch: pytest.MonkeyPatch, name: str, change: Any) -> None:
    changed = copy.deepcopy(build.result_file(name))
    change(changed)
    original = build.result_file

    def patched(asked: str) -> dict[str, Any]:
        return changed if asked == name else original(asked)

    monkeypatch.setattr(build, "result_file", patched)


def test_the_graph_write_verdict_follows_every_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def neo4j_fast(results: dict[str, Any]) -> None:
        results["stores"]["neo4j"]["insert_1000_1000"].update(median_ms=60.0, p95_ms=90.0)

    def postgres_slow(results: dict[str, Any]) -> None:
        results["stores"]["postgres"]["insert_1000_1000"].update(median_ms=95.0, p95_ms=140.0)

    # Neo4j fast in one run only: still not met "in every recorded run".
    _with_results(monkeypatch, "graph.json", neo4j_fast)
    assert "Neo4j does not" in build.graph_writes_verdict()
    monkeypatch.undo()
    _with_results(monkeypatch, "graph_neo4j.json", postgres_slow)
    verdict = build.graph_writes_verdict()
    assert "met by neither store" in verdict
    assert "PostgreSQL does not (median up to 95 ms, p95 up to 140 ms)" in verdict


def test_a_store_answering_from_counters_is_not_the_fastest_complex_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = "\n".join(build.databases_study())
    redis = next(
        r
        for r in build.result_file("databases.json")["results"]
        if "complex_ad_hoc" in r["operations"]
    )
    assert f"complex query (asked as a query): {redis['store']}" not in lines
    assert "asked ad hoc" in lines

    def break_one(results: dict[str, Any]) -> None:
        results["results"][0]["operations"]["page"]["correct"] = False

    _with_results(monkeypatch, "databases.json", break_one)
    assert "| NO |" in "\n".join(build.databases_study())


def test_a_server_make_servers_does_not_start_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in build.stack_section()
        if line.startswith("| ") and "`" in line.split(" | ")[1]
    }
    script = (REPO / "deploy" / "local" / "servers.sh").read_text()
    started_by = {
        "postgres": "initdb",
        "redis": "redis-server",
        "rabbitmq": "rabbitmq-server",
        "clamav": "clamd",
    }
    for name, row in rows.items():
        if "Debian package" in row:
            assert started_by.get(name, "\0") in script, f"{name} is not a package servers.sh runs"
        elif name not in ("neo4j", "mongo"):
            assert "not run locally" in row, row
    assert "not run locally" in rows["qdrant"]
    monkeypatch.setattr(build, "compose_images", lambda: {"newserver": "new:1"})
    with pytest.raises(SourceError, match="newserver"):
        build.stack_section()


def test_every_decided_component_bolds_its_choice_and_an_undecided_one_none() -> None:
    sections = "\n".join(build.decision_matrix()).split("\n### ")[1:]
    assert len(sections) == len(data("decisions")["component"])
    for section in sections:
        bold_rows = [ln for ln in section.splitlines() if ln.startswith("| **")]
        if "Not decided." in section:
            assert bold_rows == [], section.splitlines()[0]
        else:
            assert bold_rows, f"no chosen row in {section.splitlines()[0]}"


def test_a_cited_figure_shows_its_run_date_and_whether_it_met_its_target() -> None:
    spec = {"file": "graph.json", "path": "stores.postgres.insert_1000_1000.median_ms"}
    value = measured(spec["file"], spec["path"])
    day = build.result_file("graph.json")["machine"]["when"][:10]
    assert day in citation({**spec, "label": "x"}).render()
    met = citation({**spec, "label": "x", "unit": "ms", "below": value + 1}).render()
    missed = citation({**spec, "label": "x", "unit": "ms", "below": value}).render()
    assert "target under" in met
    assert ": met)" in met
    assert ": **missed**)" in missed


def test_the_roadmap_names_the_tasks_a_task_waits_for() -> None:
    tasks = build.roadmap_tasks()
    table = "\n".join(build.roadmap_section())
    for task in tasks:
        for need in task["needs"]:
            title = next(t["title"] for t in tasks if t["id"] == need)
            row = next(ln for ln in table.splitlines() if ln.startswith(f"| {task['title']} |"))
            assert row.rstrip(" |").endswith(title) or f"{title};" in row, row
            assert f"| {need} |" not in row


def test_the_graph_choice_cites_the_path_measurement() -> None:
    graph = next(c for c in data("decisions")["component"] if c["name"] == "Graph")
    cited = {m["path"] for o in graph["option"] for m in o.get("measure", [])}
    assert "stores.postgres.shortest_path.failures" in cited
    assert "stores.neo4j.shortest_path.p95_ms" in cited


def test_a_figure_older_than_the_adr_that_changed_its_code_says_so() -> None:
    from research.brief.sources import adr_date

    spec = {"file": "bus.json", "path": "results[2].throughput.msgs_per_s", "label": "x"}
    run_day = citation(spec).day()
    rendered = citation({**spec, "predates": "0020"}).render()
    assert ("before adr/0020" in rendered) == (run_day < adr_date("0020"))
    assert "before adr/0001" not in citation({**spec, "predates": "0001"}).render()


def test_the_graph_write_verdict_is_stated_once() -> None:
    assert build.brief().count(build.graph_writes_verdict()) == 1
