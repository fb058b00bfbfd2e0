-- Kong's Admin API error tables (kong/db/errors.lua) and the HTTP status
-- each code answers with (kong/api/endpoints.lua).
--
--   local errors = require "sluice.admin.errors"
--   local err_t = errors.unique_violation({ name = "x" })
--   return errors.exit(err_t)          -- 409 with Kong's body
--
-- Messages print tables as Penlight's `pretty.write(t, "")` does, with
-- "userdata: NULL" shown as `null`, as Kong.

local cjson = require "cjson.safe"
local json = require "sluice.admin.json"
local plugins_schema = require "sluice.schema.plugins"


local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local fmt = string.format
local find = string.find
local match = string.match
local concat = table.concat
local sort = table.sort


local NULL = cjson.null


local CODES = {
  INVALID_PRIMARY_KEY = 1,
  SCHEMA_VIOLATION = 2,
  PRIMARY_KEY_VIOLATION = 3,
  FOREIGN_KEY_VIOLATION = 4,
  UNIQUE_VIOLATION = 5,
  NOT_FOUND = 6,
  INVALID_OFFSET = 7,
  DATABASE_ERROR = 8,
  INVALID_SIZE = 9,
  INVALID_UNIQUE = 10,
  INVALID_OPTIONS = 11,
  OPERATION_UNSUPPORTED = 12,
  FOREIGN_KEYS_UNRESOLVED = 13,
  DECLARATIVE_CONFIG = 14,
  TRANSFORMATION_ERROR = 15,
  INVALID_FOREIGN_KEY = 16,
  REFERENCED_BY_OTHERS = 19,
}


local NAMES = {
  [1] = "invalid primary key",
  [2] = "schema violation",
  [3] = "primary key violation",
  [4] = "foreign key violation",
  [5] = "unique constraint violation",
  [6] = "not found",
  [7] = "invalid offset",
  [8] = "database error",
  [9] = "invalid size",
  [11] = "invalid options",
  [12] = "operation unsupported",
  [13] = "foreign keys unresolved",
  [14] = "invalid declarative configuration",
  [15] = "transformation error",
  [16] = "invalid foreign key",
  [19] = "referenced by others",
}


local HTTP_STATUS = {
  [1] = 400, [2] = 400, [3] = 400, [4] = 400, [5] = 409, [6] = 404,
  [7] = 400, [8] = 500, [9] = 400, [10] = 400, [11] = 400, [12] = 405,
  [13] = 400, [14] = 400, [15] = 400, [16] = 400, [19] = 400,
}


local _M = {
  codes = CODES,
  NULL = NULL,
}


local IDENT = "^[%a_][%w_]*$"


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


