"""Turns the JSON lines of one bench/run.sh run into a markdown section with
the targets of the speed issues checked. Reads everything from the
environment that run.sh exports. With --side-by-side: the table of
Flask-Security-Too against gatehouse instead."""
import json
import os
import sys

env = os.environ


def side_by_side():
    names = {
        "a": "GET no auth",
        "b": "GET with a valid token",
        "c": "GET without a token (401)",
        "f": "POST a like with a token",
    }
    out = ["## side by side: Flask-Security-Too 5.9.2 and gatehouse, SQLite", ""]
    out.append(f"- machine: {env['NPROC']} cores, {env['CPU']}; wrk and the server share them")
    out.append(f"- commit: {env['COMMIT']}; {env['DURATION']} s a scenario, 2 threads, 32 connections, "
               f"the median of {env['ROUNDS']} rounds")
    out.append(f"- Flask-Security-Too: `{env['FS_CMD']}` (bench/fs/app.py), on gatehouse's database "
               "file (WAL) and accounts, run after gatehouse's rounds")
    out.append(f"- CPU steal by the hypervisor during the run: {float(env.get('STEAL_PCT', '0')):.1f}%")
    out.append("")
    out.append("| scenario | Flask-Security-Too req/s | gatehouse req/s | ratio "
               "| server CPU µs a request: FS / gatehouse |")
    out.append("|---|---:|---:|---:|---:|")
    ratio = {}
    for k, name in names.items():
        fs, gh = json.loads(env[f"FS_{k}"]), json.loads(env[f"GH_{k}"])
        fs_rps = fs["requests"] / (fs["duration_us"] / 1e6)
        gh_rps = gh["requests"] / (gh["duration_us"] / 1e6)
        ratio[k] = gh_rps / fs_rps
        out.append(f"| {name} | {fs_rps:,.0f} | {gh_rps:,.0f} | {ratio[k]:.1f}x "
                   f"| {fs.get('server_us', 0):,.0f} / {gh.get('server_us', 0):,.0f} |")
    out.append("")
    out.append("(a) is sent without credentials; (b) with the server's own token (each signs in once); "
               "(f) stores a new like each request. Server CPU: the process tree's user and system "
               "time during the scenario, divided by its requests.")
    out.append("")
    met = ratio["b"] >= 30
    out.append("| target | met | measured |")
    out.append("|---|---|---|")
    out.append(f"| token GET >= 30x Flask-Security-Too | {'yes' if met else '**NO**'} | {ratio['b']:.1f}x |")
    print("\n".join(out))


if "--side-by-side" in sys.argv:
    side_by_side()
    sys.exit(0)

hash_fields = dict(kv.split("=") for kv in env["HASH_LINE"].split())
ms_per_hash = float(hash_fields["ms_per_hash"])
cores = int(hash_fields["cores"])
bound = cores * 1000.0 / ms_per_hash

NAMES = {
    "a": "no-auth route `GET /api/public` (ceiling)",
    "b": "`GET /api/test`, valid token",
    "c": "`GET /api/test`, no token (401)",
    "d": "`GET /api/me`, session cookie",
    "e": "`POST /login?include_auth_token` (bcrypt)",
    "f": "`POST /api/articles/<n>/likes`, token (new like each)",
    "g": "(b) during a 64-connection login flood",
    "g_flood": "the login flood itself, during (g)",
}
EXPECTED_NON_2XX = {"c"}  # the 401 is the answer being measured

rows = {}
for k in NAMES:
    r = json.loads(env[f"R_{k}"])
    secs = r["duration_us"] / 1e6
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    non2xx = r["non_2xx_3xx"]
    ok = r["requests"] - (0 if k in EXPECTED_NON_2XX else non2xx)
    rows[k] = {
        "cpu": (r.get("cpu_us", 0.0), r.get("server_us", 0.0), r.get("server_sys_us", 0.0),
                r.get("db_us", 0.0)),
        "rps": r["requests"] / secs,
        "ok_rps": ok / secs,
        "p50": r["p50_us"] / 1000,
        "p99": r["p99_us"] / 1000,
        "errors": errors,
        "non2xx": non2xx,
        "requests": r["requests"],
    }

