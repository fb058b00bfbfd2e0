-- Kong's MetaSubSchema (`kong/db/schema/metaschema.lua`) as data for
-- sluice.schema.validate: the schema a plugin's schema.lua must satisfy.
--
--   local meta = require "sluice.schema.metaschema"
--   local ok, errs = meta.check_subschema(def)   -- Kong's error table
--
-- Top-level keys are name, fields, entity_checks, shorthand_fields,
-- transformations and check; every field definition is checked for known
-- attributes (with their types), required attributes per type (elements,
-- keys/values, fields) and attributes allowed only on some types.

local validate = require "sluice.schema.validate"


local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local insert = table.insert
local fmt = string.format


local MATCH_LIST = {
  type = "array",
  elements = {
    type = "record",
    fields = {
      { pattern = { type = "string", required = true } },
      { err = { type = "string" } },
    },
  },
}


local MATCH_ANY_LIST = {
  type = "record",
  fields = {
    { patterns = { type = "array", elements = { type = "string" },
                   required = true } },
    { err = { type = "string" } },
  },
}


-- attributes that are validators
local VALIDATORS = {
  { between = { type = "array", elements = { type = "number" },
                len_eq = 2 } },
  { eq = { type = "any" } },
  { ne = { type = "any" } },
  { gt = { type = "number" } },
  { len_eq = { type = "integer" } },
  { len_min = { type = "integer" } },
  { len_max = { type = "integer" } },
  { match = { type = "string" } },
  { not_match = { type = "string" } },
  { match_all = MATCH_LIST },
  { match_none = MATCH_LIST },
  { match_any = MATCH_ANY_LIST },
  { starts_with = { type = "string" } },
  { one_of = { type = "array", elements = { type = "any" } } },
  { not_one_of = { type = "array", elements = { type = "any" } } },
  { contains = { type = "any" } },
  { is_regex = { type = "boolean" } },
  { timestamp = { type = "boolean" } },
  { uuid = { type = "boolean" } },
  { custom_validator = { type = "function" } },
  { mutually_exclusive_subsets = {
      type = "array",
      elements = { type = "array", elements = { type = "string" } },
  } },
}


