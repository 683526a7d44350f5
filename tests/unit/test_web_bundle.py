"""The committed web bundle is the build of the committed sources, and its first page is small.

``make web`` rebuilds ``gateway/kglab_gateway/web`` from ``web/`` and records in ``build.json`` the
SHA-256 of every source (``web/src``, the build script, the npm lock). Editing a source without
rebuilding, or editing the bundle by hand, fails here, without node.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
BUNDLE = REPO / "gateway" / "kglab_gateway" / "web"
#: The issue's budget for the script of the first page.
FIRST_PAGE_SCRIPT_LIMIT = 300 * 1024


def _manifest() -> dict[str, object]:
    manifest: dict[str, object] = json.loads((BUNDLE / "build.json").read_text())
    return manifest


def _sources() -> list[str]:
    names = [p.relative_to(WEB).as_posix() for p in (WEB / "src").rglob("*") if p.is_file()]
    names += ["build.mjs", "package.json", "package-lock.json"]
    return sorted(names)


def test_the_bundle_was_built_from_the_committed_sources() -> None:
    manifest = _manifest()
    assert manifest["sources"] == _sources(), "a source was added or removed: run `make web`"
    digest = hashlib.sha256()
    for name in _sources():
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update((WEB / name).read_bytes())
        digest.update(b"\0")
    assert manifest["source_sha256"] == digest.hexdigest(), "web/ changed: run `make web`"


def test_the_bundle_files_are_the_ones_the_build_wrote() -> None:
    files = _manifest()["files"]
    assert isinstance(files, dict)
    present = {p.name for p in BUNDLE.iterdir() if p.name != "build.json"}
    assert present == set(files), "files in the bundle differ from the build's: run `make web`"
    for name, recorded in files.items():
        data = (BUNDLE / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == recorded["sha256"], f"{name} was edited by hand"


def _static_imports(script: str) -> list[str]:
    # Static ES module imports only: import("...") loads later, when a view asks for it.
    pattern = r'(?:^|[;}\s])import\s*(?:[\w*{}\s,$]+from\s*)?"(\./[^"]+)"'
    return re.findall(pattern, script)


def test_the_first_page_loads_under_300_kb_of_script() -> None:
    index = (BUNDLE / "index.html").read_text()
    entries = re.findall(r'<script[^>]+src="/app/([^"]+)"', index)
    assert entries == ["app.js"]
    loaded: set[str] = set()
    pending = list(entries)
    while pending:
        name = pending.pop()
        if name in loaded:
            continue
        loaded.add(name)
        pending += [i.removeprefix("./") for i in _static_imports((BUNDLE / name).read_text())]
    total = sum((BUNDLE / name).stat().st_size for name in loaded)
    assert total < FIRST_PAGE_SCRIPT_LIMIT, f"first page loads {total} bytes of script: {loaded}"
    # The graph library is a chunk of its own, loaded by the graph views only.
    app = (BUNDLE / "app.js").read_text()
    assert re.search(r'import\("\./chunk-[A-Z0-9]+\.js"\)', app)
    assert "cytoscape" not in app.lower()
