"""Turns the JSON lines of one bench/run.sh run into a markdown section with
the targets of the speed issue checked. Reads everything from the
environment that run.sh exports."""
import json
import os

env = os.environ
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
        "rps": r["requests"] / secs,
        "ok_rps": ok / secs,
        "p50": r["p50_us"] / 1000,
        "p99": r["p99_us"] / 1000,
        "errors": errors,
        "non2xx": non2xx,
        "requests": r["requests"],
    }

a, b, c, e, g = rows["a"], rows["b"], rows["c"], rows["e"], rows["g"]
rss_mb = int(env["RSS_KB"]) / 1024
checks = [
    ("(b) >= 50% of (a)", b["rps"] / a["rps"] >= 0.5, f"{100 * b['rps'] / a['rps']:.0f}%"),
    ("(c) >= 70% of (a)", c["rps"] / a["rps"] >= 0.7, f"{100 * c['rps'] / a['rps']:.0f}%"),
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
out.append(f"- commit: {env['COMMIT']}; {env['DURATION']} s a scenario, 2 threads, 32 connections")
steal = float(env.get("STEAL_PCT", "0"))
out.append(f"- CPU steal by the hypervisor during the scenarios: {steal:.1f}%"
           + (" (**high: these numbers are not representative; rerun**)" if steal > 5 else ""))
out.append(f"- bcrypt cost {hash_fields['cost']}: {ms_per_hash:.1f} ms a hash on one idle core, "
           f"so the bound is {cores} / {ms_per_hash / 1000:.4f} s = {bound:.2f} sign-ins/s")
out.append("")
out.append("| scenario | req/s | ok/s | p50 ms | p99 ms | socket errors | non-2xx |")
out.append("|---|---:|---:|---:|---:|---:|---:|")
for k, name in NAMES.items():
    r = rows[k]
    out.append(f"| ({k}) {name} | {r['rps']:.0f} | {r['ok_rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} "
               f"| {r['errors']} | {r['non2xx']} |")
out.append("")
out.append("| target | met | measured |")
out.append("|---|---|---|")
for name, met, measured in checks:
    out.append(f"| {name} | {'yes' if met else '**NO**'} | {measured} |")
out.append("")
out.append("Ratios: (b)/(a) = {:.2f}, (c)/(a) = {:.2f}, (e)/bound = {:.2f}. "
           "Non-2xx in (e) and the flood are 503s from the hashing admission control (slots full).".format(
               b["rps"] / a["rps"], c["rps"] / a["rps"], e["ok_rps"] / bound))
out.append("")
out.append("Commands:")
out.append("")
out.append("```")
for k in NAMES:
    out.append(env[f"C_{k}"])
out.append("```")
print("\n".join(out))
