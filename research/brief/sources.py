"""Reading the inputs the brief is made from: measurements, pins and the curated data files."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
DATA = REPO / "research" / "data"


class SourceError(ValueError):
    """An input of the brief is missing or malformed; the message names it."""


@cache
def result_file(name: str) -> dict[str, Any]:
    path = RESULTS / name
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"bench/results/{name}: {exc}") from None
    if not isinstance(loaded, dict):
        raise SourceError(f"bench/results/{name}: not a JSON object")
    return loaded


_STEP = re.compile(r'\["([^"]+)"\]|([^.\[\]]+)|\[(\d+)\]')


def measured(file: str, path: str) -> Any:
    """The value at ``path`` (``a.b[2].c``, or ``a["key.with dots"]``) in
    ``bench/results/<file>``; a missing one is an error, never a blank in the brief."""
    node: Any = result_file(file)
    for quoted, key, index in _STEP.findall(path):
        try:
            node = node[int(index)] if index else node[quoted or key]
        except (KeyError, IndexError, TypeError):
            raise SourceError(
                f"bench/results/{file} has no {path!r} (stopped at {quoted or key or index})"
            ) from None
    return node


@dataclass(frozen=True)
class Citation:
    """One measurement quoted in the brief: its value, unit and where it was read."""

    file: str
    path: str
    label: str
    unit: str = ""
    #: An upper bound the brief set for this figure (the seed's "under 100 ms", say): the
    #: rendering says whether the measurement met it, so a miss is never left to the reader.
    below: float | None = None
    #: An ADR that changed the measured code path: while the run is older than that ADR, the
    #: rendering says the figure was measured before it.
    predates: str | None = None

    @property
    def value(self) -> Any:
        return measured(self.file, self.path)

    def render(self) -> str:
        value = self.value
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, float):
            text = f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.3g}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        unit = f" {self.unit}" if self.unit else ""
        target = ""
        if self.below is not None and isinstance(value, int | float):
            verdict = "met" if value < self.below else "**missed**"
            target = f" (target under {self.below:,g}{unit}: {verdict})"
        stale = ""
        if self.predates and adr_date(self.predates) > self.day():
            stale = f", before adr/{self.predates} changed what it measures"
        # The run's date beside every figure, so a stale input is visible where it is quoted.
        return (
            f"{self.label}: **{text}{unit}**{target} "
            f"([`{self.file}`](../bench/results/{self.file}), {self.day()}{stale})"
        )

    def when(self) -> str:
        return result_when(self.file)

    def day(self) -> str:
        return self.when()[:10]


def adr_date(number: str) -> str:
    """The ``Date:`` line of ``adr/<number>-*.md`` (YYYY-MM-DD)."""
    for path in sorted((REPO / "adr").glob(f"{number}-*.md")):
        found = re.search(r"^-? ?Date: (\d{4}-\d{2}-\d{2})", path.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
    raise SourceError(f"adr/{number} has no Date: line")


def result_when(file: str) -> str:
    """When the run behind ``bench/results/<file>`` was made (its machine's clock, UTC)."""
    loaded = result_file(file)
    machine = loaded.get("machine", {})
    found = machine.get("when") if isinstance(machine, dict) else None
    return str(found or loaded.get("when") or loaded.get("date") or "undated")


def citation(spec: dict[str, Any]) -> Citation:
    try:
        return Citation(
            file=str(spec["file"]),
            path=str(spec["path"]),
            label=str(spec["label"]),
            unit=str(spec.get("unit", "")),
            below=float(spec["below"]) if "below" in spec else None,
            predates=str(spec["predates"]) if "predates" in spec else None,
        )
    except KeyError as exc:
        raise SourceError(f"a citation lacks {exc}: {spec}") from None


@cache
def data(name: str) -> dict[str, Any]:
    """A curated input under ``research/data/`` (TOML)."""
    path = DATA / f"{name}.toml"
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SourceError(f"research/data/{name}.toml: {exc}") from None


@cache
def locked_versions() -> dict[str, str]:
    """Every package pinned in ``requirements.lock`` (``name==version``), by normalised name."""
    pins: dict[str, str] = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def locked(package: str) -> str:
    name = re.sub(r"[-_.]+", "-", package).lower()
    try:
        return locked_versions()[name]
    except KeyError:
        raise SourceError(f"requirements.lock does not pin {package}") from None


def compose_images() -> dict[str, str]:
    """The third-party server images ``docker-compose.yml`` runs, by service."""
    import yaml  # type: ignore[import-untyped]  # a dev dependency: the brief is a dev tool

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    images: dict[str, str] = {}
    for name, service in compose["services"].items():
        image = str(service.get("image", ""))
        if image and not image.startswith("kglab/"):
            images[name] = image
    return images


def local_server_versions() -> dict[str, str]:
    """Versions ``make servers`` pins in ``deploy/local/servers.sh`` and its Neo4j launcher."""
    script = (REPO / "deploy" / "local" / "servers.sh").read_text()
    versions: dict[str, str] = {}
    secantus = re.search(r"^SECANTUS_VERSION=(\S+)", script, re.MULTILINE)
    if secantus:
        versions["SecantusDB"] = secantus.group(1)
    pom = REPO / "deploy" / "local" / "neo4j" / "pom.xml"
    if pom.exists():
        neo4j = re.search(r"<neo4j.version>([^<]+)</neo4j.version>", pom.read_text())
        if neo4j:
            versions["Neo4j (embedded launcher)"] = neo4j.group(1)
    return versions
