#!/usr/bin/env bash
# For the GitHub Actions workflow (.github/workflows/ci.yml): makes the ClamAV service
# container's clamd load the project's signatures only, as `make servers` runs clamd
# (deploy/local/clamav/README.md). The clamav/clamav image ships ClamAV's own databases, which
# match the EICAR test file too, under other names; the scanner contract expects one name in
# both modes (the embedded scanner's).
#
#   bash deploy/ci/clamd-project-signatures.sh CONTAINER [HOST] [PORT]
#
# Replaces the container's databases with the project's signature files, has clamd RELOAD, and
# fails unless clamd then reports an EICAR stream exactly as the embedded scanner does, within
# KGLAB_CLAMD_RELOAD_TIMEOUT seconds (default 120). It also fails when the container's clamd
# does not have servers.sh's stream limit (the suite tests that a 65 MiB stream is refused).
set -euo pipefail

container=${1:?usage: clamd-project-signatures.sh CONTAINER [HOST] [PORT]}
host=${2:-127.0.0.1}
port=${3:-3310}
timeout=${KGLAB_CLAMD_RELOAD_TIMEOUT:-120}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
signatures=$root/services/ingestion/kglab_ingestion/scanning/signatures
db=/var/lib/clamav

if ! docker exec "$container" grep -qx 'StreamMaxLength 64M' /etc/clamav/clamd.conf; then
    echo "clamd in $container has no 'StreamMaxLength 64M' (set CLAMD_CONF_StreamMaxLength)" >&2
    exit 1
fi

shopt -s nullglob
files=("$signatures"/*.ndb "$signatures"/*.hdb)
if ((${#files[@]} == 0)); then
    echo "no signature files in $signatures" >&2
    exit 1
fi
# Runs as root in the container: the databases belong to the clamav user that clamd runs as.
# Everything goes, whatever the image's databases are called (.cvd, .cld, .cud and freshclam's
# state; freshclam does not run: CLAMAV_NO_FRESHCLAMD).
docker exec -u 0 "$container" sh -c "rm -rf $db/*"
for file in "${files[@]}"; do
    docker cp "$file" "$container:$db/"
done
docker exec -u 0 "$container" chown -R clamav:clamav "$db"
echo "databases in $container: $(docker exec "$container" ls "$db" | tr '\n' ' ')"

exec 3<>"/dev/tcp/$host/$port"
printf 'zRELOAD\0' >&3
IFS= read -r -d '' reply <&3 || true
exec 3>&-
if [[ $reply != RELOADING ]]; then
    echo "clamd answered RELOAD with: $reply" >&2
    exit 1
fi

# The reload runs in the background while the old databases keep answering: wait until clamd's
# answer for EICAR is the embedded scanner's.
"$root/.venv/bin/python" - "$host" "$port" "$timeout" <<'PYTHON'
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from kglab_ingestion.scanning import (
    ClamdScanner,
    ScannerSettings,
    ScannerUnavailableError,
    create_scanner,
)

host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS" + "-TEST-FILE!$H+H*"


async def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        sample = Path(folder) / "eicar.txt"
        sample.write_text(EICAR)
        expected = await create_scanner(ScannerSettings()).scan_file(sample)
        clamd = ClamdScanner(host, port, timeout=30)
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = await clamd.scan_file(sample)
            except ScannerUnavailableError as error:
                got = error
            if got == expected:
                print(f"clamd reports EICAR as {got.signature}, as the embedded scanner does")
                return 0
            if time.monotonic() > deadline:
                print(f"after {timeout:.0f} s clamd still answers {got!r}, not {expected!r}")
                return 1
            await asyncio.sleep(2)


sys.exit(asyncio.run(main()))
PYTHON
