-- The configuration store, one implementation over two engines (SQLite,
-- PostgreSQL). An engine module (sluice.db.sqlite, sluice.db.postgres)
-- provides `open(opts) -> conn`, and conn provides `query(sql, params)`
-- (`?` placeholders, bound values) -> rows, changes | nil, err, code;
-- `exec(script)`; `connected()`; `close()`; `is_unique_violation(code)`.
--
-- Tables (lua/sluice/db/migrations.lua creates them):
--   entities(entity, id, ws, created_at, seq, service_id, route_id,
--            consumer_id, data)      one row per entity, data = JSON
--   uniques(entity, field, value, id) every unique key of every row, so
--            both engines enforce uniqueness with their primary key
--   meta(key, value)                  'generation': bumped by every
--            committing write transaction; nodes poll it
--
-- See sluice.db (init.lua) for the interface the Admin API uses. Every
-- method returns its result or `nil, err` and never raises on a database
-- failure; a unique violation is `nil, "unique violation", { entity=,
-- field=, value= }`.

local cjson_base = require "cjson"
local ffi = require "ffi"


local type = type
local pairs = pairs
local ipairs = ipairs
local next = next
local error = error
local pcall = pcall
local select = select
local unpack = unpack
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local fmt = string.format
local byte = string.byte
local char = string.char
local sub = string.sub
local concat = table.concat
local sort = table.sort
local co_running = coroutine.running


pcall(ffi.cdef, "int getpid(void);")


local json = cjson_base.new()
json.encode_sparse_array(true)
local NULL = cjson_base.null


local DEFAULT_PAGE_SIZE = 100
local MAX_PAGE_SIZE = 1000
local SCAN_BATCH = 200

local CORE_ORDER = { "services", "routes", "consumers", "plugins" }

-- a row's foreign keys as indexed columns: filter name -> row field
local FOREIGN = {
  service_id = "service",
  route_id = "route",
  consumer_id = "consumer",
}

local BEGIN_WRITE = {
  sqlite = "BEGIN IMMEDIATE",
  postgres = "BEGIN",
}
local BEGIN_READ = {
  sqlite = "BEGIN",
  postgres = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
}


local _M = {
  DEFAULT_PAGE_SIZE = DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE = MAX_PAGE_SIZE,
}


local Store = {}
Store.__index = Store


local function getpid()
  return ffi.C.getpid()
end


local function now()
  local ngx = _G.ngx
  if type(ngx) == "table" and type(ngx.now) == "function" then
    return ngx.now()
  end
  return os.time()
end


-- --------------------------------------------------------------------------
-- base64url for the opaque pagination offsets (plain LuaJIT has no ngx)

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local B64_REV = {}
for i = 1, 64 do
  B64_REV[byte(B64, i)] = i - 1
end


