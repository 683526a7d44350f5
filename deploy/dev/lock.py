"""``make lock``: re-resolve after a ``pyproject.toml`` changed, moving nothing else.

``uv.lock`` is not committed (it names the package index), so a plain ``uv lock`` on a fresh
clone resolves every package anew and upgrades whatever has a newer release. Instead, every
unconditional pin of ``requirements.lock`` is passed to ``uv lock`` as a constraint: only
packages that are new, or named with ``--free NAME`` (when a new requirement needs another
version of them), are resolved afresh. Then ``requirements.lock`` is exported from the result.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*\\?$")
_SECTION = "[tool.uv]\npackage = false\n"


def pins(lock: Path, free: set[str]) -> list[str]:
    found = []
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match and match.group(1).lower() not in free:
            found.append(f"{match.group(1)}=={match.group(2)}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(prog="make lock", description=__doc__)
    parser.add_argument("--free", action="append", default=[], help="let NAME move (repeatable)")
    parser.add_argument("--uv", default=shutil.which("uv") or "uv")
    args = parser.parse_args()
    project = REPO / "pyproject.toml"
    original = project.read_text()
    if _SECTION not in original:
        print(f"make lock: {project} has no '{_SECTION.strip()}' table", file=sys.stderr)
        return 2
    constraints = pins(REPO / "requirements.lock", {name.lower() for name in args.free})
    listed = ", ".join(f'"{pin}"' for pin in constraints)
    try:
        project.write_text(
            original.replace(_SECTION, f"{_SECTION}constraint-dependencies = [{listed}]\n", 1)
        )
        (REPO / "uv.lock").unlink(missing_ok=True)
        resolved = subprocess.run([*shlex.split(args.uv), "lock", "--quiet"], cwd=REPO, check=False)
    finally:
        project.write_text(original)
    if resolved.returncode:
        print(
            "make lock: no resolution keeps every pin; name the ones that may move with "
            "FREE='name ...'",
            file=sys.stderr,
        )
        return resolved.returncode
    subprocess.run(
        [
            *shlex.split(args.uv),
            "export",
            "--quiet",
            "--frozen",
            "--all-packages",
            "--all-groups",
            "--no-emit-workspace",
            "--no-header",
            "--output-file",
            "requirements.lock",
        ],
        cwd=REPO,
        check=True,
    )
    print(f"requirements.lock written; {len(constraints)} existing pins kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
