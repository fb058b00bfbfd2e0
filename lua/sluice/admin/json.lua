-- JSON for the Admin API's answers. lua-cjson 2.1 (Debian's) has no
-- array_mt, so an empty Lua table always encodes as {}; Kong answers []
-- for empty arrays (`"data":[]`, `"paths":[]`). Tables marked with
-- `array_mt` encode as arrays here, non-empty sequences too; scalars are
-- encoded by cjson (same escaping and number format as Kong).
--
--   local json = require "sluice.admin.json"
--   local list = setmetatable({}, json.array_mt)
--   json.encode({ data = list })            --> {"data":[]}
--   return json.exit(200, { data = list })  -- kong.response.exit with it

local cjson = require "cjson.safe"


local type = type
local pairs = pairs
local tostring = tostring
local getmetatable = getmetatable
local setmetatable = setmetatable
local floor = math.floor
local huge = math.huge
local sort = table.sort
local concat = table.concat


local NULL = cjson.null


local _M = {
  -- OpenResty's cjson marks arrays with its own array_mt: use that one
  -- when present, so both encoders agree
  array_mt = cjson.array_mt or { __name = "sluice.admin.json.array" },
}
local ARRAY_MT = _M.array_mt


local encode_value


-- a table whose keys are exactly 1..n
local function is_sequence(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or floor(k) ~= k then
      return false
    end
    if k > n then
      n = k
    end
  end
  for i = 1, n do
    if t[i] == nil then
      return false
    end
  end
  return n > 0, n
end


local function encode_table(t, out, depth)
  if depth > 100 then
    error("cannot encode: nesting too deep", 0)
  end
  local mt = getmetatable(t)
  local seq, n = is_sequence(t)
  if mt == ARRAY_MT or seq then
    out[#out + 1] = "["
    for i = 1, n or 0 do
      if i > 1 then
        out[#out + 1] = ","
      end
      encode_value(t[i], out, depth + 1)
    end
    out[#out + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(t) do
    local tk = type(k)
    if tk == "string" or tk == "number" then
      keys[#keys + 1] = k
    end
  end
  sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  out[#out + 1] = "{"
  local first = true
  for _, k in pairs(keys) do
    local v = t[k]
    local tv = type(v)
    if tv ~= "function" and tv ~= "thread"
       and (tv ~= "userdata" or v == NULL) then
      if not first then
        out[#out + 1] = ","
      end
      first = false
      out[#out + 1] = cjson.encode(tostring(k))
      out[#out + 1] = ":"
      encode_value(v, out, depth + 1)
    end
  end
  out[#out + 1] = "}"
end


encode_value = function(v, out, depth)
  local tv = type(v)
  if tv == "table" then
    return encode_table(v, out, depth)
  elseif tv == "number" then
    if v ~= v or v == huge or v == -huge then
      out[#out + 1] = "null"
    else
      out[#out + 1] = cjson.encode(v)
    end
  elseif tv == "string" or tv == "boolean" then
    out[#out + 1] = cjson.encode(v)
  elseif v == nil or v == NULL then
    out[#out + 1] = "null"
  else
    out[#out + 1] = "null"
  end
end


--- The JSON text of v.
function _M.encode(v)
  local out = {}
  encode_value(v, out, 0)
  return concat(out)
end


--- Marks t as an array (also when empty). Returns t.
function _M.array(t)
  return setmetatable(t or {}, ARRAY_MT)
end


--- kong.response.exit with a table body encoded here.
function _M.exit(status, body, headers)
  if type(body) ~= "table" then
    return kong.response.exit(status, body, headers)
  end
  local h = { ["Content-Type"] = "application/json; charset=utf-8" }
  if headers then
    for k, v in pairs(headers) do
      h[k] = v
    end
  end
  return kong.response.exit(status, _M.encode(body), h)
end


return _M