-- pl.pretty.write(v, "") (one line), nulls as `null`
local function pretty(v)
  if v == NULL then
    return "null"
  end
  if type(v) == "string" then
    return fmt("%q", v)
  end
  if type(v) ~= "table" then
    return tostring(v)
  end
  local parts = {}
  local n = #v
  for i = 1, n do
    parts[#parts + 1] = pretty(v[i])
  end
  for _, k in ipairs(sorted_keys(v)) do
    if not (type(k) == "number" and k >= 1 and k <= n) then
      local key
      if type(k) == "string" and find(k, IDENT) then
        key = k
      else
        key = "[" .. pretty(k) .. "]"
      end
      parts[#parts + 1] = key .. "=" .. pretty(v[k])
    end
  end
  return "{" .. concat(parts, ",") .. "}"
end
_M.pretty = pretty


local function new(code, message, fields)
  local err_t = {
    code = code,
    name = NAMES[code],
    message = message or NULL,
  }
  if fields then
    local copy = {}
    for k, v in pairs(fields) do
      copy[k] = v
    end
    if code == CODES.INVALID_OPTIONS then
      err_t.options = copy
    else
      err_t.fields = copy
    end
  end
  return err_t
end
_M.new = new


--- code 2 with Kong's one-line message over the field errors.
function _M.schema_violation(fields)
  return plugins_schema.schema_violation(fields)
end


function _M.invalid_primary_key(fields)
  return new(CODES.INVALID_PRIMARY_KEY,
             fmt("invalid primary key: '%s'", pretty(fields)), fields)
end


function _M.unique_violation(key)
  return new(CODES.UNIQUE_VIOLATION,
             fmt("UNIQUE violation detected on '%s'", pretty(key)), key)
end


function _M.primary_key_violation(key)
  return new(CODES.PRIMARY_KEY_VIOLATION,
             fmt("primary key violation on key '%s'", pretty(key)), key)
end


function _M.foreign_key_violation(fk, field, parent)
  return new(CODES.FOREIGN_KEY_VIOLATION,
             fmt("the foreign key '%s' does not reference an existing '%s' "
                 .. "entity.", pretty(fk), parent), { [field] = fk })
end


function _M.foreign_key_restricted(parent, child)
  return new(CODES.FOREIGN_KEY_VIOLATION,
             fmt("an existing '%s' entity references this '%s' entity",
                 child, parent), { ["@referenced_by"] = child })
end


--- `errors` is { field = { key = "message" } }
function _M.foreign_keys_unresolved(errors)
  local buf = {}
  for _, fname in ipairs(sorted_keys(errors)) do
    local e = errors[fname]
    for _, sub in ipairs(sorted_keys(e)) do
      buf[#buf + 1] = fmt("%s.%s: %s", fname, sub, e[sub])
    end
  end
  local message
  if #buf == 1 then
    message = fmt("foreign key unresolved (%s)", buf[1])
  else
    message = fmt("%d foreign keys unresolved (%s)", #buf,
                  concat(buf, "; "))
  end
  return new(CODES.FOREIGN_KEYS_UNRESOLVED, message, errors)
end


function _M.invalid_offset(offset, err)
  return new(CODES.INVALID_OFFSET,
             fmt("'%s' is not a valid offset: %s", tostring(offset), err))
end


function _M.invalid_size(err)
  return new(CODES.INVALID_SIZE, err)
end


function _M.operation_unsupported(err)
  return new(CODES.OPERATION_UNSUPPORTED, err)
end


function _M.database_error(err)
  return new(CODES.DATABASE_ERROR, err or NAMES[CODES.DATABASE_ERROR])
end


function _M.transformation_error(err)
  return new(CODES.TRANSFORMATION_ERROR, err)
end


--- True for the tables this module builds (and Kong-shaped ones).
function _M.is_err_t(v)
  return type(v) == "table" and type(v.code) == "number"
         and HTTP_STATUS[v.code] ~= nil
end


function _M.status_of(err_t)
  return HTTP_STATUS[err_t.code] or 500
end


-- Kong's messages for requests the router or the body parser refuse.
_M.NOT_FOUND = { message = "Not found" }
_M.METHOD_NOT_ALLOWED = { message = "Method not allowed" }
_M.UNEXPECTED = { message = "An unexpected error occurred" }
_M.UNSUPPORTED_MEDIA_TYPE = { message = "Unsupported Media Type" }


--- Ends the request with err_t: Kong's status for its code, the table as
-- the body (a database error answers Kong's generic 500).
function _M.exit(err_t)
  if not _M.is_err_t(err_t) then
    if err_t ~= nil then
      kong.log.err("admin API: ", tostring(type(err_t) == "table"
                                           and err_t.message or err_t))
    end
    return json.exit(500, _M.UNEXPECTED)
  end
  local status = _M.status_of(err_t)
  if status == 500 then
    kong.log.err("admin API: ", tostring(err_t.message))
    return json.exit(500, _M.UNEXPECTED)
  end
  return json.exit(status, err_t)
end


--- "unique violation" from the store: { entity, field, value }
function _M.is_unique_violation(err)
  return type(err) == "string" and match(err, "unique violation") ~= nil
end


return _M
