-- The parameters of an OpenWhisk invocation, as Kong's openwhisk plugin
-- collects them: the query arguments merged with the decoded body, the body
-- winning. The body is decoded by its Content-Type: multipart/form-data
-- (each part by its name; a file part's value is its content),
-- application/json (an object), anything else as form-urlencoded when it
-- is one, else ignored. Pure functions; the handler feeds them the request.

local cjson = require "cjson.safe"


local type = type
local next = next
local pairs = pairs
local find = string.find
local sub = string.sub
local lower = string.lower
local match = string.match
local concat = table.concat


local _M = {}


local BOUNDARY = ";%s*[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]%s*=%s*"


-- the boundary parameter of a multipart Content-Type, quoted or not
function _M.boundary(content_type)
  local b = match(content_type, BOUNDARY .. '"([^"]+)"')
            or match(content_type, BOUNDARY .. "([^;%s]+)")
  if not b or #b > 70 then
    return nil
  end
  return b
end


-- a parameter of a Content-Disposition value: key="x" (with \-escapes) or
-- key=x; key is a case-insensitive pattern. ";%s*" before it keeps "name"
-- from matching inside "filename".
local function disposition_param(value, key)
  local _, e = find(value, ";%s*" .. key .. "%s*=%s*")
  if not e then
    return nil
  end
  if sub(value, e + 1, e + 1) ~= '"' then
    return match(value, "^([^;%s]+)", e + 1)
  end
  local out = {}
  local i = e + 2
  while i <= #value do
    local c = sub(value, i, i)
    if c == "\\" then
      out[#out + 1] = sub(value, i + 1, i + 1)
      i = i + 2
    elseif c == '"' then
      return concat(out)
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return nil -- unterminated quote
end


local function add(t, name, value)
  local old = t[name]
  if old == nil then
    t[name] = value
  elseif type(old) == "table" then
    old[#old + 1] = value
  else
    t[name] = { old, value }
  end
end


--- Decodes a multipart/form-data body.
-- @return { name = value | { values } }, or nil, err
function _M.multipart(body, content_type)
  local boundary = _M.boundary(content_type or "")
  if not boundary then
    return nil, "missing boundary in multipart content type"
  end
  local delim = "--" .. boundary
  local out = {}

  -- the first delimiter may follow a preamble
  local s, e = find(body, delim, 1, true)
  if not s then
    return nil, "missing multipart boundary in body"
  end
  local pos = e + 1
  while true do
    if sub(body, pos, pos + 1) == "--" then
      return out -- the closing delimiter
    end
    -- the rest of the delimiter line (transport padding allowed)
    local eol = find(body, "\r\n", pos, true)
    if not eol then
      return nil, "truncated multipart body"
    end
    local head_end = find(body, "\r\n\r\n", eol, true)
    local head_start = eol + 2
    local content_start
    if sub(body, eol, eol + 3) == "\r\n\r\n" then
      -- a part without headers
      head_end, content_start = eol, eol + 4
    elseif head_end then
      content_start = head_end + 4
    else
      return nil, "truncated multipart part headers"
    end
    local head = head_end >= head_start and sub(body, head_start, head_end - 1)
                 or ""
    local ds, de = find(body, "\r\n" .. delim, content_start - 2, true)
    if not ds then
      return nil, "truncated multipart body"
    end
    local content = ds >= content_start and sub(body, content_start, ds - 1)
                    or ""

    local name
    for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
      local hname, hvalue = match(line, "^([^:]+):%s*(.-)%s*$")
      if hname and lower(hname) == "content-disposition" then
        name = disposition_param(hvalue, "[Nn][Aa][Mm][Ee]")
      end
    end
    if name then
      add(out, name, content)
    end
    pos = de + 1
  end
end


--- Merges b into a copy of a (b wins).
function _M.merge(a, b)
  local out = {}
  for k, v in pairs(a or {}) do
    out[k] = v
  end
  for k, v in pairs(b or {}) do
    out[k] = v
  end
  return out
end


local function is_object(t)
  if type(t) ~= "table" then
    return false
  end
  -- an empty table is taken as {} (cjson decodes [] and {} alike)
  return next(t) == nil or t[1] == nil
end


--- The parameters of a request.
-- query: the decoded query arguments; content_type: the request's;
-- body: the raw body ("" or nil when none); decode_form: function(body)
-- -> table for application/x-www-form-urlencoded.
-- @return params, or nil, status, message
function _M.collect(query, content_type, body, decode_form)
  local ct = lower(content_type or "")
  local decoded
  if body == nil or body == "" then
    decoded = nil
  elseif find(ct, "multipart/form-data", 1, true) then
    local err
    decoded, err = _M.multipart(body, content_type)
    if not decoded then
      return nil, 400, err
    end
  elseif find(ct, "application/json", 1, true) then
    local err
    decoded, err = cjson.decode(body)
    if err then
      return nil, 400, err
    end
    if not is_object(decoded) then
      return nil, 400, "JSON body must be an object"
    end
  elseif find(ct, "application/x-www-form-urlencoded", 1, true) then
    decoded = decode_form(body)
  end
  return _M.merge(query, decoded)
end


return _M
