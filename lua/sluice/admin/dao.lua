-- The Admin API's entities over the store (sluice.db) with Kong's DAO
-- semantics (kong/db/dao/init.lua): validation with the entity schema
-- (plugins: the plugin's own subschema), defaults, ids and timestamps,
-- foreign keys (checked, resolved by endpoint key, restrict or cascade on
-- delete), unique keys, and Kong's error tables.
--
--   local dao = require "sluice.admin.dao"
--   local def = dao.get_def("services")
--   local row, err_t = dao.insert(store, def, args)
--   local row, err_t = dao.select(src, def, "name-or-uuid")
--   local rows, err_t, offset = dao.page(src, def, size, offset, filter, tags)
--
-- Write functions take the store of a running store:tx(); read functions
-- take any source with get/get_by/list (the store, or
-- sluice.admin.readonly over the running configuration in DB-less mode).
-- Every function returns its result or nil and a Kong error table.

local cjson = require "cjson.safe"
local json = require "sluice.admin.json"
local validate = require "sluice.schema.validate"
local uuid = require "sluice.uuid"
local errors = require "sluice.admin.errors"
local crypto = require "sluice.ngx.crypto"
local declarative = require "sluice.declarative"


local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local pcall = pcall
local require = require
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local getmetatable = getmetatable
local fmt = string.format
local match = string.match
local sub = string.sub
local find = string.find
local concat = table.concat


local NULL = cjson.null
local ARRAY_MT = json.array_mt
local MAX_PAGE = 1000
local DEFAULT_PAGE = 100
local TAGS_OFFSET_PREFIX = "sluice-tags:"


local _M = {
  MAX_PAGE = MAX_PAGE,
  DEFAULT_PAGE = DEFAULT_PAGE,
}


-- ------------------------------------------------------------------------
-- entity definitions

local DEFS = {}
local ORDER = {}


local function copy(v)
  return validate.deep_copy(v)
end


local function field_defs(schema)
  validate.compile(schema)
  return schema.fields_by_name
end


--- Registers an entity. `d` fields: name, schema, endpoint_key,
-- admin_api_name, admin_api_nested_name, core. Foreign keys, unique
-- fields and the cache key are read from the schema. Rows carry
-- created_at / updated_at when the schema has them (Kong's
-- auto_timestamp_s fields).
function _M.register(d)
  local schema = d.schema
  local by_name = field_defs(schema)
  local foreign, uniques = {}, {}
  for _, fname in ipairs(schema.field_order) do
    local f = by_name[fname]
    if f.type == "foreign" then
      foreign[#foreign + 1] = { field = fname, reference = f.reference,
                                on_delete = f.on_delete }
    elseif f.unique and fname ~= "id" then
      uniques[#uniques + 1] = fname
    end
  end
  d.foreign = d.foreign or foreign
  d.uniques = uniques
  d.endpoint_key = d.endpoint_key or schema.endpoint_key
  d.cache_key = d.cache_key or schema.cache_key
  d.admin_api_name = d.admin_api_name or schema.admin_api_name or d.name
  d.admin_api_nested_name = d.admin_api_nested_name
                            or schema.admin_api_nested_name
  if not DEFS[d.name] then
    ORDER[#ORDER + 1] = d.name
  end
  DEFS[d.name] = d
  return d
end


_M.register {
  name = "services", core = true,
  schema = require "sluice.schema.entities.services",
}
_M.register {
  name = "routes", core = true,
  schema = require "sluice.schema.entities.routes",
}
_M.register {
  name = "consumers", core = true,
  schema = require "sluice.schema.entities.consumers",
}
do
  local schema = require "sluice.schema.entities.plugins"
  local d = _M.register {
    name = "plugins", core = true, schema = schema,
  }
  for _, f in ipairs(d.foreign) do
    f.on_delete = "cascade"
  end
end


function _M.get_def(name)
  return DEFS[name]
end


--- Entity names in registration order (core ones first).
function _M.names()
  return ORDER
end


--- The definitions whose Admin API name is `name` (e.g. "key-auths").
function _M.by_api_name(name)
  for _, n in ipairs(ORDER) do
    local d = DEFS[n]
    if d.admin_api_name == name then
      return d
    end
  end
end


-- ------------------------------------------------------------------------
-- helpers

local function is_null(v)
  return v == nil or v == NULL
end


local function regex_ctx()
  local ok, core = pcall(require, "sluice.core")
  if ok and type(core) == "table" and core.regex_check then
    return { regex_check = core.regex_check }
  end
  return {}
end


local function expand_url(def, input)
  if def.name ~= "services" or input.url == nil then
    return nil
  end
  local url = input.url
  input.url = nil
  if url == NULL then
    return nil
  end
  if type(url) ~= "string" then
    return { url = validate.ERRORS.STRING }
  end
  local parts = declarative.parse_url(url, NULL)
  for k, v in pairs(parts) do
    input[k] = v
  end
end


-- The plugin subschema of a plugins row (nil, err_t when the name is not
-- a loaded plugin).
local function plugin_sub(name)
  local plugins = require "sluice.plugins"
  local p = type(name) == "string" and plugins.loaded[name]
  if not p then
    return nil, errors.schema_violation({
      name = fmt("plugin '%s' not enabled; add it to the 'plugins' "
                 .. "configuration property", tostring(name)),
    })
  end
  return p.schema
end


--- The schema rows of def are validated with (plugins: the plugin's).
function _M.schema_for(def, row)
  if def.name == "plugins" and row and type(row.name) == "string" then
    local subschema = plugin_sub(row.name)
    if subschema then
      return subschema.schema
    end
  end
  return def.schema
end


-- created_at / updated_at: dropped from input when the schema has no
-- such field (a body copied from a GET of another gateway)
local function strip_timestamps(def, t)
  local by_name = field_defs(_M.schema_for(def, t))
  if not by_name.created_at then
    t.created_at = nil
  end
  if not by_name.updated_at then
    t.updated_at = nil
  end
  return t
end


-- Validates a complete row (insert/upsert/merged update). Returns the
-- normalized row with nulls for absent fields, or nil, err_t.
local function check_row(def, input, extra_errors)
  local ctx = regex_ctx()
  local schema = def.schema
  if def.name == "plugins" then
    if is_null(input.name) then
      local data, errs = validate.process_auto_fields(schema, input, ctx)
      if data then
        local _
        _, errs = validate.validate(schema, data, ctx)
      end
      errs = errs or {}
      errs.name = errs.name or validate.ERRORS.REQUIRED
      return nil, errors.schema_violation(errs)
    end
    local subschema, err_t = plugin_sub(input.name)
    if not subschema then
      return nil, err_t
    end
    schema = subschema.schema
  end

  local data, errs = validate.process_auto_fields(schema, input, ctx)
  if not data then
    return nil, errors.schema_violation(errs)
  end
  local ok
  ok, errs = validate.validate(schema, data, ctx)
  if extra_errors then
    errs = errs or {}
    for k, v in pairs(extra_errors) do
      errs[k] = errs[k] or v
    end
    ok = false
  end
  if not ok then
    return nil, errors.schema_violation(errs)
  end
  local out, terr = validate.transform(schema, data)
  if not out then
    return nil, errors.transformation_error(terr)
  end
  return out
end


-- { name = "x" } foreign keys -> { id = ... } by the referenced entity's
-- endpoint key. Returns true or nil, err_t.
local function resolve_foreign(src, def, input)
  local unresolved
  for _, f in ipairs(def.foreign) do
    local v = input[f.field]
    if type(v) == "table" and getmetatable(v) ~= ARRAY_MT
       and is_null(v.id) then
      local ref = DEFS[f.reference]
      local ek = ref and ref.endpoint_key
      local key = ek and v[ek]
      if ek and type(key) == "string" then
        local row, err = src:get_by(f.reference, ek, key)
        if err then
          return nil, errors.database_error(err)
        end
        if row then
          input[f.field] = { id = row.id }
        else
          unresolved = unresolved or {}
          unresolved[f.field] = {
            [ek] = fmt("the foreign key cannot be resolved with '%s' for "
                       .. "an existing '%s' entity",
                       errors.pretty({ [ek] = key }), f.reference),
          }
        end
      end
    end
  end
  if unresolved then
    return nil, errors.foreign_keys_unresolved(unresolved)
  end
  return true
end


-- Every foreign key of a validated row points to an existing entity.
local function check_foreign(src, def, row)
  for _, f in ipairs(def.foreign) do
    local v = row[f.field]
    if type(v) == "table" and type(v.id) == "string" then
      local found, err = src:get(f.reference, v.id)
      if err then
        return nil, errors.database_error(err)
      end
      if not found then
        return nil, errors.foreign_key_violation({ id = v.id }, f.field,
                                                 f.reference)
      end
    end
  end
  return true
end


local function fk_id(row, field)
  local v = row[field]
  if type(v) == "table" and type(v.id) == "string" then
    return v.id
  end
  return nil
end


-- The unique keys the store enforces for a row.
local function uniques_of(def, row)
  local u = {}
  for _, fname in ipairs(def.uniques) do
    local v = row[fname]
    if not is_null(v) and type(v) ~= "table" then
      u[fname] = tostring(v)
    end
  end
  local ck = def.cache_key
  if type(ck) == "table" and #ck > 1 then
    local parts = {}
    for i, fname in ipairs(ck) do
      local v = row[fname]
      if type(v) == "table" then
        v = v.id
      end
      parts[i] = is_null(v) and "" or tostring(v)
    end
    u.cache_key = concat(parts, "|")
  end
  return u
end


-- The store's unique violation as Kong's 409.
local function unique_err(def, row, info)
  local field = type(info) == "table" and info.field or nil
  if field == "cache_key" or field == nil then
    local key = {}
    for _, fname in ipairs(def.cache_key or {}) do
      local v = row[fname]
      if type(v) == "table" then
        key[fname] = { id = v.id }
      else
        key[fname] = is_null(v) and NULL or v
      end
    end
    if next(key) == nil then
      key = { id = row.id }
    end
    return errors.unique_violation(key)
  end
  local value = row[field]
  if value == nil then
    value = info.value
  end
  return errors.unique_violation({ [field] = value })
end


local function store_err(def, row, err, info)
  if errors.is_unique_violation(err) then
    return unique_err(def, row, info)
  end
  return errors.database_error(err)
end


--- Validates `input` as a new entity of def without a store (schema
-- only: no foreign key or unique checks). Returns the row or nil, err_t.
function _M.check(def, input)
  input = copy(input)
  strip_timestamps(def, input)
  local url_errs = expand_url(def, input)
  return check_row(def, input, url_errs)
end


-- ------------------------------------------------------------------------
-- output

-- empty arrays and sets encode as [] (recursively through records)
local function shape_value(field, v)
  if type(v) ~= "table" or type(field) ~= "table" then
    return v
  end
  local ft = field.type
  if ft == "array" or ft == "set" then
    setmetatable(v, ARRAY_MT)
    for i, e in ipairs(v) do
      v[i] = shape_value(field.elements, e)
    end
  elseif ft == "record" and type(field.fields) == "table" then
    for _, item in ipairs(field.fields) do
      local name, f = next(item)
      if v[name] ~= nil then
        v[name] = shape_value(f, v[name])
      end
    end
  elseif ft == "map" then
    for k, x in pairs(v) do
      v[k] = shape_value(field.values, x)
    end
  end
  return v
end


--- A row as the Admin API answers it: every field present (null when
-- unset), arrays as JSON arrays. Returns a copy.
function _M.output(def, row)
  if type(row) ~= "table" then
    return row
  end
  local out = copy(row)
  local schema = _M.schema_for(def, out)
  for name, field in validate.each_field(schema, out) do
    if out[name] == nil then
      out[name] = NULL
    else
      out[name] = shape_value(field, out[name])
    end
  end
  return out
end


function _M.output_list(def, rows)
  local out = {}
  for i, row in ipairs(rows) do
    out[i] = _M.output(def, row)
  end
  return setmetatable(out, ARRAY_MT)
end


-- ------------------------------------------------------------------------
-- reads

--- The entity `key` names: its id (a UUID), else its endpoint key.
-- Returns row | nil (absent) | nil, err_t.
function _M.select(src, def, key)
  if type(key) == "table" then
    key = key.id
  end
  if type(key) ~= "string" then
    return nil
  end
  if uuid.is_valid(key) then
    local row, err = src:get(def.name, key)
    if err then
      return nil, errors.database_error(err)
    end
    return row
  end
  if not def.endpoint_key then
    return nil, errors.invalid_primary_key({ id = validate.ERRORS.UUID })
  end
  local row, err = src:get_by(def.name, def.endpoint_key, key)
  if err then
    return nil, errors.database_error(err)
  end
  return row
end


local function parse_size(size)
  if size == nil or size == NULL then
    return DEFAULT_PAGE
  end
  local n = tonumber(size)
  if not n then
    return nil, errors.invalid_size("size must be a number")
  end
  if n ~= math.floor(n) or n < 1 or n > MAX_PAGE then
    return nil, errors.invalid_size(fmt("size must be an integer between 1 "
                                        .. "and %d", MAX_PAGE))
  end
  return n
end
_M.parse_size = parse_size


-- "a,b" -> { "a", "b" }, "and"; "a/b" -> ..., "or"
local function parse_tags(tags)
  if type(tags) == "table" then
    tags = tags[1]
  end
  if type(tags) ~= "string" or tags == "" then
    return nil, nil, "invalid option (tags: must be a non-empty string)"
  end
  local has_comma = find(tags, ",", 1, true)
  local has_slash = find(tags, "/", 1, true)
  if has_comma and has_slash then
    return nil, nil, "invalid option (tags: invalid filter syntax)"
  end
  local sep = has_slash and "/" or ","
  local list = {}
  for t in (tags .. sep):gmatch("([^" .. sep .. "]*)" .. sep) do
    if t == "" then
      return nil, nil, "invalid option (tags: invalid filter syntax)"
    end
    list[#list + 1] = t
  end
  return list, has_slash and "or" or "and"
end


local function has_tags(row, list, cond)
  local set = {}
  if type(row.tags) == "table" then
    for _, t in ipairs(row.tags) do
      set[t] = true
    end
  end
  for _, t in ipairs(list) do
    if cond == "or" and set[t] then
      return true
    elseif cond == "and" and not set[t] then
      return false
    end
  end
  return cond == "and"
end


local function encode_offset(n)
  return crypto.encode_base64(TAGS_OFFSET_PREFIX .. n)
end


local function decode_offset(offset)
  local raw = crypto.decode_base64(offset)
  if not raw then
    return nil, "bad base64 encoding"
  end
  local n
  if sub(raw, 1, #TAGS_OFFSET_PREFIX) == TAGS_OFFSET_PREFIX then
    n = tonumber(match(sub(raw, #TAGS_OFFSET_PREFIX + 1), "^(%d+)$"))
  end
  if not n then
    return nil, "bad base64 encoding"
  end
  return n
end


--- A page of def's rows: `filter` compares top-level fields (foreign keys
-- as `<field>_id`), `tags` is Kong's `a,b` (all) or `a/b` (any).
-- Returns rows, nil, next_offset | nil, err_t.
function _M.page(src, def, size, offset, filter, tags)
  local n, err_t = parse_size(size)
  if not n then
    return nil, err_t
  end
  if offset == NULL or offset == "" then
    offset = nil
  end
  if offset ~= nil and type(offset) ~= "string" then
    return nil, errors.invalid_offset(tostring(offset), "bad base64 encoding")
  end

  if tags == nil or tags == NULL then
    local rows, next_offset = src:list(def.name, { size = n, offset = offset,
                                                   filter = filter })
    if not rows then
      if offset and find(tostring(next_offset), "offset", 1, true) then
        return nil, errors.invalid_offset(offset, "bad base64 encoding")
      end
      return nil, errors.database_error(next_offset)
    end
    return rows, nil, next_offset
  end

  local list, cond, terr = parse_tags(tags)
  if not list then
    return nil, errors.new(errors.codes.INVALID_OPTIONS, terr,
                           { tags = "invalid filter syntax" })
  end
  local start = 1
  if offset then
    local o, oerr = decode_offset(offset)
    if not o then
      return nil, errors.invalid_offset(offset, oerr)
    end
    start = o
  end
  -- every matching row, then this page of them
  local matching = {}
  local cursor
  repeat
    local rows, nxt = src:list(def.name, { size = MAX_PAGE, offset = cursor,
                                           filter = filter })
    if not rows then
      return nil, errors.database_error(nxt)
    end
    for _, row in ipairs(rows) do
      if has_tags(row, list, cond) then
        matching[#matching + 1] = row
      end
    end
    cursor = nxt
  until not cursor
  local out = {}
  for i = start, start + n - 1 do
    if matching[i] == nil then
      break
    end
    out[#out + 1] = matching[i]
  end
  local next_offset
  if matching[start + n] ~= nil then
    next_offset = encode_offset(start + n)
  end
  return out, nil, next_offset
end


-- ------------------------------------------------------------------------
-- writes (inside store:tx)

local function valid_timestamp(v)
  return type(v) == "number" and v >= 0 and v == math.floor(v)
end


-- validation + foreign keys for a complete new version of a row
local function prepare(src, def, input, old, extra_errs)
  local ok, err_t = resolve_foreign(src, def, input)
  if not ok then
    return nil, err_t
  end
  strip_timestamps(def, input)
  -- auto fields: created_at kept from the stored row, updated_at renewed
  if old and valid_timestamp(old.created_at) then
    input.created_at = old.created_at
  end
  input.updated_at = nil
  local url_errs = expand_url(def, input) or extra_errs
  local row
  row, err_t = check_row(def, input, url_errs)
  if not row then
    return nil, err_t
  end
  ok, err_t = check_foreign(src, def, row)
  if not ok then
    return nil, err_t
  end
  return row
end


--- POST: a new entity from `args`. Returns the stored row or nil, err_t.
function _M.insert(s, def, args)
  local input = copy(args)
  if is_null(input.id) then
    input.id = uuid.generate_v4()
  end
  local row, err_t = prepare(s, def, input)
  if not row then
    return nil, err_t
  end
  local existing, gerr = s:get(def.name, row.id)
  if gerr then
    return nil, errors.database_error(gerr)
  end
  if existing then
    return nil, errors.unique_violation({ id = row.id })
  end
  local ok, err, info = s:insert(def.name, row, uniques_of(def, row))
  if not ok then
    return nil, store_err(def, row, err, info)
  end
  return row
end


-- Kong's merge_values: records merged (recursively), anything else
-- replaced by the patch's value.
local function merge(fields_schema, patch, old)
  local out = {}
  for k, v in pairs(old) do
    out[k] = v
  end
  for k, v in pairs(patch) do
    local field
    if fields_schema then
      validate.compile(fields_schema)
      field = fields_schema.fields_by_name[k]
    end
    local ov = old[k]
    if field and field.type == "record" and type(v) == "table"
       and type(ov) == "table" and type(field.fields) == "table" then
      out[k] = merge(field, v, ov)
    elseif k == "config" and type(v) == "table" and type(ov) == "table"
           and field and not field.fields then
      out[k] = merge(nil, v, ov)
    else
      out[k] = v
    end
  end
  return out
end


--- PATCH: merges `args` into `old`. Returns the stored row or nil, err_t.
function _M.update(s, def, old, args)
  local patch = copy(args)
  patch.id = nil
  strip_timestamps(def, patch)
  local url_errs = expand_url(def, patch)
  local base = copy(old)
  if def.name == "plugins" and patch.name ~= nil and patch.name ~= old.name
  then
    -- another plugin: its config starts afresh
    base.config = nil
  end
  local schema = _M.schema_for(def, patch.name and patch or base)
  local input = merge(schema, patch, base)
  input.id = old.id
  local row, err_t = prepare(s, def, input, old, url_errs)
  if not row then
    return nil, err_t
  end
  local ok, err, info = s:update(def.name, old.id, row, uniques_of(def, row))
  if not ok then
    return nil, store_err(def, row, err, info)
  end
  return row
end


--- PUT: creates or replaces the entity `key` names (id or endpoint key)
-- with `args`. Returns the stored row or nil, err_t.
function _M.upsert(s, def, key, args)
  local input = copy(args)
  local old, err_t = _M.select(s, def, key)
  if err_t then
    return nil, err_t
  end
  if uuid.is_valid(key) then
    input.id = key
  else
    input[def.endpoint_key] = key
    input.id = old and old.id or (uuid.is_valid(input.id) and input.id)
               or uuid.generate_v4()
  end
  if old then
    input.id = old.id
  end
  local row
  row, err_t = prepare(s, def, input, old)
  if not row then
    return nil, err_t
  end
  local ok, err, info
  if old then
    ok, err, info = s:update(def.name, old.id, row, uniques_of(def, row))
  else
    ok, err, info = s:insert(def.name, row, uniques_of(def, row))
  end
  if not ok then
    return nil, store_err(def, row, err, info)
  end
  return row
end


-- every row of `entity` whose foreign key `field` is `id`
local function children(s, entity, field, id)
  local out = {}
  local cursor
  repeat
    local rows, nxt = s:list(entity, { size = MAX_PAGE, offset = cursor,
                                       filter = { [field .. "_id"] = id } })
    if not rows then
      return nil, nxt
    end
    for _, r in ipairs(rows) do
      out[#out + 1] = r
    end
    cursor = nxt
  until not cursor
  return out
end


--- DELETE: removes `row`; entities referencing it with on_delete =
-- "cascade" go with it, any other reference refuses (Kong's 400).
function _M.delete(s, def, row)
  for _, name in ipairs(ORDER) do
    local child = DEFS[name]
    for _, f in ipairs(child.foreign) do
      if f.reference == def.name and f.on_delete ~= "cascade" then
        local rows, err = s:list(name, { size = 1,
                                         filter = { [f.field .. "_id"] =
                                                    row.id } })
        if not rows then
          return nil, errors.database_error(err)
        end
        if #rows > 0 then
          return nil, errors.foreign_key_restricted(def.name, name)
        end
      end
    end
  end
  for _, name in ipairs(ORDER) do
    local child = DEFS[name]
    for _, f in ipairs(child.foreign) do
      if f.reference == def.name and f.on_delete == "cascade" then
        local rows, err = children(s, name, f.field, row.id)
        if not rows then
          return nil, errors.database_error(err)
        end
        for _, r in ipairs(rows) do
          local ok, err_t = _M.delete(s, child, r)
          if not ok then
            return nil, err_t
          end
        end
      end
    end
  end
  local ok, err = s:delete(def.name, row.id)
  if not ok then
    return nil, errors.database_error(err)
  end
  return true
end


_M.fk_id = fk_id
_M.uniques_of = uniques_of


return _M
