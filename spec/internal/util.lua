-- Process, file and port utilities behind spec.helpers: bounded command
-- execution, background processes tracked by PID, free loopback ports,
-- waiting with a deadline, and the per-run scratch directory
-- (/tmp/sluice-spec-<pid>) that a watchdog removes when busted exits.

local socket = require "socket"
local lfs = require "lfs"
local unistd = require "posix.unistd"
local psignal = require "posix.signal"


local io_open = io.open
local io_popen = io.popen
local os_remove = os.remove
local os_getenv = os.getenv
local tonumber = tonumber
local tostring = tostring
local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local error = error
local select = select
local unpack = unpack
local string_format = string.format
local string_gsub = string.gsub
local string_match = string.match
local table_concat = table.concat
local table_sort = table.sort


local _M = {}


local OWNER_PID = unistd.getpid()
local RUN_DIR = "/tmp/sluice-spec-" .. OWNER_PID
local KEEP = os_getenv("SLUICE_SPEC_KEEP")


_M.OWNER_PID = OWNER_PID
_M.RUN_DIR = RUN_DIR


-- Run-wide state. busted insulates every spec file and restores
-- package.loaded after it, so each file loads fresh copies of spec.helpers
-- and spec.internal.*, while RUN_DIR (named after the busted PID) stays the
-- same. Whatever must hold for the whole run therefore lives in the Lua
-- registry, which busted leaves alone: the counters that name files in
-- RUN_DIR (else a later file reuses tcp_server-1.ready, kong-1.yml,
-- mock_upstream-1/ ... of an earlier one), the ports handed out, the PIDs
-- the watchdog must kill, and whether the watchdog runs.
local STATE_KEY = "sluice.spec.run_state"
local state = debug.getregistry()[STATE_KEY]
if type(state) ~= "table" or state.owner ~= OWNER_PID then
  state = {
    owner = OWNER_PID,
    counters = {},        -- tag -> last number handed out
    given_ports = {},     -- port -> true
    tracked = {},         -- pid -> true
    run_dir_ready = false,
  }
  debug.getregistry()[STATE_KEY] = state
end
_M.state = state


--- The next number for `tag` in this run (1, 2, ...), never given twice,
-- whichever spec file asks.
function _M.next_id(tag)
  local n = (state.counters[tag] or 0) + 1
  state.counters[tag] = n
  return n
end


-- The repository root: two levels above this file (spec/internal/util.lua).
do
  local src = debug.getinfo(1, "S").source:sub(2)
  if src:sub(1, 1) ~= "/" then
    src = lfs.currentdir() .. "/" .. src
  end
  local root = string_match(src, "^(.*)/spec/internal/util%.lua$")
  root = string_gsub(root or lfs.currentdir(), "/%./", "/")
  root = string_gsub(root, "/%.$", "")
  _M.ROOT = root
end


function _M.now()
  return socket.gettime()
end


function _M.sleep(s)
  socket.sleep(s)
end


function _M.quote(s)
  return "'" .. string_gsub(tostring(s), "'", "'\\''") .. "'"
end
local quote = _M.quote


function _M.read_file(path)
  local f, err = io_open(path, "rb")
  if not f then
    return nil, err
  end
  local data = f:read("*a")
  f:close()
  return data
end


function _M.write_file(path, data, mode)
  local f, err = io_open(path, mode or "wb")
  if not f then
    return nil, err
  end
  f:write(data)
  f:close()
  return true
end


function _M.exists(path)
  return lfs.attributes(path, "mode") ~= nil
end


function _M.mkdir(path)
  local cur = ""
  for part in path:gmatch("[^/]+") do
    cur = cur .. "/" .. part
    if not lfs.attributes(cur, "mode") then
      local ok, err = lfs.mkdir(cur)
      if not ok and not lfs.attributes(cur, "mode") then
        return nil, err
      end
    end
  end
  return true
end


function _M.rm_rf(path)
  if type(path) ~= "string" or #path < 6 or path == "/tmp" then
    error("refusing to remove '" .. tostring(path) .. "'", 2)
  end
  local p = io_popen("rm -rf " .. quote(path) .. " 2>&1")
  p:read("*a")
  p:close()
  return true
end


local function tail(s, n)
  if not s then
    return ""
  end
  if #s > n then
    return "..." .. s:sub(-n)
  end
  return s
