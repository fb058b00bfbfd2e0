-- Kong's generated CRUD endpoints (kong/api/endpoints.lua) for an entity
-- definition of sluice.admin.dao:
--
--   /routes                          GET (page), POST
--   /routes/:routes                  GET, PUT (upsert), PATCH, DELETE
--   /routes/:routes/service          GET, PUT, PATCH, DELETE (405)
--   /services/:services/routes       GET, POST
--   /services/:services/routes/:routes   GET, PUT, PATCH, DELETE
--
-- A handler is `fn(self, db, helpers, parent)`; `self.args.uri` and
-- `self.args.post` hold the decoded query and body, `self.params` the path
-- captures. Writes run in one store transaction that also checks the whole
-- resulting configuration loads (sluice.config.check), then tell the
-- workers (db.changed()). In DB-less mode writes answer Kong's 405.

local cjson = require "cjson.safe"
local json = require "sluice.admin.json"
local dao = require "sluice.admin.dao"
local errors = require "sluice.admin.errors"
local args_mod = require "sluice.admin.args"
local readonly = require "sluice.admin.readonly"
local validate = require "sluice.schema.validate"
local uuid = require "sluice.uuid"
local ngx_args = require "sluice.ngx.args"


local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local require = require
local tostring = tostring
local fmt = string.format


local NULL = cjson.null
local CORE = { "services", "routes", "consumers", "plugins" }


local _M = {}


-- ------------------------------------------------------------------------
-- request context helpers

local function is_dbless(self)
  return self.store == nil
end


--- The source reads go to: the store, or the running configuration.
function _M.source(self)
  if self.store then
    return self.store
  end
  if not self.ro then
    self.ro = readonly.new(require("sluice.config").current())
  end
  return self.ro
end


--- The body arguments, with form values typed by `schema`.
function _M.post_args(self, schema)
  local post = self.args.post
  if self.body_kind ~= "json" and schema then
    args_mod.infer(post, schema)
  end
  return post
end


local function plugin_post_args(self, old)
  local post = self.args.post
  if self.body_kind ~= "json" then
    local def = dao.get_def("plugins")
    local name = post.name
    if type(name) ~= "string" and old then
      name = old.name
    end
    args_mod.infer(post, dao.schema_for(def, { name = name }))
  end
  return post
end


local function body_args(self, def, old)
  if def.name == "plugins" then
    return plugin_post_args(self, old)
  end
  return _M.post_args(self, def.schema)
end


local function strip_timestamps(row)
  local out = {}
  for k, v in pairs(row) do
    if k ~= "created_at" and k ~= "updated_at" then
      out[k] = v
    end
  end
  return out
end


--- The store's content as a declarative document (core entities only,
-- without timestamps), as sluice.config.check takes it.
function _M.to_document(all)
  local doc = { _format_version = "3.0" }
  for _, name in ipairs(CORE) do
    local list = {}
    for i, row in ipairs(all[name] or {}) do
      list[i] = strip_timestamps(row)
    end
    doc[name] = list
  end
  return doc
end


-- the whole configuration after a write must load
local function check_whole(s)
  local all, err = s:all()
  if not all then
    return nil, errors.database_error(err)
  end
  local config = require "sluice.config"
  local cfg, cerr, cerr_t = config.check(_M.to_document(all), "<admin api>")
  if not cfg then
    if type(cerr_t) == "table" then
      return nil, cerr_t
    end
    return nil, errors.new(errors.codes.DECLARATIVE_CONFIG, tostring(cerr))
  end
  return true
end


--- Runs fn(store) in one transaction; commits only when fn succeeds and
-- the resulting configuration loads. Returns fn's result or nil, err_t.
function _M.write(self, fn)
  local result, fail
  local ok, err = self.store:tx(function(s)
    local r, err_t = fn(s)
    if r == nil then
      fail = err_t
      return nil
    end
    local cok, cerr_t = check_whole(s)
    if not cok then
      fail = cerr_t
      return nil
    end
    result = r
    return true
  end)
  if not ok then
    return nil, fail or errors.database_error(err)
  end
  local cok, cerr = pcall(require("sluice.db").changed)
  if not cok then
    kong.log.err("admin API: applying the new configuration: ",
                 tostring(cerr))
  end
  return result
end


local function unsupported(def, op, key)
  local by = ""
  if type(key) == "string" and not uuid.is_valid(key) and def.endpoint_key
  then
    by = fmt(" by '%s'", def.endpoint_key)
  end
  return errors.exit(errors.operation_unsupported(fmt(
    "cannot %s '%s' entities%s when not using a database", op, def.name,
    by)))
