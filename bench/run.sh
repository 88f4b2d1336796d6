#!/usr/bin/env bash
# gatehouse benchmark: builds release, starts gatehouse on loopback with a
# seeded database (1,000 users), drives it with wrk (2 threads, 32
# connections, DURATION seconds a scenario) and writes the numbers to
# bench/results-<backend>.md, then assembles bench/RESULTS.md.
#
#   bench/run.sh              SQLite (a fresh file)
#   bench/run.sh --postgres   PostgreSQL (database gatehouse_bench on
#                             $GATEHOUSE_PG_ADMIN's server, recreated)
#   DURATION=10 BCRYPT_COST=12 bench/run.sh
#
# Traffic goes to 127.0.0.1 only, bounded by DURATION per scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

backend=sqlite
[ "${1:-}" = "--postgres" ] && backend=postgres
DURATION=${DURATION:-10}
BCRYPT_COST=${BCRYPT_COST:-12}
USERS=1000
PASSWORD="bench password 1"
THREADS=2
CONNS=32
FLOOD_CONNS=64

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

echo "== building release"
cargo build --release -q
BIN="$ROOT/target/release/gatehouse"

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

if [ "$backend" = postgres ]; then
  admin="${GATEHOUSE_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
  psql "$admin" -qc "DROP DATABASE IF EXISTS gatehouse_bench WITH (FORCE)" >/dev/null
  psql "$admin" -qc "CREATE DATABASE gatehouse_bench" >/dev/null
  DB_URL="${admin%/*}/gatehouse_bench"
else
  DB_URL="sqlite://$WORK/bench.db?mode=rwc"
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export ROCKET_PROFILE=release
export ROCKET_PORT=$PORT
export ROCKET_ADDRESS=127.0.0.1
export ROCKET_SECRET_KEY=$(openssl rand -base64 32)
export ROCKET_DATABASES="{gatehouse={url=\"$DB_URL\"}}"
# Real secrets, the configured cost. One wrk client stands for many users, so
# the per-address limit is lifted; every other defence stays as configured.
export ROCKET_SECURITY="{secret_key=\"$(openssl rand -hex 32)\",password_salt=\"$(openssl rand -hex 32)\",bcrypt_cost=$BCRYPT_COST,cookie_secure=false,ip_limit_per_minute=100000000,public_url=\"http://127.0.0.1:$PORT\"}"
# A release build needs a mail transport (the reset and confirm flows send
# mail): files in the work directory, nothing leaves the machine.
export ROCKET_MAIL="{transport=\"file\",dir=\"$WORK/mail\"}"
export BENCH_LUA="$ROOT/bench/lua"

echo "== measuring one hash (bcrypt cost $BCRYPT_COST) on an idle machine"
HASH_LINE=$("$BIN" hash-time --cost "$BCRYPT_COST" --rounds 8 2>/dev/null)
echo "   $HASH_LINE"

echo "== seeding $USERS users"
echo "$PASSWORD" | "$BIN" users create bench0@example.com --password-stdin >/dev/null 2>&1
if [ "$backend" = postgres ]; then
  psql "$DB_URL" -qc "INSERT INTO \"user\" (email, password, active, fs_uniquifier, create_datetime, update_datetime)
    SELECT 'bench' || i || '@example.com', (SELECT password FROM \"user\" WHERE id = 1), true,
           md5(random()::text || i), now(), now() FROM generate_series(1, $((USERS - 1))) i" >/dev/null
else
  python3 - "$WORK/bench.db" "$USERS" <<'PY'
import sqlite3, sys, secrets
db = sqlite3.connect(sys.argv[1])
pw = db.execute("SELECT password FROM user WHERE id = 1").fetchone()[0]
db.executemany(
    "INSERT INTO user (email, password, active, fs_uniquifier, create_datetime, update_datetime) "
    "VALUES (?, ?, 1, ?, datetime('now'), datetime('now'))",
    [(f"bench{i}@example.com", pw, secrets.token_hex(16)) for i in range(1, int(sys.argv[2]))])
db.commit()
PY
fi

echo "== starting gatehouse on 127.0.0.1:$PORT ($backend)"
"$BIN" serve > /dev/null 2> "$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done

LOGIN=$(curl -s -c "$WORK/jar" -H 'Content-Type: application/json' \
  -d "{\"email\":\"bench0@example.com\",\"password\":\"$PASSWORD\"}" "http://127.0.0.1:$PORT/login?include_auth_token")
export TOKEN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["response"]["user"]["authentication_token"])' "$LOGIN")
export COOKIE="session=$(awk '$6 == "session" {print $7}' "$WORK/jar")"
export USERS PASSWORD
URL="http://127.0.0.1:$PORT"

