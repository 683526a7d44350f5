"""``python -m deploy.backup {backup,restore,verify,prune}``: see ``--help`` and docs/runbook.md.

``backup`` prints the set's path as its last line; ``restore`` restores every store the
configured system uses from the set given. Both read the ``KGLAB_*_URL`` variables the services
read (``eval "$(bash deploy/local/servers.sh env)"`` on this machine).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import BackupSettings, stack_settings
from .sets import create_set, prune, restore_set, verify_set
from .stores import BackupError, configured_stores

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.backup", description=__doc__)
    parser.add_argument(
        "--stack", help="the data of `make stack` NAME (its databases, vhost, Qdrant folder)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backup", help="write one dated, encrypted set; prune old sets")
    restore = commands.add_parser("restore", help="restore every configured store from a set")
    restore.add_argument("set", type=Path)
    restore.add_argument("--only", help="comma-separated stores (postgres,mongo,neo4j,...)")
    verify = commands.add_parser("verify", help="check a set's archives against its manifest")
    verify.add_argument("set", type=Path)
    commands.add_parser("prune", help="apply the retention policy to the backup folder")
    args = parser.parse_args(argv)

    overrides = stack_settings(args.stack, REPO_ROOT) if args.stack else {}
    try:
        settings = BackupSettings(**overrides)  # type: ignore[arg-type]
        stores = configured_stores(settings)
        if args.command == "backup":
            path = create_set(settings, stores)
            for removed in prune(settings).removed:
                print(f"pruned {removed}")
            print(json.dumps(json.loads((path / "manifest.json").read_text())["stores"], indent=1))
            print(path)
        elif args.command == "restore":
            if args.only:
                only = {name.strip() for name in args.only.split(",")}
                stores = [s for s in stores if s.name in only]
            report = restore_set(settings, args.set, stores)
            print(json.dumps(report, indent=1))
            print(f"restored {', '.join(report)} from {args.set}")
        elif args.command == "verify":
            manifest = verify_set(args.set)
            print(f"{args.set}: {len(manifest['stores'])} archives match their checksums")
        else:
            result = prune(settings)
            print(f"kept {len(result.kept)} sets, removed {len(result.removed)}")
    except BackupError as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
