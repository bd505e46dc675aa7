-- wrk script for bench/seal.py. Configuration comes from environment variables (wrk passes no
-- structured arguments to scripts):
--   BENCH_PATH     request path, e.g. /v1/invoices
--   BENCH_AUTH     bearer token, or empty
--   BENCH_OUTLETS  comma-separated outlet ids; empty means one fixed body (the baseline)
--   BENCH_BODY     the JSON body with the literal text OUTLET_ID where the outlet id goes
--   BENCH_AUTHS    optional, comma-separated bearer tokens parallel to BENCH_OUTLETS: each outlet's
--                  requests carry its own (outlets of several tenants); empty means BENCH_AUTH for all
-- done() prints one line "BENCH_RESULT {json}" that seal.py parses.

local threads = {}
local next_id = 0

function setup(thread)
   -- Each thread gets an offset so that threads do not all hit the outlets in the same order.
   thread:set("thread_id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   local path = os.getenv("BENCH_PATH")
   local auth = os.getenv("BENCH_AUTH") or ""
   local template = os.getenv("BENCH_BODY")
   local headers = { ["Content-Type"] = "application/json" }
   if auth ~= "" then headers["Authorization"] = "Bearer " .. auth end
   local auths = {}
   for token in string.gmatch(os.getenv("BENCH_AUTHS") or "", "[^,]+") do table.insert(auths, token) end
   -- Pre-format every request once: request() is on the hot path and string building in Lua
   -- would otherwise cost the client CPU that the server needs (2 cores shared).
   requests_ = {}
   local outlets = os.getenv("BENCH_OUTLETS") or ""
   for outlet in string.gmatch(outlets, "[^,]+") do
      local body = string.gsub(template, "OUTLET_ID", outlet)
      if #auths > 0 then headers["Authorization"] = "Bearer " .. auths[#requests_ + 1] end
      table.insert(requests_, wrk.format("POST", path, headers, body))
   end
   if #requests_ == 0 then
      table.insert(requests_, wrk.format("POST", path, headers, template))
   end
   position = thread_id or 0
   statuses = {}    -- status code (as string) -> count
   created = {}     -- outlet id -> number of 201s, checked against the outlet's counter afterwards
   sample = ""      -- first non-2xx answer, to show what went wrong
end

function request()
   position = position + 1
   return requests_[(position % #requests_) + 1]
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
   if status == 201 then
      -- The 201 body names its outlet; responses are not matched to requests in wrk, so read it back.
      local outlet = string.match(body, '"outlet_id":"([^"]+)"')
      if outlet then created[outlet] = (created[outlet] or 0) + 1 end
   elseif (status < 200 or status > 299) and sample == "" then
      sample = key .. " " .. string.sub(body or "", 1, 400)
   end
end

local function encode(value)
   -- Just enough JSON for flat tables of numbers and strings.
   local t = type(value)
   if t == "number" then return string.format("%.17g", value) end
   if t == "string" then
      return '"' .. string.gsub(value, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
   end
   if t == "table" then
      local parts = {}
      for k, v in pairs(value) do table.insert(parts, encode(tostring(k)) .. ":" .. encode(v)) end
      return "{" .. table.concat(parts, ",") .. "}"
   end
   return "null"
end

function done(summary, latency, requests)
   local all_statuses, all_created, first_sample = {}, {}, ""
   for _, thread in ipairs(threads) do
      for k, v in pairs(thread:get("statuses")) do all_statuses[k] = (all_statuses[k] or 0) + v end
      for k, v in pairs(thread:get("created")) do all_created[k] = (all_created[k] or 0) + v end
      local s = thread:get("sample")
      if first_sample == "" and s ~= "" then first_sample = s end
   end
   local result = {
      requests = summary.requests,
      duration_us = summary.duration,
      socket_errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      p50_us = latency:percentile(50),
      p99_us = latency:percentile(99),
      statuses = all_statuses,
      created = all_created,
      sample = first_sample,
   }
   io.write("BENCH_RESULT " .. encode(result) .. "\n")
end
