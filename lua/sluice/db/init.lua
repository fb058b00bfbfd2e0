-- The configuration stores: `database = embedded` (an SQLite file under the
-- prefix) and `database = postgres` (libpq), one interface for the Admin
-- API (sluice.db.store has the methods), and the propagation of changes to
-- every worker of every node.
--
--   local db = require "sluice.db"
--   local store = db.store()       -- this process's store (nil when off)
--   store:tx(fn) / get / get_by / list / insert / update / delete / all /
--   replace_all / generation       -- see lua/sluice/db/store.lua
--   db.changed()                   -- after a committed write: rebuild now
--   db.uniques(entity, row)        -- the unique keys of a core entity
--
-- Propagation: every committing write transaction bumps the `generation`
-- row of the store; every worker polls it every POLL_INTERVAL seconds and,
-- when it moved, reads the whole config in one snapshot and applies it
-- (sluice.config.apply builds it beside the running one and swaps it in).
-- Nodes sharing a PostgreSQL see each other's writes the same way. When the
-- store is unreachable the worker keeps serving its last config and logs
-- once per outage.
--
-- Connections are per process and opened after the fork (a handle opened
-- before is dropped, never used: see store.lua).

local store_mod = require "sluice.db.store"
local migrations = require "sluice.db.migrations"


local type = type
local ipairs = ipairs
local pcall = pcall
local tostring = tostring
local tonumber = tonumber
local fmt = string.format
local sub = string.sub


local POLL_INTERVAL = 0.5
local SLOW_FAILURE = 0.1   -- s: a failed poll that blocked this long backs off
local MAX_BACKOFF = 8      -- s
local DEFAULT_EMBEDDED_DB = "sluice.db"
local FORMAT_VERSION = "3.0"
local CORE_ENTITIES = { "services", "routes", "consumers", "plugins" }


local _M = {
  POLL_INTERVAL = POLL_INTERVAL,
  uniques = store_mod.uniques,
  migrations = migrations,
}


local current          -- this process's store
local current_conf     -- the configuration it was opened with
local applied          -- generation applied in this worker
local outage = false   -- logged once per outage
local timer_started = false
local backoff, retry_at = 0, 0   -- after slow failures


local function log(level, ...)
  local ngx = _G.ngx
  if type(ngx) == "table" and type(ngx.log) == "function" and ngx[level] then
    ngx.log(ngx[level], ...)
    return
  end
  local parts = { ... }
  for i, v in ipairs(parts) do
    parts[i] = tostring(v)
  end
  io.stderr:write("[", level:lower(), "] ", table.concat(parts), "\n")
end


local function conf_get(conf, name)
  if conf == nil then
    return nil
  end
  local v = conf[name]
  if v == "" then
    return nil
  end
  return v
end


local function str(v)
  if v == nil then
    return nil
  end
  if type(v) == "table" then
    return table.concat(v, ",")
  end
  return tostring(v)
end


local function bool(v)
  if type(v) == "boolean" then
    return v
  end
  if v == nil then
    return false
  end
  v = tostring(v):lower()
  return v == "on" or v == "true" or v == "1" or v == "yes"
end


--- "off" | "embedded" | "postgres"
function _M.mode(conf)
  conf = conf or (_G.kong and _G.kong.configuration)
  local v = conf_get(conf, "database")
  if v == nil or v == false then
    return "off"
  end
  return tostring(v)
end


--- The embedded database file for `conf`: `embedded_db` (default
-- sluice.db) relative to the prefix.
function _M.embedded_path(conf)
  local path = str(conf_get(conf, "embedded_db")) or DEFAULT_EMBEDDED_DB
  if sub(path, 1, 1) == "/" then
    return path
  end
  local prefix = str(conf_get(conf, "prefix")) or "."
  if sub(prefix, -1) ~= "/" then
    prefix = prefix .. "/"
  end
  return prefix .. path
end


--- The engine module and its open() options for `conf`.
-- @return engine, opts, strategy | nil, err
function _M.options(conf)
  local mode = _M.mode(conf)
  if mode == "embedded" then
    return require("sluice.db.sqlite"), _M.embedded_path(conf), "sqlite"
  elseif mode == "postgres" then
    local ssl = bool(conf_get(conf, "pg_ssl"))
    local verify = bool(conf_get(conf, "pg_ssl_verify"))
    return require("sluice.db.postgres"), {
      host = str(conf_get(conf, "pg_host")) or "127.0.0.1",
      port = tonumber(conf_get(conf, "pg_port")) or 5432,
      user = str(conf_get(conf, "pg_user")) or "kong",
      password = str(conf_get(conf, "pg_password")),
      database = str(conf_get(conf, "pg_database")) or "kong",
      schema = str(conf_get(conf, "pg_schema")),
      timeout = tonumber(conf_get(conf, "pg_timeout")) or 5000,
      sslmode = ssl and (verify and "verify-full" or "require") or "disable",
      sslrootcert = verify
                    and str(conf_get(conf, "lua_ssl_trusted_certificate"))
                    or nil,
    }, "postgres"
  elseif mode == "off" then
    return nil, "database is off"
  end
  return nil, "unknown database '" .. mode .. "'"
end


