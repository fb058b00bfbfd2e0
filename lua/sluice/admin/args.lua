-- Admin API request arguments with Kong's conventions (kong/api/arguments):
-- JSON, application/x-www-form-urlencoded and multipart/form-data bodies,
-- and the query string.
--
--   local args = require "sluice.admin.args"
--   local t = args.decode({ ["paths[]"] = { "/a", "/b" },
--                           ["config.host"] = "x" })
--     -> { paths = { "/a", "/b" }, config = { host = "x" } }
--   args.infer(t, schema)   -- strings to the schema's types, "" to null
--   local parts = args.parse_multipart(body, content_type)
--
-- Names: `a.b` nests records, `a[]` appends, `a[2]` sets an index, a name
-- given several times becomes an array. `infer` turns form strings into
-- numbers and booleans where the schema says so, wraps a single value of an
-- array or set field in an array and turns "" into JSON null.

local cjson = require "cjson.safe"
local ngx_args = require "sluice.ngx.args"


local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local tonumber = tonumber
local setmetatable = setmetatable
local getmetatable = getmetatable
local find = string.find
local sub = string.sub
local match = string.match
local gmatch = string.gmatch
local lower = string.lower
local sort = table.sort


local NULL = cjson.null


local _M = {}


-- tables built from `a[n]` / `a[]` names, compacted into arrays at the end
local SPARSE = {}


