-- DB-less blueprints for Kong-style specs: `bp.<entity>:insert(t)` records
-- an entity (with a random UUID id) in memory; `to_declarative()` turns the
-- store into a kong.yml table (top-level arrays; foreign keys as ids), which
-- helpers.make_yaml_file() writes and helpers.start_kong() loads.
--
--   local bp, db = helpers.get_db_utils("off")
--   local s = bp.services:insert({ url = helpers.mock_upstream_url })
--   local r = bp.routes:insert({ paths = { "/x" }, service = s })
--   bp.plugins:insert({ name = "key-auth", route = { id = r.id } })
--   assert(helpers.start_kong({ database = "off" }))  -- uses the store
--
-- A route without a service gets one pointing at the mock upstream, as in
-- Kong. Nothing is validated here: the gateway's declarative loader does.

local setmetatable = setmetatable
local rawset = rawset
local next = next
local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local string_format = string.format
local math_random = math.random


local _M = {}


-- Entities in the order they are emitted (others follow, sorted).
local ORDER = { "services", "routes", "consumers", "plugins", "upstreams",
                "targets", "certificates", "snis", "ca_certificates" }


math.randomseed(os.time() + require("posix.unistd").getpid())


function _M.uuid()
  local function hex(n)
    local s = ""
    for _ = 1, n do
      s = s .. string_format("%x", math_random(0, 15))
    end
    return s
  end
  return string_format("%s-%s-4%s-%s%s-%s", hex(8), hex(4), hex(3),
                       string_format("%x", math_random(8, 11)), hex(3),
                       hex(12))
end


local store = {}
local order = {}


-- Set by spec.helpers: where a default service points.
_M.default_upstream = function()
  return "127.0.0.1", 15555
end


local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do
    c[k] = v
  end
  return c
end


local dao_mt = {}
dao_mt.__index = dao_mt


function dao_mt:insert(t)
  local e = copy(t)
  e.id = e.id or _M.uuid()

  if self.name == "services" and not e.url and not e.host then
    local host, port = _M.default_upstream()
    e.protocol = e.protocol or "http"
    e.host = host
    e.port = e.port or port
  end

  if self.name == "routes" and not e.service then
    e.service = _M.bp.services:insert()
  end

  for k, v in pairs(e) do
    if type(v) == "table" and v.id and k ~= "config" then
      e[k] = { id = v.id }
    end
  end

  local list = store[self.name]
  if not list then
    list = {}
    store[self.name] = list
    order[#order + 1] = self.name
  end
  list[#list + 1] = e
  return e
end


function dao_mt:insert_n(n, t)
  local list = {}
  for i = 1, n do
    list[i] = self:insert(t)
  end
  return list
end


function dao_mt:truncate()
  store[self.name] = nil
  return true
end


function dao_mt:each()
  local list = store[self.name] or {}
  local i = 0
  return function()
    i = i + 1
    return list[i]
  end
end


_M.bp = setmetatable({}, {
  __index = function(t, name)
    local dao = setmetatable({ name = name }, dao_mt)
    rawset(t, name, dao)
    return dao
  end,
})


_M.db = setmetatable({
  truncate = function(_, name)
    if name then
      store[name] = nil
    else
      store = {}
      order = {}
    end
    return true
  end,
}, { __index = _M.bp })


function _M.reset()
  store = {}
  order = {}
end


function _M.is_empty()
  return next(store) == nil
end


--- The store as a declarative config table (foreign keys become ids).
function _M.to_declarative()
  local out = { _format_version = "3.0" }
  local seen = {}
  local names = {}
  for _, n in ipairs(ORDER) do
    if store[n] then
      names[#names + 1] = n
      seen[n] = true
    end
  end
  for _, n in ipairs(order) do
    if store[n] and not seen[n] then
      names[#names + 1] = n
    end
  end
  for _, n in ipairs(names) do
    local list = {}
    for i, e in ipairs(store[n]) do
      local c = {}
      for k, v in pairs(e) do
        if type(v) == "table" and v.id and k ~= "config" then
          c[k] = tostring(v.id)
        else
          c[k] = v
        end
      end
      list[i] = c
    end
    out[n] = list
  end
  return out
end


return _M
