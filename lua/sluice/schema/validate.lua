-- A data-driven validator for Kong's schema DSL (`kong/db/schema/init.lua`).
--
-- A schema is a record definition: `{ fields = { { name = def }, ... },
-- entity_checks = { ... }, shorthand_fields = { ... }, transformations =
-- { ... }, check = fn, subschema_key = "...", subschemas = { ... } }`, the
-- shape of Kong's entity and plugin schemas. A field definition has a `type`
-- (string, number, integer, boolean, array, set, map, record, foreign,
-- function, json, and the internal any / self) and attributes: required,
-- default, nilable, auto, abstract, referenceable, err, elements, keys,
-- values, fields, entity_checks, shorthand_fields and the validators listed
-- in VALIDATORS_ORDER. Descriptive attributes (description, examples,
-- deprecation, immutable, unique, encrypted, ...) do not affect validation.
--
-- Validation runs in Kong's two steps:
--   `_M.process_auto_fields(schema, input, ctx)` -> copy | nil, errs
--     expands shorthand_fields, fills defaults (records recursively), turns
--     absent non-required fields into null, deduplicates sets;
--   `_M.validate(schema, data, ctx)` -> true | nil, errs
--     types, validators, required fields, entity checks, `check`.
-- `_M.validate_record(schema, input, ctx)` does both and returns the copy
-- with nulls removed (what handlers see), or that copy and Kong's error
-- table: `{ field = "msg", array = { [2] = "msg" }, record = { sub = "msg" },
-- ["@entity"] = { "msg", ... } }`. Messages are Kong's, verbatim.
--
-- `ctx` is optional: `ctx.regex_check(re) -> true | nil, err` backs
-- `is_regex` (else ngx.re when present), and ctx is passed to custom
-- validators and custom entity checks as an extra last argument.

local cjson = require "cjson.safe"


local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local pcall = pcall
local tostring = tostring
local tonumber = tonumber
local unpack = unpack
local setmetatable = setmetatable
local getmetatable = getmetatable
local error = error
local floor = math.floor
local max = math.max
local huge = math.huge
local random = math.random
local os_time = os.time
local fmt = string.format
local find = string.find
local sub = string.sub
local match = string.match
local gsub = string.gsub
local upper = string.upper
local byte = string.byte
local char = string.char
local concat = table.concat
local insert = table.insert
local sort = table.sort


local NULL = cjson.null


local ERRORS = {
  ERROR                     = "Validation error: %s",
  -- types
  ARRAY                     = "expected an array",
  SET                       = "expected a set",
  MAP                       = "expected a map",
  RECORD                    = "expected a record",
  STRING                    = "expected a string",
  NUMBER                    = "expected a number",
  BOOLEAN                   = "expected a boolean",
  INTEGER                   = "expected an integer",
  FUNCTION                  = "expected a function",
  -- validations
  EQ                        = "value must be %s",
  NE                        = "value must not be %s",
  GT                        = "value must be greater than %s",
  BETWEEN                   = "value should be between %d and %d",
  LEN_EQ                    = "length must be %d",
  LEN_MIN                   = "length must be at least %d",
  LEN_MAX                   = "length must be at most %d",
  MATCH                     = "invalid value: %s",
  NOT_MATCH                 = "invalid value: %s",
  MATCH_ALL                 = "invalid value: %s",
  MATCH_NONE                = "invalid value: %s",
  MATCH_ANY                 = "invalid value: %s",
  STARTS_WITH               = "should start with: %s",
  CONTAINS                  = "expected to contain: %s",
  ONE_OF                    = "expected one of: %s",
  NOT_ONE_OF                = "must not be one of: %s",
  IS_REGEX                  = "not a valid regex: %s",
  TIMESTAMP                 = "expected a valid timestamp",
  UUID                      = "expected a valid UUID",
  VALIDATION                = "failed validating: %s",
  -- field presence
  BAD_INPUT                 = "expected an input table",
  REQUIRED                  = "required field missing",
  NO_FOREIGN_DEFAULT        = "will not generate a default value for a "
                              .. "foreign field",
  UNKNOWN                   = "unknown field",
  IMMUTABLE                 = "immutable field cannot be updated",
  -- entity checks
  REQUIRED_FOR_ENTITY_CHECK = "field required for entity check",
  ENTITY_CHECK              = "failed entity check: %s(%s)",
  ENTITY_CHECK_N_FIELDS     = "entity check requires %d fields",
  CHECK                     = "entity check failed",
  CONDITIONAL               = "failed conditional validation given value of "
                              .. "field '%s'",
  AT_LEAST_ONE_OF           = "at least one of these fields must be "
                              .. "non-empty: %s",
  CONDITIONAL_AT_LEAST_ONE_OF = "at least one of these fields must be "
                                .. "non-empty: %s",
  ONLY_ONE_OF               = "exactly one of these fields must be "
                              .. "non-empty: %s",
  DISTINCT                  = "values of these fields must be distinct: %s",
  MUTUALLY_REQUIRED         = "all or none of these fields must be set: %s",
  MUTUALLY_EXCLUSIVE        = "only one or none of these fields must be set: "
                              .. "%s",
  MUTUALLY_EXCLUSIVE_SETS   = "these sets are mutually exclusive: %s",
  -- schema errors
  SCHEMA_NO_DEFINITION      = "expected a definition table",
  SCHEMA_NO_FIELDS          = "error in schema definition: no 'fields' table",
  SCHEMA_CANNOT_VALIDATE    = "error in schema prevents from validating this "
                              .. "field",
  SCHEMA_TYPE               = "invalid type: %s",
  SCHEMA_MISSING_ATTRIBUTE  = "error in schema definition: missing "
                              .. "attribute %s",
  SUBSCHEMA_UNKNOWN         = "unknown type: %s",
  SUBSCHEMA_ABSTRACT_FIELD  = "error in schema definition: abstract field was "
                              .. "not specialized",
  TRANSFORMATION_ERROR      = "transformation failed: %s",
}


-- Kong's `Schema.validators_order`
local VALIDATORS_ORDER = {
  "eq",
  "ne",
  "not_one_of",
  "one_of",

  -- type-dependent
  "gt",
  "timestamp",
  "uuid",
  "is_regex",
  "between",

  -- strings (1/2)
  "len_eq",
  "len_min",
  "len_max",

  -- strings (2/2)
  "starts_with",
  "not_match",
  "match_none",
  "match",
  "match_all",
  "match_any",

  -- arrays
  "contains",

  -- other
  "custom_validator",
  "mutually_exclusive_subsets",
}


local VALID_TYPES = {
  array = true, set = true, string = true, number = true, boolean = true,
  integer = true, foreign = true, map = true, record = true,
  ["function"] = true, json = true,
}


