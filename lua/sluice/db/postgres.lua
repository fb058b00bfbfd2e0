-- PostgreSQL connection for the shared store, through the LuaJIT FFI on
-- Debian's libpq.so.5 (no C of ours). Same interface as sluice.db.sqlite:
--
--   local conn, err = postgres.open{ host, port, user, password, database,
--                                    schema, timeout (ms), sslmode,
--                                    sslrootcert }
--   local rows, err, sqlstate = conn:query(sql, { v1, v2, ... })
--   local ok, err = conn:exec(script)      -- statements without values
--   conn:close()
--
-- `?` placeholders become $1..$n and values always travel as parameters
-- (PQexecParams, text format); rows come back as strings (nil for NULL).
-- libpq calls BLOCK the calling worker: the connect is bounded by
-- connect_timeout, each statement by statement_timeout and the socket by
-- tcp_user_timeout/keepalives (all from `timeout`). A broken connection is
-- closed; the next call connects again (sluice.db.store does that).

local ffi = require "ffi"


local ffi_new = ffi.new
local ffi_string = ffi.string
local type = type
local ipairs = ipairs
local error = error
local pcall = pcall
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local fmt = string.format
local gsub = string.gsub
local floor = math.floor


ffi.cdef [[
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
PGconn *PQconnectdbParams(const char *const *keywords,
                          const char *const *values, int expand_dbname);
int PQstatus(const PGconn *conn);
char *PQerrorMessage(const PGconn *conn);
void PQfinish(PGconn *conn);
PGresult *PQexec(PGconn *conn, const char *query);
PGresult *PQexecParams(PGconn *conn, const char *command, int nParams,
                       const unsigned int *paramTypes,
                       const char *const *paramValues,
                       const int *paramLengths, const int *paramFormats,
                       int resultFormat);
int PQresultStatus(const PGresult *res);
char *PQresultErrorMessage(const PGresult *res);
char *PQresultErrorField(const PGresult *res, int fieldcode);
int PQntuples(const PGresult *res);
int PQnfields(const PGresult *res);
char *PQfname(const PGresult *res, int field_num);
char *PQgetvalue(const PGresult *res, int tup_num, int field_num);
int PQgetlength(const PGresult *res, int tup_num, int field_num);
int PQgetisnull(const PGresult *res, int tup_num, int field_num);
char *PQcmdTuples(PGresult *res);
void PQclear(PGresult *res);
int PQtransactionStatus(const PGconn *conn);
char *PQescapeIdentifier(PGconn *conn, const char *str, size_t len);
void PQfreemem(void *ptr);
int PQserverVersion(const PGconn *conn);
int PQlibVersion(void);
]]


local ok_lib, lib = pcall(ffi.load, "libpq.so.5")


local CONNECTION_OK = 0
local PGRES_COMMAND_OK = 1
local PGRES_TUPLES_OK = 2
local PG_DIAG_SQLSTATE = 67          -- 'C'
local PQTRANS_UNKNOWN = 4

local UNIQUE_VIOLATION = "23505"


local _M = {}


local Conn = {}
Conn.__index = Conn


local function clean(msg)
  msg = gsub(tostring(msg or ""), "%s+$", "")
  msg = gsub(msg, "%s*\n%s*", " ")
  return "[PostgreSQL error] " .. msg
end


function _M.is_unique_violation(code)
  return code == UNIQUE_VIOLATION
end


function _M.available()
  if not ok_lib then
    return nil, "libpq.so.5 not found: " .. tostring(lib)
  end
  return true
end


