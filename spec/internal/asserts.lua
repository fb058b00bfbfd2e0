-- luassert extensions with Kong's names (Kong spec/internal/asserts.lua):
--   assert.response(res).has.status(200)        -> body
--   assert.res_status(200, res)                 -> body (failure shows it)
--   assert.response(res).has.header(name)       -> value
--   assert.response(res).has.jsonbody()         -> decoded table
--   assert.request(res).has.header(name)        -> value (mock echo JSON)
--   assert.request(res).has.queryparam(name)    -> value
--   assert.request(res).has.formparam(name)     -> value
--   assert.request(res).has.jsonbody()          -> the JSON body sent
--   assert.is_json(str)                         -> decoded table
--   assert.logfile(path?).has.line(pattern, plain, timeout)
--   assert.logfile(path?).has.no.line(pattern, plain)
--   assert.contains(value, array[, pattern])    -> index
--   assert.gt(limit, value)
-- Patterns are Lua patterns (Kong uses ngx.re regexes), or plain strings
-- with `plain = true`.

local say = require "say"
local luassert = require "luassert"
local cjson = require "cjson.safe"
local util = require "spec.internal.util"
local http_client = require "spec.internal.http_client"


local type = type
local tostring = tostring
local rawget = rawget
local rawset = rawset
local ipairs = ipairs
local table_insert = table.insert
local string_find = string.find
local string_match = string.match


local _M = {}


local lookup = http_client.lookup


-- Set by spec.helpers: returns the default error log path.
_M.default_errlog = function()
  return nil
end


local function is_response(res)
  return type(res) == "table" and type(res.read_body) == "function"
end


local function strip(s)
  return s and string_match(s, "^%s*(.-)%s*$")
end


local function modifier_response(state, arguments)
  local res = arguments[1]
  assert(is_response(res), "the response modifier expects a response "
         .. "object, got: " .. tostring(res))
  rawset(state, "kong_response", res)
  rawset(state, "kong_request", nil)
  return state
end
luassert:register("modifier", "response", modifier_response)


local function modifier_request(state, arguments)
  local generic = "The 'request' modifier reads the JSON echo of the mock "
                  .. "upstream from a response."
  local res = arguments[1]
  assert(is_response(res), "expected a response object, got: "
         .. tostring(res) .. ". " .. generic)
  local body = assert(res:read_body())
  local request, err = cjson.decode(body)
  assert(type(request) == "table", "expected a JSON body, but decoding "
         .. "gave: " .. tostring(err) .. ". Body: " .. body .. ". "
         .. generic)
  if lookup(res.headers, "X-Powered-By") ~= "mock_upstream" then
    error("the response does not come from the mock upstream "
          .. "(no 'X-Powered-By: mock_upstream'). " .. generic, 2)
  end
  rawset(state, "kong_request", request)
  rawset(state, "kong_response", nil)
  return state
end
luassert:register("modifier", "request", modifier_request)


local function res_status(state, args)
  assert(not rawget(state, "kong_request"),
         "cannot check a status code on a request object")
  local expected = args[1]
  local res = args[2] or rawget(state, "kong_response")
  assert(type(expected) == "number",
         "the expected status must be a number, got: " .. tostring(expected))
  assert(is_response(res), "expected a response object, got: "
         .. tostring(res))

  local body, err = res:read_body()
  local output = body and strip(body) or ("error reading the body: "
                                          .. tostring(err))
  args[1] = expected
  args[2] = res.status
  args[3] = output
  args.n = 3
  args.nofmt = { true, true, true }

  if expected ~= res.status then
    return false
  end
  return true, { output }
end
say:set("assertion.res_status.negative", [[
Invalid response status code.
Status expected:
%s
Status received:
%s
Body:
%s]])
say:set("assertion.res_status.positive", [[
Invalid response status code.
Status not expected:
%s
Status received:
%s
Body:
%s]])
luassert:register("assertion", "status", res_status,
                  "assertion.res_status.negative",
                  "assertion.res_status.positive")
luassert:register("assertion", "res_status", res_status,
                  "assertion.res_status.negative",
                  "assertion.res_status.positive")


local function jsonbody(state, args)
  local req = rawget(state, "kong_request")
  local res = rawget(state, "kong_response")
  assert(args[1] == nil and (req or res), "the jsonbody assertion takes no "
         .. "argument; use the response/request modifiers")

  if res then
    local body = res:read_body() or ""
    local json, err = cjson.decode(body)
    if json == nil then
      table_insert(args, 1, "error decoding: " .. tostring(err)
                   .. "\nResponse body: " .. body)
      args.n = 1
      return false
    end
    return true, { json }
  end

  local pd = req.post_data or {}
  if pd.kind == "json" then
    return true, { pd.params }
  end
  local json, err = cjson.decode(pd.text or req.body or "")
  if json == nil then
    table_insert(args, 1, "the request body is not JSON: " .. tostring(err)
                 .. "\nBody: " .. tostring(pd.text or req.body))
    args.n = 1
    return false
  end
  return true, { json }
end
say:set("assertion.jsonbody.negative", [[
Expected a JSON body, got:
%s]])
say:set("assertion.jsonbody.positive", [[
Expected no JSON body, got:
%s]])
luassert:register("assertion", "jsonbody", jsonbody,
                  "assertion.jsonbody.negative",
                  "assertion.jsonbody.positive")


local function is_json(state, args)
  local s = args[1]
  local json, err
  if type(s) == "string" then
    json, err = cjson.decode(s)
  else
    err = "not a string: " .. type(s)
  end
  if json == nil then
    args[1] = tostring(s)
    args[2] = tostring(err)
    args.n = 2
    return false
  end
  return true, { json }
