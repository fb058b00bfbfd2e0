-- The Admin API's node endpoints (Kong's kong/api/routes/kong.lua):
-- GET /, GET /status, GET /endpoints, GET /plugins/enabled, the schema
-- endpoints and their validators.

local cjson = require "cjson.safe"
local json = require "sluice.admin.json"
local dao = require "sluice.admin.dao"
local errors = require "sluice.admin.errors"
local endpoints = require "sluice.admin.endpoints"


local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local pcall = pcall
local require = require
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local getmetatable = getmetatable
local io_open = io.open
local fmt = string.format
local find = string.find
local gsub = string.gsub
local lower = string.lower
local sort = table.sort


local NULL = cjson.null
local ARRAY_MT = json.array_mt


-- configuration properties GET / leaves out (Kong's remove_sensitive)
local SENSITIVE = {
  pg_password = true, pg_ro_password = true, cassandra_password = true,
  admin_gui_session_conf = true, ssl_cert_key = true,
  admin_ssl_cert_key = true, client_ssl_cert_key = true,
  cluster_cert_key = true, status_ssl_cert_key = true,
  admin_gui_ssl_cert_key = true, lua_ssl_client_key = true,
}


local _M = {}


local function ok(body)
  return json.exit(200, body)
end


local function sorted(list)
  sort(list)
  return setmetatable(list, ARRAY_MT)
end


local function read_file(path)
  local f = io_open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("*a")
  f:close()
  return data
end


local function is_sensitive(k)
  k = lower(tostring(k))
  return SENSITIVE[k] or find(k, "password", 1, true) ~= nil
         or find(k, "secret", 1, true) ~= nil
         or find(k, "_cert_key$") ~= nil
end


--- kong.configuration without secrets, as JSON-safe values.
-- kong.configuration is a read-only view whose __pairs LuaJIT (5.1) does
-- not call: ask the metamethod directly
local function conf_pairs(conf)
  local mt = getmetatable(conf)
  if mt and type(mt.__pairs) == "function" then
    return mt.__pairs(conf)
  end
  return pairs(conf)
end


function _M.configuration()
  local out = {}
  for k, v in conf_pairs(kong.configuration) do
    if not is_sensitive(k) then
      if type(v) == "table" then
        local copy = {}
        for i, x in ipairs(v) do
          copy[i] = x
        end
        v = setmetatable(copy, ARRAY_MT)
      end
      out[k] = v
    end
  end
  return out
end


local function prefix()
  local p = kong.configuration.prefix
  if type(p) ~= "string" or p == "" then
    return nil
  end
  return (gsub(p, "/+$", ""))
end


-- the master's pid and its children's (the workers)
local function pids()
  local master
  local pfx = prefix()
  if pfx then
    master = tonumber((read_file(pfx .. "/pids/sluice.pid") or ""):match(
      "(%d+)"))
  end
  local workers = {}
  if master then
    local kids = read_file(fmt("/proc/%d/task/%d/children", master, master))
    for pid in (kids or ""):gmatch("%d+") do
      workers[#workers + 1] = tonumber(pid)
    end
  end
  if #workers == 0 then
    workers[1] = ngx.worker.pid()
  end
  sort(workers)
  return { master = master or NULL,
           workers = setmetatable(workers, ARRAY_MT) }
end


-- names of the plugins configured (store or running configuration)
local function plugins_in_use(self)
  local names, seen = {}, {}
  local src = endpoints.source(self)
  local cursor
  repeat
    local rows, nxt = src:list("plugins", { size = dao.MAX_PAGE,
                                            offset = cursor })
    if not rows then
      break
    end
    for _, row in ipairs(rows) do
      if type(row.name) == "string" and not seen[row.name] then
        seen[row.name] = true
        names[#names + 1] = row.name
      end
    end
    cursor = nxt
  until not cursor
  return sorted(names)
end


function _M.root(self)
  local plugins = require "sluice.plugins"
  local available = {}
  for name, p in pairs(plugins.loaded) do
    available[name] = { version = p.version, priority = p.priority }
  end
  local core = require "sluice.core"
  local running, pending = 0, 0
  if core.timer_counts then
    running, pending = core.timer_counts()
  end
  return ok {
    tagline = "Welcome to kong",
    version = kong.version,
    edition = "community",
    hostname = kong.node.get_hostname(),
    node_id = kong.node.get_id(),
    timers = { running = running or 0, pending = pending or 0 },
    plugins = {
      available_on_server = available,
      enabled_in_cluster = plugins_in_use(self),
    },
    lua_version = jit and jit.version or _VERSION,
    configuration = _M.configuration(),
    pids = pids(),
  }
end


local UNITS = { b = 1, k = 1024, m = 1024 * 1024, g = 1024 * 1024 * 1024 }
local UNIT_NAMES = { k = "KiB", m = "MiB", g = "GiB" }


-- Kong's kong.node.get_memory_stats(unit, scale) formatting
local function mem(bytes, unit, scale)
  if unit == "b" then
    return bytes
  end
  return fmt("%." .. scale .. "f %s", bytes / UNITS[unit], UNIT_NAMES[unit])
end


function _M.status(self)
  local q = self.args.uri
  local unit = lower(tostring(q.unit or "m"))
  if not UNITS[unit] then
    return json.exit(400, { message = "invalid unit '"
                                     .. tostring(q.unit) .. "' (expected "
                                     .. "'k/K', 'm/M', or 'g/G')" })
  end
  local scale = tonumber(q.scale or 2)
  if not scale or scale < 0 or scale > 10 or scale % 1 ~= 0 then
    return json.exit(400, { message = "invalid scale: '"
                                     .. tostring(q.scale) .. "'" })
  end

  local dicts = {}
  for name, dict in pairs(ngx.shared) do
    local cok, cap = pcall(dict.capacity, dict)
    local fok, free = pcall(dict.free_space, dict)
    if cok and fok and cap then
      dicts[name] = {
        capacity = mem(cap, unit, scale),
        allocated_slabs = mem(cap - (free or 0), unit, scale),
      }
    end
  end
  local vms = { {
    pid = ngx.worker.pid(),
    http_allocated_gc = mem(collectgarbage("count") * 1024, unit, scale),
  } }

  local stats = kong.nginx.get_statistics()
  local body = {
    server = {
      connections_active = stats.connections_active or 0,
      connections_reading = stats.connections_reading or 0,
      connections_writing = stats.connections_writing or 0,
      connections_waiting = stats.connections_waiting or 0,
      connections_accepted = stats.connections_accepted or 0,
      connections_handled = stats.connections_handled or 0,
      total_requests = stats.total_requests or 0,
    },
    memory = {
      lua_shared_dicts = dicts,
      workers_lua_vms = setmetatable(vms, ARRAY_MT),
    },
    configuration_hash = require("sluice.config").hash(),
  }
  if self.store then
    local gok, gen = pcall(self.store.generation, self.store)
    body.database = { reachable = gok and gen ~= nil }
  end
  return ok(body)
end


function _M.endpoints(self)
  local list = {}
  for _, pattern in ipairs(self.router:patterns()) do
    list[#list + 1] = (gsub(pattern, ":([^/]+)", "{%1}"))
  end
  return ok { data = sorted(list) }
end


function _M.plugins_enabled()
  local plugins = require "sluice.plugins"
  local names = {}
  for name in pairs(plugins.enabled) do
    names[#names + 1] = name
  end
  return ok { enabled_plugins = sorted(names) }
end


-- ------------------------------------------------------------------------
-- schemas

local DROP = {
  fields_by_name = true, field_order = true, subschemas = true,
  PROTOCOLS = true, HTTP_PROTOCOLS = true, definition = true,
}


-- a schema as JSON: functions and internal indexes left out, empty
-- array values of array fields as []
local function serialize(v, key_type)
  if type(v) == "function" then
    return nil
  end
  if type(v) ~= "table" then
    return v
  end
  local out = {}
  local is_list = v[1] ~= nil
  for k, x in pairs(v) do
    if not DROP[k] and type(x) ~= "function" then
      local s = serialize(x, k == "default" and v.type or nil)
      if s ~= nil then
        out[k] = s
      end
    end
  end
  if (is_list and next(out) ~= nil)
     or (next(v) == nil and (key_type == "array" or key_type == "set"))
  then
    setmetatable(out, ARRAY_MT)
  end
  return out
end
_M.serialize = serialize


local function schema_json(def_schema)
  local out = serialize(def_schema)
  out.name = nil
  if type(out.fields) == "table" then
    setmetatable(out.fields, ARRAY_MT)
  end
  return out
end


local function not_found(msg)
  return json.exit(404, { message = msg or "Not found" })
end


function _M.schema_plugin(self)
  local plugins = require "sluice.plugins"
  local name = self.params.name
  local p = plugins.loaded[name]
  if not p then
    return not_found(fmt("No plugin named '%s'", tostring(name)))
  end
  local json = schema_json(p.schema.schema)
  return ok(json)
end


-- the entity definition the path's db_entity_name names (by name or by
-- Admin API name); nil after answering 404
local function entity_def(self)
  local name = self.params.db_entity_name
  local def = dao.get_def(name) or dao.by_api_name(name)
  if not def then
    return nil, not_found(fmt("No entity named '%s'", tostring(name)))
  end
  return def
end


function _M.schema_entity(self)
  local def, answered = entity_def(self)
  if not def then
    return answered
  end
  return ok(schema_json(def.schema))
end


local function validated()
  return ok { message = "schema validation successful" }
end


function _M.validate_plugin(self)
  local def = dao.get_def("plugins")
  local post = self.args.post
  if self.body_kind ~= "json" then
    local args = require "sluice.admin.args"
    args.infer(post, dao.schema_for(def, post))
  end
  local _, err_t = dao.check(def, post)
  if err_t then
    return errors.exit(err_t)
  end
  return validated()
end


function _M.validate_entity(self)
  local def, answered = entity_def(self)
  if not def then
    return answered
  end
  if def.name == "plugins" then
    return _M.validate_plugin(self)
  end
  local post = endpoints.post_args(self, def.schema)
  local _, err_t = dao.check(def, post)
  if err_t then
    return errors.exit(err_t)
  end
  return validated()
end


--- Adds the node endpoints to `router`.
function _M.mount(router)
  router:add("/", { GET = _M.root })
  router:add("/status", { GET = _M.status })
  router:add("/endpoints", { GET = _M.endpoints })
  router:add("/plugins/enabled", { GET = _M.plugins_enabled })
  router:add("/schemas/plugins/:name", { GET = _M.schema_plugin })
  router:add("/plugins/schema/:name", { GET = _M.schema_plugin })
  router:add("/schemas/plugins/validate", { POST = _M.validate_plugin })
  router:add("/schemas/:db_entity_name", { GET = _M.schema_entity })
  router:add("/schemas/:db_entity_name/validate",
             { POST = _M.validate_entity })
end


return _M
