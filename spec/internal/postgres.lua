-- A throwaway PostgreSQL for the specs: Debian's server binaries
-- (/usr/lib/postgresql/<v>/bin), a fresh cluster in the run directory,
-- listening on 127.0.0.1:<free port> and a socket in its own directory,
-- with fsync off. initdb refuses root, so as root the cluster belongs to the
-- `postgres` user (or `nobody`) and every server command runs through
-- runuser.
--
--   local pg = require "spec.internal.postgres"
--   local srv, err = pg.start()   -- nil, err when PostgreSQL is missing
--   srv.host, srv.port, srv.user, srv.password, srv.database
--   srv.conf        -- kong.conf properties for database = postgres
--   srv:psql(sql)   -- ok, stdout, stderr (as the superuser, over the socket)
--   srv:pause()     -- stop the server, keep the data
--   srv:resume()    -- start it again on the same port
--   srv:stop()      -- stop it and remove everything
--
-- The postmaster's PID is tracked, so the spec watchdog kills it if busted
-- dies first.

local util = require "spec.internal.util"


local tonumber = tonumber
local tostring = tostring
local ipairs = ipairs
local select = select
local setmetatable = setmetatable
local fmt = string.format
local quote = util.quote


local USER = "kong"
local DATABASE = "kong"


local _M = {}


local Server = {}
Server.__index = Server


local function bindir()
  local p = io.popen("ls -d /usr/lib/postgresql/*/bin 2>/dev/null "
                     .. "| sort -V | tail -1")
  local dir = p:read("*l")
  p:close()
  if dir and dir ~= "" and util.exists(dir .. "/initdb") then
    return dir
  end
  return nil
end


local function whoami()
  local p = io.popen("id -u")
  local uid = tonumber(p:read("*l"))
  p:close()
  return uid
end


local function system_user()
  for _, name in ipairs({ "postgres", "nobody" }) do
    local ok = util.exec("id -u " .. name, nil, 5)
    if ok then
      return name
    end
  end
  return nil
end


--- Whether the server binaries are installed.
function _M.available()
  if not bindir() then
    return nil, "PostgreSQL server binaries not found under "
                .. "/usr/lib/postgresql/*/bin (Debian package postgresql)"
  end
  return true
end


-- a command as the cluster's owner
function Server:as_owner(cmd)
  if self.runas then
    return "runuser -u " .. self.runas .. " -- " .. cmd
  end
  return cmd
end


function Server:run(cmd, timeout)
  return util.exec(self:as_owner(cmd), nil, timeout or 30)
end


local function read_pid(self)
  local data = util.read_file(self.data .. "/postmaster.pid")
  return data and tonumber(data:match("^(%d+)"))
end


function Server:resume()
  local opts = fmt("-k %s -p %d -c listen_addresses=127.0.0.1 "
                   .. "-c fsync=off -c synchronous_commit=off "
                   .. "-c full_page_writes=off -c max_connections=100",
                   self.sock, self.port)
  local ok, out, err = self:run(fmt("%s/pg_ctl -D %s -l %s -o %s -w -t 20 "
                                    .. "start", self.bin, quote(self.data),
                                    quote(self.log), quote(opts)), 40)
  if not ok then
    return nil, "pg_ctl start failed: " .. out .. err .. "\n"
                .. (util.read_file(self.log) or "")
  end
  self.pid = read_pid(self)
  if self.pid then
    util.track(self.pid)
  end
  self.running = true
  return true
end


function Server:pause()
  if not self.running then
    return true
  end
  local ok, out, err = self:run(fmt("%s/pg_ctl -D %s -m fast -w -t 20 stop",
                                    self.bin, quote(self.data)), 40)
  if self.pid then
    if util.pid_alive(self.pid) then
      util.terminate(self.pid, 5)
    end
    util.untrack(self.pid)
  end
  self.running = false
  if not ok then
    return nil, "pg_ctl stop failed: " .. out .. err
  end
  return true
end


function Server:stop()
  self:pause()
  util.rm_rf(self.dir)
  return true
end


--- Runs SQL through psql as the superuser over the unix socket.
-- @return ok, stdout, stderr
function Server:psql(sql, database)
  return self:run(fmt("%s/psql -X -q -t -A -v ON_ERROR_STOP=1 -h %s -p %d "
                      .. "-U %s -d %s -c %s", self.bin, quote(self.sock),
                      self.port, USER, database or self.database,
                      quote(sql)), 30)
end


--- Starts a new cluster with a password-protected superuser `kong` and a
-- database `kong`.
-- @return server | nil, err
function _M.start()
  local bin = bindir()
  if not bin then
    return nil, select(2, _M.available())
  end
  local runas
  if whoami() == 0 then
    runas = system_user()
    if not runas then
      return nil, "running as root and no 'postgres' or 'nobody' user "
                  .. "to own the cluster"
    end
  end
  local dir = util.tmpname("postgres")
  local self = setmetatable({
    bin = bin,
    dir = dir,
    data = dir .. "/data",
    sock = dir .. "/sock",
    log = dir .. "/postgres.log",
    runas = runas,
    host = "127.0.0.1",
    port = util.get_available_port(),
    user = USER,
    password = "sluice-" .. tostring(util.OWNER_PID),
    database = DATABASE,
  }, Server)
  util.mkdir(self.sock)
  local pwfile = dir .. "/pw"
  util.write_file(pwfile, self.password .. "\n")
  util.exec("chmod 755 " .. quote(util.RUN_DIR) .. " " .. quote(dir), nil, 5)
  if runas then
    local ok, _, err = util.exec(fmt("chown -R %s %s", runas, quote(dir)),
                                 nil, 10)
    if not ok then
      return nil, "chown failed: " .. err
    end
  end
  local ok, out, err = self:run(fmt("%s/initdb -D %s -U %s --pwfile=%s "
                                    .. "--auth-local=trust "
                                    .. "--auth-host=scram-sha-256 "
                                    .. "-E UTF8 --no-locale --no-sync",
                                    bin, quote(self.data), USER,
                                    quote(pwfile)), 60)
  if not ok then
    util.rm_rf(dir)
    return nil, "initdb failed: " .. out .. err
  end
  local rok, rerr = self:resume()
  if not rok then
    util.rm_rf(dir)
    return nil, rerr
  end
  ok, out, err = self:psql("CREATE DATABASE " .. DATABASE, "postgres")
  if not ok then
    self:stop()
    return nil, "CREATE DATABASE failed: " .. out .. err
  end
  self.conf = {
    pg_host = self.host,
    pg_port = self.port,
    pg_user = self.user,
    pg_password = self.password,
    pg_database = self.database,
    pg_timeout = 3000,
  }
  return self
end


return _M
