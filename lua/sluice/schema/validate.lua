-- A data-driven validator for Kong-style schema definitions.
--
-- A schema is a record definition: `{ fields = { { name = def }, ... },
-- entity_checks = { ... }, subschema_key = "...", subschemas = { ... } }`,
-- the same shape as Kong's `kong/db/schema/entities/*.lua`, so that entity
-- and (later) plugin schemas can be written as in Kong. A field definition
-- is a table with `type` (string, number, integer, boolean, array, set, map,
-- record, foreign, any) and optional attributes: required, default, err,
-- elements, keys, values, fields, entity_checks and the validators listed in
-- VALIDATORS_ORDER. Messages are Kong's (`kong/db/schema/init.lua`).
--
-- `_M.validate_record(schema, input, ctx)` returns a normalized copy of the
-- input (defaults filled in, null/absent fields dropped, sets deduplicated)
-- and nil, or the partial copy and an error table shaped like Kong's:
-- `{ field = "msg", array = { [2] = "msg" }, record = { sub = "msg" },
-- ["@entity"] = { "msg", ... } }`.
--
-- `ctx` is optional and passed to custom validators as their third argument
-- (e.g. `ctx.regex_check`).

local cjson = require "cjson.safe"


local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local tostring = tostring
local tonumber = tonumber
local unpack = unpack
local setmetatable = setmetatable
local getmetatable = getmetatable
local error = error
local floor = math.floor
local huge = math.huge
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
  MUTUALLY_EXCLUSIVE_SETS   = "these sets are mutually exclusive: %s",
  -- field presence
  BAD_INPUT                 = "expected an input table",
  REQUIRED                  = "required field missing",
  UNKNOWN                   = "unknown field",
  -- entity checks
  REQUIRED_FOR_ENTITY_CHECK = "field required for entity check",
  ENTITY_CHECK              = "failed entity check: %s(%s)",
  CHECK                     = "entity check failed",
  CONDITIONAL               = "failed conditional validation given value of "
                              .. "field '%s'",
  AT_LEAST_ONE_OF           = "at least one of these fields must be "
                              .. "non-empty: %s",
  CONDITIONAL_AT_LEAST_ONE_OF = "at least one of these fields must be "
                                .. "non-empty: %s",
  ONLY_ONE_OF               = "only one of these fields must be non-empty: %s",
  DISTINCT                  = "values of these fields must be distinct: %s",
  MUTUALLY_REQUIRED         = "all or none of these fields must be set: %s",
  MUTUALLY_EXCLUSIVE        = "only one or none of these fields must be set: "
                              .. "%s",
  -- schema errors
  SCHEMA_TYPE               = "invalid type: %s",
  SCHEMA_MISSING_ATTRIBUTE  = "error in schema definition: missing "
                              .. "attribute %s",
}


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
  "mutually_exclusive_subsets",

  -- other
  "custom_validator",
}


local UUID_PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-"
                     .. "%x%x%x%x%x%x%x%x%x%x%x%x$"


local _M = {
  ERRORS = ERRORS,
  VALIDATORS_ORDER = VALIDATORS_ORDER,
  NULL = NULL,
}


local function is_null(v)
  return v == nil or v == NULL
end


--- True if `v` is nil, null, an empty string or an empty table.
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


--- True if `t` is a table whose keys are exactly 1..n.
local function is_sequence(t)
  if type(t) ~= "table" then
    return false
  end
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k ~= floor(k) then
      return false
    end
    n = n + 1
  end
  for i = 1, n do
    if t[i] == nil then
      return false
    end
  end
  return true
end
_M.is_sequence = is_sequence


local function deep_copy(v)
  if type(v) ~= "table" then
    return v
  end
  local t = {}
  for k, x in pairs(v) do
    t[k] = deep_copy(x)
  end
  return setmetatable(t, getmetatable(v))
end
_M.deep_copy = deep_copy


local function quoted_list(words)
  local out = {}
  for i, w in ipairs(words) do
    out[i] = "'" .. tostring(w) .. "'"
  end
  return concat(out, ", ")
end
_M.quoted_list = quoted_list


local function list_str(list)
  local out = {}
  for i, v in ipairs(list) do
    out[i] = tostring(v)
  end
  return concat(out, ", ")
end


-- "a.b.c" lookups, as Kong's get_field/set_field
local function get_field(t, name)
  if t == nil then
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


local function length_of(value, field)
  if type(value) == "string" then
    return #value
  end
  local n = 0
  if field.type == "map" or field.type == "record" then
    for _ in pairs(value) do
      n = n + 1
    end
    return n
  end
  return #value
