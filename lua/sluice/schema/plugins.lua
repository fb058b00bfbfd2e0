-- Plugin configuration schemas: loads a plugin's schema.lua table as a
-- subschema of the plugins entity (Kong's `plugin_loader.load_subschema`)
-- and validates plugin rows against it (Kong's plugins DAO on insert).
--
--   local plugins_schema = require "sluice.schema.plugins"
--   local sub, err, err_t = plugins_schema.load(name, schema_module_table)
--   local row, err_t = plugins_schema.validate(sub, row[, ctx])
--
-- `load` checks the definition against Kong's metaschema (err is Kong's
-- schema-violation message, err_t its error table), that `name` matches,
-- and that the fields it redefines exist in the plugins entity with the
-- same type. Records of the subschema become required (so that their
-- defaults are filled), as Kong's `Entity.new_subschema` does.
--
-- `validate` takes a plugins row ({ name, config, route, service,
-- consumer, protocols, enabled, ... }), applies the subschema's fields over
-- the entity's (typedefs.no_consumer, protocols, config), expands
-- shorthands, fills config defaults, runs every check and the on_write
-- transformations, and returns the normalized row (nulls removed), or nil
-- and Kong's error table: `{ code = 2, name = "schema violation",
-- message = "...", fields = { config = { field = "msg" } } }`.
-- `ctx` is passed to sluice.schema.validate (`ctx.regex_check`).

local validate = require "sluice.schema.validate"
local metaschema = require "sluice.schema.metaschema"
local entity = require "sluice.schema.entities.plugins"


local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local tostring = tostring
local error = error
local fmt = string.format
local concat = table.concat
local sort = table.sort


local SCHEMA_VIOLATION = 2
local TRANSFORMATION_ERROR = 15


local _M = {}


local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then
      return ta == "number"
    end
    return a < b
  end)
  return keys
end


--- Kong's `errors:schema_violation(errors)` (kong/db/errors.lua): the
-- error table with its one-line message.
function _M.schema_violation(errors)
  if type(errors) ~= "table" then
    error("errors must be a table", 2)
  end
  local buf = {}
  for _, msg in ipairs(errors["@entity"] or {}) do
    buf[#buf + 1] = msg
  end
  for _, name in ipairs(sorted_keys(errors)) do
    if name ~= "@entity" then
      local e = errors[name]
      if type(e) == "table" then
        for _, sub in ipairs(sorted_keys(e)) do
          local v = e[sub]
          if type(v) == "table" then
            v = validate.pretty(v)
          end
          buf[#buf + 1] = fmt("%s.%s: %s", tostring(name), tostring(sub),
                              tostring(v))
        end
      else
        buf[#buf + 1] = fmt("%s: %s", tostring(name), tostring(e))
      end
    end
  end

  local message
  if #buf == 1 then
    message = fmt("schema violation (%s)", buf[1])
  else
    message = fmt("%d schema violations (%s)", #buf, concat(buf, "; "))
  end

  local fields = {}
  for k, v in pairs(errors) do
    fields[k] = v
  end
  return {
    code = SCHEMA_VIOLATION,
    name = "schema violation",
    message = message,
    fields = fields,
  }
end


-- Kong's plugins entity types, for the subschema compatibility check
-- (`config` is an abstract record there).
local function parent_field(name)
  if name == "config" then
    return { type = "record" }
  end
  if name == "created_at" or name == "updated_at" then
    return { type = "integer" }
  end
  return validate.compile(entity).fields_by_name[name]
end


local function compatible(f1, f2)
  if f1.type ~= f2.type then
    return false
  end
  if f1.type == "array" or f1.type == "set" then
    return type(f1.elements) == "table" and type(f2.elements) == "table"
           and f1.elements.type == f2.elements.type
  end
  if f1.type == "map" then
    return f1.keys.type == f2.keys.type and f1.values.type == f2.values.type
  end
  return true
end


-- Records of a subschema are required unless they say otherwise, so that
-- their structure and defaults are always filled in.
local function make_records_required(def)
  if def.required == nil then
    def.required = true
  end
  for _, entry in ipairs(def.fields) do
    local _, f = next(entry)
    if type(f) == "table" and f.type == "record"
       and type(f.fields) == "table"
    then
      make_records_required(f)
    end
  end
end


--- Loads the schema.lua table `def` of plugin `name`. Returns the compiled
-- subschema, or nil, an error message and (for metaschema violations)
-- Kong's error table.
function _M.load(name, def)
  if type(name) ~= "string" or name == "" then
    error("plugin name must be a non-empty string", 2)
  end
  if type(def) ~= "table" then
    error("schema must be a table", 2)
  end

  local ok, errs = metaschema.check_subschema(def)
  if not ok then
    local err_t = _M.schema_violation(errs)
    return nil, err_t.message, err_t
  end

  if def.name ~= name then
    return nil, fmt("error initializing schema for plugin: schema name "
                    .. "'%s' does not match plugin name '%s'",
                    tostring(def.name), name)
  end

  local copy = validate.deep_copy(def)
  for _, item in ipairs(copy.fields) do
    local fname, f = next(item)
    local pf = parent_field(fname)
    if not pf then
      return nil, fmt("error initializing schema for plugin: error in "
                      .. "definition of '%s': %s: cannot create a new field",
                      name, fname)
    end
    if not compatible(pf, f) then
      return nil, fmt("error initializing schema for plugin: error in "
                      .. "definition of '%s': %s: cannot change type in a "
                      .. "specialized field", name, fname)
    end
  end

  make_records_required(copy)
  copy.required = nil

  -- the plugins entity with the subschema's fields in place
  local own = {}
  for _, item in ipairs(copy.fields) do
    local fname, f = next(item)
    own[fname] = f
  end
  local fields = {}
  for _, item in ipairs(entity.fields) do
    local fname, f = next(item)
    fields[#fields + 1] = { [fname] = own[fname] or f }
    own[fname] = nil
  end
  for _, item in ipairs(copy.fields) do
    local fname = next(item)
    if own[fname] then
      fields[#fields + 1] = item
    end
  end

  return {
    name = name,
    definition = copy,
    schema = {
      name = "plugins",
      fields = fields,
      entity_checks = copy.entity_checks,
      shorthand_fields = copy.shorthand_fields,
      transformations = copy.transformations,
      check = copy.check,
    },
  }
end


--- Validates the plugins row `row` with the subschema from `load`.
-- Returns the normalized row, or nil and Kong's error table.
function _M.validate(subschema, row, ctx)
  if type(subschema) ~= "table" or type(subschema.schema) ~= "table" then
    error("expected a subschema from plugins.load()", 2)
  end
  if type(row) ~= "table" then
    error("row must be a table", 2)
  end
  if row.name ~= nil and row.name ~= subschema.name then
    error(fmt("row is a '%s' plugin, not '%s'", tostring(row.name),
              subschema.name), 2)
  end

  local schema = subschema.schema
  local data, errs = validate.process_auto_fields(schema, row, ctx)
  if not data then
    return nil, _M.schema_violation(errs)
  end

  local ok
  ok, errs = validate.validate(schema, data, ctx)
  if not ok then
    return nil, _M.schema_violation(errs)
  end

  local out, err = validate.transform(schema, data)
  if not out then
    return nil, { code = TRANSFORMATION_ERROR, name = "transformation error",
                  message = err }
  end

  return validate.strip_nulls(schema, out)
end


return _M