-- `?` -> `$n` (the store's SQL has no `?` inside literals)
local function placeholders(sql)
  local n = 0
  return (gsub(sql, "%?", function()
    n = n + 1
    return "$" .. n
  end))
end


local function finish(self)
  if self.pg ~= nil then
    lib.PQfinish(self.pg)
    self.pg = nil
  end
end


local function result_error(self, res)
  local msg
  local code
  if res ~= nil then
    msg = ffi_string(lib.PQresultErrorMessage(res))
    local c = lib.PQresultErrorField(res, PG_DIAG_SQLSTATE)
    if c ~= nil then
      code = ffi_string(c)
    end
  end
  if (not msg or msg == "") and self.pg ~= nil then
    msg = ffi_string(lib.PQerrorMessage(self.pg))
  end
  if self.pg ~= nil and lib.PQstatus(self.pg) ~= CONNECTION_OK then
    finish(self)
  end
  return clean(msg), code
end


--- Connects. opts: host, port, user, password, database, schema, timeout
-- (ms: connect, statements, socket), sslmode, sslrootcert.
-- @return conn | nil, err
function _M.open(opts)
  if type(opts) ~= "table" then
    error("opts must be a table", 2)
  end
  if not ok_lib then
    return nil, "libpq.so.5 not found: " .. tostring(lib)
  end
  local timeout_ms = tonumber(opts.timeout) or 5000
  local timeout_s = math.max(1, floor((timeout_ms + 999) / 1000))
  local params = {
    { "host", opts.host or "127.0.0.1" },
    { "port", tostring(opts.port or 5432) },
    { "user", opts.user },
    { "password", opts.password },
    { "dbname", opts.database },
    { "connect_timeout", tostring(timeout_s) },
    { "sslmode", opts.sslmode or "disable" },
    { "sslrootcert", opts.sslrootcert },
    { "tcp_user_timeout", tostring(timeout_ms) },
    { "keepalives", "1" },
    { "keepalives_idle", "10" },
    { "keepalives_interval", "2" },
    { "keepalives_count", "3" },
    { "application_name", "sluice" },
    { "client_encoding", "UTF8" },
  }
  local n = 0
  local keys = ffi_new("const char *[?]", #params + 1)
  local vals = ffi_new("const char *[?]", #params + 1)
  local anchor = {}
  for _, kv in ipairs(params) do
    if kv[2] ~= nil and kv[2] ~= "" then
      keys[n] = kv[1]
      vals[n] = kv[2]
      anchor[#anchor + 1] = kv[2]
      n = n + 1
    end
  end
  keys[n] = nil
  vals[n] = nil
  local pg = lib.PQconnectdbParams(keys, vals, 0)
  if pg == nil then
    return nil, clean("out of memory")
  end
  local self = setmetatable({
    pg = pg,
    dialect = "postgres",
    opts = opts,
    anchor = anchor,
  }, Conn)
  if lib.PQstatus(pg) ~= CONNECTION_OK then
    local msg = ffi_string(lib.PQerrorMessage(pg))
    finish(self)
    return nil, clean(msg)
  end

  -- per session: a bound on every statement, and the schema
  local ok, err = self:query("SELECT set_config('statement_timeout', ?, "
                             .. "false)", { tostring(timeout_ms) })
  if ok and opts.schema and opts.schema ~= "" then
    ok, err = self:query("SELECT set_config('search_path', ?, false)",
                         { self:quote_ident(opts.schema) })
  end
  if not ok then
    finish(self)
    return nil, err
  end
  return self
end


--- An identifier quoted by libpq (for DDL on pg_schema, never values).
function Conn:quote_ident(name)
  local p = lib.PQescapeIdentifier(self.pg, name, #name)
  if p == nil then
    return nil
  end
  local s = ffi_string(p)
  lib.PQfreemem(p)
  return s
end


local function rows_of(res)
  local rows = {}
  local nt = lib.PQntuples(res)
  local nf = lib.PQnfields(res)
  local names = {}
  for j = 0, nf - 1 do
    names[j] = ffi_string(lib.PQfname(res, j))
  end
  for i = 0, nt - 1 do
    local row = {}
    for j = 0, nf - 1 do
      if lib.PQgetisnull(res, i, j) == 0 then
        row[names[j]] = ffi_string(lib.PQgetvalue(res, i, j),
                                   lib.PQgetlength(res, i, j))
      end
    end
    rows[i + 1] = row
  end
  return rows
end


-- `res` when the statement succeeded; else nil, err, sqlstate (res cleared)
local function succeeded(self, res)
  if res == nil then
    return nil, (result_error(self, nil))
  end
  local st = lib.PQresultStatus(res)
  if st ~= PGRES_COMMAND_OK and st ~= PGRES_TUPLES_OK then
    local err, code = result_error(self, res)
    lib.PQclear(res)
    return nil, err, code
  end
  return res
end


local function param_text(v)
  local t = type(v)
  if v == nil or t == "userdata" then
    return nil
  elseif t == "number" then
    if v == floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then
      return fmt("%d", v)
    end
    return fmt("%.17g", v)
  elseif t == "boolean" then
    return v and "true" or "false"
  end
  return tostring(v)
end


--- Runs one statement with bound parameters.
-- @return rows (array of { column = string }), changes | nil, err, sqlstate
function Conn:query(sql, params)
  if self.pg == nil then
    return nil, clean("connection closed")
  end
  local n = params and (params.n or #params) or 0
  local values = n > 0 and ffi_new("const char *[?]", n) or nil
  local anchor = {}
  for i = 1, n do
    local s = param_text(params[i])
    anchor[i] = s
    values[i - 1] = s
  end
  local res, err, code = succeeded(self, lib.PQexecParams(self.pg,
    placeholders(sql), n, nil, values, nil, nil, 0))
  if not res then
    return nil, err, code
  end
  local rows = rows_of(res)
  local changes = tonumber(ffi_string(lib.PQcmdTuples(res))) or 0
  lib.PQclear(res)
  return rows, changes
end


--- Runs a script of statements without parameters (DDL, transaction
-- control).
function Conn:exec(script)
  if self.pg == nil then
    return nil, clean("connection closed")
  end
  local res, err, code = succeeded(self, lib.PQexec(self.pg, script))
  if not res then
    return nil, err, code
  end
  lib.PQclear(res)
  return true
end


function Conn:connected()
  if self.pg == nil then
    return false
  end
  if lib.PQstatus(self.pg) ~= CONNECTION_OK
     or lib.PQtransactionStatus(self.pg) == PQTRANS_UNKNOWN
  then
    finish(self)
    return false
  end
  return true
end


function Conn:close()
  finish(self)
  return true
end


function Conn:is_unique_violation(code)
  return code == UNIQUE_VIOLATION
end


function Conn:server_version()
  if self.pg == nil then
    return nil
  end
  return lib.PQserverVersion(self.pg)
end


return _M