end
say:set("assertion.is_json.negative", [[
Expected a JSON string:
%s
Error:
%s]])
say:set("assertion.is_json.positive", [[
Expected a string that is not JSON:
%s
%s]])
luassert:register("assertion", "json", is_json,
                  "assertion.is_json.negative",
                  "assertion.is_json.positive")


local function res_header(state, args)
  local name = args[1]
  local res = args[2] or rawget(state, "kong_request")
              or rawget(state, "kong_response")
  assert(type(res) == "table" and type(res.headers) == "table",
         "the header assertion needs a response or request object")
  local value = lookup(res.headers, name)
  table_insert(args, 1, res.headers)
  table_insert(args, 1, name)
  args.n = 2
  if value == nil then
    return false
  end
  return true, { value }
end
say:set("assertion.res_header.negative", [[
Expected header:
%s
But it was not found in:
%s]])
say:set("assertion.res_header.positive", [[
Did not expected header:
%s
But it was found in:
%s]])
luassert:register("assertion", "header", res_header,
                  "assertion.res_header.negative",
                  "assertion.res_header.positive")


local function req_query_param(state, args)
  local name = args[1]
  local req = rawget(state, "kong_request")
  assert(req, "the queryparam assertion only works with a request object")
  local params = req.uri_args or req.query or {}
  local value = lookup(params, name)
  table_insert(args, 1, params)
  table_insert(args, 1, name)
  args.n = 2
  if value == nil then
    return false
  end
  return true, { value }
end
say:set("assertion.req_query_param.negative", [[
Expected query parameter:
%s
But it was not found in:
%s]])
say:set("assertion.req_query_param.positive", [[
Did not expected query parameter:
%s
But it was found in:
%s]])
luassert:register("assertion", "queryparam", req_query_param,
                  "assertion.req_query_param.negative",
                  "assertion.req_query_param.positive")


local function req_form_param(state, args)
  local name = args[1]
  local req = rawget(state, "kong_request")
  assert(req, "the formparam assertion only works with a request object")
  local pd = req.post_data or {}
  local params = pd.kind == "form" and pd.params or {}
  local value = lookup(params, name)
  table_insert(args, 1, req.headers and lookup(req.headers, "content-type"))
  table_insert(args, 1, params)
  table_insert(args, 1, name)
  args.n = 3
  if value == nil then
    return false
  end
  return true, { value }
end
say:set("assertion.req_form_param.negative", [[
Expected url encoded form parameter:
%s
But it was not found in:
%s
Content-Type: %s]])
say:set("assertion.req_form_param.positive", [[
Did not expected url encoded form parameter:
%s
But it was found in:
%s
Content-Type: %s]])
luassert:register("assertion", "formparam", req_form_param,
                  "assertion.req_form_param.negative",
                  "assertion.req_form_param.positive")


-- Log files ----------------------------------------------------------------


local function modifier_errlog(state, args)
  local path = args[1] or _M.default_errlog()
  assert(type(path) == "string", "the logfile modifier expects nil or a "
         .. "path, got: " .. type(path))
  rawset(state, "errlog_path", path)
  return state
end
luassert:register("modifier", "errlog", modifier_errlog)
luassert:register("modifier", "logfile", modifier_errlog)


local function find_in_file(path, pattern, plain)
  local data = util.read_file(path)
  if not data then
    return nil
  end
  for line in data:gmatch("[^\n]+") do
    if string_find(line, pattern, 1, plain) then
      return line
    end
  end
  return nil, data
end


local function match_line(state, args)
  local pattern = args[1]
  local plain = args[2]
  local timeout = args[3] or 2
  local path = rawget(state, "errlog_path") or _M.default_errlog()
  assert(type(pattern) == "string", "the pattern must be a string")
  assert(type(path) == "string", "no log file given")

  -- `has.no.line` checks once; `has.line` waits up to `timeout` seconds.
  local line, data
  if rawget(state, "mod") == false then
    line, data = find_in_file(path, pattern, plain)
  else
    local deadline = util.now() + timeout
    repeat
      line, data = find_in_file(path, pattern, plain)
      if line then
        break
      end
      util.sleep(0.05)
    until util.now() >= deadline
  end

  args[1] = path
  args[2] = pattern
  args[3] = line or util.tail(data or "(no such file)", 2000)
  args.n = 3
  args.nofmt = { true, true, true }
  return line ~= nil
end
say:set("assertion.match_line.negative", [[
Expected file at:
%s
To match:
%s
Its tail:
%s]])
say:set("assertion.match_line.positive", [[
Expected file at:
%s
To not match:
%s
But matched line:
%s]])
luassert:register("assertion", "line", match_line,
                  "assertion.match_line.negative",
                  "assertion.match_line.positive")


local function contains(state, args)
  local expected, arr, pattern = args[1], args[2], args[3]
  local found
  for i, v in ipairs(arr or {}) do
    if (pattern and string_match(v, expected)) or v == expected then
      found = i
      break
    end
  end
  args.n = 2
  if not found then
    return false
  end
  return true, { found }
end
say:set("assertion.contains.negative", [[
Expected array to contain element.
Expected to contain:
%s
]])
say:set("assertion.contains.positive", [[
Expected array to not contain element.
Expected to not contain:
%s
]])
luassert:register("assertion", "contains", contains,
                  "assertion.contains.negative",
                  "assertion.contains.positive")


local function gt(state, args)
  local limit, value = args[1], args[2]
  return value > limit
end
say:set("assertion.gt.negative", [[
Given a limit of:
%s
Expected a value greater than it, got:
%s]])
say:set("assertion.gt.positive", [[
Given a limit of:
%s
Expected a value not greater than it, got:
%s]])
luassert:register("assertion", "gt", gt, "assertion.gt.negative",
                  "assertion.gt.positive")


return _M