end


local function ok(body)
  return json.exit(200, body)
end


local function not_found()
  return json.exit(404, errors.NOT_FOUND)
end


-- answers a failed lookup or write: 404 for "not found", else Kong's error
local function fail(err_t)
  if err_t == "not found" then
    return not_found()
  end
  return errors.exit(err_t)
end


local function escape(s)
  return ngx_args.escape_uri(tostring(s))
end


local function page_body(def, rows, offset, path, q)
  local nxt = NULL
  if offset then
    local extra = ""
    if q.tags ~= nil and q.tags ~= NULL then
      local tags = type(q.tags) == "table" and q.tags[1] or q.tags
      extra = extra .. "&tags=" .. escape(tags)
    end
    if q.size ~= nil and q.size ~= NULL then
      extra = extra .. "&size=" .. escape(q.size)
    end
    nxt = fmt("%s?offset=%s%s", path, escape(offset), extra)
  end
  return {
    data = dao.output_list(def, rows),
    offset = offset,
    next = nxt,
  }
end


-- the entity of `def` that `key` names: the row, or nil and the error
-- ("not found" when there is none)
local function existing(src, def, key)
  local row, err_t = dao.select(src, def, key)
  if err_t then
    return nil, err_t
  end
  if not row then
    return nil, "not found"
  end
  return row
end


-- an entity of `def` as named by the path parameter, as existing()
local function param_row(src, def, self)
  return existing(src, def, self.params[def.name])
end


-- the parent entity a nested path names, as existing()
local function path_parent(src, parent_def, self)
  return existing(src, parent_def, self.params[parent_def.name])
end


-- ------------------------------------------------------------------------
-- collection: /routes

local function collection_get(def)
  return function(self)
    local q = self.args.uri
    local filter
    if def.name == "consumers" and type(q.custom_id) == "string" then
      filter = { custom_id = q.custom_id }
    end
    local rows, err_t, offset = dao.page(_M.source(self), def, q.size,
                                         q.offset, filter, q.tags)
    if not rows then
      return errors.exit(err_t)
    end
    return ok(page_body(def, rows, offset, "/" .. def.admin_api_name, q))
  end
end


--- POST of a new entity from self's body (`fk` = { field, id } for nested
-- collections). Answers 201.
local function create(self, def, fk_field, parent_def, parent_key)
  local post = body_args(self, def)
  if is_dbless(self) then
    -- Kong validates first, then the DB-less strategy refuses
    local input = validate.deep_copy(post)
    if fk_field then
      input[fk_field] = { id = uuid.generate_v4() }
    end
    local _, err_t = dao.check(def, input)
    if err_t then
      return errors.exit(err_t)
    end
    return unsupported(def, "create")
  end
  local row, err_t = _M.write(self, function(s)
    local input = post
    if parent_def then
      local parent, perr_t = existing(s, parent_def, parent_key)
      if not parent then
        return nil, perr_t
      end
      input = validate.deep_copy(post)
      input[fk_field] = { id = parent.id }
    end
    return dao.insert(s, def, input)
  end)
  if not row then
    return fail(err_t)
  end
  return json.exit(201, dao.output(def, row))
end


local function collection_post(def)
  return function(self)
    return create(self, def)
  end
end


-- ------------------------------------------------------------------------
-- entity: /routes/:routes

local function entity_get(def)
  return function(self)
    local row, err_t = param_row(_M.source(self), def, self)
    if not row then
      return fail(err_t)
    end
    return ok(dao.output(def, row))
  end
end


-- PUT: `force` = { field = value } set on the body (nested forms)
local function upsert(self, def, key, force)
  local post = body_args(self, def)
  if is_dbless(self) then
    return unsupported(def, "create or update", key)
  end
  local row, err_t = _M.write(self, function(s)
    local input = post
    if force then
      input = validate.deep_copy(post)
      for k, v in pairs(force(s)) do
        input[k] = v
      end
    end
    return dao.upsert(s, def, key, input)
  end)
  if not row then
    return errors.exit(err_t)
  end
  return ok(dao.output(def, row))
end


local function entity_put(def)
  return function(self)
    local key = self.params[def.name]
    if not uuid.is_valid(key) and not def.endpoint_key then
      return errors.exit(errors.invalid_primary_key({
        id = validate.ERRORS.UUID }))
    end
    return upsert(self, def, key)
  end
end


