-- A read-only source over a normalized configuration (DB-less mode: the
-- running config.current()), with the read half of the store interface:
-- get, get_by, list. Offsets are opaque (base64 of a position).
--
--   local src = require("sluice.admin.readonly").new(config.current())
--   local row = src:get("services", id)
--   local rows, next_offset = src:list("routes", { size = 10,
--                                       filter = { service_id = id } })

local crypto = require "sluice.ngx.crypto"


local type = type
local pairs = pairs
local ipairs = ipairs
local tonumber = tonumber
local tostring = tostring
local setmetatable = setmetatable
local match = string.match
local sub = string.sub


local PREFIX = "sluice-ro:"


local _M = {}
local RO = {}
RO.__index = RO


-- weak cache: one index per configuration table
local cache = setmetatable({}, { __mode = "k" })


local function index(cfg)
  local idx = cache[cfg]
  if idx then
    return idx
  end
  idx = {}
  for entity, rows in pairs(cfg) do
    if type(rows) == "table" and sub(tostring(entity), 1, 1) ~= "_" then
      local by_id = {}
      for _, row in ipairs(rows) do
        if type(row) == "table" and row.id then
          by_id[row.id] = row
        end
      end
      idx[entity] = by_id
    end
  end
  cache[cfg] = idx
  return idx
end


function _M.new(cfg)
  return setmetatable({ cfg = cfg or {}, idx = index(cfg or {}) }, RO)
end


function RO:get(entity, id)
  local by_id = self.idx[entity]
  return by_id and by_id[id] or nil
end


function RO:get_by(entity, field, value)
  for _, row in ipairs(self.cfg[entity] or {}) do
    if row[field] == value then
      return row
    end
  end
  return nil
end


local function matches(row, filter)
  if not filter then
    return true
  end
  for k, v in pairs(filter) do
    local fk = match(k, "^(.+)_id$")
    local have
    if fk and type(row[fk]) == "table" then
      have = row[fk].id
    else
      have = row[k]
    end
    if have ~= v then
      return false
    end
  end
  return true
end


function RO:list(entity, opts)
  opts = opts or {}
  local size = opts.size or 100
  local start = 1
  if opts.offset then
    local raw = crypto.decode_base64(opts.offset)
    start = raw and sub(raw, 1, #PREFIX) == PREFIX
            and tonumber(match(sub(raw, #PREFIX + 1), "^(%d+)$"))
    if not start then
      return nil, "bad base64 encoding"
    end
  end
  local out = {}
  local seen = 0
  local next_offset
  for _, row in ipairs(self.cfg[entity] or {}) do
    if matches(row, opts.filter) then
      seen = seen + 1
      if seen >= start then
        if #out == size then
          next_offset = crypto.encode_base64(PREFIX .. seen)
          break
        end
        out[#out + 1] = row
      end
    end
  end
  return out, next_offset
end


function RO:all()
  return self.cfg
end


return _M