-- "a.b[1][]" -> { { key = "a", idx = {} }, { key = "b", idx = { 1, "" } } }
local function parse_name(name)
  if find(name, "^%.") or find(name, "%.$") then
    return { { key = name, idx = {} } }
  end
  local tokens = {}
  for part in gmatch(name, "[^.]+") do
    local idx = {}
    while true do
      local base, ix = match(part, "^(.+)%[(%d*)%]$")
      if not base then
        break
      end
      part = base
      idx[#idx + 1] = ix == "" and "" or tonumber(ix)
    end
    -- the brackets were read right to left
    local n = #idx
    for i = 1, n / 2 do
      idx[i], idx[n - i + 1] = idx[n - i + 1], idx[i]
    end
    tokens[#tokens + 1] = { key = part, idx = idx }
  end
  if #tokens == 0 then
    return { { key = name, idx = {} } }
  end
  return tokens
end


local function sparse()
  return setmetatable({}, SPARSE)
end


local function child_table(node, key)
  local v = node[key]
  if type(v) ~= "table" then
    v = {}
    node[key] = v
  end
  return v
end


local function put(node, key, value)
  local old = node[key]
  if old == nil then
    node[key] = value
  elseif type(old) == "table" and getmetatable(old) == SPARSE then
    if type(value) == "table" then
      for _, v in ipairs(value) do
        old[#old + 1] = v
      end
    else
      old[#old + 1] = value
    end
  elseif type(old) == "table" and type(value) == "table"
         and next(value) ~= nil and value[1] == nil then
    for k, v in pairs(value) do
      old[k] = v
    end
  else
    node[key] = value
  end
end


local function assign(root, name, value)
  local tokens = parse_name(name)
  local node = root
  for i, tok in ipairs(tokens) do
    local last = i == #tokens
    if #tok.idx == 0 then
      if last then
        put(node, tok.key, value)
      else
        node = child_table(node, tok.key)
      end
    else
      local arr = node[tok.key]
      if type(arr) ~= "table" then
        arr = sparse()
        node[tok.key] = arr
      elseif getmetatable(arr) ~= SPARSE then
        local copy = sparse()
        for k, v in pairs(arr) do
          copy[k] = v
        end
        arr = copy
        node[tok.key] = arr
      end
      for j, ix in ipairs(tok.idx) do
        local lastix = j == #tok.idx
        if lastix and last then
          if ix == "" then
            if type(value) == "table" and value[1] ~= nil then
              for _, v in ipairs(value) do
                arr[#arr + 1] = v
              end
            else
              arr[#arr + 1] = value
            end
          else
            arr[ix] = value
          end
        else
          if ix == "" then
            ix = 1
          end
          local nxt = arr[ix]
          if type(nxt) ~= "table" then
            nxt = lastix and {} or sparse()
            arr[ix] = nxt
          end
          if lastix then
            node = nxt
          else
            arr = nxt
          end
        end
      end
    end
  end
end


-- sparse tables -> arrays in index order, recursively
local function compact(v)
  if type(v) ~= "table" then
    return v
  end
  if getmetatable(v) == SPARSE then
    local keys = {}
    for k in pairs(v) do
      if type(k) == "number" then
        keys[#keys + 1] = k
      end
    end
    sort(keys)
    local out = {}
    for i, k in ipairs(keys) do
      out[i] = compact(v[k])
    end
    return out
  end
  for k, x in pairs(v) do
    v[k] = compact(x)
  end
  return v
end


--- Decodes a flat { name = value | { values } } table (query string, form
-- or multipart fields) with Kong's naming conventions.
function _M.decode(flat)
  local root = {}
  if type(flat) ~= "table" then
    return root
  end
  local names = {}
  for name in pairs(flat) do
    names[#names + 1] = name
  end
  -- deterministic: "a" before "a.b" before "a[1]"
  sort(names)
  for _, name in ipairs(names) do
    if type(name) == "string" then
      assign(root, name, flat[name])
    end
  end
  return compact(root)
end


local infer


local function fields_of(def)
  return type(def) == "table" and type(def.fields) == "table" and def.fields
         or nil
end


local function infer_value(value, field)
  if value == nil or type(field) ~= "table" then
    return value
  end
  if value == "" then
    return NULL
  end
  local ftype = field.type
  if ftype == "number" or ftype == "integer" then
    return tonumber(value) or value
  elseif ftype == "boolean" then
    if value == "true" then
      return true
    elseif value == "false" then
      return false
    end
  elseif ftype == "array" or ftype == "set" then
    if type(value) ~= "table" then
      value = { value }
    end
    for i, item in ipairs(value) do
      value[i] = infer_value(item, field.elements)
    end
  elseif ftype == "map" then
    if type(value) == "table" then
      for k, v in pairs(value) do
        value[k] = infer_value(v, field.values)
      end
    end
  elseif ftype == "record" or ftype == "foreign" then
    if type(value) == "table" and fields_of(field) then
      infer(value, field)
    end
  end
  return value
end
_M.infer_value = infer_value


--- Converts the string values of `args` to the types `schema` (a record
-- definition with `fields`) gives them. Modifies and returns args.
infer = function(args, schema)
  local fields = fields_of(schema)
  if type(args) ~= "table" or not fields then
    return args
  end
  for _, item in ipairs(fields) do
    local name, field = next(item)
    local v = args[name]
    if v ~= nil then
      args[name] = infer_value(v, field)
    end
  end
  return args
end
_M.infer = infer


--- The query string, decoded.
function _M.query(raw)
  if not raw or raw == "" then
    return {}
  end
  return _M.decode((ngx_args.decode_args(raw, 1000)))
end


local function header_params(value)
  local params = {}
  for piece in gmatch(value, "[^;]+") do
    local k, v = match(piece, "^%s*([^=%s]+)%s*=%s*(.-)%s*$")
    if k then
      if find(v, '^".*"$') then
        v = sub(v, 2, -2)
      end
      params[lower(k)] = v
    end
  end
  return params
end


--- multipart/form-data body -> flat { name = value | { values } }.
-- A part sent as application/json is decoded. Returns nil, err for a
-- body that is not multipart.
function _M.parse_multipart(body, content_type)
  local boundary = header_params(content_type or "").boundary
  if not boundary or boundary == "" then
    return nil, "missing boundary"
  end
  local delim = "--" .. boundary
  local out = {}
  local pos = find(body, delim, 1, true)
  if not pos then
    return nil, "boundary not found"
  end
  pos = pos + #delim
  while true do
    if sub(body, pos, pos + 1) == "--" then
      break
    end
    -- skip the CRLF after the delimiter
    local hstart = find(body, "\n", pos, true)
    if not hstart then
      break
    end
    local hend = find(body, "\r\n\r\n", hstart, true)
    local sep = 4
    if not hend then
      hend = find(body, "\n\n", hstart, true)
      sep = 2
      if not hend then
        break
      end
    end
    local head = sub(body, hstart + 1, hend - 1)
    local dstart = hend + sep
    local nextd = find(body, "\r\n" .. delim, dstart, true)
    local dend
    if nextd then
      dend = nextd - 1
      pos = nextd + 2 + #delim
    else
      nextd = find(body, "\n" .. delim, dstart, true)
      if not nextd then
        break
      end
      dend = nextd - 1
      pos = nextd + 1 + #delim
    end
    local data = sub(body, dstart, dend)

    local name, ctype
    for line in gmatch(head, "[^\r\n]+") do
      local hname, hvalue = match(line, "^%s*([^:]+):%s*(.*)$")
      if hname then
        hname = lower(hname)
        if hname == "content-disposition" then
          name = header_params(hvalue).name
        elseif hname == "content-type" then
          ctype = lower(hvalue)
        end
      end
    end
    if name then
      local value = data
      if ctype and find(ctype, "application/json", 1, true) == 1 then
        local decoded = cjson.decode(data)
        if decoded ~= nil then
          value = decoded
        end
      end
      local old = out[name]
      if old == nil then
        out[name] = value
      elseif type(old) == "table" and getmetatable(old) == SPARSE then
        old[#old + 1] = value
      else
        out[name] = setmetatable({ old, value }, SPARSE)
      end
    end
  end
  for k, v in pairs(out) do
    if type(v) == "table" and getmetatable(v) == SPARSE then
      out[k] = setmetatable(v, nil)
    end
  end
  return out
end


--- The kind of body a Content-Type announces: "json", "form",
-- "multipart", or nil for anything else.
function _M.body_kind(content_type)
  if not content_type then
    return nil
  end
  local ct = lower(content_type)
  if find(ct, "application/json", 1, true) == 1 then
    return "json"
  elseif find(ct, "application/x-www-form-urlencoded", 1, true) == 1 then
    return "form"
  elseif find(ct, "multipart/form-data", 1, true) == 1 then
    return "multipart"
  end
  return nil
end


--- Decodes a body of `kind`. Returns the arguments table (not inferred),
-- or nil, err. JSON bodies are kept as sent (a JSON array is refused).
function _M.parse_body(raw, kind, content_type)
  if raw == nil or raw == "" then
    return {}
  end
  if kind == "json" then
    local t = cjson.decode(raw)
    if type(t) ~= "table" then
      return nil, "Cannot parse JSON body"
    end
    return t
  elseif kind == "form" then
    return _M.decode((ngx_args.decode_args(raw, 1000)))
  elseif kind == "multipart" then
    local flat, err = _M.parse_multipart(raw, content_type)
    if not flat then
      return nil, err
    end
    return _M.decode(flat)
  end
  return {}
end


return _M
