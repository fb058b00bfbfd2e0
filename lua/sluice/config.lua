-- The running configuration of a worker, and how a new one replaces it.
--
-- A new configuration (from POST /config, the store poller or a worker's
-- start) is validated with the same loader as kong.yml, built beside the
-- running one (the C router, the plugin iterator) and swapped in whole: a
-- request keeps the generation it was routed with until it ends
-- (core/conf/sl_decl.h). A configuration that does not load changes nothing.

local cjson = require "cjson.safe"
local declarative = require "sluice.declarative"

local type = type
local pairs = pairs
local ipairs = ipairs
local sort = table.sort
local concat = table.concat
local tostring = tostring


local _M = {}

local current_hash


local function loader_opts()
  return {
    regex_check = require("sluice.core").regex_check,
    plugin_check = require("sluice.plugins").check_row,
  }
end


--- Validates a declarative document (a Lua table, as decoded from kong.yml).
-- Returns the normalized configuration, or nil, err, err_t (Kong's shape).
function _M.check(doc, filename)
  return declarative.load_table(doc, filename or "<table>", loader_opts())
end


--- Validates a declarative document given as YAML or JSON text.
function _M.check_string(text, filename)
  return declarative.load_string(text, filename or "kong.yml", loader_opts())
end


-- A stable serialization (keys sorted) for the configuration hash.
local function canonical(v, out)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = k
    end
    sort(keys, function(a, b)
      return tostring(a) < tostring(b)
    end)
    out[#out + 1] = "{"
    for _, k in ipairs(keys) do
      out[#out + 1] = tostring(k)
      out[#out + 1] = "="
      canonical(v[k], out)
      out[#out + 1] = ";"
    end
    out[#out + 1] = "}"
  elseif v == cjson.null then
    out[#out + 1] = "null"
  else
    out[#out + 1] = t
    out[#out + 1] = ":"
    out[#out + 1] = tostring(v)
  end
  return out
end


local function hash_of(cfg)
  return ngx.md5(concat(canonical(cfg, {})))
end


--- Makes a normalized configuration (from check()) the worker's running one.
-- Returns true, or nil, err when the router cannot be built.
function _M.apply_normalized(cfg, source)
  local runtime = require "sluice.runtime"
  local core = require "sluice.core"
  local gen, err = core.swap_config(cfg, runtime.has_plugins(cfg), source)
  if not gen then
    return nil, err
  end
  declarative.current = cfg
  current_hash = nil
  runtime.reconfigure(cfg, gen)
  return true
end


--- Validates doc and, when it loads, swaps it in. Returns true, normalized or
-- nil, err, err_t; on error the running configuration is untouched.
function _M.apply(doc, source)
  local cfg, err, err_t = _M.check(doc, source)
  if not cfg then
    return nil, err, err_t
  end
  local ok, serr = _M.apply_normalized(cfg, source)
  if not ok then
    return nil, serr, { code = 14, name = "invalid declarative configuration",
                        message = serr, fields = {} }
  end
  return true, cfg
end


--- The running normalized configuration.
function _M.current()
  return declarative.current
      or { services = {}, routes = {}, consumers = {}, plugins = {} }
end


--- md5 (hex) of the running configuration, stable across workers and nodes
-- for the same content.
function _M.hash()
  if not current_hash then
    current_hash = hash_of(_M.current())
  end
  return current_hash
end


_M.hash_of = hash_of

return _M
