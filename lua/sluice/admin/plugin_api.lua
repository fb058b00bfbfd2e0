-- Plugins' own Admin API: for each enabled plugin, the entities of its
-- `kong.plugins.<name>.daos` (Kong's generated CRUD endpoints, e.g.
-- /consumers/:consumers/key-auth) and the endpoints of its
-- `kong.plugins.<name>.api` (Kong's format):
--
--   return {
--     ["/my-plugin/ping"] = {
--       GET = function(self, db, helpers)
--         return kong.response.exit(200, "PONG")
--       end,
--     },
--     ["/consumers/:consumers/thing"] = {
--       schema = <entity schema>,          -- form values typed by it
--       methods = { GET = function(self, db, helpers, parent) ... end },
--     },
--   }
--
-- `parent` is the generated handler of the same path and method, when there
-- is one. `helpers.yield_error(err_t)` ends the request with Kong's error.

local dao = require "sluice.admin.dao"
local endpoints = require "sluice.admin.endpoints"


local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local require = require
local tostring = tostring
local find = string.find
local sort = table.sort


local METHODS = {
  GET = true, POST = true, PUT = true, PATCH = true, DELETE = true,
  HEAD = true, OPTIONS = true,
}


local _M = {}


local function log_err(...)
  if kong and kong.log and kong.log.err then
    kong.log.err(...)
  end
end


-- require that tells "not there" from "broken"
local function load_module(name)
  local ok, mod = pcall(require, name)
  if ok then
    return mod
  end
  if type(mod) == "string"
     and find(mod, "module '" .. name .. "' not found", 1, true) then
    return nil
  end
  return nil, mod
end


local function enabled_names()
  local plugins = require "sluice.plugins"
  local names = {}
  for name in pairs(plugins.loaded) do
    names[#names + 1] = name
  end
  sort(names)
  return names
end


--- Registers the entities of every enabled plugin's daos.lua (before the
-- core endpoints are generated, so that nested endpoints exist).
function _M.register_daos()
  local defs = {}
  for _, name in ipairs(enabled_names()) do
    local daos, err = load_module("kong.plugins." .. name .. ".daos")
    if err then
      log_err("admin API: plugin '", name, "' daos: ", tostring(err))
    elseif type(daos) == "table" then
      for key, schema in pairs(daos) do
        if type(schema) == "table" and type(schema.fields) == "table" then
          local ename = schema.name or (type(key) == "string" and key)
          if type(ename) == "string" and not dao.get_def(ename) then
            local ok, def = pcall(dao.register, {
              name = ename,
              schema = schema,
              plugin = name,
            })
            if ok then
              defs[#defs + 1] = def
            else
              log_err("admin API: plugin '", name, "' entity '", ename,
                      "': ", tostring(def))
            end
          end
        end
      end
    end
  end
  return defs
end


--- Adds the custom endpoints of every enabled plugin's api.lua.
function _M.mount(router, custom_defs)
  for _, def in ipairs(custom_defs or {}) do
    if def.schema.generate_admin_api ~= false then
      endpoints.generate(router, def)
    end
  end

  for _, name in ipairs(enabled_names()) do
    local api, err = load_module("kong.plugins." .. name .. ".api")
    if err then
      log_err("admin API: plugin '", name, "' api: ", tostring(err))
    elseif type(api) == "table" then
      for pattern, entry in pairs(api) do
        if type(pattern) == "string" and type(entry) == "table" then
          local methods = type(entry.methods) == "table" and entry.methods
                          or entry
          local existing = router:get(pattern)
          local wrapped = {}
          for m, fn in pairs(methods) do
            if METHODS[m] and type(fn) == "function" then
              local parent = existing and existing.methods[m]
              wrapped[m] = function(self, db, helpers)
                return fn(self, db, helpers, parent)
              end
            end
          end
          local extra = { plugin = name }
          if type(entry.schema) == "table" then
            extra.schema = entry.schema
          end
          router:add(pattern, wrapped, extra)
        end
      end
    end
  end
end


return _M