local TYPE_NAMES = {}
for t in pairs(validate.VALID_TYPES) do
  TYPE_NAMES[#TYPE_NAMES + 1] = t
end
table.sort(TYPE_NAMES)


local DEPRECATION = {
  type = "record",
  fields = {
    { message = { type = "string", required = true } },
    { removal_in_version = { type = "string", required = true } },
    { old_default = { type = "any", required = false } },
    { replaced_with = {
        type = "array",
        required = false,
        elements = {
          type = "record",
          fields = {
            { path = { type = "array", elements = { type = "string" },
                       required = true } },
            { reverse_mapping_function = { type = "function",
                                           required = false } },
          },
        },
    } },
  },
}


-- attributes of a field definition that are not validators
local FIELD_SCHEMA = {
  { type = { type = "string", one_of = TYPE_NAMES, required = true } },
  { required = { type = "boolean" } },
  { reference = { type = "string" } },
  { description = { type = "string", len_min = 10, len_max = 500 } },
  { examples = { type = "array", elements = { type = "any" } } },
  { auto = { type = "boolean" } },
  { unique = { type = "boolean" } },
  { unique_across_ws = { type = "boolean" } },
  { on_delete = { type = "string", one_of = { "restrict", "cascade",
                                              "null" } } },
  { default = { type = "self" } },
  { abstract = { type = "boolean" } },
  { generate_admin_api = { type = "boolean" } },
  { immutable = { type = "boolean" } },
  { err = { type = "string" } },
  { encrypted = { type = "boolean" } },
  { referenceable = { type = "boolean" } },
  { transient = { type = "boolean" } },
  { json_schema = { type = "record", fields = {
      { namespace = { type = "string" } },
      { parent_subschema_key = { type = "string" } },
      { optional = { type = "boolean" } },
      { inline = { type = "any" } },
      { default = { type = "any" } },
  } } },
  { deprecation = DEPRECATION },
}


for _, v in ipairs(VALIDATORS) do
  insert(FIELD_SCHEMA, v)
end


-- all of the above are optional
for _, f in ipairs(FIELD_SCHEMA) do
  local _, def = next(f)
  def.nilable = not def.required
end


local FIELD_ENTITY_CHECKS = {
  { conditional = {
      if_field = "unique_across_ws", if_match = { eq = true },
      then_field = "unique", then_match = { eq = true, required = true },
  } },
}


local FIELDS_ARRAY = {
  type = "array",
  elements = {
    type = "map",
    keys = { type = "string" },
    values = { type = "record", fields = FIELD_SCHEMA,
               entity_checks = FIELD_ENTITY_CHECKS },
    required = true,
    len_eq = 1,
  },
}


local TRANSFORMATIONS_ARRAY = {
  type = "array",
  nilable = true,
  elements = {
    type = "record",
    fields = {
      { input = { type = "array", required = false,
                  elements = { type = "string" } } },
      { needs = { type = "array", required = false,
                  elements = { type = "string" } } },
      { on_write = { type = "function", required = false } },
      { on_read = { type = "function", required = false } },
    },
    entity_checks = {
      { at_least_one_of = { "on_write", "on_read" } },
    },
  },
}


-- recursive attributes
insert(FIELD_SCHEMA, { elements = { type = "record", fields = FIELD_SCHEMA } })
insert(FIELD_SCHEMA, { keys = { type = "record", fields = FIELD_SCHEMA } })
insert(FIELD_SCHEMA, { values = { type = "record", fields = FIELD_SCHEMA } })
insert(FIELD_SCHEMA, { fields = FIELDS_ARRAY })


local CONDITIONAL_VALIDATORS = {
  { required = { type = "boolean" } },
  { elements = { type = "record", fields = FIELD_SCHEMA } },
  { keys = { type = "record", fields = FIELD_SCHEMA } },
  { values = { type = "record", fields = FIELD_SCHEMA } },
}
for _, v in ipairs(VALIDATORS) do
  insert(CONDITIONAL_VALIDATORS, v)
end


local STRINGS = { type = "array", elements = { type = "string" } }


local ENTITY_CHECKERS = {
  { at_least_one_of = STRINGS },
  { conditional_at_least_one_of = {
      type = "record",
      fields = {
        { if_field = { type = "string" } },
        { if_match = { type = "record", fields = CONDITIONAL_VALIDATORS } },
        { then_at_least_one_of = STRINGS },
        { then_err = { type = "string" } },
        { else_match = { type = "record",
                         fields = CONDITIONAL_VALIDATORS } },
        { else_then_at_least_one_of = STRINGS },
        { else_then_err = { type = "string" } },
      },
  } },
  { only_one_of = STRINGS },
  { distinct = STRINGS },
  { conditional = {
      type = "record",
      fields = {
        { if_field = { type = "string" } },
        { if_match = { type = "record", fields = CONDITIONAL_VALIDATORS } },
        { then_field = { type = "string" } },
        { then_match = { type = "record",
                         fields = CONDITIONAL_VALIDATORS } },
        { then_err = { type = "string" } },
      },
  } },
  { custom_entity_check = {
      type = "record",
      fields = {
        { field_sources = STRINGS },
        { fn = { type = "function" } },
        { run_with_missing_fields = { type = "boolean" } },
        { run_with_invalid_fields = { type = "boolean" } },
      },
  } },
  { mutually_required = STRINGS },
  { mutually_exclusive = STRINGS },
  { mutually_exclusive_sets = {
      type = "record",
      fields = {
        { set1 = STRINGS },
        { set2 = STRINGS },
      },
  } },
}


local CHECK_NAMES = {}
for _, c in ipairs(ENTITY_CHECKERS) do
  CHECK_NAMES[#CHECK_NAMES + 1] = (next(c))
end


local ENTITY_CHECKS_SCHEMA = {
  type = "array",
  nilable = true,
  elements = {
    type = "record",
    fields = ENTITY_CHECKERS,
    entity_checks = {
      { only_one_of = CHECK_NAMES },
    },
  },
}


local SHORTHAND_FIELDS_ARRAY = {
  type = "array",
  nilable = true,
  elements = {
    type = "map",
    keys = { type = "string" },
    required = true,
    len_eq = 1,
  },
}


insert(FIELD_SCHEMA, { entity_checks = ENTITY_CHECKS_SCHEMA })
insert(FIELD_SCHEMA, { shorthand_fields = SHORTHAND_FIELDS_ARRAY })


-- shorthands: no record, foreign or function types; `func` required
do
  local shorthand_schema = {}
  for i, f in ipairs(FIELD_SCHEMA) do
    shorthand_schema[i] = f
  end
  local types = {}
  for _, t in ipairs(TYPE_NAMES) do
    if t ~= "record" and t ~= "foreign" and t ~= "function" then
      types[#types + 1] = t
    end
  end
  shorthand_schema[1] = { type = { type = "string", one_of = types,
                                   required = true } }
  insert(shorthand_schema, { func = { type = "function", required = true } })
  insert(shorthand_schema, { translate_backwards = {
    type = "array", elements = { type = "string" }, required = false,
  } })
  SHORTHAND_FIELDS_ARRAY.elements.values = {
    type = "record",
    fields = shorthand_schema,
    entity_checks = FIELD_ENTITY_CHECKS,
  }
end


local META_ERRORS = {
  ATTRIBUTE = "field of type '%s' cannot have attribute '%s'",
  REQUIRED = "field of type '%s' must declare '%s'",
  TABLE = "'%s' must be a table",
  TYPE = "missing type declaration",
  FIELD_EMPTY = "field entry table is empty",
  FIELDS_ARRAY = "each entry in fields must be a sub-table",
}


local REQUIRED_ATTRIBUTES = {
  array = { "elements" },
  set = { "elements" },
  map = { "keys", "values" },
  record = { "fields" },
  json = { "json_schema" },
}


local function set_of(...)
  local t = {}
  for _, k in ipairs({ ... }) do
    t[k] = true
  end
  return t
end


local ATTRIBUTE_TYPES = {
  between = set_of("integer", "number"),
  len_eq = set_of("array", "set", "string", "map"),
  match = set_of("string"),
  one_of = set_of("string", "number", "integer"),
  contains = set_of("array", "set"),
  is_regex = set_of("string"),
  timestamp = set_of("number", "integer"),
  uuid = set_of("string"),
  unique = set_of("string", "number", "integer", "foreign"),
  unique_across_ws = set_of("string", "number", "integer", "foreign"),
  abstract = set_of("string", "number", "integer", "record", "array", "set",
                    "map"),
  json_schema = set_of("json"),
}


local NESTED = { "elements", "keys", "values" }


local check_fields


local function check_field(k, field, errors, parent)
  if not field.type then
    errors[k] = META_ERRORS.TYPE
    return
  end
  local req = REQUIRED_ATTRIBUTES[field.type]
  if req and not (field.abstract and field.type == "record") then
    for _, attr in ipairs(req) do
      if not field[attr] then
        errors[k] = fmt(META_ERRORS.REQUIRED, field.type, attr)
      end
    end
  end
  for attr in pairs(field) do
    local allowed = ATTRIBUTE_TYPES[attr]
    if allowed and not allowed[field.type] then
      errors[k] = fmt(META_ERRORS.ATTRIBUTE, field.type, attr)
    end
  end
  for _, name in ipairs(NESTED) do
    if field[name] then
      if type(field[name]) == "table" then
        check_field(k, field[name], errors, field)
      else
        errors[k] = fmt(META_ERRORS.TABLE, name)
      end
    end
  end
  if type(field.fields) == "table" then
    check_fields(field, errors)
  end
end


check_fields = function(schema, errors)
  for _, item in ipairs(schema.fields) do
    if type(item) ~= "table" then
      errors.fields = META_ERRORS.FIELDS_ARRAY
      break
    end
    local k = next(item)
    if k == nil then
      errors.fields = META_ERRORS.FIELD_EMPTY
      break
    end
    local field = item[k]
    if type(field) == "table" then
      check_field(k, field, errors, schema)
    else
      errors[k] = fmt(META_ERRORS.TABLE, k)
    end
  end
  if next(errors) then
    return nil, errors
  end
  return true
end


local META_SUB_SCHEMA = {
  name = "metasubschema",
  fields = {
    { name = { type = "string", required = true } },
    { fields = FIELDS_ARRAY },
    { entity_checks = ENTITY_CHECKS_SCHEMA },
    { shorthand_fields = SHORTHAND_FIELDS_ARRAY },
    { transformations = TRANSFORMATIONS_ARRAY },
    { check = { type = "function", nilable = true } },
  },
  check = function(schema)
    local errors = {}
    if type(schema.fields) ~= "table" then
      errors.fields = fmt(META_ERRORS.TABLE, "fields")
      return nil, errors
    end
    return check_fields(schema, errors)
  end,
}


local _M = {
  META_SUB_SCHEMA = META_SUB_SCHEMA,
  ERRORS = META_ERRORS,
}


--- Checks a subschema definition (a plugin's schema.lua table) as Kong's
-- `MetaSchema.MetaSubSchema:validate(def)`. Returns true, or nil and
-- Kong's error table.
function _M.check_subschema(def)
  if type(def) ~= "table" then
    error("expected a schema table", 2)
  end
  return validate.validate(META_SUB_SCHEMA, def)
end


return _M
