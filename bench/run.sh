#!/usr/bin/env bash
# gatehouse benchmark: builds release, starts gatehouse on loopback with a
# seeded database (1,000 users), drives it with wrk (2 threads, 32
# connections, DURATION seconds a scenario) and writes the numbers to
# bench/results-<backend>.md, then assembles bench/RESULTS.md.
#
#   bench/run.sh              SQLite (a fresh file)
#   bench/run.sh --postgres   PostgreSQL (database gatehouse_bench on
#                             $GATEHOUSE_PG_ADMIN's server, recreated)
#   bench/run.sh --side-by-side
#                             SQLite, and then Flask-Security-Too 5.9.2 on
#                             gunicorn (bench/fs, installed into
#                             target/bench-fs-venv from PyPI) on the same
#                             database, driven by the same wrk commands:
#                             writes bench/results-side-by-side.md too
#   DURATION=10 ROUNDS=3 BCRYPT_COST=12 bench/run.sh
#
# The throughput scenarios run ROUNDS times, interleaved, after a warm-up;
# each is reported by its median round, so a burst of noise from a shared
# machine moves one round, not a ratio.
#
# Traffic goes to 127.0.0.1 only, bounded by DURATION per scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

backend=sqlite
side=""
case "${1:-}" in
  --postgres) backend=postgres ;;
  --side-by-side) side=1 ;;
  "") ;;
  *) echo "usage: bench/run.sh [--postgres | --side-by-side]" >&2; exit 2 ;;
esac
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
BCRYPT_COST=${BCRYPT_COST:-12}
USERS=1000
PASSWORD="bench password 1"
THREADS=2
CONNS=32
FLOOD_CONNS=64

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

# NO_BUILD=1: measure the release binary already built (say which commit).
if [ -z "${NO_BUILD:-}" ]; then
  echo "== building release"
  cargo build --release -q
fi
BIN="$ROOT/target/release/gatehouse"

WORK=$(mktemp -d)
SERVER_PID=""
FS_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  [ -n "$FS_PID" ] && kill "$FS_PID" 2>/dev/null
  wait 2>/dev/null; rm -rf "$WORK"
}
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
SECRET_KEY=$(openssl rand -hex 32)
PASSWORD_SALT=$(openssl rand -hex 32)
export ROCKET_SECURITY="{secret_key=\"$SECRET_KEY\",password_salt=\"$PASSWORD_SALT\",bcrypt_cost=$BCRYPT_COST,cookie_secure=false,ip_limit_per_minute=100000000,public_url=\"http://127.0.0.1:$PORT\"}"
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