--- A new store for `conf` (not this process's shared one): the CLI, the
-- master's start checks and tests own it and close it.
-- @return store | nil, err
function _M.open(conf)
  local engine, opts, strategy = _M.options(conf)
  if not engine then
    return nil, opts
  end
  return store_mod.new(engine, opts, strategy)
end


--- This process's store (connected lazily), or nil when database = off.
function _M.store(conf)
  if current then
    return current
  end
  conf = conf or (_G.kong and _G.kong.configuration)
  if _M.mode(conf) == "off" then
    return nil
  end
  local s, err = _M.open(conf)
  if not s then
    log("ERR", "configuration store: ", err)
    return nil
  end
  current = s
  current_conf = conf
  return current
end


-- --------------------------------------------------------------------------
-- the config of a store

--- The declarative document (a Lua table) for the entities of a store:
-- the entity types the declarative loader knows (its ENTITIES list when it
-- exports one, else the core four); other entities (custom DAOs) stay in
-- the store for their plugins.
function _M.build_doc(everything)
  everything = everything or {}
  local doc = { _format_version = FORMAT_VERSION }
  local ok, declarative = pcall(require, "sluice.declarative")
  local names = ok and type(declarative) == "table"
                and declarative.ENTITIES or CORE_ENTITIES
  for _, name in ipairs(names) do
    doc[name] = everything[name] or {}
  end
  return doc
end


local function config_module()
  local ok, config = pcall(require, "sluice.config")
  if not ok then
    return nil, "sluice.config unavailable: " .. tostring(config)
  end
  return config
end


--- Reads the store in one snapshot and applies it to this worker.
-- @return true, generation | nil, err
local function rebuild(s)
  local everything, gen = s:snapshot()
  if not everything then
    return nil, gen
  end
  local config, err = config_module()
  if not config then
    return nil, err
  end
  local ok, aerr = config.apply(_M.build_doc(everything))
  -- a config that does not load is logged once, not every poll
  applied = gen
  if not ok then
    return nil, fmt("configuration generation %s from the store was "
                    .. "refused, the previous one keeps serving: %s",
                    tostring(gen), tostring(aerr))
  end
  return true, gen
end


--- Called by the Admin API after a committed write: this worker applies
-- the store's config now (other workers follow within POLL_INTERVAL).
-- @return true | nil, err
function _M.changed()
  local s = _M.store()
  if not s then
    return nil, "database is off"
  end
  local ok, err = rebuild(s)
  if not ok then
    log("ERR", err)
    return nil, err
  end
  return true
end


-- wall clock in seconds (the cached ngx.now() would not see a blocking
-- call's duration)
local function clock()
  local ngx = _G.ngx
  if type(ngx) == "table" and ngx.update_time and ngx.now then
    ngx.update_time()
    return ngx.now()
  end
  local ok, socket = pcall(require, "socket")
  if ok and type(socket) == "table" and socket.gettime then
    return socket.gettime()
  end
  return os.time()
end


local function poll()
  local s = current
  if not s then
    return
  end
  local t0 = clock()
  if t0 < retry_at then
    return
  end
  local gen, err = s:generation()
  if not gen then
    if err and err:find("store busy", 1, true) then
      return   -- a transaction of this worker is open: next time
    end
    if not outage then
      outage = true
      log("ERR", "configuration store unreachable, serving the last "
                 .. "configuration: ", err)
    end
    -- a failure that blocked the worker (a silent host, not a refused
    -- connection) is retried less and less often, up to MAX_BACKOFF
    if clock() - t0 > SLOW_FAILURE then
      backoff = math.min(MAX_BACKOFF, backoff > 0 and backoff * 2 or 1)
      retry_at = clock() + backoff
    end
    return
  end
  backoff, retry_at = 0, 0
  if outage then
    outage = false
    log("NOTICE", "configuration store reachable again")
  end
  if gen ~= applied then
    local ok, rerr = rebuild(s)
    if not ok then
      log("ERR", rerr)
    end
  end
end


_M.poll = poll


--- Per worker (the lead's runtime calls it when database ~= off, before
-- the plugins' init_worker): opens the store, applies its config, starts
-- the generation poller.
-- @return true | nil, err (the worker then serves what it had and the
--   poller keeps trying)
function _M.init_worker(conf)
  conf = conf or (_G.kong and _G.kong.configuration)
  if _M.mode(conf) == "off" then
    return true
  end
  local s = _M.store(conf)
  if not s then
    return nil, "cannot open the configuration store"
  end
  local ok, err = rebuild(s)
  if not ok then
    outage = true
    log("ERR", "configuration store: ", err)
  end
  if not timer_started then
    local ngx = _G.ngx
    if type(ngx) == "table" and ngx.timer and ngx.timer.every then
      local tok, terr = ngx.timer.every(POLL_INTERVAL, poll)
      if not tok then
        log("ERR", "cannot start the configuration poller: ", terr)
        return nil, terr
      end
      timer_started = true
    end
  end
  if not ok then
    return nil, err
  end
  return true
end


--- In the master before the workers start: the embedded store is created
-- and migrated as needed; PostgreSQL must be reachable, bootstrapped and
-- up to date (Kong's messages otherwise).
-- @return true | nil, err
function _M.check_start(conf)
  local mode = _M.mode(conf)
  if mode == "off" then
    return true
  end
  local s, err = _M.open(conf)
  if not s then
    return nil, err
  end
  local ok
  if mode == "embedded" then
    ok, err = migrations.bootstrap(s)
    if ok then
      ok, err = migrations.up(s)
    end
  else
    ok, err = migrations.check(s)
  end
  s:close()
  if not ok then
    return nil, err
  end
  return true
end


--- For tests: use `s` as this process's store.
function _M._set_store(s)
  current = s
end


--- For tests: forget this process's store and poller state.
function _M._reset()
  if current then
    current:close()
  end
  current, current_conf, applied, outage = nil, nil, nil, false
  backoff, retry_at = 0, 0
end


_M.rebuild = rebuild
_M.current_conf = function()
  return current_conf
end


return _M
