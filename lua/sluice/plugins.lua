-- Loading plugins (master, before the declarative config): `plugins = bundled,
-- name, ...` from kong.conf; each as kong.plugins.<name>.handler and .schema
-- with Kong's checks and messages; sorted by PRIORITY with Kong's tie-break.
-- Then `check_row` validates each plugin row of kong.yml against its schema.

local plugins_schema = require "sluice.schema.plugins"


local type = type
local pcall = pcall
local require = require
local ipairs = ipairs
local tostring = tostring
local math_floor = math.floor
local fmt = string.format
local sort = table.sort


-- the plugins Sluice bundles (plugins/<name>/); `bundled` expands to these
local BUNDLED = {
  "pre-function",
  "post-function",
  "aws-lambda",
  "openwhisk",
  "openfaas",
  "azure-functions",
}


local _M = {
  BUNDLED_NAMES = BUNDLED,
  loaded = {},     -- name -> { name, handler, schema, priority, version }
  ordered = {},    -- the same, by PRIORITY desc, Kong's tie-break
  enabled = {},    -- name -> true for names listed in `plugins`
}


local function split(s)
  local out = {}
  for item in tostring(s or ""):gmatch("[^,%s]+") do
    out[#out + 1] = item
  end
  return out
end


local function module_missing(name, err)
  return type(err) == "string"
         and err:find("module '" .. name .. "' not found", 1, true) ~= nil
end


local function load_one(name)
  local hname = "kong.plugins." .. name .. ".handler"
  local ok, handler = pcall(require, hname)
  if not ok then
    if module_missing(hname, handler) then
      return nil, name .. " plugin is enabled but not installed;\n" .. handler
    end
    return nil, "error loading plugin " .. name .. ": " .. tostring(handler)
  end
  if type(handler) ~= "table" then
    return nil, "plugin " .. name .. ": handler must return a table"
  end
  local p = handler.PRIORITY
  if type(p) ~= "number" or p ~= p or p == math.huge or p == -math.huge
     or math_floor(p) ~= p then
    return nil, fmt('Plugin "%s" cannot be loaded because its PRIORITY field '
                    .. 'is not a valid integer number, got: "%s".',
                    name, tostring(p))
  end
  local v = handler.VERSION
  if type(v) ~= "string" or not v:match("^%d+%.%d+%.%d+$") then
    return nil, fmt('Plugin "%s" cannot be loaded because its VERSION field '
                    .. 'does not follow the "x.y.z" format, got: "%s".',
                    name, tostring(v))
  end
  if handler.response and (handler.header_filter or handler.body_filter) then
    return nil, fmt("Plugin \"%s\" can't be loaded because it implements both "
                    .. "`response` and `header_filter` or `body_filter` "
                    .. "methods.\n", name)
  end
  local sname = "kong.plugins." .. name .. ".schema"
  local sok, sdef = pcall(require, sname)
  if not sok then
    return nil, "error loading plugin schema " .. name .. ": " .. tostring(sdef)
  end
  local schema, serr = plugins_schema.load(name, sdef)
  if not schema then
    return nil, "error loading plugin schema " .. name .. ": " .. tostring(serr)
  end
  return { name = name, handler = handler, schema = schema, priority = p,
           version = v }
end


--- Loads the plugins a `plugins` property names. Returns true or nil, err.
function _M.load(list)
  _M.loaded, _M.ordered, _M.enabled = {}, {}, {}
  local names = {}
  for _, item in ipairs(split(list or "bundled")) do
    if item == "bundled" then
      for _, b in ipairs(BUNDLED) do
        names[#names + 1] = b
      end
    elseif item ~= "off" then
      names[#names + 1] = item
    end
  end
  for _, name in ipairs(names) do
    if not _M.loaded[name] then
      local p, err = load_one(name)
      if not p then
        return nil, err
      end
      _M.loaded[name] = p
      _M.enabled[name] = true
      _M.ordered[#_M.ordered + 1] = p
    end
  end
  sort(_M.ordered, function(a, b)
    if a.priority == b.priority and a.priority ~= 0 then
      return a.name > b.name
    end
    return a.priority > b.priority
  end)
  return true
end


--- The declarative loader's plugin_check hook: the plugin must be enabled
-- and its row must satisfy its schema.
function _M.check_row(row, ctx)
  local p = _M.loaded[row.name]
  if not p then
    return nil, { name = fmt("plugin '%s' not enabled; add it to the 'plugins'"
                             .. " configuration property", row.name) }
  end
  local out, err_t = plugins_schema.validate(p.schema, row, ctx)
  if not out then
    return nil, err_t.fields or err_t
  end
  return out
end


_M.BUNDLED = BUNDLED


return _M