declare -A RESULT CMD ROUND
# Where the machine's CPU goes during a scenario, in clock ticks: busy in
# all (from /proc/stat), the server under test, and the database server
# (PostgreSQL's processes; SQLite runs inside the server). The rest is wrk
# and the kernel's share of the loopback traffic.
TARGET_PID=""
cpu_split() {
  local pids busy server=0 sys=0 db=0 p
  busy=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
  if [ -n "$TARGET_PID" ]; then
    pids="$TARGET_PID $(pgrep -P "$TARGET_PID" | tr '\n' ' ')"
  else
    pids=$SERVER_PID
  fi
  for p in $pids; do
    server=$((server + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    sys=$((sys + $(awk '{print $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  for p in $(pgrep -x postgres 2>/dev/null); do db=$((db + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$busy $server $sys $db"
}
run() { # name, connections, script, path
  local name=$1 conns=$2 script=$3 path=$4 before after
  CMD[$name]="wrk -t$THREADS -c$conns -d${DURATION}s -s bench/lua/$script $URL$path"
  echo "== ($name) ${CMD[$name]}"
  before=$(cpu_split)
  RESULT[$name]=$(wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout 10s -s "$BENCH_LUA/$script" "$URL$path" | tail -n 1)
  after=$(cpu_split)
  # CPU microseconds a request: all, the server's (and of it in the
  # kernel), the database's.
  RESULT[$name]=$(python3 -c '
import json, os, sys
r = json.loads(sys.argv[1])
b, a = map(int, sys.argv[2].split()), map(int, sys.argv[3].split())
hz = os.sysconf("SC_CLK_TCK")
busy, server, sys_, db = (y - x for x, y in zip(b, a))
n = max(1, r["requests"])
us = lambda ticks: round(ticks * 1e6 / hz / n, 1)
r.update(cpu_us=us(busy), server_us=us(server), server_sys_us=us(sys_), db_us=us(db))
print(json.dumps(r))' "${RESULT[$name]}" "$before" "$after")
  echo "   ${RESULT[$name]}"
  ROUND[$name]+="${RESULT[$name]}"$'\n'
  # Requests wrk gave up on may still be queued in the server (Flask-Security-
  # Too's threads wait up to 5 s for a SQLite lock): let them drain before
  # the next scenario.
  sleep "${DRAIN:-1}"
}
# The median round of a scenario run in rounds (by requests).
median() {
  printf '%s' "${ROUND[$1]}" | python3 -c '
import json, sys
rounds = sorted((json.loads(l) for l in sys.stdin if l.strip()), key=lambda r: r["requests"])
print(json.dumps(rounds[len(rounds) // 2]))'
}
warm_up() { # url: two seconds of load, not measured (first connections, caches)
  wrk -t"$THREADS" -c"$CONNS" -d2s -s "$BENCH_LUA/plain.lua" "$1" >/dev/null
}
# The throughput scenarios, ROUNDS times, interleaved; $1 is the scenarios.
rounds() {
  local k
  for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r of $ROUNDS"
    for k in $1; do
      case $k in
        a) TOKEN= run a $CONNS plain.lua /api/public ;;
        b) run b $CONNS plain.lua /api/test ;;
        c) TOKEN= run c $CONNS plain.lua /api/test ;;
        d) TOKEN= run d $CONNS plain.lua /api/me ;;
        f) run f $CONNS like.lua /api/articles/1/likes ;;
      esac
    done
  done
  for k in $1; do RESULT[$k]=$(median "$k"); done
}

warm_up "$URL/api/public"
rounds "a b c d f"
run e $CONNS login.lua /login

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

RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
echo "== peak RSS ${RSS_KB} kB"

if [ -n "$side" ]; then
  # The same scenarios, the same wrk commands, against Flask-Security-Too
  # on the same database and accounts. gatehouse stays up, idle.
  FS_VENV="$ROOT/target/bench-fs-venv"
  if ! cmp -s "$ROOT/bench/fs/requirements.txt" "$FS_VENV/.requirements"; then
    echo "== installing Flask-Security-Too and gunicorn into $FS_VENV"
    rm -rf "$FS_VENV"
    python3 -m venv "$FS_VENV"
    "$FS_VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/bench/fs/requirements.txt"
    cp "$ROOT/bench/fs/requirements.txt" "$FS_VENV/.requirements"
  fi
  FS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  FS_DB="sqlite:///$WORK/bench.db"
  [ "$backend" = postgres ] && FS_DB="postgresql://${DB_URL#postgres://}"
  FS_CMD="gunicorn -w 4 -k gthread --threads 4 -b 127.0.0.1:$FS_PORT --chdir bench/fs app:app"
  echo "== starting Flask-Security-Too: $FS_CMD"
  BENCH_DB="$FS_DB" BENCH_SECRET_KEY="$SECRET_KEY" BENCH_PASSWORD_SALT="$PASSWORD_SALT" \
    "$FS_VENV/bin/gunicorn" -w 4 -k gthread --threads 4 -b "127.0.0.1:$FS_PORT" --chdir "$ROOT/bench/fs" \
    --log-level warning app:app > /dev/null 2> "$WORK/fs.log" &
  FS_PID=$!
  TARGET_PID=$FS_PID # gunicorn's master and its workers
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$FS_PORT/api/public" >/dev/null && break; sleep 0.2; done
  curl -sf "http://127.0.0.1:$FS_PORT/api/public" >/dev/null || { cat "$WORK/fs.log" >&2; exit 1; }
  sleep 3 # one worker answers; the other three may still be importing the app
  GH_TOKEN=$TOKEN GH_URL=$URL
  FS_LOGIN=$(curl -s -H 'Content-Type: application/json' \
    -d "{\"email\":\"bench1@example.com\",\"password\":\"$PASSWORD\"}" "http://127.0.0.1:$FS_PORT/login?include_auth_token")
  TOKEN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["response"]["user"]["authentication_token"])' "$FS_LOGIN")
  URL="http://127.0.0.1:$FS_PORT"
  declare -A GH_RESULT
  for k in a b c f; do GH_RESULT[$k]=${RESULT[$k]}; ROUND[$k]=""; done
  warm_up "$URL/api/public"
  DRAIN=6 rounds "a b c f"
  for k in a b c f; do export "FS_$k=${RESULT[$k]}" "GH_$k=${GH_RESULT[$k]}"; RESULT[$k]=${GH_RESULT[$k]}; done
  kill "$FS_PID"; wait "$FS_PID" 2>/dev/null || true; FS_PID=""; TARGET_PID=""
  TOKEN=$GH_TOKEN URL=$GH_URL
fi

read -r CPU_T1 STEAL_T1 < <(cpu_counters)
export STEAL_PCT=$(python3 -c "print(round(100 * ($STEAL_T1 - $STEAL_T0) / max(1, $CPU_T1 - $CPU_T0), 1))")
echo "== CPU steal during the scenarios: ${STEAL_PCT}%"

export HASH_LINE RSS_KB backend DURATION ROUNDS
export COMMIT=${COMMIT:-$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo "+dirty")}
export CPU=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
export NPROC=$(nproc)
for k in a b c d e f g g_flood; do export "R_$k=${RESULT[$k]}" "C_$k=${CMD[$k]}"; done
python3 "$ROOT/bench/report.py" > "$ROOT/bench/results-$backend.md"
[ -n "$side" ] && FS_CMD="$FS_CMD" python3 "$ROOT/bench/report.py" --side-by-side > "$ROOT/bench/results-side-by-side.md"
{
  echo "# Benchmark results"
  echo
  echo "Made by \`bench/run.sh --side-by-side\` (SQLite, then Flask-Security-Too on the same"
  echo "database), \`bench/run.sh --postgres\` and \`bench/callgrind.sh\`; each section is one run."
  echo "Where a request's time goes, and why the targets missed are missed: bench/PROFILE.md."
  for b in side-by-side sqlite postgres; do
    [ -f "$ROOT/bench/results-$b.md" ] && { echo; cat "$ROOT/bench/results-$b.md"; }
  done
  [ -f "$ROOT/bench/callgrind-sqlite.md" ] && { echo; cat "$ROOT/bench/callgrind-sqlite.md"; }
} > "$ROOT/bench/RESULTS.md"
echo "== wrote bench/results-$backend.md and bench/RESULTS.md"
cat "$ROOT/bench/results-$backend.md"
[ -n "$side" ] && cat "$ROOT/bench/results-side-by-side.md"
true