a, b, c, d, e, f, g = (rows[k] for k in "abcdefg")
rss_mb = int(env["RSS_KB"]) / 1024


def share(name, row, least):
    r = row["rps"] / a["rps"]
    return (f"{name} >= {least:.2f} x (a)", r >= least, f"{r:.2f}")


# The speed issue's targets: on PostgreSQL the database server shares the
# two cores, so only the token route has one there.
if env["backend"] == "postgres":
    shares = [share("(b)", b, 0.60)]
else:
    shares = [share("(b)", b, 0.85), share("(c)", c, 0.90), share("(d)", d, 0.75), share("(f)", f, 0.40)]
checks = shares + [
    ("(e) sign-ins >= 90% of the bcrypt bound", e["ok_rps"] / bound >= 0.9,
     f"{e['ok_rps']:.2f}/s of {bound:.2f}/s = {100 * e['ok_rps'] / bound:.0f}%"),
    ("(g) token route: 0 errors", g["errors"] == 0 and g["non2xx"] == 0,
     f"{g['errors']} socket errors, {g['non2xx']} non-2xx"),
    ("(g) p99 <= 2 x p99(b) + 10 ms", g["p99"] <= 2 * b["p99"] + 10,
     f"{g['p99']:.2f} ms vs limit {2 * b['p99'] + 10:.2f} ms"),
    ("peak RSS <= 40 MB", rss_mb <= 40, f"{rss_mb:.1f} MB"),
]

out = []
out.append(f"## {env['backend']}")
out.append("")
out.append(f"- machine: {env['NPROC']} cores, {env['CPU']}; wrk and gatehouse share them")
out.append(f"- commit: {env['COMMIT']}; {env['DURATION']} s a scenario, 2 threads, 32 connections; "
           f"(a) to (d) and (f): the median of {env['ROUNDS']} interleaved rounds")
steal = float(env.get("STEAL_PCT", "0"))
out.append(f"- CPU steal by the hypervisor during the scenarios: {steal:.1f}%"
           + (" (**high: these numbers are not representative; rerun**)" if steal > 5 else ""))
out.append(f"- bcrypt cost {hash_fields['cost']}: {ms_per_hash:.1f} ms a hash on one idle core, "
           f"so the bound is {cores} / {ms_per_hash / 1000:.4f} s = {bound:.2f} sign-ins/s")
out.append("")
out.append("| scenario | req/s | ok/s | p50 ms | p99 ms | socket errors | non-2xx "
           "| CPU µs a request: all / gatehouse (in the kernel) / database |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
for k, name in NAMES.items():
    r = rows[k]
    cpu, server, sys_, db = r["cpu"]
    out.append(f"| ({k}) {name} | {r['rps']:.0f} | {r['ok_rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
               f"| {r['errors']} | {r['non2xx']} | {cpu:.1f} / {server:.1f} ({sys_:.1f}) / {db:.1f} |")
out.append("")
out.append("CPU µs a request: busy CPU time of the whole machine during the scenario (from /proc/stat), "
           "and the shares of gatehouse's process (in brackets: the part it spent in the kernel: "
           "sockets, file writes, locks, thread wake-ups) and of PostgreSQL's processes (from /proc/<pid>/stat), "
           "divided by the requests; the rest is wrk and the kernel's loopback work. "
           "(The login flood (g) runs beside (g_flood): their CPU overlaps.)")
out.append("")
out.append("| target | met | measured |")
out.append("|---|---|---|")
for name, met, measured in checks:
    out.append(f"| {name} | {'yes' if met else '**NO**'} | {measured} |")
out.append("")
out.append("Non-2xx in (e) and the flood are 503s from the hashing admission control (slots full).")
out.append("")
out.append("Commands:")
out.append("")
out.append("```")
for k in NAMES:
    out.append(env[f"C_{k}"])
out.append("```")
print("\n".join(out))
