-- SQLite connection for the embedded store, through the LuaJIT FFI on
-- Debian's libsqlite3.so.0 (no C of ours). One connection per process:
-- never use a connection opened before a fork (sluice.db checks the pid).
--
--   local conn, err = sqlite.open(path)
--   local rows, err, code = conn:query(sql, { v1, v2, ... })
--   local ok, err = conn:exec(script)       -- statements without values
--   conn:close()
--
-- Values only ever travel as bound parameters (`?` in `sql`); `exec` is for
-- the migrations' DDL and pragmas, which carry none. Statements are prepared
-- once per connection and cached by their text. The file is in WAL mode
-- (readers never wait for the writer, several processes share it) and every
-- call waits up to BUSY_TIMEOUT ms for another process's write lock.

local ffi = require "ffi"


local ffi_new = ffi.new
local ffi_string = ffi.string
local ffi_cast = ffi.cast
local type = type
local pairs = pairs
local error = error
local pcall = pcall
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local math_floor = math.floor
local fmt = string.format


local BUSY_TIMEOUT = 5000


ffi.cdef [[
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
int sqlite3_open_v2(const char *filename, sqlite3 **db, int flags,
                    const char *vfs);
int sqlite3_close_v2(sqlite3 *db);
int sqlite3_busy_timeout(sqlite3 *db, int ms);
int sqlite3_extended_result_codes(sqlite3 *db, int onoff);
const char *sqlite3_errmsg(sqlite3 *db);
int sqlite3_extended_errcode(sqlite3 *db);
const char *sqlite3_errstr(int code);
int sqlite3_prepare_v2(sqlite3 *db, const char *sql, int nbyte,
                       sqlite3_stmt **stmt, const char **tail);
int sqlite3_bind_text(sqlite3_stmt *stmt, int i, const char *v, int n,
                      void (*destructor)(void *));
int sqlite3_bind_int64(sqlite3_stmt *stmt, int i, int64_t v);
int sqlite3_bind_double(sqlite3_stmt *stmt, int i, double v);
int sqlite3_bind_null(sqlite3_stmt *stmt, int i);
int sqlite3_step(sqlite3_stmt *stmt);
int sqlite3_reset(sqlite3_stmt *stmt);
int sqlite3_clear_bindings(sqlite3_stmt *stmt);
int sqlite3_finalize(sqlite3_stmt *stmt);
int sqlite3_column_count(sqlite3_stmt *stmt);
const char *sqlite3_column_name(sqlite3_stmt *stmt, int i);
int sqlite3_column_type(sqlite3_stmt *stmt, int i);
const unsigned char *sqlite3_column_text(sqlite3_stmt *stmt, int i);
int sqlite3_column_bytes(sqlite3_stmt *stmt, int i);
int64_t sqlite3_column_int64(sqlite3_stmt *stmt, int i);
double sqlite3_column_double(sqlite3_stmt *stmt, int i);
int sqlite3_changes(sqlite3 *db);
int sqlite3_get_autocommit(sqlite3 *db);
int sqlite3_exec(sqlite3 *db, const char *sql, void *callback, void *arg,
                 char **errmsg);
void sqlite3_free(void *p);
const char *sqlite3_libversion(void);
]]


pcall(ffi.cdef, "int chmod(const char *path, unsigned int mode);")


local ok_lib, lib = pcall(ffi.load, "libsqlite3.so.0")


local SQLITE_OK = 0
local SQLITE_ROW = 100
local SQLITE_DONE = 101
local SQLITE_INTEGER = 1
local SQLITE_FLOAT = 2
local SQLITE_NULL = 5
local SQLITE_OPEN_READWRITE = 0x02
local SQLITE_OPEN_CREATE = 0x04
local SQLITE_OPEN_NOMUTEX = 0x8000
local SQLITE_CONSTRAINT = 19

local TRANSIENT = ffi_cast("void (*)(void *)", -1)


local _M = {
  BUSY_TIMEOUT = BUSY_TIMEOUT,
}


local Conn = {}
Conn.__index = Conn


local function errmsg(self, rc)
  local msg
  if self.db ~= nil then
    msg = ffi_string(lib.sqlite3_errmsg(self.db))
  else
    msg = ffi_string(lib.sqlite3_errstr(rc))
  end
  return "[SQLite error] " .. msg
end


--- Whether `code` (the third result of a failed query) says a UNIQUE or
-- PRIMARY KEY constraint failed.
function _M.is_unique_violation(code)
  -- extended codes: 2067 SQLITE_CONSTRAINT_UNIQUE, 1555 _PRIMARYKEY
  return code == 2067 or code == 1555
end


function _M.available()
  if not ok_lib then
    return nil, "libsqlite3.so.0 not found: " .. tostring(lib)
  end
  return true
end


function _M.version()
  if not ok_lib then
    return nil
  end
  return ffi_string(lib.sqlite3_libversion())
end


--- Opens (creating it when missing) the database file at `path`.
-- @return conn | nil, err
function _M.open(path)
  if type(path) ~= "string" or path == "" then
    error("path must be a non-empty string", 2)
  end
  if not ok_lib then
    return nil, "libsqlite3.so.0 not found: " .. tostring(lib)
  end
  local existed = io.open(path, "rb")
  if existed then
    existed:close()
  end
  local pdb = ffi_new("sqlite3 *[1]")
  local flags = SQLITE_OPEN_READWRITE + SQLITE_OPEN_CREATE
                + SQLITE_OPEN_NOMUTEX
  local rc = lib.sqlite3_open_v2(path, pdb, flags, nil)
  local self = setmetatable({
    db = pdb[0],
    path = path,
    stmts = {},
    dialect = "sqlite",
  }, Conn)
  if rc ~= SQLITE_OK then
    local err = errmsg(self, rc)
    if self.db ~= nil then
      lib.sqlite3_close_v2(self.db)
    end
    self.db = nil
    return nil, fmt("%s (opening %s)", err, path)
  end
  if not existed then
    -- plugin configs may hold secrets: owner only (SQLite gives the -wal
    -- and -shm files the same mode)
    ffi.C.chmod(path, 384)   -- 0600
  end
  lib.sqlite3_extended_result_codes(self.db, 1)
  lib.sqlite3_busy_timeout(self.db, BUSY_TIMEOUT)
  -- WAL: persistent in the file, so this only writes on the first open
  local ok, err = self:exec("PRAGMA journal_mode = WAL;"
                            .. "PRAGMA synchronous = FULL;")
  if not ok then
    self:close()
    return nil, err
  end
  return self
