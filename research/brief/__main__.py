"""``python -m research.brief [--check]``: write the brief, or fail if the committed one is
stale."""

from __future__ import annotations

import argparse
import sys

from research.brief.build import outputs, render_pictures
from research.brief.sources import REPO, SourceError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make brief", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    try:
        files = outputs()
    except SourceError as exc:
        print(f"make brief: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = [
            path for path, text in files.items() if not path.exists() or path.read_text() != text
        ]
        for path in stale:
            print(f"stale: {path.relative_to(REPO)} (run `make brief` and commit)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")
    try:
        for picture in render_pictures():
            print(f"wrote {picture.relative_to(REPO)}")
    except SourceError as exc:
        print(f"make brief: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
