-- Plugin schema specs without a gateway (plain luajit): plugin rows are
-- validated through the real schema engine, sluice.schema.plugins, the way
-- the declarative loader does. Kong-like helpers:
--
--   local ps = require "spec.internal.plugin_schema"
--   ps.map_plugins("kong.plugins.<name>.schema")
--                            kong.plugins.<name>.<module> is read from
--                            plugins/<name>/<module>.lua, as the runtime
--                            maps it (unless package.path finds the probe)
--   ps.validate(config, schema_def, extra)
--                            Kong's helpers.validate_plugin_config_schema:
--                            the row, or nil, the error fields and the
--                            whole error table; `extra` adds row fields
--                            (protocols, consumer...)
--   ps.merge(a, b)           a shallow copy of a, with b's keys over it
--   ps.builders(MIN, DEFAULTS) -> min(extra), full(extra): the least
--                            config with `extra` over it, and the same
--                            with the schema's defaults filled in
--   ps.it_accepts(it, cases, get_schema), ps.it_rejects(it, cases, get_schema)
--                            one `it` per { what, config, expected } row
--   ps.it_http_only(it, config, get_schema)
--                            an `it` that other protocols than http's are
--                            refused (typedefs.protocols_http)
--                            (`it` is the spec's own: busted keeps it out
--                            of _G)

local luassert = require "luassert"
local plugins_schema = require "sluice.schema.plugins"


local _M = {}


local function plugins_loader(name)
  local plugin, mod = name:match("^kong%.plugins%.([^.]+)%.(.+)$")
  if not plugin then
    return nil
  end
  local path = "plugins/" .. plugin .. "/" .. mod:gsub("%.", "/") .. ".lua"
  local f = io.open(path)
  if not f then
    return "\n\tno file '" .. path .. "'"
  end
  f:close()
  return assert(loadfile(path))
end


--- Maps kong.plugins.<name>.<module> to plugins/<name>/<module>.lua, as
-- the runtime does, unless `probe` (a module name) is found on
-- package.path already.
function _M.map_plugins(probe)
  if probe and package.searchpath(probe, package.path) then
    return
  end
  for _, loader in ipairs(package.loaders) do
    if loader == plugins_loader then
      return
    end
  end
  table.insert(package.loaders, 2, plugins_loader)
end


--- The validated row, or nil, the error fields and the whole error table.
function _M.validate(config, schema_def, extra)
  local sub, err = plugins_schema.load(schema_def.name, schema_def)
  assert(sub, err)
  local row = { name = schema_def.name, config = config }
  for k, x in pairs(extra or {}) do
    row[k] = x
  end
  local out, err_t = plugins_schema.validate(sub, row)
  if not out then
    return nil, err_t.fields, err_t
  end
  return out
end


function _M.merge(a, b)
  local out = {}
  for k, x in pairs(a) do
    out[k] = x
  end
  for k, x in pairs(b or {}) do
    out[k] = x
  end
  return out
end


--- min(extra): MIN with `extra` over it; full(extra): the same over
-- DEFAULTS (what validation should give back).
function _M.builders(min_config, defaults)
  local function min(extra)
    return _M.merge(min_config, extra)
  end
  local function full(extra)
    return _M.merge(defaults, min(extra))
  end
  return min, full
end


--- One `it("accepts <what>")` per { what, config, expected config } row:
-- the config validates and comes back as expected.
function _M.it_accepts(it, cases, get_schema)
  for _, c in ipairs(cases) do
    it("accepts " .. c[1], function()
      local row, err = _M.validate(c[2], get_schema())
      luassert.is_nil(err)
      luassert.same(c[3], row.config)
    end)
  end
end


--- One `it("rejects <what>")` per { what, config, expected } row: the
-- config is refused with exactly the expected error fields, or, where
-- `expected` is a function, with fields that it asserts on.
function _M.it_rejects(it, cases, get_schema)
  for _, c in ipairs(cases) do
    it("rejects " .. c[1], function()
      local row, err = _M.validate(c[2], get_schema())
      luassert.is_nil(row)
      if type(c[3]) == "function" then
        c[3](err)
      else
        luassert.same(c[3], err)
      end
    end)
  end
end


--- An `it` asserting that the schema takes http's protocols only
-- (typedefs.protocols_http): `config` with protocols = { "tcp" } is
-- refused.
function _M.it_http_only(it, config, get_schema)
  it("rejects non-http protocols (typedefs.protocols_http)", function()
    local row, err = _M.validate(config, get_schema(),
                                 { protocols = { "tcp" } })
    luassert.is_nil(row)
    luassert.same({
      protocols = { "expected one of: grpc, grpcs, http, https" },
    }, err)
  end)
end


return _M