local function b64_encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for k = 1, chars do
      local shift = (4 - k) * 6
      local v = math.floor(n / 2 ^ shift) % 64
      out[#out + 1] = sub(B64, v + 1, v + 1)
    end
  end
  return concat(out)
end


local function b64_decode(s)
  if #s % 4 == 1 then
    return nil
  end
  local out = {}
  for i = 1, #s, 4 do
    local n, count = 0, 0
    for k = 0, 3 do
      local c = byte(s, i + k)
      if c then
        local v = B64_REV[c]
        if not v then
          return nil
        end
        n = n + v * 2 ^ ((3 - k) * 6)
        count = count + 1
      end
    end
    local bytes = count - 1
    for k = 1, bytes do
      out[#out + 1] = char(math.floor(n / 2 ^ ((3 - k) * 8)) % 256)
    end
  end
  return concat(out)
end


local function encode_offset(created_at, id)
  return b64_encode(fmt("%.17g|%s", created_at, id))
end


local function decode_offset(offset)
  if type(offset) ~= "string" or offset == "" then
    return nil
  end
  local raw = b64_decode(offset)
  if not raw then
    return nil
  end
  local ts, id = raw:match("^([^|]+)|(.+)$")
  ts = tonumber(ts)
  if not ts or not id then
    return nil
  end
  return ts, id
end


_M.encode_offset = encode_offset
_M.decode_offset = decode_offset


-- --------------------------------------------------------------------------
-- rows

local function encode_row(row)
  local ok, text = pcall(json.encode, row)
  if not ok then
    return nil, "cannot encode row: " .. tostring(text)
  end
  return text
end


local function decode_row(text)
  local ok, row = pcall(json.decode, text)
  if not ok then
    return nil, "cannot decode stored row: " .. tostring(row)
  end
  return row
end


local function fk_of(row, field)
  local ref = row[field]
  if type(ref) == "table" then
    local id = ref.id
    if type(id) == "string" or type(id) == "number" then
      return tostring(id)
    end
  end
  return nil
end


local function unique_value(v)
  if v == nil or v == NULL then
    return nil
  end
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then
    return tostring(v)
  end
  -- tables are compared by their JSON
  local text = encode_row(v)
  return text
end


local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  return keys
end


local function check_entity(entity, level)
  if type(entity) ~= "string" or entity == "" then
    error("entity must be a non-empty string", level + 1)
  end
end


--- The unique keys Sluice's Admin API and db_import record for the core
-- entities: { field = value }. Plugins get `cache_key`
-- ("name|route|service|consumer", ids or empty) and `instance_name`.
function _M.uniques(entity, row)
  local u = {}
  if type(row) ~= "table" then
    return u
  end
  if entity == "services" or entity == "routes" then
    u.name = row.name
  elseif entity == "consumers" then
    u.username = row.username
    u.custom_id = row.custom_id
  elseif entity == "plugins" then
    u.cache_key = concat({
      tostring(row.name),
      fk_of(row, "route") or "",
      fk_of(row, "service") or "",
      fk_of(row, "consumer") or "",
    }, "|")
    u.instance_name = row.instance_name
  end
  for k, v in pairs(u) do
    if v == NULL then
      u[k] = nil
    end
  end
  return u
end


-- --------------------------------------------------------------------------
-- connection

--- A store over `engine` (sluice.db.sqlite or sluice.db.postgres); `opts`
-- goes to engine.open. Connects on first use.
function _M.new(engine, opts, strategy)
  return setmetatable({
    engine = engine,
    opts = opts,
    strategy = strategy,
    conn = nil,
    pid = nil,
    depth = 0,
    dirty = false,
    owner = nil,
  }, Store)
end


function Store:connect()
  local conn = self.conn
  if conn and self.pid == getpid() and conn:connected() then
    return conn
  end
  if conn and self.pid == getpid() then
    conn:close()
  end
  -- a connection from before a fork is dropped, never closed (its locks
  -- and socket belong to the parent)
  self.conn = nil
  self.depth = 0
  self.owner = nil
  local err
  conn, err = self.engine.open(self.opts)
  if not conn then
    return nil, err
  end
  self.conn = conn
  self.pid = getpid()
  return conn
end


function Store:close()
  if self.conn and self.pid == getpid() then
    self.conn:close()
  end
  self.conn = nil
  self.depth = 0
  self.owner = nil
  return true
end


local function busy(self)
  if self.depth > 0 and self.owner ~= co_running() then
    return "store busy: a transaction is open in another coroutine"
  end
end


-- fn(self, ...), unless another coroutine's transaction is open
local function when_free(self, fn, ...)
  local err = busy(self)
  if err then
    return nil, err
  end
  return fn(self, ...)
end


local function query(self, sql, params)
  local conn, err = self:connect()
  if not conn then
    return nil, err
  end
  local rows, cerr, code = conn:query(sql, params)
  if not rows then
    if not conn:connected() and self.depth == 0 then
      self.conn = nil
    end
    return nil, cerr, code
  end
  return rows, cerr
end


local function exec(self, script)
  local conn, err = self:connect()
  if not conn then
    return nil, err
  end
  return conn:exec(script)
end


-- --------------------------------------------------------------------------
-- transactions

local function pack(...)
  return { n = select("#", ...), ... }
end


local function run_tx(self, fn, begin_sql, ...)
  local err = busy(self)
  if err then
    return nil, err
  end
  local conn
  conn, err = self:connect()
  if not conn then
    return nil, err
  end

  local depth = self.depth
  local savepoint = "sluice_sp" .. depth
  local was_dirty = self.dirty
  local ok
  if depth == 0 then
    ok, err = conn:exec(begin_sql)
    if not ok then
      if not conn:connected() then
        self.conn = nil
      end
      return nil, err
    end
    self.dirty = false
    self.owner = co_running()
  else
    ok, err = conn:exec("SAVEPOINT " .. savepoint)
    if not ok then
      return nil, err
    end
  end
  self.depth = depth + 1

  local res = pack(pcall(fn, self, ...))
  self.depth = depth

  if res[1] and res[2] then
    if depth > 0 then
      ok, err = conn:exec("RELEASE SAVEPOINT " .. savepoint)
      if not ok then
        return nil, err
      end
      return unpack(res, 2, res.n)
    end
    self.owner = nil
    if self.dirty then
      local bumped
      bumped, err = conn:query("UPDATE meta SET value = value + 1 "
                               .. "WHERE key = 'generation'")
      if not bumped then
        conn:exec("ROLLBACK")
        self.dirty = false
        return nil, err
      end
    end
    self.dirty = false
    ok, err = conn:exec("COMMIT")
    if not ok then
      conn:exec("ROLLBACK")
      if not conn:connected() then
        self.conn = nil
      end
      return nil, err
    end
    return unpack(res, 2, res.n)
  end

  -- rollback: fn returned nil/false or raised
  if depth > 0 then
    conn:exec("ROLLBACK TO SAVEPOINT " .. savepoint)
    conn:exec("RELEASE SAVEPOINT " .. savepoint)
    self.dirty = was_dirty
  else
    conn:exec("ROLLBACK")
    self.dirty = false
    self.owner = nil
    if not conn:connected() then
      self.conn = nil
    end
  end
  if not res[1] then
    return nil, tostring(res[2])
  end
  return unpack(res, 2, res.n)
end


--- Runs fn(store, ...) in one transaction: commits when it returns a truthy
-- first value, rolls back when it returns nil/false or raises (then
-- `nil, err`). Nested calls use savepoints. Returns fn's results. fn must
-- not yield.
function Store:tx(fn, ...)
  if type(fn) ~= "function" then
    error("fn must be a function", 2)
  end
  return run_tx(self, fn, BEGIN_WRITE[self.strategy] or "BEGIN", ...)
end


-- a consistent read of several statements
local function read_tx(self, fn, ...)
  if self.depth > 0 then
    return when_free(self, fn, ...)
  end
  local res = pack(run_tx(self, function(s, ...)
    return pack(fn(s, ...))
  end, BEGIN_READ[self.strategy] or "BEGIN", ...))
  if type(res[1]) ~= "table" then
    return unpack(res, 1, res.n)
  end
  return unpack(res[1], 1, res[1].n)
end


-- a write outside a transaction gets its own; inside one, a savepoint, so
-- a failed write leaves the outer transaction intact (tx refuses another
-- coroutine's transaction)
local function write_tx(self, fn, ...)
  return self:tx(fn, ...)
end


-- --------------------------------------------------------------------------
-- reads

-- the decoded `data` of the first row `sql` selects; nil when none
local function first_row(self, sql, params)
  local rows, err = query(self, sql, params)
  if not rows then
    return nil, err
  end
  if not rows[1] then
    return nil
  end
  return decode_row(rows[1].data)
end


function Store:get(entity, id)
  check_entity(entity, 2)
  if id == nil or id == NULL then
    return nil
  end
  return when_free(self, first_row, "SELECT data FROM entities WHERE "
                                    .. "entity = ? AND id = ?",
                   { entity, tostring(id), n = 2 })
end


function Store:get_by(entity, field, value)
  check_entity(entity, 2)
  if type(field) ~= "string" then
    error("field must be a string", 2)
  end
  local v = unique_value(value)
  if v == nil then
    return nil
  end
  return when_free(self, first_row, "SELECT e.data AS data FROM uniques u "
                                    .. "JOIN entities e ON e.entity = "
                                    .. "u.entity AND e.id = u.id WHERE "
                                    .. "u.entity = ? AND u.field = ? AND "
                                    .. "u.value = ?",
                   { entity, field, v, n = 3 })
end


local function matches(row, filter)
  for k, v in pairs(filter) do
    if not FOREIGN[k] then
      local have = row[k]
      if have ~= v and not (have ~= nil and v ~= nil
                            and tostring(have) == tostring(v)) then
        return false
      end
    end
  end
  return true
end


--- rows, next_offset: the page of `entity` after `opts.offset`, ordered by
-- created_at then id; opts.filter compares top-level fields (service_id,
-- route_id, consumer_id through the index).
function Store:list(entity, opts)
  check_entity(entity, 2)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("opts must be a table", 2)
  end
  local size = opts.size or DEFAULT_PAGE_SIZE
  size = tonumber(size)
  if not size or size < 1 or size > MAX_PAGE_SIZE or size % 1 ~= 0 then
    return nil, "size must be an integer between 1 and " .. MAX_PAGE_SIZE
  end
  local after_ts, after_id
  if opts.offset ~= nil and opts.offset ~= NULL then
    after_ts, after_id = decode_offset(opts.offset)
    if not after_ts then
      return nil, "invalid offset"
    end
  end
  local filter = opts.filter or {}
  if type(filter) ~= "table" then
    error("opts.filter must be a table", 2)
  end

  local where = { "entity = ?" }
  local base = { entity }
  local lua_filter = false
  for _, k in ipairs(sorted_keys(filter)) do
    if FOREIGN[k] then
      where[#where + 1] = k .. " = ?"
      base[#base + 1] = tostring(filter[k])
    else
      lua_filter = true
    end
  end
  local sql = "SELECT id, created_at, data FROM entities WHERE "
              .. concat(where, " AND ")
  local sql_after = sql .. " AND (created_at > ? OR (created_at = ? AND "
                    .. "id > ?))"
  local tail = " ORDER BY created_at, id LIMIT ?"

  return read_tx(self, function()
    local out = {}
    local last_ts, last_id
    local ts, id = after_ts, after_id
    local batch = lua_filter and SCAN_BATCH or size + 1
    while true do
      local params = {}
      for i, v in ipairs(base) do
        params[i] = v
      end
      local q = sql
      if ts then
        params[#params + 1] = ts
        params[#params + 1] = ts
        params[#params + 1] = id
        q = sql_after
      end
      params[#params + 1] = batch
      params.n = #params
      local rows, err = query(self, q .. tail, params)
      if not rows then
        return nil, err
      end
      for _, r in ipairs(rows) do
        ts, id = tonumber(r.created_at), r.id
        local row
        row, err = decode_row(r.data)
        if not row then
          return nil, err
        end
        if not lua_filter or matches(row, filter) then
          if #out == size then
            -- one more exists: the page ends at the previous row
            return out, encode_offset(last_ts, last_id)
          end
          out[#out + 1] = row
          last_ts, last_id = ts, id
        end
      end
      if #rows < batch then
        return out, nil
      end
    end
  end)
end


local function all(self)
  local rows, err = query(self, "SELECT entity, data FROM entities "
                                .. "ORDER BY created_at, seq, id")
  if not rows then
    return nil, err
  end
  local out = {}
  for _, name in ipairs(CORE_ORDER) do
    out[name] = {}
  end
  for _, r in ipairs(rows) do
    local row
    row, err = decode_row(r.data)
    if not row then
      return nil, err
    end
    local list = out[r.entity]
    if not list then
      list = {}
      out[r.entity] = list
    end
    list[#list + 1] = row
  end
  return out
end


local function generation(self)
  local rows, err = query(self, "SELECT value FROM meta "
                                .. "WHERE key = 'generation'")
  if not rows then
    return nil, err
  end
  if not rows[1] then
    return nil, "store not bootstrapped: no generation"
  end
  return tonumber(rows[1].value)
end


--- { services = {...}, routes = {...}, consumers = {...}, plugins = {...},
-- <custom> = {...} } in creation order.
function Store:all()
  return read_tx(self, all)
end


function Store:generation()
  return when_free(self, generation)
end


--- all(), generation read in one snapshot.
function Store:snapshot()
  return read_tx(self, function(s)
    local everything, err = all(s)
    if not everything then
      return nil, err
    end
    local gen
    gen, err = generation(s)
    if not gen then
      return nil, err
    end
    return everything, gen
  end)
end


-- --------------------------------------------------------------------------
-- writes

local function violation(entity, field, value)
  return nil, "unique violation", {
    entity = entity,
    field = field,
    value = value,
  }
end


local function insert_uniques(self, entity, id, uniques)
  if uniques == nil then
    return true
  end
  if type(uniques) ~= "table" then
    error("uniques must be a table", 3)
  end
  for _, field in ipairs(sorted_keys(uniques)) do
    local raw = uniques[field]
    local v = unique_value(raw)
    if v ~= nil then
      local rows, changes = query(self, "INSERT INTO uniques (entity, "
                                        .. "field, value, id) VALUES "
                                        .. "(?, ?, ?, ?) ON CONFLICT DO "
                                        .. "NOTHING",
                                  { entity, tostring(field), v, id,
                                    n = 4 })
      if not rows then
        return nil, changes
      end
      if changes == 0 then
        return violation(entity, tostring(field), raw)
      end
    end
  end
  return true
end


local function delete_uniques(self, entity, id)
  return query(self, "DELETE FROM uniques WHERE entity = ? AND id = ?",
               { entity, id, n = 2 })
end


local function check_row(entity, row, level)
  check_entity(entity, level + 1)
  if type(row) ~= "table" then
    error("row must be a table", level + 1)
  end
end


local function check_uniques(uniques, level)
  if uniques ~= nil and type(uniques) ~= "table" then
    error("uniques must be a table", level + 1)
  end
end


local function do_insert(self, entity, row, uniques, created_at, seq)
  local id = row.id
  if id == nil or id == NULL then
    return nil, "row has no id"
  end
  id = tostring(id)
  local data, err = encode_row(row)
  if not data then
    return nil, err
  end
  created_at = created_at or tonumber(row.created_at) or now()
  local rows
  if not seq then
    rows, err = query(self, "SELECT COALESCE(MAX(seq), 0) + 1 AS seq "
                            .. "FROM entities")
    if not rows then
      return nil, err
    end
    seq = tonumber(rows[1].seq)
  end
  local changes
  rows, changes = query(self, "INSERT INTO entities (entity, id, ws, "
                              .. "created_at, seq, service_id, route_id, "
                              .. "consumer_id, data) VALUES (?, ?, ?, ?, ?, "
                              .. "?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        { entity, id, row.ws_id ~= NULL and row.ws_id or nil,
                          created_at, seq, fk_of(row, "service"),
                          fk_of(row, "route"), fk_of(row, "consumer"), data,
                          n = 9 })
  if not rows then
    return nil, changes
  end
  if changes == 0 then
    return violation(entity, "id", row.id)
  end
  local ok, uerr, uerr_t = insert_uniques(self, entity, id, uniques)
  if not ok then
    return nil, uerr, uerr_t
  end
  self.dirty = true
  return row
end


--- Inserts `row` (with its `id`); `uniques` = { field = value }.
-- @return row | nil, err[, err_t]
function Store:insert(entity, row, uniques)
  check_row(entity, row, 2)
  check_uniques(uniques, 2)
  return write_tx(self, function(s)
    return do_insert(s, entity, row, uniques)
  end)
end


--- Replaces the row with `id` and its unique keys.
-- @return row | nil (absent) | nil, err[, err_t]
function Store:update(entity, id, row, uniques)
  check_row(entity, row, 2)
  check_uniques(uniques, 2)
  if id == nil or id == NULL then
    error("id must be given", 2)
  end
  id = tostring(id)
  return write_tx(self, function(s)
    local rows, err = query(s, "SELECT created_at FROM entities WHERE "
                               .. "entity = ? AND id = ?",
                            { entity, id, n = 2 })
    if not rows then
      return nil, err
    end
    if not rows[1] then
      return nil
    end
    local data
    data, err = encode_row(row)
    if not data then
      return nil, err
    end
    rows, err = query(s, "UPDATE entities SET ws = ?, service_id = ?, "
                         .. "route_id = ?, consumer_id = ?, data = ? "
                         .. "WHERE entity = ? AND id = ?",
                      { row.ws_id ~= NULL and row.ws_id or nil,
                        fk_of(row, "service"), fk_of(row, "route"),
                        fk_of(row, "consumer"), data, entity, id, n = 7 })
    if not rows then
      return nil, err
    end
    rows, err = delete_uniques(s, entity, id)
    if not rows then
      return nil, err
    end
    s.dirty = true
    local ok, uerr, uerr_t = insert_uniques(s, entity, id, uniques)
    if not ok then
      return nil, uerr, uerr_t
    end
    return row
  end)
end


--- Deletes the row with `id` and its unique keys.
-- @return true (deleted) | false (absent) | nil, err
function Store:delete(entity, id)
  check_entity(entity, 2)
  if id == nil or id == NULL then
    error("id must be given", 2)
  end
  id = tostring(id)
  local res = pack(write_tx(self, function(s)
    local rows, changes = query(s, "DELETE FROM entities WHERE entity = ? "
                                   .. "AND id = ?", { entity, id, n = 2 })
    if not rows then
      return nil, changes
    end
    if changes == 0 then
      -- nothing to commit: roll back, report "absent"
      return nil, false
    end
    local err
    rows, err = delete_uniques(s, entity, id)
    if not rows then
      return nil, err
    end
    s.dirty = true
    return true
  end))
  if res[1] == nil and res[2] == false then
    return false
  end
  return unpack(res, 1, res.n)
end


local function insert_all(self, doc, uniques_fn)
  local names = {}
  local seen = {}
  for _, name in ipairs(CORE_ORDER) do
    names[#names + 1] = name
    seen[name] = true
  end
  for _, name in ipairs(sorted_keys(doc)) do
    if not seen[name] and type(name) == "string" and sub(name, 1, 1) ~= "_"
       and type(doc[name]) == "table"
    then
      names[#names + 1] = name
    end
  end
  local ts = now()
  local seq = 0
  for _, name in ipairs(names) do
    local list = doc[name]
    if type(list) == "table" then
      for _, row in ipairs(list) do
        if type(row) ~= "table" then
          return nil, fmt("%s: entries must be tables", name)
        end
        seq = seq + 1
        local u = uniques_fn and uniques_fn(name, row)
                  or _M.uniques(name, row)
        local ok, err, err_t = do_insert(self, name, row, u,
                                         tonumber(row.created_at) or ts, seq)
        if not ok then
          return nil, err, err_t
        end
      end
    end
  end
  self.dirty = true
  return true
end


--- Deletes every entity, then inserts those of `doc` (a normalized config:
-- { services = {...}, ..., <custom> = {...} }; keys starting with "_" are
-- skipped) in one transaction. uniques_fn(entity, row) -> { field = value }
-- defaults to sluice.db.store.uniques.
function Store:replace_all(doc, uniques_fn)
  if type(doc) ~= "table" then
    error("doc must be a table", 2)
  end
  if uniques_fn ~= nil and type(uniques_fn) ~= "function" then
    error("uniques_fn must be a function", 2)
  end
  return write_tx(self, function(s)
    local rows, err = query(s, "DELETE FROM uniques")
    if not rows then
      return nil, err
    end
    rows, err = query(s, "DELETE FROM entities")
    if not rows then
      return nil, err
    end
    return insert_all(s, doc, uniques_fn)
  end)
end


--- Runs a migration script (no values) on this store's connection.
function Store:exec(script)
  return when_free(self, exec, script)
end


--- Runs one parameterized statement (migrations, tests).
function Store:query(sql, params)
  return when_free(self, query, sql, params)
end


function Store:is_empty()
  local rows, err = query(self, "SELECT 1 AS one FROM entities LIMIT 1")
  if not rows then
    return nil, err
  end
  return next(rows) == nil
end


return _M