-- PATCH of the entity `key` names; `check(s, row)` may refuse it (404).
local function update(self, def, key, check, defaults)
  if is_dbless(self) then
    return unsupported(def, "update", key)
  end
  local row, err_t = _M.write(self, function(s)
    local old, serr_t = existing(s, def, key)
    if not old then
      return nil, serr_t
    end
    if check and not check(s, old) then
      return nil, "not found"
    end
    local post = body_args(self, def, old)
    if defaults then
      post = validate.deep_copy(post)
      for k, v in pairs(defaults) do
        if post[k] == nil then
          post[k] = v
        end
      end
    end
    return dao.update(s, def, old, post)
  end)
  if not row then
    return fail(err_t)
  end
  return ok(dao.output(def, row))
end


local function entity_patch(def)
  return function(self)
    return update(self, def, self.params[def.name])
  end
end


-- the row a DELETE removes: the row, "absent" when there is none, or nil
-- and the error ("not found" when `check(src, row)` refuses it)
local function removable(src, def, key, check)
  local row, err_t = dao.select(src, def, key)
  if err_t then
    return nil, err_t
  end
  if not row then
    return "absent"
  end
  if check and not check(src, row) then
    return nil, "not found"
  end
  return row
end


-- DELETE; 204 also when absent, as Kong
local function remove(self, def, key, check)
  if is_dbless(self) then
    local row, err_t = removable(_M.source(self), def, key, check)
    if not row then
      return fail(err_t)
    end
    if row == "absent" then
      return json.exit(204)
    end
    return unsupported(def, "remove", key)
  end
  local done, err_t = _M.write(self, function(s)
    local row, serr_t = removable(s, def, key, check)
    if not row or row == "absent" then
      return row, serr_t
    end
    return dao.delete(s, def, row)
  end)
  if not done then
    return fail(err_t)
  end
  return json.exit(204)
end


local function entity_delete(def)
  return function(self)
    return remove(self, def, self.params[def.name])
  end
end


-- ------------------------------------------------------------------------
-- the entity a foreign key points to: /routes/:routes/service

-- the id the foreign key `f` of the entity the path names holds, and that
-- entity; or nil and the error ("not found" when either is absent)
local function foreign_id(src, def, f, self)
  local row, err_t = param_row(src, def, self)
  if not row then
    return nil, err_t
  end
  local id = dao.fk_id(row, f.field)
  if not id then
    return nil, "not found"
  end
  return id, row
end


local function foreign_get(def, f, parent_def)
  return function(self)
    local src = _M.source(self)
    local id, err_t = foreign_id(src, def, f, self)
    if not id then
      return fail(err_t)
    end
    local parent
    parent, err_t = existing(src, parent_def, id)
    if not parent then
      return fail(err_t)
    end
    return ok(dao.output(parent_def, parent))
  end
end


local function foreign_put(def, f, parent_def)
  return function(self)
    local post = body_args(self, parent_def)
    if is_dbless(self) then
      return unsupported(parent_def, "create or update")
    end
    local out, err_t = _M.write(self, function(s)
      local row, serr_t = param_row(s, def, self)
      if not row then
        return nil, serr_t
      end
      local id = dao.fk_id(row, f.field)
      local associate = id == nil
      local parent, perr_t = dao.upsert(s, parent_def,
                                        id or uuid.generate_v4(), post)
      if not parent then
        return nil, perr_t
      end
      if associate then
        local _, uerr_t = dao.update(s, def, row,
                                     { [f.field] = { id = parent.id } })
        if uerr_t then
          return nil, uerr_t
        end
      end
      return parent
    end)
    if not out then
      return fail(err_t)
    end
    return ok(dao.output(parent_def, out))
  end
end


local function foreign_patch(def, f, parent_def)
  return function(self)
    if is_dbless(self) then
      return unsupported(parent_def, "update")
    end
    local out, err_t = _M.write(self, function(s)
      local id, ferr_t = foreign_id(s, def, f, self)
      if not id then
        return nil, ferr_t
      end
      local parent = s:get(parent_def.name, id)
      if not parent then
        return nil, "not found"
      end
      return dao.update(s, parent_def, parent, body_args(self, parent_def,
                                                         parent))
    end)
    if not out then
      return fail(err_t)
    end
    return ok(dao.output(parent_def, out))
  end
end


local function foreign_delete(def, f)
  return function(self)
    local id, err_t = foreign_id(_M.source(self), def, f, self)
    if not id then
      return fail(err_t)
    end
    return json.exit(405, errors.METHOD_NOT_ALLOWED)
  end
end


-- ------------------------------------------------------------------------
-- nested collection and entity: /services/:services/routes[/:routes]

