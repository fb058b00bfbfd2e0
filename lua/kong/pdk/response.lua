--- kong.response: the response to the client.
-- Before the response exists (rewrite, access) header edits are recorded and
-- applied to whatever head goes out; in header_filter they edit the head.
-- @module kong.response

local ffi = require "ffi"
local C = require "sluice.ffi.cdefs"
local cjson = require "cjson.safe"
local phases = require "kong.pdk.private.phases"


local ffi_string = ffi.string
local lower = string.lower
local type = type
local error = error
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local check = phases.check
local PHASES = phases.phases


local SET, ADD, CLEAR = 0, 1, 2

local READ = phases.new(PHASES.response, PHASES.header_filter,
                        PHASES.body_filter, PHASES.log, PHASES.error,
                        PHASES.admin_api)
local WRITE = phases.new(PHASES.rewrite, PHASES.access, PHASES.balancer,
                         PHASES.response, PHASES.header_filter, PHASES.error,
                         PHASES.admin_api)
local BODY = phases.new(PHASES.body_filter)

local pp = ffi.new("const char *[1]")
local pn = ffi.new("size_t[1]")
local pp2 = ffi.new("const char *[1]")
local pn2 = ffi.new("size_t[1]")

local DEFAULT_MESSAGES = {
  [400] = "Bad request",
  [401] = "Unauthorized",
  [403] = "Forbidden",
  [404] = "Not found",
  [405] = "Method not allowed",
  [408] = "Request timeout",
  [409] = "Conflict",
  [411] = "Length required",
  [412] = "Precondition failed",
  [413] = "Payload too large",
  [414] = "URI too long",
  [415] = "Unsupported media type",
  [417] = "Expectation failed",
  [429] = "Too many requests",
  [500] = "An unexpected error occurred",
  [502] = "An invalid response was received from the upstream server",
  [503] = "The upstream server is currently unavailable",
  [504] = "The upstream server is timing out",
}


local _M = {}


-- state the runtime reads: the body_filter chunk and eof
_M._chunk = nil
_M._eof = false


local function validate_header(name, value)
  if type(name) ~= "string" then
    error("header name must be a string", 3)
  end
  local tv = type(value)
  if tv ~= "string" and tv ~= "number" and tv ~= "boolean" and tv ~= "table" then
    error("invalid header value for \"" .. name .. "\": got " .. tv
          .. ", expected string, number, boolean or array of strings", 3)
  end
end


