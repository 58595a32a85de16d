-- wrk script: POST /v1/campaigns/<campaign>/issue with a new user per request.
-- usage: wrk -s tests/load/issue-unique.lua http://127.0.0.1:8080 -- <campaign> [prefix]
-- Each wrk thread numbers its own users ("<prefix><thread>-<n>"), so ids
-- never repeat across threads.
local counter = 0
local threads = {}
local campaign, prefix = "bench", "w"

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  campaign = args[1] or campaign
  prefix = args[2] or prefix
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  return wrk.format(nil, "/v1/campaigns/" .. campaign .. "/issue", nil,
    '{"user_id":"' .. prefix .. tid .. "-" .. counter .. '"}')
end
