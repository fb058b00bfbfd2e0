-- The Admin API (Kong's, on admin_listen): C runs handle() for every
-- request in a coroutine of the worker; it routes, decodes the arguments
-- and ends with kong.response.exit.
--
--   require("sluice.admin").handle()
--
-- Routing: literal segments before `:params`; a trailing slash is ignored;
-- 404 {"message":"Not found"}, 405 {"message":"Method not allowed"},
-- OPTIONS answers 204 with Allow, HEAD runs GET. POST, PUT and PATCH take
-- JSON, form-urlencoded or multipart bodies (else 415
-- {"message":"Unsupported Media Type"}); Kong's naming conventions for
-- form fields (sluice.admin.args). A handler error answers Kong's 500.
--
-- Endpoints: sluice.admin.kong (/, /status, /endpoints, /schemas...),
-- sluice.admin.config_api (/config), sluice.admin.endpoints (CRUD of
-- services, routes, consumers, plugins and plugin DAOs),
-- sluice.admin.plugin_api (plugins' api.lua).

local json = require "sluice.admin.json"
local router_mod = require "sluice.admin.router"
local args = require "sluice.admin.args"
local errors = require "sluice.admin.errors"
local endpoints = require "sluice.admin.endpoints"
local dao = require "sluice.admin.dao"


local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local xpcall = xpcall
local error = error
local require = require
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local getmetatable = getmetatable
local traceback = debug.traceback
local concat = table.concat
local sort = table.sort
local lower = string.lower
local match = string.match


local NEEDS_BODY = { POST = true, PUT = true, PATCH = true }
local DEFAULT_MAX_BODY = 10 * 1024 * 1024


local _M = {}


local router


local function build_router()
  local r = router_mod.new()
  require("sluice.admin.kong").mount(r)
  require("sluice.admin.config_api").mount(r)
  local plugin_api = require "sluice.admin.plugin_api"
  local custom = plugin_api.register_daos()
  local is_custom = {}
  for _, def in ipairs(custom) do
    is_custom[def.name] = true
  end
  for _, name in ipairs(dao.names()) do
    if not is_custom[name] then
      endpoints.generate(r, dao.get_def(name))
    end
  end
  plugin_api.mount(r, custom)
  return r
end


--- The worker's router (built on first use).
function _M.router()
  if not router then
    router = build_router()
  end
  return router
end


-- the store, or nil in DB-less mode
local function get_store()
  local database = kong.configuration.database
  if database == "off" then
    return nil
  end
  return require("sluice.db").store()
end
_M.get_store = get_store


local function size_bytes(v)
  if type(v) == "number" then
    return v
  end
  if type(v) ~= "string" then
    return nil
  end
  local n, unit = match(lower(v), "^%s*(%d+)%s*([kmg]?)%s*$")
  if not n then
    return nil
  end
  local mult = { k = 1024, m = 1024 * 1024, g = 1024 * 1024 * 1024 }
  return tonumber(n) * (mult[unit] or 1)
end


local function max_body()
  local v = kong.configuration.nginx_admin_client_max_body_size
  local n = size_bytes(v)
  if not n or n == 0 then
    return DEFAULT_MAX_BODY
  end
  return n
end


local function allow_header(route)
  local list = {}
  for m in pairs(route.methods) do
    list[#list + 1] = m
  end
  if route.methods.GET then
    list[#list + 1] = "HEAD"
  end
  list[#list + 1] = "OPTIONS"
  sort(list)
  return concat(list, ", ")
end


-- errors raised through helpers.yield_error
local YIELD_MT = {}


local HELPERS = {
  yield_error = function(err_t)
    error(setmetatable({ err_t = err_t }, YIELD_MT), 0)
  end,
}


local function merge_params(query, post, captures)
  local params = {}
  for k, v in pairs(query) do
    params[k] = v
  end
  if type(post) == "table" then
    for k, v in pairs(post) do
      params[k] = v
    end
  end
  for k, v in pairs(captures) do
    params[k] = v
  end
  return params
end


local function dispatch()
  local r = _M.router()
  local method = kong.request.get_method()
  local path = kong.request.get_path()

  local route, captures = r:match(path)
  if not route then
    return json.exit(404, errors.NOT_FOUND)
  end

  if method == "OPTIONS" and not route.methods.OPTIONS then
    local allow = allow_header(route)
    return json.exit(204, nil, {
      Allow = allow,
      ["Access-Control-Allow-Methods"] = allow,
    })
  end

  local handler = route.methods[method]
  if not handler and method == "HEAD" then
    handler = route.methods.GET
  end
  if not handler then
    return json.exit(405, errors.METHOD_NOT_ALLOWED)
  end

  local query = args.query(kong.request.get_raw_query())

  local post, kind = {}, nil
  if NEEDS_BODY[method] then
    local ct = kong.request.get_header("content-type")
    kind = args.body_kind(ct)
    local raw, err = kong.request.get_raw_body(max_body())
    if raw == nil then
      return json.exit(413, { message = tostring(err) })
    end
    if kind == nil and (ct ~= nil or raw ~= "") then
      return json.exit(415, errors.UNSUPPORTED_MEDIA_TYPE)
    end
    if kind then
      local perr
      post, perr = args.parse_body(raw, kind, ct)
      if not post then
        if kind == "json" then
          return json.exit(400, { message = "Cannot parse JSON body" })
        end
        return json.exit(400, { message = tostring(perr) })
      end
      if kind == "json" and getmetatable(post) == json.array_mt then
        post = {}
      end
    end
  end

  local self = {
    method = method,
    path = path,
    req = { method = method, parsed_url = { path = path } },
    params = merge_params(query, post, captures),
    captures = captures,
    args = { uri = query, post = post },
    body_kind = kind,
    route = route,
    router = r,
    store = get_store(),
  }
  if route.schema and route.plugin and kind ~= "json" then
    args.infer(post, route.schema)
  end

  local db = route.plugin and require("sluice.admin.kong_db").new(self)
             or self.store
  local res = handler(self, db, HELPERS)
  -- a Lapis-style answer: { status = n, json = t } or a status number
  if type(res) == "table" and (res.status or res.json) then
    return json.exit(tonumber(res.status) or 200, res.json)
  end
  return res
end


local function on_error(err)
  if getmetatable(err) == YIELD_MT then
    return err
  end
  return traceback(tostring(err), 2)
end


--- Runs the Admin API for the current request.
function _M.handle()
  local ok, err = xpcall(dispatch, on_error)
  if ok then
    return
  end
  if getmetatable(err) == YIELD_MT then
    local e = err.err_t
    if errors.is_err_t(e) then
      return errors.exit(e)
    end
    if type(e) == "table" and e.message then
      return json.exit(400, { message = e.message })
    end
    return json.exit(400, { message = tostring(e) })
  end
  kong.log.err("admin API: ", tostring(err))
  local eok = pcall(json.exit, 500, errors.UNEXPECTED)
  if not eok then
    return
  end
end


return _M