# CPU time the hypervisor takes away ("steal") makes a shared VM's numbers
# meaningless; it is measured across the scenarios and reported.
cpu_counters() { awk '/^cpu / {t=0; for (i=2; i<=NF; i++) t+=$i; print t, $9}' /proc/stat; }
read -r CPU_T0 STEAL_T0 < <(cpu_counters)

declare -A RESULT CMD
run() { # name, connections, script, path
  local name=$1 conns=$2 script=$3 path=$4
  CMD[$name]="wrk -t$THREADS -c$conns -d${DURATION}s -s bench/lua/$script $URL$path"
  echo "== ($name) ${CMD[$name]}"
  RESULT[$name]=$(wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout 10s -s "$BENCH_LUA/$script" "$URL$path" | tail -n 1)
  echo "   ${RESULT[$name]}"
}

run a $CONNS plain.lua /api/public
run b $CONNS plain.lua /api/test
TOKEN= run c $CONNS plain.lua /api/test
TOKEN= run d $CONNS plain.lua /api/me
run e $CONNS login.lua /login
run f $CONNS like.lua /api/articles/1/likes

# (g): (b) while a second wrk floods (e) with more connections.
CMD[g_flood]="wrk -t$THREADS -c$FLOOD_CONNS -d$((DURATION + 2))s -s bench/lua/login.lua $URL/login"
wrk -t"$THREADS" -c"$FLOOD_CONNS" -d"$((DURATION + 2))s" --timeout 10s -s "$BENCH_LUA/login.lua" "$URL/login" \
  | tail -n 1 > "$WORK/flood.json" &
FLOOD=$!
sleep 1
run g $CONNS plain.lua /api/test
wait $FLOOD
RESULT[g_flood]=$(cat "$WORK/flood.json")
echo "   flood: ${RESULT[g_flood]}"

read -r CPU_T1 STEAL_T1 < <(cpu_counters)
export STEAL_PCT=$(python3 -c "print(round(100 * ($STEAL_T1 - $STEAL_T0) / max(1, $CPU_T1 - $CPU_T0), 1))")
echo "== CPU steal during the scenarios: ${STEAL_PCT}%"
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
echo "== peak RSS ${RSS_KB} kB"

export HASH_LINE RSS_KB backend DURATION
export COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo "+dirty")
export CPU=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
export NPROC=$(nproc)
for k in a b c d e f g g_flood; do export "R_$k=${RESULT[$k]}" "C_$k=${CMD[$k]}"; done
python3 "$ROOT/bench/report.py" > "$ROOT/bench/results-$backend.md"
{
  echo "# Benchmark results"
  echo
  echo "Made by \`bench/run.sh\` (SQLite) and \`bench/run.sh --postgres\`; each section is one run."
  for b in sqlite postgres; do
    [ -f "$ROOT/bench/results-$b.md" ] && { echo; cat "$ROOT/bench/results-$b.md"; }
  done
} > "$ROOT/bench/RESULTS.md"
echo "== wrote bench/results-$backend.md and bench/RESULTS.md"
cat "$ROOT/bench/results-$backend.md"
