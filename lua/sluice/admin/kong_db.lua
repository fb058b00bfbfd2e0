-- The `db` argument plugins' api.lua handlers get: a small part of Kong's
-- kong.db for the Admin API's entities (services, routes, consumers,
-- plugins and plugin DAOs), over the store (or, in DB-less mode, the
-- running configuration, read-only).
--
--   db.consumers:select({ id = id })        -- or select(id)
--   db.consumers:select_by_username("bob")  -- select_by_<endpoint key>
--   db.routes:page(size, offset)            -- rows, nil, nil, offset
--   for row in db.plugins:each() do ... end
--   db.services:insert(t) / update(pk, t) / upsert(pk, t) / delete(pk)
--
-- Kong's return convention: result, or nil, err (string), err_t. Writes run
-- in one transaction with the whole-configuration check of
-- sluice.admin.endpoints.write and reach the workers as Admin API writes.

local dao = require "sluice.admin.dao"
local errors = require "sluice.admin.errors"


local type = type
local tostring = tostring
local setmetatable = setmetatable
local fmt = string.format


local _M = {}


local function fail(err_t)
  return nil, tostring(err_t and err_t.message or err_t), err_t
end


local function key_of(pk)
  if type(pk) == "table" then
    return pk.id
  end
  return pk
end


local function dao_for(self, def)
  local endpoints = require "sluice.admin.endpoints"
  local d = { schema = def.schema }

  local function src()
    return endpoints.source(self)
  end

  local function write(op, fn)
    if not self.store then
      return fail(errors.operation_unsupported(fmt(
        "cannot %s '%s' entities when not using a database", op, def.name)))
    end
    local res, err_t = endpoints.write(self, fn)
    if res == nil then
      return fail(err_t)
    end
    return res
  end

  function d.select(_, pk)
    local row, err_t = dao.select(src(), def, key_of(pk))
    if err_t then
      return fail(err_t)
    end
    return row
  end

  if def.endpoint_key then
    d["select_by_" .. def.endpoint_key] = function(_, value)
      local row, err = src():get_by(def.name, def.endpoint_key, value)
      if err then
        return fail(errors.database_error(err))
      end
      return row
    end
  end

  function d.page(_, size, offset)
    local rows, err_t, next_offset = dao.page(src(), def, size, offset)
    if not rows then
      return fail(err_t)
    end
    return rows, nil, nil, next_offset
  end

  function d.each(_, size)
    local rows, i, offset, done = {}, 0, nil, false
    return function()
      i = i + 1
      if rows[i] == nil and not done then
        local page, err_t, nxt = dao.page(src(), def, size or dao.MAX_PAGE,
                                          offset)
        if not page then
          done = true
          return fail(err_t)
        end
        rows, i, offset = page, 1, nxt
        done = nxt == nil
      end
      return rows[i]
    end
  end

  function d.insert(_, entity)
    return write("create", function(s)
      return dao.insert(s, def, entity)
    end)
  end

  function d.update(_, pk, entity)
    return write("update", function(s)
      local old, err_t = dao.select(s, def, key_of(pk))
      if not old then
        return nil, err_t or errors.new(errors.codes.NOT_FOUND,
          fmt("could not find the entity with primary key '%s'",
              errors.pretty({ id = key_of(pk) })), { id = key_of(pk) })
      end
      return dao.update(s, def, old, entity)
    end)
  end

  function d.upsert(_, pk, entity)
    return write("create or update", function(s)
      return dao.upsert(s, def, key_of(pk), entity)
    end)
  end

  function d.delete(_, pk)
    return write("remove", function(s)
      local row, err_t = dao.select(s, def, key_of(pk))
      if err_t then
        return nil, err_t
      end
      if not row then
        return true
      end
      return dao.delete(s, def, row)
    end)
  end

  return d
end


--- The db object for one Admin API request (`self`).
function _M.new(self)
  local cache = {}
  return setmetatable({}, {
    __index = function(_, name)
      local d = cache[name]
      if d == nil then
        local def = dao.get_def(name)
        d = def and dao_for(self, def) or false
        cache[name] = d
      end
      return d or nil
    end,
  })
end


return _M
