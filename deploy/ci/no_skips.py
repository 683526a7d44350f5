"""Fails when a pytest JUnit report shows a skipped test, or no test at all.

For the GitHub Actions workflow, where every server the suite can use runs: there a skip can
only mean a test that no longer finds its server, which must not pass as green. (Under
``KGLAB_REQUIRE_BACKENDS=1`` the suite already fails a missing server, except the Qdrant
server variant, which stays a skip on machines that cannot run one; this check covers it and
any skip added later.)

    python deploy/ci/no_skips.py REPORT.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def skipped_tests(report: str) -> tuple[int, list[str]]:
    """The number of tests in the report and the ids of the skipped ones."""
    root = ET.parse(report).getroot()
    cases = root.iter("testcase")
    total = 0
    skipped: list[str] = []
    for case in cases:
        total += 1
        if case.find("skipped") is not None:
            skipped.append(f"{case.get('classname')}::{case.get('name')}")
    return total, skipped


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    total, skipped = skipped_tests(argv[1])
    if total == 0:
        print(f"{argv[1]}: no test ran")
        return 1
    if skipped:
        print(f"{len(skipped)} of {total} tests were skipped where every server runs:")
        for name in skipped:
            print(f"  {name}")
        return 1
    print(f"{total} tests, none skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
