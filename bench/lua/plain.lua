-- GET with optional headers from the environment: TOKEN, COOKIE.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local token, cookie = os.getenv("TOKEN"), os.getenv("COOKIE")
if token and token ~= "" then wrk.headers["Authentication-Token"] = token end
if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end
wrk.headers["Accept"] = "application/json"
