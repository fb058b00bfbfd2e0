-- Versioned schema migrations of the configuration store, per engine.
-- `schema_meta(subsystem, name, executed_at)` records every migration
-- applied; MIGRATIONS lists them in order. A migration is DDL only (no
-- values) and written to be re-runnable (IF NOT EXISTS).
--
--   local state = migrations.state(store)
--     -> { needs_bootstrap = bool, executed = { names }, pending = { names } }
--   migrations.bootstrap(store, log) / up(store, log) / reset(store, log)
--     -> true | nil, err
--   migrations.check(store) -> true | nil, err   (Kong's messages)
--
-- `store` is a sluice.db.store object (its :tx, :exec and :query are used);
-- `log(line)` prints progress (default: nothing).

local type = type
local pairs = pairs
local ipairs = ipairs
local fmt = string.format
local gsub = string.gsub
local concat = table.concat


local SUBSYSTEM = "core"


local NEEDS_BOOTSTRAP_MSG = "Database needs bootstrapping or is older than "
  .. "Kong 1.0.\n\nTo start a new installation from scratch, run "
  .. "'sluice migrations bootstrap'."
local NEW_MIGRATIONS_MSG = "New migrations available; run 'sluice "
  .. "migrations up' to proceed"


-- Each engine's column types: the DDL below names them {real}, {bigint}
-- and {executed_at} (schema_meta's column).
local TYPES = {
  sqlite = {
    real = "REAL",
    bigint = "INTEGER",
    executed_at = "REAL NOT NULL",
  },
  postgres = {
    real = "DOUBLE PRECISION",
    bigint = "BIGINT",
    executed_at = "TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()",
  },
}


-- { sqlite = ddl, postgres = ddl } with each engine's types filled in
local function per_engine(ddl)
  local out = {}
  for engine, types in pairs(TYPES) do
    out[engine] = (gsub(ddl, "{([%w_]+)}", types))
  end
  return out
end


local SCHEMA_META = per_engine([[
  CREATE TABLE IF NOT EXISTS schema_meta (
    subsystem   TEXT NOT NULL,
    name        TEXT NOT NULL,
    executed_at {executed_at},
    PRIMARY KEY (subsystem, name)
  );
]])


local function migration(name, ddl)
  local m = per_engine(ddl)
  m.name = name
  return m
end


local MIGRATIONS = {
  migration("000_base", [[
    CREATE TABLE IF NOT EXISTS entities (
      entity      TEXT NOT NULL,
      id          TEXT NOT NULL,
      ws          TEXT,
      created_at  {real} NOT NULL,
      seq         {bigint} NOT NULL,
      service_id  TEXT,
      route_id    TEXT,
      consumer_id TEXT,
      data        TEXT NOT NULL,
      PRIMARY KEY (entity, id)
    );
    CREATE TABLE IF NOT EXISTS uniques (
      entity TEXT NOT NULL,
      field  TEXT NOT NULL,
      value  TEXT NOT NULL,
      id     TEXT NOT NULL,
      PRIMARY KEY (entity, field, value)
    );
    CREATE TABLE IF NOT EXISTS meta (
      key   TEXT PRIMARY KEY,
      value {bigint} NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('generation', 0)
      ON CONFLICT DO NOTHING;
  ]]),
  migration("001_indexes", [[
    CREATE INDEX IF NOT EXISTS entities_order
      ON entities (entity, created_at, id);
    CREATE INDEX IF NOT EXISTS entities_seq ON entities (seq);
    CREATE INDEX IF NOT EXISTS entities_service_id
      ON entities (entity, service_id);
    CREATE INDEX IF NOT EXISTS entities_route_id
      ON entities (entity, route_id);
    CREATE INDEX IF NOT EXISTS entities_consumer_id
      ON entities (entity, consumer_id);
    CREATE INDEX IF NOT EXISTS uniques_row ON uniques (entity, id);
  ]]),
}


local TABLES = { "uniques", "entities", "meta", "schema_meta" }


local _M = {
  NEEDS_BOOTSTRAP_MSG = NEEDS_BOOTSTRAP_MSG,
  NEW_MIGRATIONS_MSG = NEW_MIGRATIONS_MSG,
  SUBSYSTEM = SUBSYSTEM,
  MIGRATIONS = MIGRATIONS,
}


local function nolog()
end


local function table_exists(store, name)
  local rows, err
  if store.strategy == "sqlite" then
    rows, err = store:query("SELECT name FROM sqlite_master WHERE "
                            .. "type = 'table' AND name = ?", { name })
  else
    rows, err = store:query("SELECT table_name FROM "
                            .. "information_schema.tables WHERE "
                            .. "table_schema = current_schema() AND "
                            .. "table_name = ?", { name })
  end
  if not rows then
    return nil, err
  end
  return rows[1] ~= nil
end


--- The schema's state: needs_bootstrap, executed and pending names.
function _M.state(store)
  local exists, err = table_exists(store, "schema_meta")
  if exists == nil then
    return nil, err
  end
  local executed, done = {}, {}
  if exists then
    local rows
    rows, err = store:query("SELECT name FROM schema_meta WHERE "
                            .. "subsystem = ? ORDER BY name", { SUBSYSTEM })
    if not rows then
      return nil, err
    end
    for _, r in ipairs(rows) do
      executed[#executed + 1] = r.name
      done[r.name] = true
    end
  end
  local pending = {}
  for _, m in ipairs(MIGRATIONS) do
    if not done[m.name] then
      pending[#pending + 1] = m.name
    end
  end
  return {
    needs_bootstrap = #executed == 0,
    executed = executed,
    pending = pending,
  }
end


-- pg_schema: created on bootstrap when missing (an identifier, quoted by
-- libpq; no value)
local function ensure_schema(s)
  local schema = s.strategy == "postgres" and type(s.opts) == "table"
                 and s.opts.schema
  if not schema or schema == "" then
    return true
  end
  local conn, err = s:connect()
  if not conn then
    return nil, err
  end
  local ident = conn:quote_ident(schema)
  if not ident then
    return nil, "invalid pg_schema: " .. schema
  end
  return s:exec("CREATE SCHEMA IF NOT EXISTS " .. ident)
end


local function run(store, names, log)
  local want = {}
  for _, n in ipairs(names) do
    want[n] = true
  end
  local ok, err = store:tx(function(s)
    local ok, err = ensure_schema(s)
    if not ok then
      return nil, err
    end
    ok, err = s:exec(SCHEMA_META[s.strategy])
    if not ok then
      return nil, err
    end
    for _, m in ipairs(MIGRATIONS) do
      if want[m.name] then
        ok, err = s:exec(m[s.strategy])
        if not ok then
          return nil, fmt("migration %s failed: %s", m.name, err)
        end
        local params = { SUBSYSTEM, m.name }
        local sql = "INSERT INTO schema_meta (subsystem, name, executed_at) "
                    .. "VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
        if s.strategy == "sqlite" then
          params[3] = os.time()
        else
          sql = "INSERT INTO schema_meta (subsystem, name) VALUES (?, ?) "
                .. "ON CONFLICT DO NOTHING"
        end
        local rows
        rows, err = s:query(sql, params)
        if not rows then
          return nil, err
        end
        log(fmt("%s migrated up to: %s (executed)", SUBSYSTEM, m.name))
      end
    end
    return true
  end)
  if not ok then
    return nil, err
  end
  log(fmt("%d migrations processed\n%d executed", #names, #names))
  log("Database is up-to-date")
  return true
end


--- Creates the schema on an empty database.
-- @return true, "bootstrapped" | true, "already" | nil, err
function _M.bootstrap(store, log)
  log = log or nolog
  local state, err = _M.state(store)
  if not state then
    return nil, err
  end
  if not state.needs_bootstrap then
    log("Database already bootstrapped")
    return true, "already"
  end
  log("Bootstrapping database...")
  local ok
  ok, err = run(store, state.pending, log)
  if not ok then
    return nil, err
  end
  return true, "bootstrapped"
end


--- Applies pending migrations.
-- @return true, n_executed | nil, err
function _M.up(store, log)
  log = log or nolog
  local state, err = _M.state(store)
  if not state then
    return nil, err
  end
  if state.needs_bootstrap then
    return nil, "Cannot run migrations: " .. NEEDS_BOOTSTRAP_MSG
  end
  if #state.pending == 0 then
    log("Database is already up-to-date")
    return true, 0
  end
  local ok
  ok, err = run(store, state.pending, log)
  if not ok then
    return nil, err
  end
  return true, #state.pending
end


--- Drops every table of the store (the schema itself is kept).
-- @return true | false (nothing to reset) | nil, err
function _M.reset(store, log)
  log = log or nolog
  local state, err = _M.state(store)
  if not state then
    return nil, err
  end
  if state.needs_bootstrap then
    local any = false
    for _, t in ipairs(TABLES) do
      if table_exists(store, t) then
        any = true
      end
    end
    if not any then
      log("Database not bootstrapped, nothing to reset")
      return false
    end
  end
  log("Resetting database...")
  local ok
  ok, err = store:tx(function(s)
    for _, t in ipairs(TABLES) do
      local done, derr = s:exec("DROP TABLE IF EXISTS " .. t)
      if not done then
        return nil, derr
      end
    end
    return true
  end)
  if not ok then
    return nil, err
  end
  log("Database successfully reset")
  return true
end


--- Refuses a store that is not bootstrapped or has pending migrations.
-- @return true | nil, err, "bootstrap" | "pending"
function _M.check(store)
  local state, err = _M.state(store)
  if not state then
    return nil, err
  end
  if state.needs_bootstrap then
    return nil, NEEDS_BOOTSTRAP_MSG, "bootstrap"
  end
  if #state.pending > 0 then
    return nil, NEW_MIGRATIONS_MSG, "pending"
  end
  return true
end


--- The text `sluice migrations list` prints, and its exit code (Kong's:
-- 0 up to date, 3 needs bootstrap, 5 new migrations).
function _M.list_text(state)
  if state.needs_bootstrap then
    return NEEDS_BOOTSTRAP_MSG, 3
  end
  local lines = { "Executed migrations:",
                  SUBSYSTEM .. ": " .. concat(state.executed, ", ") }
  if #state.pending > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "New migrations available:"
    lines[#lines + 1] = SUBSYSTEM .. ": " .. concat(state.pending, ", ")
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Run 'sluice migrations up' to proceed"
    return concat(lines, "\n"), 5
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Database schema is up-to-date"
  return concat(lines, "\n"), 0
end


_M.table_exists = table_exists


return _M
