-- POST /login?include_auth_token as JSON, rotating over the seeded users.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local users = tonumber(os.getenv("USERS") or "1000")
local password = os.getenv("PASSWORD")
local counter = 0
local next_id = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
function request()
  counter = counter + 1
  local n = (counter * 2 + (thread_id or 0)) % users
  local body = string.format('{"email":"bench%d@example.com","password":"%s"}', n, password)
  return wrk.format("POST", "/login?include_auth_token",
    {["Content-Type"] = "application/json", ["Accept"] = "application/json"}, body)
end
