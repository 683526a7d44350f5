#!/usr/bin/env bash
# The runbook's by-hand drill (docs/runbook.md), scripted: a `make stack` of its own (bkdrill,
# port 8310) on the servers of `make servers`; upload, back up, stop, purge, restore, start, and
# compare a search answer. Everything it made is dropped at the end. Prints each step's time.
#   bash deploy/backup/stack_drill.sh
set -Eeuo pipefail
WORK=$(mktemp -d)
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(bash deploy/local/servers.sh env)"
export KGLAB_BACKUP_DIR="$WORK"/backups KGLAB_BACKUP_IDENTITY_FILE="$WORK"/identity.txt
mkdir -p "$WORK"
U=http://127.0.0.1:8310
T0=$SECONDS
start() { .venv/bin/python deploy/stack/run.py up --name bkdrill --port 8310 >"$WORK"/stack.log 2>&1 & echo $! >"$WORK"/pid
  for _ in $(seq 1 240); do curl -fs $U/ready >/dev/null 2>&1 && return 0; sleep 1; done; echo "not ready"; tail -20 "$WORK"/stack.log; return 1; }
stop() { kill -INT "$(cat "$WORK"/pid)"; for _ in $(seq 1 60); do kill -0 "$(cat "$WORK"/pid)" 2>/dev/null || return 0; sleep 1; done; }
step() { echo "[$((SECONDS - T0)) s] $*"; }
step start; start; step ready
curl -fs -X POST $U/api/v1/auth/register -H 'Content-Type: application/json' -d '{"email":"drill@example.com","password":"a long enough passphrase"}' >/dev/null
TOKEN=$(curl -fs $U/api/v1/auth/login -d 'username=drill@example.com&password=a long enough passphrase' | python3 -c 'import json,sys;print(json.load(sys.stdin)["access_token"])')
ME=$(curl -fs -H "Authorization: Bearer $TOKEN" $U/api/v1/auth/me | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
JOB=$(curl -fs -H "Authorization: Bearer $TOKEN" -F file=@tests/data/notes.md $U/api/v1/files | python3 -c 'import json,sys;print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 1 120); do S=$(curl -fs -H "Authorization: Bearer $TOKEN" $U/api/v1/jobs/$JOB | python3 -c 'import json,sys;print(json.load(sys.stdin)["status"])'); [[ $S == completed || $S == failed ]] && break; sleep 1; done
step "job $S"
BEFORE=$(curl -fs -H "Authorization: Bearer $TOKEN" "$U/api/v1/search?q=notes" | python3 -c 'import json,sys;print([(r["document_id"],r["chunk_id"]) for r in json.load(sys.stdin)["results"]])')
step "search before: $BEFORE"
export KGLAB_BACKUP_NEO4J_OWNERS=$ME
SET=$(.venv/bin/python -m deploy.backup --stack bkdrill backup | tail -1); step "backup $SET"
stop; step stopped; .venv/bin/python deploy/stack/run.py purge --name bkdrill; step purged
.venv/bin/python -m deploy.backup --stack bkdrill restore "$SET" | tail -1; step restored
start; step "ready again"
TOKEN=$(curl -fs $U/api/v1/auth/login -d 'username=drill@example.com&password=a long enough passphrase' | python3 -c 'import json,sys;print(json.load(sys.stdin)["access_token"])')
AFTER=$(curl -fs -H "Authorization: Bearer $TOKEN" "$U/api/v1/search?q=notes" | python3 -c 'import json,sys;print([(r["document_id"],r["chunk_id"]) for r in json.load(sys.stdin)["results"]])')
step "search after: $AFTER"
if [[ "$BEFORE" == "$AFTER" ]]; then step "the search answer matches"; else step "the search answer DIFFERS"; FAILED=1; fi
stop; .venv/bin/python deploy/stack/run.py purge --name bkdrill
# The stack's graph nodes (Neo4j is shared by every stack here): only this drill user's.
.venv/bin/python -c "
import sys
from deploy.backup.stores import Neo4jStore
with Neo4jStore(sys.argv[1], 'neo4j', [sys.argv[2]])._driver() as driver:
    driver.execute_query('MATCH (n) WHERE n.owner = \$o DETACH DELETE n', o=sys.argv[2])
" "$KGLAB_NEO4J_URL" "$ME"
rm -rf "$WORK"
step finished
exit "${FAILED:-0}"