end


local VALIDATORS = {
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
    return nil, fmt(ERRORS.NE, tostring(value))
  end,

  one_of = function(value, options)
    for _, o in ipairs(options) do
      if value == o then
        return true
      end
    end
    return nil, fmt(ERRORS.ONE_OF, list_str(options))
  end,

  not_one_of = function(value, options)
    for _, o in ipairs(options) do
      if value == o then
        return nil, fmt(ERRORS.NOT_ONE_OF, list_str(options))
      end
    end
    return true
  end,

  gt = function(value, limit)
    if value > limit then
      return true
    end
    return nil, fmt(ERRORS.GT, tostring(limit))
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

  is_regex = function(value, _, _, ctx)
    local check = ctx and ctx.regex_check
    if not check then
      return true
    end
    local ok, err = check(value)
    if ok then
      return true
    end
    return nil, fmt(ERRORS.IS_REGEX, tostring(err or value))
  end,

  between = function(value, limits)
    if value < limits[1] or value > limits[2] then
      return nil, fmt(ERRORS.BETWEEN, limits[1], limits[2])
    end
    return true
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

  starts_with = function(value, prefix)
    if sub(value, 1, #prefix) == prefix then
      return true
    end
    return nil, fmt(ERRORS.STARTS_WITH, prefix)
  end,

  match = function(value, pattern)
    if match(value, pattern) then
      return true
    end
    return nil, fmt(ERRORS.MATCH, value)
  end,

  not_match = function(value, pattern)
    if match(value, pattern) then
      return nil, fmt(ERRORS.NOT_MATCH, value)
    end
    return true
  end,

  match_all = function(value, list)
    for _, m in ipairs(list) do
      if not match(value, m.pattern) then
        return nil, m.err or fmt(ERRORS.MATCH_ALL, value)
      end
    end
    return true
  end,

  match_none = function(value, list)
    for _, m in ipairs(list) do
      if match(value, m.pattern) then
        return nil, m.err or fmt(ERRORS.MATCH_NONE, value)
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
    return nil, arg.err or fmt(ERRORS.MATCH_ANY, value)
  end,

  contains = function(value, wanted)
    for _, v in ipairs(value) do
      if v == wanted then
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
    for _, v in ipairs(value) do
      local s = owner[v]
      if s and not seen[s] then
        seen[s] = true
        used[#used + 1] = "(" .. quoted_list(s) .. ")"
      end
    end
    if #used <= 1 then
      return true
    end
    return nil, fmt(ERRORS.MUTUALLY_EXCLUSIVE_SETS, concat(used, ", "))
  end,

  custom_validator = function(value, fn, _, ctx)
    return fn(value, ctx)
  end,
}
_M.validators = VALIDATORS


local validate_record -- forward


-- Runs the type check and the attribute validators of `field` on a present
-- (non-null) value. Returns the normalized value, or nil and an error
-- (a string, or a table for aggregate values).
local function validate_value(field, value, ctx)
  local ftype = field.type
  local out = value

  if ftype == "string" then
    if type(value) ~= "string" then
      return nil, ERRORS.STRING
    end

  elseif ftype == "integer" then
    if type(value) ~= "number" or value ~= floor(value)
       or value == huge or value == -huge
    then
      return nil, ERRORS.INTEGER
    end

  elseif ftype == "number" then
    if type(value) ~= "number" or value ~= value then
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

  elseif ftype == "array" or ftype == "set" then
    if not is_sequence(value) then
      return nil, ftype == "array" and ERRORS.ARRAY or ERRORS.SET
    end
    local elements = field.elements
    if not elements then
      return nil, fmt(ERRORS.SCHEMA_MISSING_ATTRIBUTE, "elements")
    end
    local errs
    local seen = {}
    out = setmetatable({}, cjson.array_mt)
    for i = 1, #value do
      local v = value[i]
      local nv, err
      if v == NULL then
        err = ERRORS.REQUIRED
      else
        nv, err = validate_value(elements, v, ctx)
      end
      if err ~= nil then
        errs = errs or {}
        errs[i] = err
      elseif ftype == "array" or type(nv) == "table" then
        out[#out + 1] = nv
      elseif not seen[nv] then
        seen[nv] = true
        out[#out + 1] = nv
      end
    end
    if errs then
      return nil, errs
    end

  elseif ftype == "map" then
    if type(value) ~= "table" then
      return nil, ERRORS.MAP
    end
    if not field.keys or not field.values then
      return nil, fmt(ERRORS.SCHEMA_MISSING_ATTRIBUTE,
                      field.keys and "values" or "keys")
    end
    local errs
    out = {}
    for k, v in pairs(value) do
      local nk, err = validate_value(field.keys, k, ctx)
      local nv
      if err == nil then
        if v == NULL then
          err = ERRORS.REQUIRED
        else
          nv, err = validate_value(field.values, v, ctx)
        end
      end
      if err ~= nil then
        errs = errs or {}
        errs[tostring(k)] = err
      else
        out[nk] = nv
      end
    end
    if errs then
      return nil, errs
    end

  elseif ftype == "record" then
    if type(value) ~= "table" then
      return nil, ERRORS.RECORD
    end
    if not field.fields then
      return nil, fmt(ERRORS.SCHEMA_MISSING_ATTRIBUTE, "fields")
    end
    local errs
    out, errs = validate_record(field, value, ctx)
    if errs then
      return nil, errs
    end

  elseif ftype == "foreign" then
    if type(value) ~= "table" then
      return nil, ERRORS.RECORD
    end
    for k in pairs(value) do
      if k ~= "id" then
        return nil, { [tostring(k)] = ERRORS.UNKNOWN }
      end
    end
    if type(value.id) ~= "string" then
      return nil, { id = value.id == nil and ERRORS.REQUIRED or ERRORS.STRING }
    end
    if not VALIDATORS.uuid(value.id) then
      return nil, { id = ERRORS.UUID }
    end
    out = { id = value.id }

  elseif ftype ~= "any" then
    return nil, fmt(ERRORS.SCHEMA_TYPE, tostring(ftype))
  end

  -- Kong: empty strings are not accepted unless the schema says otherwise
  local len_min_default = ftype == "string" and field.len_min == nil

  for _, name in ipairs(VALIDATORS_ORDER) do
    local arg = field[name]
    if name == "len_min" and len_min_default then
      arg = 1
    end
    if arg ~= nil then
      local ok, err = VALIDATORS[name](out, arg, field, ctx)
      if not ok then
        if field.err then
          err = field.err
        elseif not err then
          err = fmt(ERRORS[upper(name)] or ERRORS.VALIDATION,
                    tostring(out))
        end
        return nil, err
      end
    end
  end

  return out
end


--- Validates one field value. `value` may be nil or null (absent). Returns
-- the normalized value (nil when absent and without default), or nil and an
-- error (string or table).
local function validate_field(field, value, ctx)
  if is_null(value) then
    if field.default ~= nil and field.default ~= NULL then
      local d = deep_copy(field.default)
      if (field.type == "array" or field.type == "set")
         and type(d) == "table"
      then
        setmetatable(d, cjson.array_mt)
      end
      return d
    end
    if field.eq ~= nil and field.eq ~= NULL then
      return nil, field.err or fmt(ERRORS.EQ, tostring(field.eq))
    end
    if field.required then
      if field.type == "record" and field.fields then
        -- expand a missing record to get its nested defaults
        local out, errs = validate_record(field, {}, ctx)
        if errs then
          return nil, errs
        end
        return out
      end
      return nil, ERRORS.REQUIRED
    end
    return nil
  end

  if field.eq == NULL then
    return nil, field.err or fmt(ERRORS.EQ, "null")
  end

  return validate_value(field, value, ctx)
end
_M.validate_field = validate_field


-- Entity checkers, as Kong's `Schema.entity_checkers`. `fn(entity, arg,
-- schema, errors, ctx)` returns true, or nil, err[, custom_err]: `err` is
-- formatted into ERRORS[NAME], `custom_err` replaces the whole message.
local CHECKERS = {}
_M.entity_checkers = CHECKERS


local function field_def(schema, name)
  local dot = find(name, ".", 1, true)
  if not dot then
    return schema.fields_by_name and schema.fields_by_name[name]
  end
  local hd = schema.fields_by_name and schema.fields_by_name[sub(name, 1,
                                                                 dot - 1)]
  if not hd or not hd.fields then
    return nil
  end
  return field_def(_M.compile(hd), sub(name, dot + 1))
end


-- Does `value` (of field `fname`) pass the validators in `m`? `m` gets the
-- type of the field (and of its elements, for `m.elements`).
local function matches(schema, fname, m, value, ctx)
  local base = field_def(schema, fname)
  local def = { type = base and base.type or "any" }
  for k, v in pairs(m) do
    if k ~= "elements" then
      def[k] = v
    end
  end
  if base and (base.type == "set" or base.type == "array") then
    local el = { type = base.elements and base.elements.type or "any" }
    for k, v in pairs(m.elements or {}) do
      el[k] = v
    end
    def.elements = el
  elseif base and base.type == "record" then
    def.type = "any"
  end
  local _, err = validate_field(def, value, ctx)
  return err == nil, err
end


CHECKERS.at_least_one_of = {
  run_with_missing_fields = true,
  run_with_invalid_fields = true,
  fn = function(entity, names)
    for _, name in ipairs(names) do
      if is_nonempty(get_field(entity, name)) then
        return true
      end
    end
    return nil, quoted_list(names)
  end,
}


CHECKERS.only_one_of = {
  run_with_invalid_fields = true,
  fn = function(entity, names)
    local n = 0
    for _, name in ipairs(names) do
      if is_nonempty(get_field(entity, name)) then
        n = n + 1
      end
    end
    if n == 1 then
      return true
    end
    return nil, quoted_list(names)
  end,
}


CHECKERS.mutually_required = {
  run_with_missing_fields = true,
  run_with_invalid_fields = true,
  fn = function(entity, names)
    local n = 0
    for _, name in ipairs(names) do
      if is_nonempty(get_field(entity, name)) then
        n = n + 1
      end
    end
    if n == 0 or n == #names then
      return true
    end
    return nil, quoted_list(names)
  end,
}


CHECKERS.mutually_exclusive = {
  run_with_missing_fields = true,
  run_with_invalid_fields = true,
  fn = function(entity, names)
    local n = 0
    for _, name in ipairs(names) do
      if is_nonempty(get_field(entity, name)) then
        n = n + 1
      end
    end
    if n <= 1 then
      return true
    end
    return nil, quoted_list(names)
  end,
}


CHECKERS.distinct = {
  run_with_invalid_fields = true,
  fn = function(entity, names)
    local seen = {}
    for _, name in ipairs(names) do
      local v = get_field(entity, name)
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
  run_with_invalid_fields = true,
  field_sources = { "if_field", "then_field" },
  required_fields = { if_field = true },
  fn = function(entity, arg, schema, errors, ctx)
    local if_value = get_field(entity, arg.if_field)
    if not matches(schema, arg.if_field, arg.if_match, if_value, ctx) then
      return true
    end
    local then_value = get_field(entity, arg.then_field)
    if arg.then_match.required == true and is_null(then_value) then
      set_field(errors, arg.then_field, ERRORS.REQUIRED)
      return nil, arg.if_field
    end
    local ok, err = matches(schema, arg.then_field, arg.then_match,
                            then_value, ctx)
    if ok then
      return true
    end
    set_field(errors, arg.then_field, err)
    return nil, arg.if_field,
           arg.then_err and fmt(arg.then_err, arg.if_field) or nil
  end,
}


CHECKERS.conditional_at_least_one_of = {
  run_with_missing_fields = true,
  run_with_invalid_fields = true,
  field_sources = { "if_field", "then_at_least_one_of",
                    "else_then_at_least_one_of" },
  required_fields = { if_field = true },
  fn = function(entity, arg, schema, _, ctx)
    local if_value = get_field(entity, arg.if_field)
    if if_value == nil then
      return true
    end

    local list, custom
    if matches(schema, arg.if_field, arg.if_match, if_value, ctx) then
      list, custom = arg.then_at_least_one_of, arg.then_err

    elseif arg.else_match
           and matches(schema, arg.if_field, arg.else_match, if_value, ctx)
    then
      list, custom = arg.else_then_at_least_one_of, arg.else_then_err

    else
      return true
    end

    for _, name in ipairs(list) do
      if is_nonempty(get_field(entity, name)) then
        return true
      end
    end
    local quoted = quoted_list(list)
    return nil, quoted, custom and fmt(custom, quoted) or nil
  end,
}


CHECKERS.custom_entity_check = {
  field_sources = { "field_sources" },
  required_fields = { field_sources = true },
  fn = function(entity, arg, _, _, ctx)
    return arg.fn(entity, ctx)
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


local function run_entity_check(schema, name, arg, entity, errors, ctx)
  local checker = CHECKERS[name]
  if not checker then
    error("unknown entity check: " .. tostring(name), 3)
  end

  local names, required = {}, {}
  if checker.field_sources then
    for _, source in ipairs(checker.field_sources) do
      local v = arg[source]
      if type(v) == "string" then
        v = { v }
      end
      if type(v) == "table" then
        for _, fname in ipairs(v) do
          insert(names, fname)
          if checker.required_fields[source] then
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

  local all_nil, all_ok, missing = true, true, nil
  for _, fname in ipairs(names) do
    local v = get_field(entity, fname)
    if v == nil then
      if not checker.run_with_missing_fields and required[fname] then
        missing = missing or {}
        insert(missing, fname)
      end
    else
      all_nil = false
    end
    if get_field(errors, fname) ~= nil then
      all_ok = false
    end
  end

  if not all_ok and not checker.run_with_invalid_fields then
    return
  end
  if all_nil and not checker.run_with_missing_fields then
    return
  end
  if missing then
    for _, fname in ipairs(missing) do
      if get_field(errors, fname) == nil then
        set_field(errors, fname, ERRORS.REQUIRED_FOR_ENTITY_CHECK)
      end
    end
    return
  end

  local ok, err, custom = checker.fn(entity, arg, schema, errors, ctx)
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
  entity_error(errors, err or fmt(ERRORS.ENTITY_CHECK, name, "..."))
end


--- Builds (once) the by-name index of a schema or record definition.
-- Returns the schema.
function _M.compile(schema)
  if type(schema) ~= "table" or type(schema.fields) ~= "table" then
    error("expected a schema with a 'fields' array", 2)
  end
  if schema.fields_by_name then
    return schema
  end
  local by_name, order = {}, {}
  for _, entry in ipairs(schema.fields) do
    local name, def = next(entry)
    by_name[name] = def
    order[#order + 1] = name
  end
  schema.fields_by_name = by_name
  schema.field_order = order
  return schema
end


-- The subschema that applies to `input`: `schema.subschemas[v]` for the
-- value of `schema.subschema_key`, or for the first element of it that has
-- one when the key is a set (Kong's routes by protocols).
local function get_subschema(schema, input)
  local key = schema.subschema_key
  if not key or not schema.subschemas then
    return nil
  end
  local v = input[key]
  if is_null(v) then
    local def = schema.fields_by_name[key]
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


--- Validates the table `input` against `schema` (see the header). Returns
-- the normalized copy and nil, or the copy of the valid part and an error
-- table.
validate_record = function(schema, input, ctx)
  if type(input) ~= "table" then
    error(ERRORS.BAD_INPUT, 2)
  end
  _M.compile(schema)

  local sub_schema = get_subschema(schema, input)
  if sub_schema then
    _M.compile(sub_schema)
  end

  -- `view` is what entity checks see: the normalized values, plus the
  -- given values of invalid fields (as Kong runs checks on the input)
  local out, view, errors = {}, {}, {}

  for _, name in ipairs(schema.field_order) do
    local def = schema.fields_by_name[name]
    if sub_schema and sub_schema.fields_by_name[name] then
      def = sub_schema.fields_by_name[name]
    end
    local v, err = validate_field(def, input[name], ctx)
    if err ~= nil then
      errors[name] = err
      if input[name] ~= NULL then
        view[name] = input[name]
      end
    else
      out[name] = v
      view[name] = v
    end
  end

  for k in pairs(input) do
    if type(k) ~= "string" or not schema.fields_by_name[k] then
      errors[tostring(k)] = ERRORS.UNKNOWN
    end
  end

  local checks = schema.entity_checks
  if checks then
    for _, check in ipairs(checks) do
      local name, arg = next(check)
      run_entity_check(schema, name, arg, view, errors, ctx)
    end
  end
  if sub_schema and sub_schema.entity_checks then
    for _, check in ipairs(sub_schema.entity_checks) do
      local name, arg = next(check)
      run_entity_check(schema, name, arg, view, errors, ctx)
    end
  end

  if next(errors) then
    return out, errors
  end
  return out
end
_M.validate_record = validate_record


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


function checks.utf8_name(name)
  local ok, pos = valid_utf8(name)
  if not ok then
    return nil, "invalid utf-8 character sequence detected at position "
                .. tostring(pos)
  end
  if not match(name, "^[%w%.%-_~\128-\244]+$") then
    return nil, "invalid value '" .. name .. "': the only accepted ascii "
                .. "characters are alphanumerics or ., -, _, and ~"
  end
  return true
end


function checks.tag(tag)
  local ok, pos = valid_utf8(tag)
  if not ok then
    return nil, "invalid utf-8 character sequence detected at position "
                .. tostring(pos)
  end
  if not match(tag, "^[ \033-\043\045\046\048-\126\128-\244]+$") then
    return nil, "invalid tag '" .. tag .. "': expected printable ascii "
                .. "(except `,` and `/`) or valid utf-8 sequences"
  end
  return true
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