local UUID_PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-"
                     .. "%x%x%x%x%x%x%x%x%x%x%x%x$"


local _M = {
  ERRORS = ERRORS,
  VALIDATORS_ORDER = VALIDATORS_ORDER,
  VALID_TYPES = VALID_TYPES,
  NULL = NULL,
}


local function is_null(v)
  return v == nil or v == NULL
end
_M.is_null = is_null


--- True if `v` is not nil, null, an empty string or an empty table.
local function is_nonempty(v)
  if v == nil or v == NULL then
    return false
  end
  if type(v) == "table" then
    return next(v) ~= nil
  end
  if type(v) == "string" then
    return v ~= ""
  end
  return true
end
_M.is_nonempty = is_nonempty


--- True if `t` is a table whose keys are exactly 1..n (Kong's check).
local function is_sequence(t)
  if type(t) ~= "table" then
    return false
  end
  local m, c = 0, 0
  for k in pairs(t) do
    c = c + 1
    if t[c] == nil then
      return false
    end
    if type(k) ~= "number" or k < 0 or floor(k) ~= k then
      return false
    end
    m = max(m, k)
  end
  return c == m
end
_M.is_sequence = is_sequence


local function deep_copy(v, seen)
  if type(v) ~= "table" then
    return v
  end
  seen = seen or {}
  if seen[v] then
    return seen[v]
  end
  local t = {}
  seen[v] = t
  for k, x in pairs(v) do
    t[deep_copy(k, seen)] = deep_copy(x, seen)
  end
  return setmetatable(t, getmetatable(v))
end
_M.deep_copy = function(v)
  return deep_copy(v)
end


--- "'a', 'b'"; nested arrays become "('a', 'b'), ('c')".
local function quoted_list(words)
  local out = {}
  for i = 1, #words do
    local w = words[i]
    if type(w) == "table" then
      out[i] = "(" .. quoted_list(w) .. ")"
    else
      out[i] = "'" .. tostring(w) .. "'"
    end
  end
  return concat(out, ", ")
end
_M.quoted_list = quoted_list


local function list_str(list)
  local out = {}
  for i = 1, #list do
    out[i] = tostring(list[i])
  end
  return concat(out, ", ")
end


--- True for a Kong vault reference such as "{vault://env/secret}".
local function is_reference(s)
  return type(s) == "string" and byte(s, 1) == 123 and byte(s, -1) == 125
         and sub(s, 2, 9) == "vault://"
end
_M.is_reference = is_reference


-- "a.b.c" lookups, as Kong's get_field/set_field
local function get_field(t, name)
  if t == nil or t == NULL then
    return nil
  end
  local dot = find(name, ".", 1, true)
  if not dot then
    return t[name]
  end
  local v = t[sub(name, 1, dot - 1)]
  if type(v) ~= "table" then
    return nil
  end
  return get_field(v, sub(name, dot + 1))
end
_M.get_field = get_field


local function set_field(t, name, value)
  local dot = find(name, ".", 1, true)
  if not dot then
    t[name] = value
    return
  end
  local hd = sub(name, 1, dot - 1)
  if type(t[hd]) ~= "table" then
    t[hd] = {}
  end
  set_field(t[hd], sub(name, dot + 1), value)
end


-- Penlight-style pretty printer (pl.pretty.write), used where Kong prints a
-- table into a message.
local function pretty(v, indent)
  indent = indent or ""
  if type(v) == "string" then
    return fmt("%q", v)
  end
  if type(v) ~= "table" then
    return tostring(v)
  end
  local inner = indent .. "  "
  local items = {}
  local n = #v
  for i = 1, n do
    items[#items + 1] = inner .. pretty(v[i], inner)
  end
  local keys = {}
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and floor(k) == k) then
      keys[#keys + 1] = k
    end
  end
  sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(keys) do
    local key = k
    if type(k) ~= "string" or not match(k, "^[%a_][%w_]*$") then
      key = "[" .. pretty(k) .. "]"
    end
    items[#items + 1] = inner .. key .. " = " .. pretty(v[k], inner)
  end
  if #items == 0 then
    return "{}"
  end
  return "{\n" .. concat(items, ",\n") .. "\n" .. indent .. "}"
end
do
  -- Kong prints with Penlight: use it when installed, for identical text
  local ok, pl_pretty = pcall(require, "pl.pretty")
  if ok and type(pl_pretty) == "table" and pl_pretty.write then
    _M.pretty = function(v)
      return (pl_pretty.write(v))
    end
  else
    _M.pretty = pretty
  end
end


-- Field indexes live beside the definitions (weak keys), so definitions
-- stay as written: shared typedefs can be checked by the metaschema.
local INDEX = setmetatable({}, { __mode = "k" })


local function index_of(schema)
  local idx = INDEX[schema]
  if idx then
    return idx
  end
  local by_name, order = {}, {}
  for _, entry in ipairs(schema.fields) do
    if type(entry) == "table" then
      local name, def = next(entry)
      if name ~= nil and type(def) == "table" then
        by_name[name] = def
        order[#order + 1] = name
      end
    end
  end
  idx = { by_name = by_name, order = order }
  INDEX[schema] = idx
  return idx
end


--- Builds (once) the by-name index of a schema or record definition and
-- exposes it as `schema.fields_by_name` / `schema.field_order`.
function _M.compile(schema)
  if type(schema) ~= "table" or type(schema.fields) ~= "table" then
    error("expected a schema with a 'fields' array", 2)
  end
  local idx = index_of(schema)
  schema.fields_by_name = idx.by_name
  schema.field_order = idx.order
  return schema
end


-- The subschema that applies to `input`: `schema.subschemas[v]` for the
-- value of `schema.subschema_key` (its default when absent), or for the
-- first element that has one when the key is a set (routes by protocols).
local function get_subschema(schema, input)
  local key = schema.subschema_key
  if not key or not schema.subschemas then
    return nil
  end
  local v = input[key]
  if is_null(v) then
    local def = index_of(schema).by_name[key]
    v = def and def.default
  end
  if type(v) == "table" then
    for _, e in ipairs(v) do
      if schema.subschemas[e] then
        return schema.subschemas[e]
      end
    end
    return nil
  end
  return v ~= nil and schema.subschemas[v] or nil
end


-- The field definition named `name` in `schema` (with its subschema).
local function schema_field(schema, name, subschema)
  local f = subschema and index_of(subschema).by_name[name]
  return f or index_of(schema).by_name[name]
end


-- "a.b.c" definition lookup through records
local function get_schema_field(schema, name, subschema)
  local dot = find(name, ".", 1, true)
  if not dot then
    return schema_field(schema, name, subschema)
  end
  local hd = schema_field(schema, sub(name, 1, dot - 1), subschema)
  if not hd or type(hd.fields) ~= "table" then
    return nil
  end
  return get_schema_field(hd, sub(name, dot + 1))
end


-- Iterates `name, def` in declaration order, subschema fields replacing
-- the parent's.
local function each_field(schema, data)
  local order = index_of(schema).order
  local subschema = data and get_subschema(schema, data)
  local i = 0
  return function()
    i = i + 1
    local name = order[i]
    if name == nil then
      return nil
    end
    return name, schema_field(schema, name, subschema)
  end
end
_M.each_field = each_field


local function length_of(value, field)
  local len = #value
  if field.type == "map" then
    for _ in pairs(value) do
      len = len + 1
    end
  end
  return len
end


local function regex_error(re, ctx)
  local check = ctx and ctx.regex_check
  if check then
    local ok, err = check(re)
    if ok then
      return nil
    end
    return err or "invalid regex"
  end
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.re) == "table" and ngx.re.match then
    local pok, _, err = pcall(ngx.re.match, "any string", re)
    if not pok then
      return "invalid regex"
    end
    return err
  end
  return nil
end


local VALIDATORS = {
  between = function(value, limits)
    if value < limits[1] or value > limits[2] then
      return nil, fmt(ERRORS.BETWEEN, limits[1], limits[2])
    end
    return true
  end,

  eq = function(value, wanted)
    if value == wanted then
      return true
    end
    local s = wanted == NULL and "null" or tostring(wanted)
    return nil, fmt(ERRORS.EQ, s)
  end,

  ne = function(value, wanted)
    if value ~= wanted then
      return true
    end
    local s = wanted == NULL and "null" or tostring(value)
    return nil, fmt(ERRORS.NE, s)
  end,

  gt = function(value, limit)
    if value > limit then
      return true
    end
    return nil, fmt(ERRORS.GT, tostring(limit))
  end,

  len_eq = function(value, n, field)
    if length_of(value, field) == n then
      return true
    end
    return nil, fmt(ERRORS.LEN_EQ, n)
  end,

  len_min = function(value, n, field)
    if length_of(value, field) >= n then
      return true
    end
    return nil, fmt(ERRORS.LEN_MIN, n)
  end,

  len_max = function(value, n, field)
    if length_of(value, field) <= n then
      return true
    end
    return nil, fmt(ERRORS.LEN_MAX, n)
  end,

  match = function(value, pattern)
    if match(value, pattern) then
      return true
    end
    return nil, fmt(ERRORS.MATCH, value)
  end,

  is_regex = function(value, _, _, ctx)
    return regex_error(value, ctx) == nil
  end,

  not_match = function(value, pattern)
    if match(value, pattern) then
      return nil, fmt(ERRORS.NOT_MATCH, value)
    end
    return true
  end,

  match_all = function(value, list)
    for i = 1, #list do
      if not match(value, list[i].pattern) then
        return nil, list[i].err
      end
    end
    return true
  end,

  match_none = function(value, list)
    for i = 1, #list do
      if match(value, list[i].pattern) then
        return nil, list[i].err
      end
    end
    return true
  end,

  match_any = function(value, arg)
    for _, p in ipairs(arg.patterns) do
      if match(value, p) then
        return true
      end
    end
    return nil, arg.err
  end,

  starts_with = function(value, prefix)
    if sub(value, 1, #prefix) ~= prefix then
      return nil, fmt(ERRORS.STARTS_WITH, prefix)
    end
    return true
  end,

  one_of = function(value, options)
    for i = 1, #options do
      if value == options[i] then
        return true
      end
    end
    return nil, fmt(ERRORS.ONE_OF, list_str(options))
  end,

  not_one_of = function(value, options)
    for i = 1, #options do
      if value == options[i] then
        return nil, fmt(ERRORS.NOT_ONE_OF, list_str(options))
      end
    end
    return true
  end,

  timestamp = function(value)
    return value > 0 or nil
  end,

  uuid = function(value)
    if #value == 36 and find(value, UUID_PATTERN) then
      return true
    end
    return nil
  end,

  contains = function(array, wanted)
    for i = 1, #array do
      if array[i] == wanted then
        return true
      end
    end
    return nil, fmt(ERRORS.CONTAINS, tostring(wanted))
  end,

  mutually_exclusive_subsets = function(value, subsets)
    local owner = {}
    for _, subset in ipairs(subsets) do
      for _, el in ipairs(subset) do
        owner[el] = subset
      end
    end
    local seen, used = {}, {}
    for i = 1, #value do
      local s = owner[value[i]]
      if s and not seen[s] then
        seen[s] = true
        used[#used + 1] = s
      end
    end
    if #used <= 1 then
      return true
    end
    return nil, fmt(ERRORS.MUTUALLY_EXCLUSIVE_SETS, quoted_list(used))
  end,

  custom_validator = function(value, fn, _, ctx)
    return fn(value, ctx)
  end,
}
_M.validators = VALIDATORS


local validate             -- forward
local process_auto_fields  -- forward


--- Kong's `Schema:validate_field`: checks one value (which may be null)
-- against a field definition. `force_required` marks elements of arrays,
-- sets and maps (Kong sets `required` on them). Returns true, or nil and
-- an error (a string, or a table for aggregates).
local function validate_field(field, value, ctx, force_required)
  if value == NULL then
    if field.ne == NULL then
      return nil, field.err or fmt(ERRORS.NE, "null")
    end
    if field.eq ~= nil and field.eq ~= NULL then
      return nil, fmt(ERRORS.EQ, tostring(field.eq))
    end
    if field.required or force_required then
      return nil, ERRORS.REQUIRED
    end
    return true
  end

  if field.eq == NULL then
    return nil, field.err or fmt(ERRORS.EQ, "null")
  end

  if field.abstract then
    return nil, ERRORS.SUBSCHEMA_ABSTRACT_FIELD
  end

  local ftype = field.type
  local len_min_default

  if ftype == "array" or ftype == "set" then
    if not is_sequence(value) then
      return nil, ftype == "array" and ERRORS.ARRAY or ERRORS.SET
    end
    local elements = field.elements
    if type(elements) ~= "table" then
      return nil, fmt(ERRORS.SCHEMA_MISSING_ATTRIBUTE, "elements")
    end
    local errs
    for i = 1, #value do
      local ok, err = validate_field(elements, value[i], ctx, true)
      if not ok then
        errs = errs or {}
        errs[i] = err
      end
    end
    if errs then
      return nil, errs
    end

  elseif ftype == "map" then
    if type(value) ~= "table" then
      return nil, ERRORS.MAP
    end
    if type(field.keys) ~= "table" or type(field.values) ~= "table" then
      return nil, fmt(ERRORS.SCHEMA_MISSING_ATTRIBUTE,
                      field.keys and "values" or "keys")
    end
    for k, v in pairs(value) do
      local ok, err = validate_field(field.keys, k, ctx, true)
      if not ok then
        return nil, err
      end
      ok, err = validate_field(field.values, v, ctx, true)
      if not ok then
        return nil, err
      end
    end

  elseif ftype == "record" then
    if type(value) ~= "table" then
      return nil, ERRORS.RECORD
    end
    if type(field.fields) ~= "table" then
      return nil, fmt(ERRORS.SCHEMA_MISSING_ATTRIBUTE, "fields")
    end
    local copy, err = process_auto_fields(field, value, ctx)
    if not copy then
      return nil, err
    end
    local ok
    ok, err = validate(field, copy, ctx)
    if not ok then
      return nil, err
    end

  elseif ftype == "foreign" then
    -- without the foreign schema at hand: a primary key `{ id = uuid }`
    if type(value) ~= "table" then
      return nil, ERRORS.RECORD
    end
    for k in pairs(value) do
      if k ~= "id" then
        return nil, { [tostring(k)] = ERRORS.UNKNOWN }
      end
    end
    if type(value.id) ~= "string" then
      return nil, { id = value.id == nil and "missing primary key"
                         or ERRORS.STRING }
    end
    if not VALIDATORS.uuid(value.id) then
      return nil, { id = ERRORS.UUID }
    end

  elseif ftype == "integer" then
    if type(value) ~= "number" or value ~= floor(value)
       or value == huge or value == -huge
    then
      return nil, ERRORS.INTEGER
    end

  elseif ftype == "string" then
    if type(value) ~= "string" then
      return nil, ERRORS.STRING
    end
    -- empty strings are not accepted unless the schema says otherwise
    len_min_default = field.len_min == nil
    if field.referenceable and is_reference(value) then
      return true
    end

  elseif ftype == "number" then
    if type(value) ~= "number" then
      return nil, ERRORS.NUMBER
    end

  elseif ftype == "boolean" then
    if type(value) ~= "boolean" then
      return nil, ERRORS.BOOLEAN
    end

  elseif ftype == "function" then
    if type(value) ~= "function" then
      return nil, ERRORS.FUNCTION
    end

  elseif ftype ~= "any" and ftype ~= "json" then
    -- json: any JSON value (JSON-schema checks are not implemented)
    return nil, fmt(ERRORS.SCHEMA_TYPE, tostring(ftype))
  end

  for i = 1, #VALIDATORS_ORDER do
    local name = VALIDATORS_ORDER[i]
    local arg = field[name]
    if arg == nil and name == "len_min" and len_min_default then
      arg = 1
    end
    if arg ~= nil then
      local ok, err = VALIDATORS[name](value, arg, field, ctx)
      if not ok then
        if not err then
          err = fmt(ERRORS[upper(name)] or ERRORS.VALIDATION,
                    tostring(value))
        end
        return nil, field.err or err
      end
    end
  end

  return true
end
_M.validate_field = function(field, value, ctx)
  return validate_field(field, value, ctx)
end


-- ------------------------------------------------------------------------
-- process_auto_fields: shorthands, defaults, nulls ("insert" context)

local function make_array(t)
  if is_sequence(t) then
    return setmetatable(t, cjson.array_mt)
  end
  return t
end


local function make_set(t)
  if not is_sequence(t) then
    return t
  end
  local o, seen = {}, {}
  for i = 1, #t do
    local v = t[i]
    if not seen[v] then
      seen[v] = true
      o[#o + 1] = v
    end
  end
  return setmetatable(o, cjson.array_mt)
end


local function handle_missing_field(field, value, ctx)
  if field.default ~= nil then
    local copy = deep_copy(field.default)
    if (field.type == "array" or field.type == "set")
       and type(copy) == "table" and not getmetatable(copy)
    then
      setmetatable(copy, cjson.array_mt)
    end
    return copy
  end
  if field.nilable then
    return value
  end
  if field.required ~= true then
    return NULL
  end
  if field.abstract then
    return nil
  end
  -- a missing required record is expanded to get its nested defaults
  if field.type == "record" and type(field.fields) == "table" then
    return process_auto_fields(field, {}, ctx)
  end
  return nil
end


local function adjust_field(field, value, ctx)
  if field.abstract then
    return value
  end

  if field.type == "record" then
    if value ~= NULL and (value ~= nil or field.required == true) then
      if value == nil then
        local err
        value, err = handle_missing_field(field, value, ctx)
        if err then
          return nil, err
        end
      end
      if type(value) == "table" and type(field.fields) == "table" then
        return process_auto_fields(field, value, ctx)
      end
    end

  elseif type(value) == "table" then
    local subfield
    if field.type == "array" then
      value = make_array(value)
      subfield = field.elements
    elseif field.type == "set" then
      value = make_set(value)
      subfield = field.elements
    elseif field.type == "map" then
      subfield = field.values
    end
    if type(subfield) == "table" then
      for k, v in pairs(value) do
        local nv, err = adjust_field(subfield, v, ctx)
        if err then
          return nil, { [k] = err }
        end
        value[k] = nv
      end
    end
  end

  if value == nil then
    return handle_missing_field(field, value, ctx)
  end
  return value
end


local function table_path(t, path)
  for _, k in ipairs(path) do
    if type(t) ~= "table" then
      return nil
    end
    t = t[k]
  end
  return t
end


local function deep_equal(a, b)
  if a == b then
    return true
  end
  if type(a) ~= "table" or type(b) ~= "table" then
    return false
  end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end


-- A deprecated shorthand and the field replacing it must agree.
local function check_deprecated_shorthand(data, value, sname, sdef)
  local dep = sdef.deprecation
  if value == NULL or type(dep) ~= "table"
     or type(dep.replaced_with) ~= "table"
  then
    return nil
  end
  for _, r in ipairs(dep.replaced_with) do
    local new_value
    if r.reverse_mapping_function then
      new_value = r.reverse_mapping_function(data)
    else
      new_value = table_path(data, r.path or {})
    end
    if new_value ~= nil and new_value ~= NULL
       and not deep_equal(new_value, value)
    then
      return fmt("both deprecated and new field are used but their values "
                 .. "mismatch: %s = %s vs %s = %s", sname, tostring(value),
                 concat(r.path or {}, "."), tostring(new_value))
    end
  end
  return nil
end


local function expand_shorthands(schema, data, ctx)
  local shorthands = schema.shorthand_fields
  if type(shorthands) ~= "table" then
    return true
  end
  local errs
  for i = 1, #shorthands do
    local sname, sdef = next(shorthands[i])
    local value = data[sname]
    if value ~= nil then
      local _, err = validate_field(sdef, value, ctx)
      if err == nil then
        err = check_deprecated_shorthand(data, value, sname, sdef)
      end
      if err ~= nil then
        errs = errs or {}
        errs[sname] = err
      else
        data[sname] = nil
        local new_values = sdef.func(value)
        if type(new_values) == "table" then
          local dep = sdef.deprecation
          for k, v in pairs(new_values) do
            local cur = data[k]
            if type(v) == "table" then
              local merged = {}
              local source = type(cur) == "table" and cur or {}
              if dep then
                -- the real field wins, unless it is null
                for sk, sv in pairs(v) do
                  merged[sk] = sv
                end
                for sk, sv in pairs(source) do
                  if merged[sk] == nil or sv ~= NULL then
                    merged[sk] = sv
                  end
                end
              else
                for sk, sv in pairs(source) do
                  merged[sk] = sv
                end
                for sk, sv in pairs(v) do
                  merged[sk] = sv
                end
              end
              data[k] = merged
            elseif not dep or cur == nil or cur == NULL then
              data[k] = v
            end
          end
        end
      end
    end
  end
  if errs then
    return nil, errs
  end
  return true
end


local function random_string()
  local t = {}
  for i = 1, 32 do
    t[i] = fmt("%x", random(0, 15))
  end
  return concat(t)
end


--- Kong's `Schema:process_auto_fields(data, "insert")`. Returns a new
-- table, or nil and an error table (bad shorthand values).
process_auto_fields = function(schema, data, ctx)
  data = deep_copy(data)

  local ok, errs = expand_shorthands(schema, data, ctx)
  if not ok then
    return nil, errs
  end

  for key, field in each_field(schema, data) do
    local value = data[key]
    if field.auto and value == nil then
      if field.uuid then
        value = require("sluice.uuid").generate_v4()
      elseif field.type == "string" then
        value = random_string()
      elseif key == "created_at" or key == "updated_at" then
        value = os_time()
      end
    end
    local err
    value, err = adjust_field(field, value, ctx)
    if err then
      return nil, { [key] = err }
    end
    data[key] = value
  end

  return data
end
_M.process_auto_fields = process_auto_fields


-- ------------------------------------------------------------------------
-- Entity checkers, as Kong's `Schema.entity_checkers`.
-- `fn(entity, arg, lookup, errors, ctx)` returns true, or nil, err[,
-- custom_err]: `err` is formatted into ERRORS[NAME], `custom_err` replaces
-- the whole message. `lookup(name)` returns a field definition.

local CHECKERS = {}
_M.entity_checkers = CHECKERS


-- `m` (a validator table of a conditional check) inheriting the attributes
-- of the field it applies to, as Kong's metatable trick.
local function inherit(m, base)
  if not base then
    return m
  end
  return setmetatable({}, {
    __index = function(_, k)
      local v = m[k]
      if v == nil then
        v = base[k]
      end
      return v
    end,
  })
end


local function count_nonempty(entity, names)
  local n = 0
  for i = 1, #names do
    if is_nonempty(get_field(entity, names[i])) then
      n = n + 1
    end
  end
  return n
end


CHECKERS.at_least_one_of = {
  run_with_missing_fields = true,
  run_with_invalid_fields = true,
  fn = function(entity, names)
    if count_nonempty(entity, names) > 0 then
      return true
    end
    return nil, quoted_list(names)
  end,
}


CHECKERS.conditional_at_least_one_of = {
  run_with_missing_fields = true,
  run_with_invalid_fields = true,
  field_sources = { "if_field", "then_at_least_one_of",
                    "else_then_at_least_one_of" },
  required_fields = { "if_field" },
  fn = function(entity, arg, lookup, _, ctx)
    local if_value = get_field(entity, arg.if_field)
    if if_value == nil then
      return true
    end
    local base = lookup(arg.if_field)
    local list, custom
    if validate_field(inherit(arg.if_match, base), if_value, ctx) then
      list, custom = arg.then_at_least_one_of, arg.then_err
    elseif arg.else_match ~= nil
           and validate_field(inherit(arg.else_match, base), if_value, ctx)
    then
      list, custom = arg.else_then_at_least_one_of, arg.else_then_err
    else
      return true
    end
    if count_nonempty(entity, list) > 0 then
      return true
    end
    local quoted = quoted_list(list)
    return nil, quoted, custom and fmt(custom, quoted) or nil
  end,
}


CHECKERS.only_one_of = {
  run_with_missing_fields = false,
  run_with_invalid_fields = true,
  fn = function(entity, names)
    if count_nonempty(entity, names) == 1 then
      return true
    end
    return nil, quoted_list(names)
  end,
}


CHECKERS.distinct = {
  run_with_missing_fields = false,
  run_with_invalid_fields = true,
  fn = function(entity, names)
    local seen = {}
    for i = 1, #names do
      local v = get_field(entity, names[i])
      if is_nonempty(v) then
        if seen[v] then
          return nil, quoted_list(names)
        end
        seen[v] = true
      end
    end
    return true
  end,
}


CHECKERS.conditional = {
  run_with_missing_fields = false,
  run_with_invalid_fields = true,
  field_sources = { "if_field", "then_field" },
  required_fields = { if_field = true },
  fn = function(entity, arg, lookup, errors, ctx)
    local if_value = get_field(entity, arg.if_field)
    local then_value = get_field(entity, arg.then_field)
    if then_value == nil then
      then_value = NULL
    end
    if not validate_field(inherit(arg.if_match, lookup(arg.if_field)),
                          if_value, ctx)
    then
      return true
    end
    local then_match = inherit(arg.then_match, lookup(arg.then_field))
    if then_match.required == true and then_value == NULL then
      set_field(errors, arg.then_field, ERRORS.REQUIRED)
      return nil, arg.if_field
    end
    local ok, err = validate_field(then_match, then_value, ctx)
    if ok then
      return true
    end
    set_field(errors, arg.then_field, err)
    return nil, arg.if_field,
           arg.then_err and fmt(arg.then_err, arg.if_field) or nil
  end,
}


CHECKERS.custom_entity_check = {
  run_with_missing_fields = false,
  run_with_invalid_fields = false,
  field_sources = { "field_sources" },
  required_fields = { field_sources = true },
  fn = function(entity, arg, _, _, ctx)
    return arg.fn(entity, ctx)
  end,
}


CHECKERS.mutually_required = {
  run_with_missing_fields = true,
  fn = function(entity, names)
    local n = count_nonempty(entity, names)
    if n == 0 or n == #names then
      return true
    end
    return nil, quoted_list(names)
  end,
}


CHECKERS.mutually_exclusive = {
  run_with_missing_fields = true,
  fn = function(entity, names)
    if count_nonempty(entity, names) <= 1 then
      return true
    end
    return nil, quoted_list(names)
  end,
}


CHECKERS.mutually_exclusive_sets = {
  run_with_missing_fields = true,
  field_sources = { "set1", "set2" },
  required_fields = { set1 = true, set2 = true },
  fn = function(entity, arg)
    local set1, set2 = {}, {}
    for _, name in ipairs(arg.set1) do
      if is_nonempty(get_field(entity, name)) then
        set1[#set1 + 1] = name
      end
    end
    for _, name in ipairs(arg.set2) do
      if is_nonempty(get_field(entity, name)) then
        set2[#set2 + 1] = name
      end
    end
    if #set1 > 0 and #set2 > 0 then
      return nil, fmt("(%s), (%s)", quoted_list(set1), quoted_list(set2))
    end
    return true
  end,
}


local function entity_error(errors, msg)
  local list = errors["@entity"]
  if not list then
    list = {}
    errors["@entity"] = list
  end
  insert(list, msg)
end


-- Kong's `run_entity_check` (full_check = true).
local function run_entity_check(lookup, name, input, arg, errors, ctx)
  local checker = CHECKERS[name]
  if not checker then
    error("unknown entity check: " .. tostring(name), 4)
  end

  local names, required = {}, {}
  if checker.field_sources then
    local req = {}
    for k, v in pairs(checker.required_fields or {}) do
      req[type(k) == "number" and v or k] = true
    end
    for _, source in ipairs(checker.field_sources) do
      local v = arg[source]
      if type(v) == "string" then
        v = { v }
      end
      if type(v) == "table" then
        for _, fname in ipairs(v) do
          insert(names, fname)
          if req[source] then
            required[fname] = true
          end
        end
      end
    end
  else
    for _, fname in ipairs(arg) do
      insert(names, fname)
      required[fname] = true
    end
  end

  local missing
  local all_nil, all_ok = true, true
  for _, fname in ipairs(names) do
    local value = get_field(input, fname)
    local def = lookup(fname)
    if value == nil then
      if not checker.run_with_missing_fields
         and not arg.run_with_missing_fields
         and required[fname] and not (def and def.nilable)
      then
        missing = missing or {}
        insert(missing, fname)
      end
    else
      all_nil = false
      -- references are resolved later: nothing to check now
      if def and def.type == "string" and def.referenceable
         and is_reference(value)
      then
        return
      end
    end
    if errors[fname] then
      all_ok = false
    end
  end

  if not all_ok and not checker.run_with_invalid_fields
     and not arg.run_with_invalid_fields
  then
    return
  end
  if all_nil and not checker.run_with_missing_fields then
    return
  end
  if missing then
    for _, fname in ipairs(missing) do
      set_field(errors, fname, ERRORS.REQUIRED_FOR_ENTITY_CHECK)
    end
    return
  end

  local ok, err, custom = checker.fn(input, arg, lookup, errors, ctx)
  if ok then
    return
  end
  if custom then
    entity_error(errors, custom)
    return
  end
  local f = ERRORS[upper(name)]
  if f and err then
    err = fmt(f, err)
  end
  if not err then
    local data = gsub(_M.pretty({ name = arg }), "%s+", " ")
    err = fmt(ERRORS.ENTITY_CHECK, name, data)
  end
  entity_error(errors, err)
end


local function run_self_check(schema, input, errors)
  local ok = true
  for fname, field in each_field(schema) do
    if input[fname] == nil and not field.nilable then
      errors[fname] = ERRORS.REQUIRED_FOR_ENTITY_CHECK
      ok = false
    end
  end
  if not ok then
    return
  end
  local err
  ok, err = schema.check(input)
  if ok then
    return
  end
  if type(err) == "string" then
    entity_error(errors, err)
  elseif type(err) == "table" then
    for k, v in pairs(err) do
      if type(k) == "number" then
        entity_error(errors, v)
      else
        errors[k] = v
      end
    end
  else
    entity_error(errors, ERRORS.CHECK)
  end
end


local function run_checks(lookup, checks, input, errors, ctx)
  if type(checks) ~= "table" then
    return
  end
  for _, check in ipairs(checks) do
    local name, arg = next(check)
    if arg and arg ~= NULL then
      run_entity_check(lookup, name, input, arg, errors, ctx)
    end
  end
end


local function mutually_required(entity, names)
  local n = count_nonempty(entity, names)
  if n == 0 or n == #names then
    return true
  end
  return nil, quoted_list(names)
end


-- Kong's transformation checks: the `input` and `needs` fields of a
-- transformation are set together or not at all.
local function run_transformation_checks(schema, input, errors)
  local list = schema.transformations
  if type(list) ~= "table" then
    return
  end
  for _, t in ipairs(list) do
    if t.input or t.needs then
      local args = {}
      local none_set = true
      for _, name in ipairs(t.input or {}) do
        if is_nonempty(get_field(input, name)) then
          none_set = false
        end
        args[#args + 1] = name
      end
      for _, name in ipairs(t.needs or {}) do
        args[#args + 1] = name
      end
      if not none_set then
        local ok, err = mutually_required(input, args)
        if not ok then
          entity_error(errors, fmt(ERRORS.MUTUALLY_REQUIRED, err))
        else
          ok, err = mutually_required(input, t.input or {})
          if not ok then
            entity_error(errors, fmt(ERRORS.MUTUALLY_REQUIRED, err))
          end
        end
      end
    end
  end
end


--- Kong's `Schema:validate(input)` (a full check) on a table produced by
-- process_auto_fields. Returns true, or nil and the error table.
validate = function(schema, input, ctx)
  if type(input) ~= "table" then
    error(ERRORS.BAD_INPUT, 2)
  end
  local subschema = get_subschema(schema, input)
  local by_name = index_of(schema).by_name
  local errors = {}

  for k, v in pairs(input) do
    local field = by_name[tostring(k)]
    if field and subschema then
      field = index_of(subschema).by_name[k] or field
    end
    if not field then
      errors[k] = ERRORS.UNKNOWN
    elseif field.type == "self" then
      local pok, _, err = pcall(validate_field, input, v, ctx)
      if pok then
        errors[k] = err
      else
        errors[k] = ERRORS.SCHEMA_CANNOT_VALIDATE
      end
    else
      local _, err = validate_field(field, v, ctx)
      errors[k] = err
    end
  end

  for name, field in each_field(schema, input) do
    if field.required and (input[name] == nil or input[name] == NULL) then
      errors[name] = ERRORS.REQUIRED
    end
  end

  local function lookup(name)
    return get_schema_field(schema, name, subschema)
  end
  run_checks(lookup, schema.entity_checks, input, errors, ctx)
  if subschema then
    run_checks(lookup, subschema.entity_checks, input, errors, ctx)
  end
  if type(schema.check) == "function" then
    run_self_check(schema, input, errors)
  end
  run_transformation_checks(schema, input, errors)
  if subschema then
    run_transformation_checks(subschema, input, errors)
  end

  if next(errors) then
    return nil, errors
  end
  return true
end
_M.validate = validate


-- Removes nulls recursively (Kong's "select" view without nulls).
local function strip_nulls(schema, data)
  for key, field in each_field(schema, data) do
    local v = data[key]
    if v == NULL then
      data[key] = nil
    elseif type(v) == "table" then
      if field.type == "record" and type(field.fields) == "table" then
        strip_nulls(field, v)
      elseif field.type == "array" or field.type == "set" then
        local el = field.elements
        if type(el) == "table" and el.type == "record"
           and type(el.fields) == "table"
        then
          for _, e in ipairs(v) do
            if type(e) == "table" then
              strip_nulls(el, e)
            end
          end
        end
      elseif field.type == "map" then
        local vals = field.values
        if type(vals) == "table" and vals.type == "record"
           and type(vals.fields) == "table"
        then
          for _, e in pairs(v) do
            if type(e) == "table" then
              strip_nulls(vals, e)
            end
          end
        end
      end
    end
  end
  return data
end
_M.strip_nulls = strip_nulls


local function merge_values(schema, top, bottom)
  local out = {}
  if type(bottom) ~= "table" then
    bottom = {}
  end
  for k, v in pairs(bottom) do
    out[k] = v
  end
  for k, v in pairs(top) do
    out[k] = v
  end
  for key, field in each_field(schema, bottom) do
    local tv = top[key]
    if tv == nil then
      out[key] = bottom[key]
    elseif field.type == "record" and not field.abstract
           and type(tv) == "table" and type(field.fields) == "table"
    then
      out[key] = merge_values(field, tv, bottom[key])
    else
      out[key] = tv
    end
  end
  return out
end


--- Kong's `Schema:transform(input)` for writes: runs each
-- transformation's `on_write` (with the values of its `input` and `needs`
-- fields, all non-empty, or with the whole entity) and merges the result.
-- Returns the new table, or nil and an error message.
function _M.transform(schema, input)
  local list = schema.transformations
  if type(list) ~= "table" then
    return input
  end
  local output
  for _, t in ipairs(list) do
    local fn = t.on_write
    if fn then
      local args, skip = {}, false
      if t.input or t.needs then
        for _, names in ipairs({ t.input or {}, t.needs or {} }) do
          for _, name in ipairs(names) do
            local v = get_field(output or input, name)
            if not is_nonempty(v) then
              skip = true
            end
            args[#args + 1] = v
          end
        end
      else
        args[1] = output or input
      end
      if not skip then
        local data, err = fn(unpack(args))
        if err then
          return nil, fmt(ERRORS.TRANSFORMATION_ERROR, tostring(err))
        end
        output = merge_values(schema, data or {}, output or input)
      end
    end
  end
  return output or input
end


--- Validates the table `input` against `schema` (see the header). Returns
-- the normalized copy (nulls removed), or that copy and an error table.
function _M.validate_record(schema, input, ctx)
  if type(input) ~= "table" then
    error(ERRORS.BAD_INPUT, 2)
  end
  local data, errs = process_auto_fields(schema, input, ctx)
  if not data then
    return {}, errs
  end
  local ok, verrs = validate(schema, data, ctx)
  local out = strip_nulls(schema, data)
  if not ok then
    return out, verrs
  end
  return out
end


--- Flattens a Kong error table into a sorted list of `{ path, message }`,
-- with `path` an array of keys ("@entity" errors have an empty path) and
-- entity errors of a level after its field errors.
function _M.flatten_errors(errs, prefix, out)
  out = out or {}
  prefix = prefix or {}
  local keys = {}
  for k in pairs(errs) do
    if k ~= "@entity" then
      keys[#keys + 1] = k
    end
  end
  sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then
      return ta == "number"
    end
    return a < b
  end)
  for _, k in ipairs(keys) do
    local path = { unpack(prefix) }
    path[#path + 1] = k
    local e = errs[k]
    if type(e) == "table" then
      _M.flatten_errors(e, path, out)
    else
      out[#out + 1] = { path = path, message = e }
    end
  end
  local ent = errs["@entity"]
  if ent then
    for _, msg in ipairs(ent) do
      out[#out + 1] = { path = { unpack(prefix) }, message = msg }
    end
  end
  return out
end


-- ------------------------------------------------------------------------
-- Reusable value checks (Kong's typedefs custom validators), for use as
-- `custom_validator` in entity definitions.

local checks = {}
_M.checks = checks


local function valid_ipv4(s)
  local a, b, c, d = match(s, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then
    return false
  end
  for _, x in ipairs({ a, b, c, d }) do
    if #x > 3 or tonumber(x) > 255 then
      return false
    end
  end
  return true
end
checks.valid_ipv4 = valid_ipv4


local function valid_ipv6(s)
  if not find(s, ":", 1, true) or find(s, "[^%x:%.]") then
    return false
  end
  local v4 = match(s, ":(%d+%.%d+%.%d+%.%d+)$")
  if v4 then
    if not valid_ipv4(v4) then
      return false
    end
    s = sub(s, 1, #s - #v4) .. "0:0"
  end
  local dbl = 0
  for _ in s:gmatch("::") do
    dbl = dbl + 1
  end
  if dbl > 1 or find(s, ":::", 1, true) then
    return false
  end
  local groups = 0
  for g in (s .. ":"):gmatch("([^:]*):") do
    if #g > 4 then
      return false
    end
    if g ~= "" then
      groups = groups + 1
    end
  end
  if dbl == 1 then
    return groups < 8
  end
  return groups == 8 and not find(s, "^:") and not find(s, ":$")
end
checks.valid_ipv6 = valid_ipv6


-- Kong's normalize_ip, reduced: splits "host[:port]", "[v6][:port]".
-- Returns { type = "ipv4"|"ipv6"|"name", host, port } or nil, err.
local function parse_host(s)
  local v6, rest = match(s, "^%[([^%]]*)%](.*)$")
  if v6 then
    if not valid_ipv6(v6) then
      return nil, "invalid value"
    end
    if rest == "" then
      return { type = "ipv6", host = v6 }
    end
    local port = match(rest, "^:(%d+)$")
    if not port or tonumber(port) > 65535 then
      return nil, "invalid port number"
    end
    return { type = "ipv6", host = v6, port = tonumber(port) }
  end
  if valid_ipv6(s) then
    return { type = "ipv6", host = s }
  end
  local host, port = match(s, "^([^:]+):(%d*)$")
  if host then
    if port == "" or tonumber(port) > 65535 then
      return nil, "invalid port number"
    end
  else
    host = s
  end
  if find(host, ":", 1, true) then
    return nil, "invalid value"
  end
  local t
  if valid_ipv4(host) then
    t = "ipv4"
  elseif match(host, "^[%w%-%._]+$") and not find(host, "%.%.")
         and not find(host, "^%.") and not find(host, "^%-")
  then
    t = "name"
  else
    return nil, "invalid value"
  end
  return { type = t, host = host, port = port and tonumber(port) or nil }
end
checks.parse_host = parse_host


function checks.host(host)
  local res, err = parse_host(host)
  if err == "invalid port number" or (res and res.port) then
    return nil, "must not have a port"
  end
  if not res then
    return nil, "invalid value: " .. host
  end
  return true
end


function checks.host_with_optional_port(host)
  local res, err = parse_host(host)
  if not res then
    return nil, err == "invalid port number" and err
                or "invalid value: " .. host
  end
  return true
end


function checks.wildcard_host(host)
  return checks.host_with_optional_port((gsub(host, "%*", "abc")))
end


function checks.sni(host)
  local res, err = parse_host(host)
  if err == "invalid port number" or (res and res.port) then
    return nil, "must not have a port"
  end
  if not res then
    return nil, "invalid value: " .. host
  end
  if res.type ~= "name" then
    return nil, "must not be an IP"
  end
  return true
end


function checks.ip_or_cidr(s)
  local ip, bits = match(s, "^([^/]+)/(%d+)$")
  ip = ip or s
  local ok = false
  if valid_ipv4(ip) then
    ok = bits == nil or tonumber(bits) <= 32
  elseif valid_ipv6(ip) then
    ok = bits == nil or tonumber(bits) <= 128
  end
  if ok and (bits ~= nil or not find(s, "/", 1, true)) then
    return true
  end
  return nil, "invalid ip or cidr range: '" .. s .. "'"
end


local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = byte(s, i)
    local len
    if c < 0x80 then
      len = 1
    elseif c >= 0xc2 and c <= 0xdf then
      len = 2
    elseif c >= 0xe0 and c <= 0xef then
      len = 3
    elseif c >= 0xf0 and c <= 0xf4 then
      len = 4
    else
      return false, i
    end
    for j = i + 1, i + len - 1 do
      local cc = byte(s, j)
      if not cc or cc < 0x80 or cc > 0xbf then
        return false, i
      end
    end
    i = i + len
  end
  return true
end


-- valid UTF-8 whose characters all match the character class `pattern`;
-- else nil and Kong's message (invalid(s) for a bad character)
local function utf8_of(s, pattern, invalid)
  local ok, pos = valid_utf8(s)
  if not ok then
    return nil, "invalid utf-8 character sequence detected at position "
                .. tostring(pos)
  end
  if not match(s, pattern) then
    return nil, invalid(s)
  end
  return true
end


function checks.utf8_name(name)
  return utf8_of(name, "^[%w%.%-_~\128-\244]+$", function(v)
    return "invalid value '" .. v .. "': the only accepted ascii "
           .. "characters are alphanumerics or ., -, _, and ~"
  end)
end


function checks.tag(tag)
  return utf8_of(tag, "^[ \033-\043\045\046\048-\126\128-\244]+$", function(v)
    return "invalid tag '" .. v .. "': expected printable ascii "
           .. "(except `,` and `/`) or valid utf-8 sequences"
  end)
end


function checks.header_name(name)
  if match(name, "^[%w_%-]+$") then
    return true
  end
  return nil, "bad header name '" .. name .. "', allowed characters are "
              .. "A-Z, a-z, 0-9, '_', and '-'"
end


local function check_percent(path)
  local raw = gsub(path, "%%%x%x", "___")
  local at = find(raw, "%", 1, true)
  if at then
    return nil, "invalid url-encoded value: '" .. sub(raw, at, at + 2) .. "'"
  end
  return true
end


--- Kong's service path check (RFC 3986 characters, percent-encoding).
function checks.path(path)
  if not match(path, "^/[%w%.%-_~/%%:@!%$&'%(%)%*%+,;=]*$") then
    return nil, "invalid path: '" .. path .. "' (characters outside of the "
                .. "reserved list of RFC 3986 found)"
  end
  return check_percent(path)
end


local UNRESERVED = "[%w%-%._~]"


--- Kong's path normalization (kong.tools.uri normalize, with the
-- percent-encoding of unreserved characters decoded and dot segments
-- removed).
function checks.normalize_path(path)
  path = gsub(path, "%%(%x%x)", function(h)
    local c = char(tonumber(h, 16))
    if match(c, UNRESERVED) then
      return c
    end
    return "%" .. upper(h)
  end)
  if not find(path, "/%.%.?/") and not find(path, "/%.%.?$") then
    return path
  end
  local segs = {}
  local trailing = find(path, "/%.%.?$") ~= nil or sub(path, -1) == "/"
  for seg in gsub(path, "^/", ""):gmatch("([^/]*)") do
    if seg == ".." then
      segs[#segs] = nil
    elseif seg ~= "." and seg ~= "" then
      segs[#segs + 1] = seg
    end
  end
  local out = "/" .. concat(segs, "/")
  if trailing and out ~= "/" then
    out = out .. "/"
  end
  return out
end


--- Kong's router path check: percent-encoding, normalized form for plain
-- paths, `ctx.regex_check` for "~" regex paths.
function checks.router_path(path, ctx)
  local ok, err = check_percent(path)
  if not ok then
    return nil, err
  end

  if sub(path, 1, 1) ~= "~" then
    local normalized = checks.normalize_path(path)
    if normalized ~= path then
      return nil, "non-normalized path, consider use '" .. normalized
                  .. "' instead"
    end
    return true
  end

  local check = ctx and ctx.regex_check
  if not check then
    return true
  end
  local regex = sub(path, 2)
  local rok, rerr = check(regex)
  if not rok then
    return nil, fmt("invalid regex: '%s' (PCRE returned: %s)", regex,
                    tostring(rerr))
  end
  return true
end



return _M