end


local function prepare(self, sql)
  local stmt = self.stmts[sql]
  if stmt then
    return stmt
  end
  local pstmt = ffi_new("sqlite3_stmt *[1]")
  local rc = lib.sqlite3_prepare_v2(self.db, sql, #sql, pstmt, nil)
  if rc ~= SQLITE_OK then
    return nil, errmsg(self, rc), lib.sqlite3_extended_errcode(self.db)
  end
  stmt = pstmt[0]
  self.stmts[sql] = stmt
  return stmt
end


local function bind(self, stmt, params)
  for i = 1, params.n or #params do
    local v = params[i]
    local rc
    local tv = type(v)
    if v == nil or tv == "userdata" then  -- nil, cjson.null
      rc = lib.sqlite3_bind_null(stmt, i)
    elseif tv == "number" then
      if v == math_floor(v) and v >= -2^53 and v <= 2^53 then
        rc = lib.sqlite3_bind_int64(stmt, i, v)
      else
        rc = lib.sqlite3_bind_double(stmt, i, v)
      end
    elseif tv == "boolean" then
      rc = lib.sqlite3_bind_int64(stmt, i, v and 1 or 0)
    else
      local s = tostring(v)
      rc = lib.sqlite3_bind_text(stmt, i, s, #s, TRANSIENT)
    end
    if rc ~= SQLITE_OK then
      return nil, errmsg(self, rc)
    end
  end
  return true
end


local function column(stmt, i)
  local t = lib.sqlite3_column_type(stmt, i)
  if t == SQLITE_NULL then
    return nil
  elseif t == SQLITE_INTEGER then
    return tonumber(lib.sqlite3_column_int64(stmt, i))
  elseif t == SQLITE_FLOAT then
    return lib.sqlite3_column_double(stmt, i)
  end
  local p = lib.sqlite3_column_text(stmt, i)
  return ffi_string(p, lib.sqlite3_column_bytes(stmt, i))
end


--- Runs one statement with bound parameters.
-- @return rows (array of { column = value }), changes | nil, err, code
function Conn:query(sql, params)
  if self.db == nil then
    return nil, "[SQLite error] connection closed"
  end
  local stmt, err, code = prepare(self, sql)
  if not stmt then
    return nil, err, code
  end
  if params then
    local ok, berr = bind(self, stmt, params)
    if not ok then
      lib.sqlite3_reset(stmt)
      lib.sqlite3_clear_bindings(stmt)
      return nil, berr
    end
  end
  local rows = {}
  local names
  while true do
    local rc = lib.sqlite3_step(stmt)
    if rc == SQLITE_ROW then
      local n = lib.sqlite3_column_count(stmt)
      if not names then
        names = {}
        for i = 0, n - 1 do
          names[i] = ffi_string(lib.sqlite3_column_name(stmt, i))
        end
      end
      local row = {}
      for i = 0, n - 1 do
        row[names[i]] = column(stmt, i)
      end
      rows[#rows + 1] = row
    elseif rc == SQLITE_DONE then
      break
    else
      err = errmsg(self, rc)
      code = lib.sqlite3_extended_errcode(self.db)
      lib.sqlite3_reset(stmt)
      lib.sqlite3_clear_bindings(stmt)
      if code % 256 ~= SQLITE_CONSTRAINT then
        -- a failed step may leave the statement unusable: prepare anew
        lib.sqlite3_finalize(stmt)
        self.stmts[sql] = nil
      end
      return nil, err, code
    end
  end
  lib.sqlite3_reset(stmt)
  lib.sqlite3_clear_bindings(stmt)
  return rows, lib.sqlite3_changes(self.db)
end


--- Runs a script of statements without parameters (DDL, pragmas,
-- transaction control).
function Conn:exec(script)
  if self.db == nil then
    return nil, "[SQLite error] connection closed"
  end
  local perr = ffi_new("char *[1]")
  local rc = lib.sqlite3_exec(self.db, script, nil, nil, perr)
  if rc ~= SQLITE_OK then
    local msg
    if perr[0] ~= nil then
      msg = "[SQLite error] " .. ffi_string(perr[0])
      lib.sqlite3_free(perr[0])
    else
      msg = errmsg(self, rc)
    end
    return nil, msg, lib.sqlite3_extended_errcode(self.db)
  end
  return true
end


--- Whether a transaction is open on this connection.
function Conn:in_transaction()
  return self.db ~= nil and lib.sqlite3_get_autocommit(self.db) == 0
end


function Conn:connected()
  return self.db ~= nil
end


function Conn:close()
  if self.db == nil then
    return true
  end
  for sql, stmt in pairs(self.stmts) do
    lib.sqlite3_finalize(stmt)
    self.stmts[sql] = nil
  end
  lib.sqlite3_close_v2(self.db)
  self.db = nil
  return true
end


Conn.is_unique_violation = function(_, code)
  return _M.is_unique_violation(code)
end


return _M