local function edit(name, value, mode)
  if lower(name) == "transfer-encoding" then
    kong.log.warn("manually setting Transfer-Encoding. Ignored.")
    return
  end
  if type(value) == "table" then
    if mode == SET then
      C.sl_ffi_resp_header_edit(name, #name, nil, 0, CLEAR)
    end
    for _, v in ipairs(value) do
      v = tostring(v)
      C.sl_ffi_resp_header_edit(name, #name, v, #v, ADD)
    end
    return
  end
  value = tostring(value)
  if C.sl_ffi_resp_header_edit(name, #name, value, #value, mode) < 0 then
    error("headers have already been sent", 3)
  end
end


--- The status code of the response being sent.
-- @phases response, header_filter, body_filter, log, admin_api
function _M.get_status()
  check(READ)
  return C.sl_ffi_resp_status()
end


--- One response header (the first value), case-insensitive.
-- @phases response, header_filter, body_filter, log, admin_api
function _M.get_header(name)
  check(READ)
  if type(name) ~= "string" then
    error("header name must be a string", 2)
  end
  local want = lower(name):gsub("_", "-")
  for i = 0, C.sl_ffi_resp_header_count() - 1 do
    C.sl_ffi_resp_header(i, pp, pn, pp2, pn2)
    if lower(ffi_string(pp[0], pn[0])) == want then
      return ffi_string(pp2[0], pn2[0])
    end
  end
  return nil
end


--- All response headers (lower-cased names; repeated ones as arrays).
-- @phases response, header_filter, body_filter, log, admin_api
function _M.get_headers(max_headers)
  check(READ)
  if max_headers ~= nil and type(max_headers) ~= "number" then
    error("max_headers must be a number", 2)
  end
  local t = {}
  local n = C.sl_ffi_resp_header_count()
  if max_headers and n > max_headers then
    n = max_headers
  end
  for i = 0, n - 1 do
    C.sl_ffi_resp_header(i, pp, pn, pp2, pn2)
    local k = lower(ffi_string(pp[0], pn[0]))
    local v = ffi_string(pp2[0], pn2[0])
    local old = t[k]
    if old == nil then
      t[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      t[k] = { old, v }
    end
  end
  return t
end


--- Where the response comes from: "service", "exit" or "error".
-- @phases response, header_filter, body_filter, log, admin_api
function _M.get_source()
  check(READ)
  local ctx = require("sluice.runtime.state").ngx_ctx()
  if ctx and ctx.KONG_UNEXPECTED then
    return "error"
  end
  local s = C.sl_ffi_resp_source()
  return s == 0 and "service" or s == 1 and "exit" or "error"
end


--- Sets the status code of the response.
-- @phases rewrite, access, response, header_filter, admin_api
function _M.set_status(status)
  check(WRITE)
  if type(status) ~= "number" then
    error("code must be a number", 2)
  end
  if status < 100 or status > 599 then
    error("code must be a number between 100 and 599", 2)
  end
  if C.sl_ffi_resp_set_status(status) < 0 then
    error("headers have already been sent", 2)
  end
end


--- Sets a response header, replacing any of the same name.
-- @phases rewrite, access, response, header_filter, admin_api
function _M.set_header(name, value)
  check(WRITE)
  validate_header(name, value)
  edit(name, value, SET)
end


--- Adds a response header, keeping the ones of the same name.
-- @phases rewrite, access, response, header_filter, admin_api
function _M.add_header(name, value)
  check(WRITE)
  validate_header(name, value)
  edit(name, value, ADD)
end


--- Removes a response header.
-- @phases rewrite, access, response, header_filter, admin_api
function _M.clear_header(name)
  check(WRITE)
  if type(name) ~= "string" then
    error("header name must be a string", 2)
  end
  C.sl_ffi_resp_header_edit(name, #name, nil, 0, CLEAR)
end


--- Sets several response headers (a table of name = value or array).
-- @phases rewrite, access, response, header_filter, admin_api
function _M.set_headers(headers)
  check(WRITE)
  if type(headers) ~= "table" then
    error("headers must be a table", 2)
  end
  for k, v in pairs(headers) do
    validate_header(k, v)
  end
  for k, v in pairs(headers) do
    edit(k, v, SET)
  end
end


--- The whole response body, in body_filter: nil until the last chunk, then
-- the body (chunks are held back meanwhile).
-- @phases body_filter
function _M.get_raw_body()
  check(BODY)
  -- the chunks so far belong to this request: kept in its context
  local ctx = require("sluice.runtime.state").ngx_ctx()
  local buf = ctx.__resp_body or {}
  ctx.__resp_body = buf
  buf[#buf + 1] = _M._chunk or ""
  _M._chunk = ""
  if not _M._eof then
    return nil
  end
  ctx.__resp_body = nil
  local body = table.concat(buf)
  _M._chunk = body
  return body
end


--- Replaces the response body, in body_filter.
-- @phases body_filter
function _M.set_raw_body(body)
  check(BODY)
  if type(body) ~= "string" then
    error("body must be a string", 2)
  end
  _M._chunk = body == "" and "\n" or body
  _M._eof = true
end


local EXIT_PHASES = WRITE

--- Ends the request with this response. In access the response is sent once
-- the access phase is over (later plugins' access handlers are skipped, their
-- header_filter, body_filter and log still run).
-- @phases rewrite, access, response, header_filter, admin_api
function _M.exit(status, body, headers)
  check(EXIT_PHASES)
  if phases.current == "header_filter" then
    error("kong.response.exit in header_filter is not supported by Sluice "
          .. "yet", 2)
  end
  if type(status) ~= "number" then
    error("code must be a number", 2)
  end
  if status < 100 or status > 599 then
    error("code must be a number between 100 and 599", 2)
  end
  if body ~= nil and type(body) ~= "string" and type(body) ~= "table" then
    error("body must be a nil, string or table", 2)
  end
  if headers ~= nil and type(headers) ~= "table" then
    error("headers must be a nil or table", 2)
  end
  if headers then
    for k, v in pairs(headers) do
      validate_header(k, v)
    end
  end
  if type(body) == "table" then
    local json, err = cjson.encode(body)
    if not json then
      error("could not JSON encode the provided body: " .. err, 2)
    end
    body = json
    edit("Content-Type", "application/json; charset=utf-8", SET)
  end
  if headers then
    for k, v in pairs(headers) do
      edit(k, v, SET)
    end
  end
  if C.sl_ffi_resp_exit(status, body, body and #body or 0) < 0 then
    error("headers have already been sent", 2)
  end
  return require("sluice.runtime").exit_now()
end


--- Like exit, with Kong's error body chosen by the Accept header.
-- @phases rewrite, access, response, header_filter, admin_api
function _M.error(status, message, headers)
  check(EXIT_PHASES)
  if type(status) ~= "number" or status < 400 or status > 599 then
    error("code must be a number between 400 and 599", 2)
  end
  message = message or DEFAULT_MESSAGES[status]
            or ("The upstream server responded with " .. status)
  local accept = lower(kong.request.get_header("accept") or "")
  local id = require("kong.pdk.request").str(C.sl_ffi_req_id)
  local body, ctype
  if accept:find("text/html", 1, true) then
    ctype = "text/html; charset=utf-8"
    body = "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n"
           .. "    <title>Error</title>\n  </head>\n  <body>\n"
           .. "    <h1>Error</h1>\n    <p>" .. tostring(message) .. ".</p>\n"
           .. "    <p>request_id: " .. id .. "</p>\n  </body>\n</html>\n"
  elseif accept:find("application/xml", 1, true)
         or accept:find("text/xml", 1, true) then
    ctype = "application/xml; charset=utf-8"
    body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>"
           .. tostring(message) .. "</message>\n  <requestid>" .. id
           .. "</requestid>\n</error>\n"
  elseif accept:find("text/plain", 1, true) then
    ctype = "text/plain; charset=utf-8"
    body = tostring(message) .. "\nrequest_id: " .. id .. "\n"
  else
    ctype = "application/json; charset=utf-8"
    body = cjson.encode({ message = message, request_id = id })
  end
  local h = { ["Content-Type"] = ctype }
  if headers then
    for k, v in pairs(headers) do
      h[k] = v
    end
  end
  return _M.exit(status, body, h)
end


return _M
