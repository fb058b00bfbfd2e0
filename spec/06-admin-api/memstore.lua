-- An in-memory store with the interface of sluice.db's stores (see
-- issue #5 contracts: tx, get, get_by, list, insert, update, delete, all,
-- generation), for unit specs of the Admin API without a database.
-- Rows are kept as JSON text, as the real stores keep them.

local cjson = require "cjson.safe"
local crypto = require "sluice.ngx.crypto"


local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local getmetatable = getmetatable
local unpack = unpack
local sort = table.sort


local _M = {}
local Store = {}
Store.__index = Store


local function deep_copy(v)
  if type(v) ~= "table" then
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    out[k] = deep_copy(x)
  end
  return setmetatable(out, getmetatable(v))
end


function _M.new()
  return setmetatable({
    rows = {},      -- entity -> id -> { text, seq }
    uniq = {},      -- entity -> field -> value -> id
    seq = 0,
    gen = 0,
    in_tx = false,
    fail = nil,     -- set to an error string: every call fails
  }, Store)
end


local function violation(entity, field, value)
  return nil, "unique violation", { entity = entity, field = field,
                                    value = value }
end


function Store:tx(fn)
  if self.fail then
    return nil, self.fail
  end
  local saved = { rows = deep_copy(self.rows), uniq = deep_copy(self.uniq),
                  seq = self.seq }
  self.in_tx = true
  self.wrote = false
  local res = { pcall(fn, self) }
  self.in_tx = false
  if not res[1] or not res[2] then
    self.rows, self.uniq, self.seq = saved.rows, saved.uniq, saved.seq
    if not res[1] then
      return nil, tostring(res[2])
    end
    return res[2], res[3]
  end
  if self.wrote then
    self.gen = self.gen + 1
  end
  return unpack(res, 2)
end


function Store:get(entity, id)
  if self.fail then
    return nil, self.fail
  end
  local r = self.rows[entity] and self.rows[entity][id]
  return r and cjson.decode(r.text) or nil
end


function Store:get_by(entity, field, value)
  if self.fail then
    return nil, self.fail
  end
  local u = self.uniq[entity] and self.uniq[entity][field]
  local id = u and u[tostring(value)]
  if not id then
    return nil
  end
  return self:get(entity, id)
end


local function matches(row, filter)
  for k, v in pairs(filter or {}) do
    local fk = k:match("^(.+)_id$")
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


function Store:list(entity, opts)
  if self.fail then
    return nil, self.fail
  end
  opts = opts or {}
  local size = opts.size or 100
  local start = 0
  if opts.offset then
    start = tonumber(crypto.decode_base64(opts.offset) or "")
    if not start then
      return nil, "bad offset"
    end
  end
  local all = {}
  for _, r in pairs(self.rows[entity] or {}) do
    all[#all + 1] = r
  end
  sort(all, function(a, b) return a.seq < b.seq end)
  local out, next_offset, last = {}, nil, nil
  for _, r in ipairs(all) do
    if r.seq > start then
      local row = cjson.decode(r.text)
      if matches(row, opts.filter) then
        if #out == size then
          next_offset = crypto.encode_base64(tostring(last))
          break
        end
        out[#out + 1] = row
        last = r.seq
      end
    end
  end
  return out, next_offset
end


local function put_uniques(self, entity, id, uniques)
  self.uniq[entity] = self.uniq[entity] or {}
  local u = self.uniq[entity]
  for field, value in pairs(uniques or {}) do
    local v = tostring(value)
    u[field] = u[field] or {}
    if u[field][v] and u[field][v] ~= id then
      return violation(entity, field, value)
    end
  end
  for field, value in pairs(uniques or {}) do
    u[field][tostring(value)] = id
  end
  return true
end


local function drop_uniques(self, entity, id)
  for _, values in pairs(self.uniq[entity] or {}) do
    for v, owner in pairs(values) do
      if owner == id then
        values[v] = nil
      end
    end
  end
end


function Store:insert(entity, row, uniques)
  if self.fail then
    return nil, self.fail
  end
  self.rows[entity] = self.rows[entity] or {}
  if self.rows[entity][row.id] then
    return violation(entity, "id", row.id)
  end
  local ok, err, info = put_uniques(self, entity, row.id, uniques)
  if not ok then
    return nil, err, info
  end
  self.seq = self.seq + 1
  self.rows[entity][row.id] = { text = cjson.encode(row), seq = self.seq }
  self.wrote = true
  return true
end


function Store:update(entity, id, row, uniques)
  if self.fail then
    return nil, self.fail
  end
  local r = self.rows[entity] and self.rows[entity][id]
  if not r then
    return nil, "not found"
  end
  local saved = deep_copy(self.uniq[entity])
  drop_uniques(self, entity, id)
  local ok, err, info = put_uniques(self, entity, id, uniques)
  if not ok then
    self.uniq[entity] = saved
    return nil, err, info
  end
  r.text = cjson.encode(row)
  self.wrote = true
  return true
end


function Store:delete(entity, id)
  if self.fail then
    return nil, self.fail
  end
  if self.rows[entity] then
    self.rows[entity][id] = nil
  end
  drop_uniques(self, entity, id)
  self.wrote = true
  return true
end


function Store:all()
  if self.fail then
    return nil, self.fail
  end
  local out = {}
  for entity in pairs(self.rows) do
    local rows = self:list(entity, { size = 1e9 })
    out[entity] = rows
  end
  return out
end


function Store:generation()
  if self.fail then
    return nil, self.fail
  end
  return self.gen
end


return _M
