-- `kong.db.schema` for plugin code: the parts of Kong's Schema class that
-- plugin schema.lua files and handlers touch (`Schema.define` for
-- typedef-style definitions, `Schema.new(def)` with `validate`,
-- `process_auto_fields`, `validate_field`, `each_field`,
-- `errors_to_string`). Validation itself is sluice.schema.validate.

local validate = require "sluice.schema.validate"


local type = type
local pairs = pairs
local next = next
local ipairs = ipairs
local tostring = tostring
local setmetatable = setmetatable
local insert = table.insert
local concat = table.concat


local Schema = {}
Schema.__index = Schema


Schema.valid_types = validate.VALID_TYPES
Schema.validators = validate.validators
Schema.validators_order = validate.VALIDATORS_ORDER
Schema.entity_checkers = validate.entity_checkers


--- Kong's `Schema.define`: the table becomes callable with overrides,
-- `def { default = 1 }` returning the overrides filled from `def`.
function Schema.define(tbl)
  if type(tbl) ~= "table" then
    error("definition must be a table", 2)
  end
  return setmetatable(tbl, {
    __call = function(t, arg)
      arg = arg or {}
      for k, v in pairs(t) do
        if arg[k] == nil then
          arg[k] = v
        end
      end
      return arg
    end,
  })
end


--- A schema object from a definition (`{ fields = {...}, ... }`).
-- Returns nil and Kong's message without a definition or fields.
function Schema.new(definition)
  if not definition then
    return nil, validate.ERRORS.SCHEMA_NO_DEFINITION
  end
  if type(definition.fields) ~= "table" then
    return nil, validate.ERRORS.SCHEMA_NO_FIELDS
  end
  local self = validate.deep_copy(definition)
  validate.compile(self)
  -- Kong also indexes fields by name on `fields`
  for name, def in validate.each_field(self) do
    self.fields[name] = def
  end
  return setmetatable(self, Schema)
end


-- `fields` doubles as a by-name index: keep iteration to the array part.
local function plain(self)
  local fields = {}
  for i, f in ipairs(self.fields) do
    fields[i] = f
  end
  local t = {}
  for k, v in pairs(self) do
    t[k] = v
  end
  t.fields = fields
  return t
end


function Schema:each_field(values)
  return validate.each_field(self, values)
end


function Schema:process_auto_fields(data, context)
  if context ~= nil and context ~= "insert" and context ~= "upsert" then
    error("only the 'insert' context is supported", 2)
  end
  return validate.process_auto_fields(plain(self), data)
end


function Schema:validate(input)
  return validate.validate(plain(self), input)
end


function Schema:validate_insert(input)
  return validate.validate(plain(self), input)
end


function Schema:validate_field(field, value)
  return validate.validate_field(field, value)
end


function Schema:errors_to_string(errors)
  if type(errors) ~= "table" or next(errors) == nil then
    return nil
  end
  local msgs = {}
  for _, err in ipairs(errors["@entity"] or {}) do
    insert(msgs, err)
  end
  for _, err in ipairs(errors) do
    insert(msgs, err)
  end
  for k, err in pairs(errors) do
    if k ~= "@entity" and type(k) == "string" then
      if type(err) == "table" then
        err = self:errors_to_string(err)
      end
      insert(msgs, k .. ": " .. tostring(err))
    end
  end
  return validate.ERRORS.ERROR:format(concat(msgs, "; "))
end


return Schema
