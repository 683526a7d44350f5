"""The web app's weight: each file of the committed bundle, raw and gzipped, and the script the
first page loads (the issue's budget: under 300 KB). Sizes, not timings: the machine's load does
not change them, but it is recorded as for every benchmark."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path

from machine import save

BUNDLE = Path(__file__).resolve().parents[1] / "gateway" / "kglab_gateway" / "web"
BUDGET = 300 * 1024


def main() -> None:
    files = {}
    for path in sorted(BUNDLE.iterdir()):
        data = path.read_bytes()
        files[path.name] = {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, 9))}
    index = (BUNDLE / "index.html").read_text()
    first = re.findall(r'<script[^>]+src="/app/([^"]+)"', index)
    app = (BUNDLE / "app.js").read_text()
    lazy = sorted(set(re.findall(r'import\("\./([^"]+)"\)', app)))
    first_bytes = sum(files[name]["bytes"] for name in first)
    results = {
        "load_average": os.getloadavg(),
        "files": files,
        "first_page_scripts": first,
        "first_page_script_bytes": first_bytes,
        "first_page_script_gzip_bytes": sum(files[name]["gzip_bytes"] for name in first),
        "budget_bytes": BUDGET,
        "loaded_by_graph_views": lazy,
        "graph_views_script_bytes": first_bytes + sum(files[n]["bytes"] for n in lazy),
    }
    print(f"{'file':<30} {'bytes':>9} {'gzip':>9}")
    for name, size in files.items():
        print(f"{name:<30} {size['bytes']:>9} {size['gzip_bytes']:>9}")
    print(f"first page: {first_bytes} bytes of script (budget {BUDGET}); graph views add {lazy}")
    print(f"written {save('web', results)}")
    if first_bytes >= BUDGET:
        raise SystemExit(json.dumps({"over_budget": first_bytes}))


if __name__ == "__main__":
    main()