end
_M.tail = tail


function _M.tmpname(tag)
  _M.init_run_dir()
  return string_format("%s/%s-%d", RUN_DIR, tag or "tmp",
                       _M.next_id("tmpname"))
end


-- env: table of NAME = value prepended as `env NAME=value`
local function env_prefix(env)
  if not env then
    return ""
  end
  local keys = {}
  for k in pairs(env) do
    keys[#keys + 1] = k
  end
  table_sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = k .. "=" .. quote(env[k])
  end
  if #parts == 0 then
    return ""
  end
  return "env " .. table_concat(parts, " ") .. " "
end
_M.env_prefix = env_prefix


--- Runs `cmd` through sh, bounded by `timeout` seconds (default 30).
-- @return ok, stdout, stderr, exit_code (124 when the bound killed it)
function _M.exec(cmd, env, timeout)
  timeout = timeout or 30
  local out = _M.tmpname("stdout")
  local err = _M.tmpname("stderr")
  local full = string_format(
    "timeout -k 2 %s %ssh -c %s >%s 2>%s </dev/null; echo $?",
    tostring(timeout), env_prefix(env), quote(cmd), quote(out), quote(err))
  local p = io_popen(full)
  local rc = p:read("*a")
  p:close()
  local code = tonumber(string_match(rc or "", "(%d+)")) or -1
  local stdout = _M.read_file(out) or ""
  local stderr = _M.read_file(err) or ""
  os_remove(out)
  os_remove(err)
  if code == 124 then
    stderr = stderr .. "\n(timed out after " .. tostring(timeout) .. " s)"
  end
  return code == 0, stdout, stderr, code
end


--- Starts `cmd` in the background (stdin /dev/null, stdout+stderr to
-- `log`), tracks its PID for the watchdog and returns the PID.
--- Live (non-zombie) children of `pid`, sorted (the workers of a master).
function _M.children(pid)
  local _, stdout = _M.exec("ps -o pid=,stat= --ppid " .. tonumber(pid), nil, 5)
  local list = {}
  for child, stat in (stdout or ""):gmatch("(%d+)%s+(%S+)") do
    if not stat:find("^Z") then
      list[#list + 1] = tonumber(child)
    end
  end
  table.sort(list)
  return list
end


function _M.spawn(cmd, log, env)
  log = log or "/dev/null"
  local full = string_format("%sexec %s >%s 2>&1 </dev/null & echo $!",
                             env_prefix(env), cmd, quote(log))
  local p = io_popen(full)
  local out = p:read("*a")
  p:close()
  local pid = tonumber(string_match(out or "", "(%d+)"))
  if not pid then
    return nil, "could not start: " .. cmd
  end
  _M.track(pid)
  return pid
end


--- True when `pid` names a live process (zombies count as dead).
function _M.pid_alive(pid)
  pid = tonumber(pid)
  if not pid or pid <= 1 then
    return false
  end
  local stat = _M.read_file("/proc/" .. pid .. "/stat")
  if stat then
    local state = string_match(stat, "^%d+ %b() (%a)")
    return state ~= "Z" and state ~= "X"
  end
  return psignal.kill(pid, 0) == 0
end


function _M.kill(pid, sig)
  pid = tonumber(pid)
  if not pid or pid <= 1 then
    return nil, "bad pid"
  end
  sig = sig or psignal.SIGTERM
  if type(sig) == "string" then
    sig = psignal[sig]
  end
  local ok, err = psignal.kill(pid, sig)
  if ok ~= 0 then
    return nil, err
  end
  return true
end


--- Sends SIGTERM (or `sig`), waits up to `timeout` s, then SIGKILL.
-- @return true once the process is gone
function _M.terminate(pid, timeout, sig)
  pid = tonumber(pid)
  if not pid then
    return nil, "bad pid"
  end
  if _M.pid_alive(pid) then
    _M.kill(pid, sig or psignal.SIGTERM)
    local deadline = _M.now() + (timeout or 10)
    while _M.pid_alive(pid) and _M.now() < deadline do
      socket.sleep(0.02)
    end
    if _M.pid_alive(pid) then
      _M.kill(pid, psignal.SIGKILL)
      deadline = _M.now() + 5
      while _M.pid_alive(pid) and _M.now() < deadline do
        socket.sleep(0.02)
      end
    end
  end
  _M.untrack(pid)
  return not _M.pid_alive(pid)
end


function _M.wait_pid_gone(pid, timeout)
  local deadline = _M.now() + (timeout or 10)
  while _M.pid_alive(pid) do
    if _M.now() > deadline then
      return false
    end
    socket.sleep(0.02)
  end
  return true
end


--- Calls `fn` (errors are caught) until it returns a truthy value; raises
-- after `timeout` seconds (default 5). Returns what fn returned.
function _M.wait_until(fn, timeout, step)
  timeout = timeout or 5
  step = step or 0.05
  local deadline = _M.now() + timeout
  local last_err
  while true do
    local res = { pcall(fn) }
    if res[1] and res[2] then
      return select(2, unpack(res, 1, table.maxn(res)))
    end
    if not res[1] then
      last_err = res[2]
    end
    if _M.now() >= deadline then
      local msg = "wait_until() timeout (after " .. timeout .. " s)"
      if last_err then
        msg = msg .. ": " .. tostring(last_err)
      end
      error(msg, 2)
    end
    socket.sleep(step)
  end
end


-- Ports handed out by this run, never given twice.
local given_ports = state.given_ports


function _M.get_available_port()
  for _ = 1, 50 do
    local srv = socket.tcp()
    srv:setoption("reuseaddr", false)
    local ok = srv:bind("127.0.0.1", 0)
    local port
    if ok then
      local _, p = srv:getsockname()
      port = tonumber(p)
    end
    srv:close()
    if port and not given_ports[port] then
      given_ports[port] = true
      return port
    end
  end
  error("could not find a free port", 2)
end


--- True when something accepts TCP connections on host:port.
function _M.port_open(host, port, timeout)
  local s = socket.tcp()
  s:settimeout(timeout or 0.5)
  local ok = s:connect(host, port)
  s:close()
  return ok ~= nil
end


function _M.wait_port(host, port, timeout, pid)
  local deadline = _M.now() + (timeout or 10)
  while _M.now() < deadline do
    if _M.port_open(host, port, 0.5) then
      return true
    end
    if pid and not _M.pid_alive(pid) then
      return nil, "process " .. pid .. " exited"
    end
    socket.sleep(0.05)
  end
  return nil, "nothing accepts on " .. host .. ":" .. port .. " after "
              .. (timeout or 10) .. " s"
end


-- Watchdog: one detached sh per busted run. When the busted process exits
-- (for whatever reason) it sends SIGTERM then SIGKILL to every PID still
-- listed in RUN_DIR/pids and removes RUN_DIR (unless SLUICE_SPEC_KEEP=1).
local WATCHDOG = [[
owner=$1; dir=$2; keep=$3
while kill -0 "$owner" 2>/dev/null; do sleep 1; done
if [ -f "$dir/pids" ]; then
  for p in $(cat "$dir/pids"); do kill -TERM "$p" 2>/dev/null; done
  sleep 1
  for p in $(cat "$dir/pids"); do kill -KILL "$p" 2>/dev/null; done
fi
[ -n "$keep" ] || rm -rf "$dir"
]]


local tracked = state.tracked


function _M.init_run_dir()
  if state.run_dir_ready then
    return
  end
  state.run_dir_ready = true
  _M.mkdir(RUN_DIR)
  _M.write_file(RUN_DIR .. "/pids", "")
  local cmd = string_format("sh -c %s sluice-spec-watchdog %d %s %s",
                            quote(WATCHDOG), OWNER_PID, quote(RUN_DIR),
                            quote(KEEP or ""))
  local p = io_popen(cmd .. " >/dev/null 2>&1 </dev/null &")
  p:close()
end


local function write_tracked()
  local lines = {}
  for pid in pairs(tracked) do
    lines[#lines + 1] = tostring(pid)
  end
  _M.write_file(RUN_DIR .. "/pids", table_concat(lines, "\n") .. "\n")
end


function _M.track(pid)
  _M.init_run_dir()
  tracked[tonumber(pid)] = true
  write_tracked()
end


function _M.untrack(pid)
  if tracked[tonumber(pid)] then
    tracked[tonumber(pid)] = nil
    write_tracked()
  end
end


function _M.tracked_pids()
  local list = {}
  for pid in pairs(tracked) do
    list[#list + 1] = pid
  end
  return list
end


return _M
