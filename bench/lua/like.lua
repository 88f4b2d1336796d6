-- POST /api/articles/<n>/likes with a token: every request stores a new like.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local token = os.getenv("TOKEN")
local counter = 0
local next_id = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
function request()
  counter = counter + 1
  local article = (thread_id or 0) * 100000000 + counter
  return wrk.format("POST", "/api/articles/" .. article .. "/likes",
    {["Authentication-Token"] = token, ["Accept"] = "application/json"}, "")
end
