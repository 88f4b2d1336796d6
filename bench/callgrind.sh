#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: repeatable on a
# noisy machine (unlike seconds), so a change that adds work to the hot path
# shows as a number. The release server runs under callgrind with
# instrumentation off; for each scenario (the no-auth, token, 401 and session
# GETs of bench/run.sh, and a new like by token) one keep-alive client sends WARM
# requests, then N counted ones (instrumentation on only for those), and the
# server's instructions are divided by N. Writes bench/callgrind-sqlite.md.
#
#   bench/callgrind.sh          N=400 requests a scenario
#   N=1000 bench/callgrind.sh
#
# Traffic goes to 127.0.0.1 only. Background work of the server (the mail
# worker's poll, housekeeping) runs during a count too: N is large enough
# that it is a small share, and each scenario says how long its count took.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${N:-400}
WARM=${WARM:-50}

command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
BIN="$ROOT/target/release/gatehouse"
# NO_BUILD=1: count the release binary already built (say which commit).
if [ -z "${NO_BUILD:-}" ]; then
  echo "== building release"
  cargo build --release -q
fi

WORK=$(mktemp -d)
SERVER_PID=""
# KEEP=dir: keep the callgrind dumps there, one a scenario, for
# callgrind_annotate (--inclusive=yes tells where a request's instructions go).
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$WORK"/cg.out* "$KEEP"/ 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export ROCKET_PROFILE=release ROCKET_PORT=$PORT ROCKET_ADDRESS=127.0.0.1
export ROCKET_SECRET_KEY=$(openssl rand -base64 32)
export ROCKET_DATABASES="{gatehouse={url=\"sqlite://$WORK/cg.db?mode=rwc\"}}"
export ROCKET_SECURITY="{secret_key=\"$(openssl rand -hex 32)\",password_salt=\"$(openssl rand -hex 32)\",bcrypt_cost=4,cookie_secure=false,ip_limit_per_minute=100000000,public_url=\"http://127.0.0.1:$PORT\"}"
export ROCKET_MAIL="{transport=\"file\",dir=\"$WORK/mail\"}"
echo "callgrind password 1" | "$BIN" users create cg@example.com --password-stdin >/dev/null

echo "== starting gatehouse under callgrind on 127.0.0.1:$PORT"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.out" \
  "$BIN" serve > /dev/null 2> "$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PORT/livez" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }

python3 - "$PORT" "$N" "$WARM" "$SERVER_PID" "$WORK" <<'PY'
import http.client, json, subprocess, sys, time, glob, os
port, n, warm, pid, work = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]

def conn():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=60)

c = conn()
c.request("POST", "/login?include_auth_token",
          body=json.dumps({"email": "cg@example.com", "password": "callgrind password 1"}),
          headers={"Content-Type": "application/json"})
r = c.getresponse(); body = json.loads(r.read())
token = body["response"]["user"]["authentication_token"]
cookie = "; ".join(h.split(";")[0] for k, h in r.getheaders() if k.lower() == "set-cookie"
                   and h.startswith("session="))

likes = iter(range(1, 10**9))
scenarios = [
    ("no-auth route `GET /api/public`", "GET", lambda: "/api/public", {}, 200),
    ("valid token `GET /api/test`", "GET", lambda: "/api/test", {"Authentication-Token": token}, 200),
    ("no token `GET /api/test` (401)", "GET", lambda: "/api/test", {"Accept": "application/json"}, 401),
    ("session cookie `GET /api/me`", "GET", lambda: "/api/me", {"Cookie": cookie, "Accept": "application/json"}, 200),
    ("a new like by token `POST /api/articles/<n>/likes`", "POST",
     lambda: f"/api/articles/{next(likes)}/likes",
     {"Authentication-Token": token, "Accept": "application/json"}, 201),
]

def ctl(*args):
    subprocess.run(["callgrind_control", *args, pid], check=True, capture_output=True)

def totals():
    files = sorted(glob.glob(os.path.join(work, "cg.out*")), key=os.path.getmtime)
    # The newest dump; its "totals:" lines (one a part), summed.
    with open(files[-1]) as f:
        found = [int(line.split()[1]) for line in f if line.startswith("totals:")]
    if not found:
        raise SystemExit("no totals in the callgrind dump")
    return sum(found)

rows = []
for name, method, path, headers, want in scenarios:
    c = conn()
    for _ in range(warm):
        c.request(method, path(), headers=headers); r = c.getresponse(); r.read()
        assert r.status == want, (name, r.status)
    ctl("-z")
    ctl("-i", "on")
    t0 = time.time()
    for _ in range(n):
        c.request(method, path(), headers=headers); r = c.getresponse(); r.read()
        assert r.status == want, (name, r.status)
    took = time.time() - t0
    ctl("-i", "off")
    ctl("-d")
    ir = totals()
    rows.append((name, ir // n, took))
    print(f"   {name}: {ir // n:,} instructions a request ({n} requests, {took:.1f} s)")

with open(os.path.join(work, "rows.json"), "w") as f:
    json.dump(rows, f)
PY

COMMIT=${COMMIT:-$(git rev-parse --short HEAD)}
python3 - "$WORK/rows.json" "$COMMIT" "$N" > bench/callgrind-sqlite.md <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
base = rows[0][1]
print("## instructions per request (callgrind, SQLite)\n")
print(f"- commit: {sys.argv[2]}; release build; {sys.argv[3]} requests a scenario on one keep-alive connection")
print("- counted by `valgrind --tool=callgrind`: the same binary and inputs give the same numbers, whatever else the machine does\n")
print("| scenario | instructions a request | x no-auth |")
print("|---|---:|---:|")
for name, ir, _ in rows:
    print(f"| {name} | {ir:,} | {ir / base:.2f} |")
PY
cat bench/callgrind-sqlite.md