local function nested_get(def, f, parent_def, path_fmt)
  return function(self)
    local src = _M.source(self)
    local parent, err_t = path_parent(src, parent_def, self)
    if not parent then
      return fail(err_t)
    end
    local q = self.args.uri
    local rows, offset
    rows, err_t, offset = dao.page(src, def, q.size, q.offset,
                                   { [f.field .. "_id"] = parent.id }, q.tags)
    if not rows then
      return errors.exit(err_t)
    end
    local key = self.params[parent_def.name]
    return ok(page_body(def, rows, offset, fmt(path_fmt, escape(key)), q))
  end
end


local function nested_post(def, f, parent_def)
  return function(self)
    return create(self, def, f.field, parent_def,
                  self.params[parent_def.name])
  end
end


-- does `row` (of def) belong to the parent the path names?
local function belongs(self, f, parent_def)
  return function(s, row)
    local parent = dao.select(s, parent_def, self.params[parent_def.name])
    return parent ~= nil and dao.fk_id(row, f.field) == parent.id
  end
end


-- the entity of `def` a nested path names, when it belongs to the parent
-- the path names; or nil and the error ("not found" when it does not)
local function nested_row(src, def, f, parent_def, self)
  local parent, err_t = path_parent(src, parent_def, self)
  if not parent then
    return nil, err_t
  end
  local row
  row, err_t = param_row(src, def, self)
  if not row then
    return nil, err_t
  end
  if dao.fk_id(row, f.field) ~= parent.id then
    return nil, "not found"
  end
  return row
end


local function nested_entity_get(def, f, parent_def)
  return function(self)
    local row, err_t = nested_row(_M.source(self), def, f, parent_def, self)
    if not row then
      return fail(err_t)
    end
    return ok(dao.output(def, row))
  end
end


local function nested_entity_put(def, f, parent_def)
  return function(self)
    local key = self.params[def.name]
    if not is_dbless(self) then
      local parent, err_t = path_parent(self.store, parent_def, self)
      if not parent then
        return fail(err_t)
      end
    end
    return upsert(self, def, key, function(s)
      local parent = dao.select(s, parent_def, self.params[parent_def.name])
      return { [f.field] = parent and { id = parent.id } or NULL }
    end)
  end
end


local function nested_entity_patch(def, f, parent_def)
  return function(self)
    local parent, err_t = path_parent(_M.source(self), parent_def, self)
    if not parent then
      return fail(err_t)
    end
    return update(self, def, self.params[def.name], belongs(self, f,
                  parent_def), { [f.field] = { id = parent.id } })
  end
end


local function nested_entity_delete(def, f, parent_def)
  return function(self)
    local row, err_t = nested_row(_M.source(self), def, f, parent_def, self)
    if not row then
      return fail(err_t)
    end
    return remove(self, def, self.params[def.name], belongs(self, f,
                  parent_def))
  end
end


-- ------------------------------------------------------------------------

--- Adds def's endpoints to `router`.
function _M.generate(router, def)
  local name = def.admin_api_name
  local schema = { schema = def.schema, def = def }
  router:add("/" .. name, {
    GET = collection_get(def),
    POST = collection_post(def),
  }, schema)
  router:add(fmt("/%s/:%s", name, def.name), {
    GET = entity_get(def),
    PUT = entity_put(def),
    PATCH = entity_patch(def),
    DELETE = entity_delete(def),
  }, schema)
  for _, f in ipairs(def.foreign) do
    local parent_def = dao.get_def(f.reference)
    if parent_def then
      router:add(fmt("/%s/:%s/%s", name, def.name, f.field), {
        GET = foreign_get(def, f, parent_def),
        PUT = foreign_put(def, f, parent_def),
        PATCH = foreign_patch(def, f, parent_def),
        DELETE = foreign_delete(def, f),
      }, { schema = parent_def.schema, def = parent_def })
      local nested = def.admin_api_nested_name or name
      local base = fmt("/%s/:%s/%s", parent_def.admin_api_name,
                       parent_def.name, nested)
      router:add(base, {
        GET = nested_get(def, f, parent_def,
                         "/" .. parent_def.admin_api_name .. "/%s/"
                         .. nested),
        POST = nested_post(def, f, parent_def),
      }, schema)
      router:add(base .. "/:" .. def.name, {
        GET = nested_entity_get(def, f, parent_def),
        PUT = nested_entity_put(def, f, parent_def),
        PATCH = nested_entity_patch(def, f, parent_def),
        DELETE = nested_entity_delete(def, f, parent_def),
      }, schema)
    end
  end
end


return _M
